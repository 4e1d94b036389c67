//! Payload parsing: a typed view of exactly the fields routing and tasks need.
//!
//! PLACEHOLDER API (being filled in): `json_body` turns the raw body into JSON bytes,
//! `ParsedEvent::parse` reads the fields routing needs. Unknown events and actions never fail.

use bytes::Bytes;

use crate::delivery::BodyFormat;

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The body is not a JSON object.
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    /// A form body without a usable `payload` field.
    #[error("form body has no valid payload field: {0}")]
    InvalidForm(String),
    /// A routed event whose required fields are missing or of the wrong type.
    #[error("{event} payload is missing required fields: {message}")]
    Shape {
        /// The event name.
        event: String,
        /// What is wrong.
        message: String,
    },
}

impl PayloadError {
    /// Short label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            PayloadError::InvalidJson(_) => "payload_invalid_json",
            PayloadError::InvalidForm(_) => "payload_invalid_form",
            PayloadError::Shape { .. } => "payload_shape",
        }
    }
}

/// The JSON bytes of a body: the body itself, or the decoded `payload` field of a form body.
pub fn json_body(format: BodyFormat, body: &Bytes) -> Result<Bytes, PayloadError> {
    match format {
        BodyFormat::Json => Ok(body.clone()),
        BodyFormat::Form => {
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| PayloadError::InvalidForm(e.to_string()))?;
            fields
                .into_iter()
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| Bytes::from(v))
                .ok_or_else(|| PayloadError::InvalidForm("no payload field".into()))
        }
    }
}

/// The repository a payload is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
    /// The default branch (`main`, `master`, ...).
    pub default_branch: Option<String>,
}

/// A parsed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    /// `X-GitHub-Event`.
    pub name: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// The payload's repository.
    pub repository: Option<Repository>,
    /// The payload's `installation.id`.
    pub installation_id: Option<i64>,
    /// The whole payload as a JSON value (placeholder until typed views exist).
    pub json: serde_json::Value,
}

impl ParsedEvent {
    /// Parses the JSON bytes of a delivery of `event`.
    pub fn parse(event: &str, json: &[u8]) -> Result<Self, PayloadError> {
        let json: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| PayloadError::InvalidJson(e.to_string()))?;
        if !json.is_object() {
            return Err(PayloadError::InvalidJson("not an object".into()));
        }
        Ok(Self {
            name: event.to_owned(),
            action: json.get("action").and_then(|a| a.as_str()).map(str::to_owned),
            repository: json.get("repository").and_then(|r| {
                Some(Repository {
                    full_name: r.get("full_name")?.as_str()?.to_owned(),
                    default_branch: r.get("default_branch").and_then(|b| b.as_str()).map(str::to_owned),
                })
            }),
            installation_id: json.get("installation").and_then(|i| i.get("id")).and_then(|i| i.as_i64()),
            json,
        })
    }

    /// The `zen` of a `ping`.
    pub fn zen(&self) -> Option<&str> {
        self.json.get("zen").and_then(|z| z.as_str())
    }
}
