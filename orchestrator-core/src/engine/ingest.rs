//! Ingest: size -> headers -> signature -> parse -> route -> one atomic store call -> publish.
//!
//! PLACEHOLDER API (being filled in).

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use uuid::Uuid;

use crate::clock::Clock;
use crate::delivery::{DeliveryError, DeliveryLimits};
use crate::error::StoreError;
use crate::observe::{NoopObserver, Observer};
use crate::payload::PayloadError;
use crate::queue::TaskQueue;
use crate::retry::RetryPolicy;
use crate::routing::Router;
use crate::signature::{SignatureError, SignatureVerifier};
use crate::store::{EventStore, ReprocessOutcome};

/// Why a delivery was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Size or envelope headers (HTTP 413 / 400).
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// Signature (HTTP 401).
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Body (HTTP 400).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The store could not commit (HTTP 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the receiver answers for an accepted (or duplicate) delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// The payload's action.
    pub action: Option<String>,
    /// The stored event's id.
    pub event_id: i64,
    /// True when the delivery id was already stored (nothing new was written).
    pub duplicate: bool,
    /// Tasks created (empty for duplicates and events without tasks).
    pub task_ids: Vec<Uuid>,
    /// The `zen` of a ping.
    pub zen: Option<String>,
}

/// The ingest service.
pub struct Ingestor {
    verifier: SignatureVerifier,
    router: Router,
    limits: DeliveryLimits,
    retry: RetryPolicy,
    store: Arc<dyn EventStore>,
    queue: Arc<dyn TaskQueue>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor").field("router", &self.router).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Ingestor {
    /// An ingest service with default limits, retry policy and no observer.
    pub fn new(
        verifier: SignatureVerifier,
        router: Router,
        store: Arc<dyn EventStore>,
        queue: Arc<dyn TaskQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            verifier,
            router,
            limits: DeliveryLimits::default(),
            retry: RetryPolicy::default(),
            store,
            queue,
            clock,
            observer: Arc::new(NoopObserver),
        }
    }

    /// Sets the size limit.
    pub fn with_limits(mut self, limits: DeliveryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the retry policy (its `max_retries` is stored on new tasks).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Reports deliveries to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The size limit, for HTTP layers that enforce it while reading.
    pub fn limits(&self) -> DeliveryLimits {
        self.limits
    }

    /// Verifies, parses, routes and stores one delivery. `trace_context` (a W3C `traceparent`)
    /// is stored on the tasks so their executions continue the delivery's trace.
    pub async fn ingest(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        trace_context: Option<String>,
    ) -> Result<Receipt, IngestError> {
        let _ = (headers, body, trace_context, &self.verifier, &self.router, &self.retry, &self.store, &self.queue, &self.clock, &self.observer);
        Err(IngestError::Delivery(DeliveryError::MissingHeader("unimplemented")))
    }

    /// Routes a stored event's payload again and stores the new tasks. `None` when no event
    /// has that id.
    pub async fn reprocess(&self, event_id: i64) -> Result<Option<ReprocessOutcome>, IngestError> {
        let _ = event_id;
        Ok(None)
    }
}
