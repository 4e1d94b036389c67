//! The contract of GitHub's delivery log, as the reconciler reads it: a page of delivery
//! summaries (newest first, cursor paging), one delivery with its request, and a redelivery.
//! The reqwest implementation lives in `orchestrator-codegen` (`GitHubClient`); tests use
//! wiremock or an in-memory log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::hook::HookRef;
use crate::error::ClientError;

/// One row of a hook's delivery log (GitHub's "delivery summary").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySummary {
    /// The attempt's id in the log (each redelivery attempt has its own).
    pub id: i64,
    /// `X-GitHub-Delivery`: the same for a delivery and all its redeliveries.
    pub guid: String,
    /// When GitHub sent this attempt.
    pub delivered_at: DateTime<Utc>,
    /// Whether this attempt was a redelivery.
    #[serde(default)]
    pub redelivery: bool,
    /// `OK`, or why the attempt failed.
    #[serde(default)]
    pub status: String,
    /// Our receiver's HTTP status (0 when there was no answer).
    #[serde(default)]
    pub status_code: u16,
    /// The event name (`X-GitHub-Event`).
    pub event: String,
    /// The payload's action.
    #[serde(default)]
    pub action: Option<String>,
    /// The App installation, when there is one.
    #[serde(default)]
    pub installation_id: Option<i64>,
    /// The repository id, when there is one.
    #[serde(default)]
    pub repository_id: Option<i64>,
    /// When GitHub throttled this delivery (it was not sent then).
    #[serde(default)]
    pub throttled_at: Option<DateTime<Utc>>,
}

impl DeliverySummary {
    /// Whether our receiver accepted this attempt (a 2xx answer).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// One page of a delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryPage {
    /// Summaries, newest first.
    pub deliveries: Vec<DeliverySummary>,
    /// The `cursor` of the next (older) page, from the `Link: rel="next"` header.
    pub next_cursor: Option<String>,
}

/// One delivery with the request GitHub sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRequest {
    /// The summary fields.
    pub summary: DeliverySummary,
    /// The request headers as GitHub lists them (`X-GitHub-Event`, `X-GitHub-Delivery`, ...).
    pub headers: Vec<(String, String)>,
    /// The JSON payload.
    pub payload: serde_json::Value,
}

/// A hook's delivery log at GitHub.
#[async_trait]
pub trait DeliveryLog: Send + Sync + 'static {
    /// One page (`per_page=100`), from the newest when `cursor` is `None`.
    async fn list_deliveries(
        &self,
        hook: &HookRef,
        cursor: Option<&str>,
    ) -> Result<DeliveryPage, ClientError>;

    /// One delivery attempt with its request headers and payload.
    async fn get_delivery(
        &self,
        hook: &HookRef,
        delivery_id: i64,
    ) -> Result<DeliveryRequest, ClientError>;

    /// Asks GitHub to send the attempt again (`POST .../attempts`); the redelivery keeps the GUID.
    async fn redeliver(&self, hook: &HookRef, delivery_id: i64) -> Result<(), ClientError>;
}
