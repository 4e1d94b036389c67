//! Stored webhook events: what ingest inserts and what the event endpoints read back.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A verified delivery ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `X-GitHub-Delivery`; unique across all stored events.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// The payload's `action`, when it has one.
    pub action: Option<String>,
    /// Where it came from; `github` for this receiver.
    pub source: String,
    /// `owner/name` of the payload's repository.
    pub repository: Option<String>,
    /// The payload's `installation.id` (GitHub App deliveries).
    pub installation_id: Option<i64>,
    /// The JSON payload exactly as received (the `payload=` field for form bodies).
    pub payload: Bytes,
    /// The request headers worth keeping (never secrets), lower-case names.
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Why the typed view of a genuine (signed) JSON payload failed, when it did: the event is
    /// stored unparsed, with no tasks, unprocessed and with this as its error, so it can be
    /// reprocessed after an upgrade. `None` for every delivery that parsed.
    pub parse_error: Option<String>,
}

/// A stored event with its processing state (the spec's event detail JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Store-assigned id.
    pub id: i64,
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// `github`.
    pub source: String,
    /// `owner/name`.
    pub repository: Option<String>,
    /// `installation.id`.
    pub installation_id: Option<i64>,
    /// The JSON payload as received.
    #[serde(with = "raw_json")]
    pub payload: Bytes,
    /// Stored request headers.
    pub headers: Vec<(String, String)>,
    /// True once every task it caused has reached a terminal status (at once when it caused none).
    pub processed: bool,
    /// When its first task started.
    pub processing_started_at: Option<DateTime<Utc>>,
    /// When its last task finished.
    pub processing_completed_at: Option<DateTime<Utc>>,
    /// The error of a task of it that failed for good (or, for an event stored unparsed, why).
    pub error_message: Option<String>,
    /// Why its payload's typed view failed when it was received (stored unparsed, no tasks);
    /// cleared once a reprocess parses it.
    pub parse_error: Option<String>,
    /// How often it was reprocessed.
    pub retry_count: u32,
    /// Insert time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl NewEvent {
    /// The `error_message` an event stored unparsed starts with.
    pub fn unparsed_message(parse_error: &str) -> String {
        format!("stored unparsed: {parse_error}")
    }
}

/// One row of the event list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSummary {
    /// Store-assigned id.
    pub id: i64,
    /// `X-GitHub-Delivery`.
    pub delivery_id: String,
    /// `X-GitHub-Event`.
    pub event_type: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// See [`WebhookEvent::processed`].
    pub processed: bool,
    /// Insert time.
    pub created_at: DateTime<Utc>,
    /// See [`WebhookEvent::error_message`].
    pub error_message: Option<String>,
}

mod raw_json {
    //! (De)serialises stored payload bytes as embedded JSON, not as a string or byte array.
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::value::RawValue;

    pub(super) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(bytes).map_err(serde::ser::Error::custom)?;
        let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Bytes::from(raw.get().to_owned()))
    }
}
