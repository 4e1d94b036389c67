//! Ingest: size -> headers -> signature -> parse -> route -> one atomic store call (the event,
//! its tasks and, with supersede on, its pull-request updates) -> publish.
//!
//! Nothing is stored unless every check passed, and a delivery is acknowledged only after its
//! event and tasks are committed together. The body and secrets are never logged.
//!
//! A genuine delivery is never lost to our parser: a signed JSON object whose typed view fails
//! (a shape this version did not foresee) is stored *unparsed* through the same store call --
//! its raw bytes, the common fields, the parse error, no tasks -- answered 2xx, counted
//! (`Observer::parse_failure`), and reprocessed after an upgrade. Only what is not a genuine
//! JSON delivery (unsigned, wrongly signed, oversized, not JSON) is refused.
//!
//! With a [`DeliveryGuard`] (several API instances), a verified and parsed delivery whose id the
//! guard knows as stored is answered as a duplicate without asking the store; the protocol that
//! keeps this from ever losing a delivery is described in [`crate::guard`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use uuid::Uuid;

use super::supersede::{self, SupersedeConfig};
use crate::clock::Clock;
use crate::delivery::{self, Delivery, DeliveryError, DeliveryLimits};
use crate::error::StoreError;
use crate::event::NewEvent;
use crate::guard::{DeliveryGuard, Sighting};
use crate::observe::{DeliveryOutcome, NoopObserver, Observer};
use crate::payload::{self, ParsedEvent, PayloadError};
use crate::queue::{TaskQueue, TaskRef};
use crate::retry::RetryPolicy;
use crate::routing::Router;
use crate::signature::{SignatureError, SignatureVerifier};
use crate::store::agent_run::FORCE_CONFIG_KEY;
use crate::store::supersede::PrUpdate;
use crate::store::{EventStore, IngestOutcome, NewDelivery, ReprocessOutcome};
use crate::task::{NewTask, TaskSpec, TaskType};

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
    /// Why the payload's typed view failed, when the delivery was stored unparsed (no tasks).
    pub parse_error: Option<String>,
}

/// How [`Ingestor::reprocess`] routes a stored event again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReprocessOptions {
    /// Create agent runs even for pull-request head SHAs that already have one: the new tasks
    /// carry `"force": true` in their `config`, and pass it on to their `codegen_trigger`
    /// follow-ups.
    pub force: bool,
}

/// Why [`Ingestor::reprocess`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    /// The stored payload's typed view still fails (an event stored unparsed, reprocessed before
    /// an upgrade that understands it).
    #[error(
        "event {event_id} cannot be reprocessed: its stored payload still does not parse ({error}); nothing was changed"
    )]
    Unparsable {
        /// The event.
        event_id: i64,
        /// Why.
        error: PayloadError,
    },
    /// The store could not read or commit.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    guard: Option<Arc<dyn DeliveryGuard>>,
    supersede: SupersedeConfig,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("router", &self.router)
            .field("limits", &self.limits)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
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
            guard: None,
            supersede: SupersedeConfig {
                enabled: false,
                running: false,
            },
        }
    }

    /// Supersedes stale pull-request work (see [`SupersedeConfig`]) in the same store
    /// transaction that commits each newly accepted delivery: the store call carries the
    /// delivery's [`PrUpdate`]s ([`crate::store::supersede`]). Off until this is called;
    /// `config.enabled = false` keeps it off.
    pub fn with_supersede(mut self, config: SupersedeConfig) -> Self {
        self.supersede = config;
        self
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

    /// Puts a shared replay check in front of the store (see [`crate::guard`]): a redelivery the
    /// guard knows as stored is answered as a duplicate without a store transaction.
    pub fn with_delivery_guard(mut self, guard: Arc<dyn DeliveryGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// The routing rules (recovery asks them which deliveries are worth recovering).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The size limit, for HTTP layers that enforce it while reading.
    pub fn limits(&self) -> DeliveryLimits {
        self.limits
    }

    /// Verifies, parses, routes and stores one delivery. `trace_context` (a W3C `traceparent`)
    /// is stored on the tasks so their executions continue the delivery's trace.
    ///
    /// The steps, each refusing before anything is stored: size (before anything else) ->
    /// envelope headers -> `X-Hub-Signature-256` over the raw body -> JSON body -> parse ->
    /// route. Then the event and all its tasks are stored in one call, and the tasks are
    /// published to the queue; a publish failure is only logged, because the tasks are durable
    /// and a sweeper publishes them later.
    ///
    /// Every call is reported to the observer once; the event name labels it only after the
    /// signature was verified (`unknown` before), so unauthenticated callers cannot add labels.
    pub async fn ingest(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        trace_context: Option<String>,
    ) -> Result<Receipt, IngestError> {
        // The event name labels metrics only once the signature proved the sender: an
        // unauthenticated caller must not be able to mint label values.
        self.ingest_from(headers, body, trace_context, Origin::Received)
            .await
    }

    /// Stores a delivery read from GitHub's delivery log over the authenticated API (recovery,
    /// see [`crate::recovery`]): the same steps and store call as [`ingest`](Self::ingest)
    /// except the signature (GitHub's API proved the sender; the log keeps no signature
    /// anyway). The event's `source` is [`RECOVERED_SOURCE`]. A GUID that is already stored
    /// (a live delivery that won the race) is a duplicate as usual: one row.
    pub async fn ingest_recovered(
        &self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Receipt, IngestError> {
        self.ingest_from(headers, body, None, Origin::Recovered)
            .await
    }

    async fn ingest_from(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        trace_context: Option<String>,
        origin: Origin,
    ) -> Result<Receipt, IngestError> {
        let started = Instant::now();
        let mut verified_event = None;
        let result = self
            .ingest_inner(headers, body, trace_context, origin, &mut verified_event)
            .await;
        let (outcome, reason) = match &result {
            Ok(receipt) if receipt.duplicate => (DeliveryOutcome::Duplicate, None),
            Ok(_) => (DeliveryOutcome::Accepted, None),
            Err(IngestError::Store(_)) => (DeliveryOutcome::Failed, Some("store_unavailable")),
            Err(IngestError::Delivery(e)) => (DeliveryOutcome::Rejected, Some(e.as_str())),
            Err(IngestError::Signature(e)) => (DeliveryOutcome::Rejected, Some(e.as_str())),
            Err(IngestError::Payload(e)) => (DeliveryOutcome::Rejected, Some(e.as_str())),
        };
        let event_label = verified_event.as_deref().unwrap_or("unknown");
        self.observer
            .delivery(event_label, outcome, reason, started.elapsed());
        result
    }

    async fn ingest_inner(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        trace_context: Option<String>,
        origin: Origin,
        verified_event: &mut Option<String>,
    ) -> Result<Receipt, IngestError> {
        let verified = self.verify(headers, &body, origin, verified_event)?;
        let delivery_id = verified.envelope.delivery_id.as_str();
        let event = verified.envelope.event.as_str();
        let mut receipt = Receipt {
            delivery_id: delivery_id.to_owned(),
            event_type: event.to_owned(),
            action: verified.parsed.action.clone(),
            event_id: 0,
            duplicate: false,
            task_ids: Vec::new(),
            zen: verified.parsed.zen().map(str::to_owned),
            parse_error: verified.parse_error.clone(),
        };

        // Only now, with the sender proven and the body understood, may the id be marked.
        let claimed = match self.consult_guard(delivery_id, event).await {
            GuardAnswer::Stored { event_id } => {
                tracing::info!(
                    delivery_id,
                    event,
                    event_id,
                    "duplicate delivery (known to the delivery guard); nothing stored"
                );
                receipt.event_id = event_id;
                receipt.duplicate = true;
                return Ok(receipt);
            }
            GuardAnswer::Claimed => true,
            GuardAnswer::AskStore => false,
        };

        let (new_event, tasks) = self.rows(headers, &verified, trace_context, origin);
        let refs: Vec<TaskRef> = tasks
            .iter()
            .map(|t| TaskRef {
                task_id: t.task_id,
                run_at: t.run_at,
            })
            .collect();
        // Unparsed deliveries have no tasks and no typed view to supersede with.
        let pr_updates: Vec<PrUpdate> = match receipt.parse_error {
            None => supersede::pr_updates(
                self.supersede,
                &verified.parsed,
                &tasks,
                new_event.received_at,
            ),
            Some(_) => Vec::new(),
        };
        let mut created: BTreeMap<TaskType, u64> = BTreeMap::new();
        for task in &tasks {
            *created.entry(task.spec.task_type.clone()).or_default() += 1;
        }
        let delivery = NewDelivery::new(new_event, tasks).with_pr_updates(pr_updates.clone());
        let outcome = match self.store.ingest_delivery(delivery).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::error!(delivery_id, event, error = %err, "delivery could not be stored");
                if claimed {
                    self.release_guard(delivery_id, event).await;
                }
                return Err(err.into());
            }
        };
        let stored_id = match &outcome {
            IngestOutcome::Accepted { event_id, .. } | IngestOutcome::Duplicate { event_id } => {
                *event_id
            }
        };
        self.confirm_guard(delivery_id, event, stored_id).await;
        if let IngestOutcome::Accepted {
            pr_updates: done, ..
        } = &outcome
        {
            // Applied in the delivery's own commit (nothing for a duplicate).
            supersede::report(&pr_updates, done, self.observer.as_ref());
        }
        self.announce(&mut receipt, outcome, &refs, &created).await;
        Ok(receipt)
    }

    /// Size, envelope headers, signature, payload: the checks before anything is stored. Sets
    /// `verified_event` once the signature holds (the metric label of a genuine delivery).
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &Bytes,
        origin: Origin,
        verified_event: &mut Option<String>,
    ) -> Result<Verified, IngestError> {
        if let Err(err) = self.limits.check_size(body.len()) {
            tracing::warn!(reason = err.as_str(), size = body.len(), "delivery refused");
            return Err(err.into());
        }
        let envelope = Delivery::from_headers(headers).inspect_err(|err| {
            tracing::warn!(reason = err.as_str(), "delivery refused");
        })?;
        let delivery_id = envelope.delivery_id.as_str();
        let event = envelope.event.as_str();
        let signature = headers
            .get(delivery::headers::SIGNATURE_256)
            .map(|v| v.as_bytes());
        let legacy = headers.contains_key(delivery::headers::SIGNATURE_SHA1);
        // A recovered delivery came from GitHub's API over an authenticated call: no signature.
        if origin == Origin::Received {
            self.verifier
                .verify(signature, legacy, body)
                .inspect_err(|err| {
                    tracing::warn!(
                        delivery_id,
                        event,
                        reason = err.as_str(),
                        "delivery signature refused"
                    );
                })?;
        }
        *verified_event = Some(event.to_owned());
        let (json, parsed, parse_error) = read_payload(envelope.format, body, event)
            .inspect_err(|err| {
                tracing::warn!(delivery_id, event, reason = err.as_str(), error = %err, "delivery payload refused");
            })?;
        Ok(Verified {
            envelope,
            json,
            parsed,
            parse_error,
        })
    }

    /// The event row and its task rows for a verified delivery, received now. An unparsed
    /// delivery causes no tasks: its typed view is what routing would read.
    fn rows(
        &self,
        headers: &HeaderMap,
        verified: &Verified,
        trace_context: Option<String>,
        origin: Origin,
    ) -> (NewEvent, Vec<NewTask>) {
        let now = self.clock.now();
        let parsed = &verified.parsed;
        let specs = match verified.parse_error {
            None => self.router.route(parsed),
            Some(_) => Vec::new(),
        };
        let tasks = specs
            .into_iter()
            .map(|spec| NewTask {
                trace_context: trace_context.clone(),
                ..NewTask::new(spec, self.retry.max_retries, now)
            })
            .collect();
        let new_event = NewEvent {
            delivery_id: verified.envelope.delivery_id.clone(),
            event_type: verified.envelope.event.clone(),
            action: parsed.action.clone(),
            source: origin.source().to_owned(),
            repository: parsed.repository.as_ref().map(|r| r.full_name.clone()),
            installation_id: parsed.installation_id,
            payload: verified.json.clone(),
            headers: Delivery::stored_headers(headers),
            received_at: now,
            parse_error: verified.parse_error.clone(),
        };
        (new_event, tasks)
    }

    /// Logs and counts what the store did, publishes the new tasks, and fills in `receipt`.
    async fn announce(
        &self,
        receipt: &mut Receipt,
        outcome: IngestOutcome,
        refs: &[TaskRef],
        created: &BTreeMap<TaskType, u64>,
    ) {
        let delivery_id = receipt.delivery_id.as_str();
        let event = receipt.event_type.as_str();
        match outcome {
            IngestOutcome::Duplicate { event_id } => {
                tracing::info!(
                    delivery_id,
                    event,
                    event_id,
                    "duplicate delivery; nothing stored"
                );
                receipt.event_id = event_id;
                receipt.duplicate = true;
            }
            IngestOutcome::Accepted {
                event_id, task_ids, ..
            } => {
                if let Some(error) = &receipt.parse_error {
                    tracing::warn!(delivery_id, event, event_id, error = %error,
                        "delivery stored unparsed (its typed view failed); reprocess it after an upgrade");
                    self.observer.parse_failure(event);
                } else {
                    tracing::info!(
                        delivery_id,
                        event,
                        event_id,
                        tasks = task_ids.len(),
                        "delivery stored"
                    );
                }
                for (task_type, count) in created {
                    self.observer.tasks_created(task_type, *count);
                }
                if !refs.is_empty()
                    && let Err(err) = self.queue.publish(refs).await
                {
                    tracing::warn!(delivery_id, event, error = %err, "publishing tasks failed; the sweeper will publish them");
                }
                receipt.event_id = event_id;
                receipt.task_ids = task_ids;
            }
        }
    }

    /// Asks the guard (if any) about `delivery_id`. A failing guard is logged and treated as
    /// absent: the store decides.
    async fn consult_guard(&self, delivery_id: &str, event: &str) -> GuardAnswer {
        let Some(guard) = &self.guard else {
            return GuardAnswer::AskStore;
        };
        match guard.first_seen(delivery_id).await {
            Ok(Sighting::First) => GuardAnswer::Claimed,
            Ok(Sighting::InFlight) => GuardAnswer::AskStore,
            Ok(Sighting::Stored { event_id }) => GuardAnswer::Stored { event_id },
            Err(err) => {
                tracing::warn!(delivery_id, event, error = %err, "delivery guard unavailable; asking the store");
                GuardAnswer::AskStore
            }
        }
    }

    /// Tells the guard (if any) that `delivery_id` is stored as `event_id`.
    async fn confirm_guard(&self, delivery_id: &str, event: &str, event_id: i64) {
        if let Some(guard) = &self.guard
            && let Err(err) = guard.stored(delivery_id, event_id).await
        {
            tracing::warn!(delivery_id, event, error = %err, "delivery guard could not record a stored delivery");
        }
    }

    /// Releases the in-flight mark of a delivery that could not be stored.
    async fn release_guard(&self, delivery_id: &str, event: &str) {
        if let Some(guard) = &self.guard
            && let Err(err) = guard.forget(delivery_id).await
        {
            tracing::warn!(delivery_id, event, error = %err, "delivery guard could not forget an unstored delivery; it expires on its own");
        }
    }

    /// Routes a stored event's payload again and stores the new tasks, unless the event still has
    /// open tasks ([`ReprocessOutcome::Busy`], decided atomically by the store). An event stored
    /// unparsed is parsed again; if it still fails, nothing changes
    /// ([`ReprocessError::Unparsable`]). With [`ReprocessOptions::force`] the new tasks may
    /// create agent runs for pull-request head SHAs that already have one.
    pub async fn reprocess(
        &self,
        event_id: i64,
        options: ReprocessOptions,
    ) -> Result<ReprocessOutcome, ReprocessError> {
        let result = self.reprocess_stored(event_id, options).await;
        if let Err(ReprocessError::Store(err)) = &result {
            tracing::error!(event_id, error = %err, "reprocessing could not be stored");
        }
        result
    }

    async fn reprocess_stored(
        &self,
        event_id: i64,
        options: ReprocessOptions,
    ) -> Result<ReprocessOutcome, ReprocessError> {
        let Some(event) = self.store.get_event(event_id).await? else {
            return Ok(ReprocessOutcome::NotFound);
        };
        let parsed = ParsedEvent::parse(&event.event_type, &event.payload).map_err(|error| {
            tracing::warn!(event_id, event = %event.event_type, error = %error, "reprocess refused: the stored payload still does not parse");
            ReprocessError::Unparsable { event_id, error }
        })?;
        let now = self.clock.now();
        let tasks: Vec<NewTask> = self
            .router
            .route(&parsed)
            .into_iter()
            .map(|spec| NewTask::new(forced(spec, options.force), self.retry.max_retries, now))
            .collect();
        let refs: Vec<TaskRef> = tasks
            .iter()
            .map(|t| TaskRef {
                task_id: t.task_id,
                run_at: t.run_at,
            })
            .collect();
        let outcome = self.store.reprocess_event(event_id, tasks, now).await?;
        match &outcome {
            ReprocessOutcome::Reprocessed { task_ids, .. } => {
                tracing::info!(event_id, delivery_id = %event.delivery_id, event = %event.event_type, tasks = task_ids.len(), force = options.force, "event reprocessed");
                if !refs.is_empty()
                    && let Err(err) = self.queue.publish(&refs).await
                {
                    tracing::warn!(event_id, error = %err, "publishing reprocessed tasks failed; the sweeper will publish them");
                }
            }
            ReprocessOutcome::Busy { open_tasks, .. } => {
                tracing::info!(
                    event_id,
                    open = open_tasks.len(),
                    "reprocess refused: the event still has open tasks"
                );
            }
            ReprocessOutcome::NotFound => {}
        }
        Ok(outcome)
    }
}

/// A delivery whose size, headers, signature and payload passed.
struct Verified {
    envelope: Delivery,
    /// The JSON payload (the `payload=` field of a form body).
    json: Bytes,
    parsed: ParsedEvent,
    /// Why the typed view failed, for a delivery stored unparsed.
    parse_error: Option<String>,
}

/// The JSON bytes of a verified body, its typed view, and the parse error when that view failed
/// on a JSON object (the delivery is then kept with its common fields). Bodies that are not one
/// JSON object, and form bodies without a `payload` field, are errors.
fn read_payload(
    format: delivery::BodyFormat,
    body: &Bytes,
    event: &str,
) -> Result<(Bytes, ParsedEvent, Option<String>), PayloadError> {
    let json = payload::json_body(format, body)?;
    match ParsedEvent::parse(event, &json) {
        Ok(parsed) => Ok((json, parsed, None)),
        Err(shape @ PayloadError::Shape { .. }) => {
            let common = ParsedEvent::parse_common(event, &json)?;
            Ok((json, common, Some(shape.to_string())))
        }
        Err(refused) => Err(refused),
    }
}

/// `spec` with `"force": true` in its config when `force` is set.
fn forced(mut spec: TaskSpec, force: bool) -> TaskSpec {
    if force {
        if !spec.config.is_object() {
            spec.config = serde_json::Value::Object(Default::default());
        }
        if let Some(config) = spec.config.as_object_mut() {
            config.insert(FORCE_CONFIG_KEY.to_owned(), serde_json::Value::Bool(true));
        }
    }
    spec
}

/// The event `source` of a delivery our receiver got (the spec's value).
pub const RECEIVED_SOURCE: &str = "github";
/// The event `source` of a delivery recovered from GitHub's delivery log.
pub const RECOVERED_SOURCE: &str = "recovered";

/// How a delivery reached the ingestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Our receiver: the signature is checked.
    Received,
    /// GitHub's delivery log over the authenticated API: no signature to check.
    Recovered,
}

impl Origin {
    fn source(self) -> &'static str {
        match self {
            Origin::Received => RECEIVED_SOURCE,
            Origin::Recovered => RECOVERED_SOURCE,
        }
    }
}

/// What the ingestor does after asking the delivery guard.
enum GuardAnswer {
    /// Known as stored: answer duplicate without the store.
    Stored { event_id: i64 },
    /// This request marked the id in flight: store, and release the mark if that fails.
    Claimed,
    /// No guard, a failing guard, or another request holds the id: the store decides.
    AskStore,
}
