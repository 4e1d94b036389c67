//! Payload parsing: a typed view of exactly the fields routing and tasks need.
//!
//! [`json_body`] turns the raw body into JSON bytes (a form body carries them in its `payload`
//! field); [`ParsedEvent::parse`] reads them once with serde into small typed structs
//! ([`EventKind`]), skipping every field nobody reads. No `serde_json::Value` of the whole
//! payload is built: the raw bytes are stored as sent, and the typed view is all routing needs.
//!
//! What fails, and what the receiver does with it:
//! - bytes that are not one JSON object ([`PayloadError::InvalidJson`]), or a form body without
//!   a usable `payload` field ([`PayloadError::InvalidForm`]): refused (400), nothing stored;
//! - a routed event (`pull_request`, `check_run`, `check_suite`, `push`) whose JSON object lacks
//!   the fields its rules need, or has a wrong type in a field that is read
//!   ([`PayloadError::Shape`]): the typed view failed, but the delivery is genuine (signed) and
//!   GitHub never resends it, so the ingestor stores it *unparsed* -- raw bytes, the common
//!   fields read by [`ParsedEvent::parse_common`], the parse error, no tasks -- to be reprocessed
//!   after an upgrade. A shape error is never a reason to lose a delivery.
//!
//! Everything else parses: unknown events, unknown actions, new fields, and informational
//! events (`ping`, `installation`, `installation_repositories`) whose shape is unexpected (they
//! fall back to [`EventKind::Other`]).
//!
//! ## Layout
//! - [`events`]: the public typed views ([`EventKind`] and its structs).
//! - `envelope`: the top-level serde structs, one per event.
//! - `lenient`: readers for the common fields that never fail on an unexpected type.

pub mod events;

mod envelope;
mod lenient;

use bytes::Bytes;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::delivery::BodyFormat;
pub use events::{
    Account, AppRef, CheckOutput, CheckRun, CheckSuite, CheckSuiteSummary, Commit, EventKind,
    GitRef, Installation, InstallationInfo, InstallationRepositories, Ping, PullRequest,
    PullRequestRef, Push, Pusher, RepositoryRef,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// `X-GitHub-Event`.
    pub name: String,
    /// The payload's `action`.
    pub action: Option<String>,
    /// The payload's repository.
    pub repository: Option<Repository>,
    /// The payload's `installation.id`.
    pub installation_id: Option<i64>,
    /// The payload's `sender.login`.
    pub sender: Option<String>,
    /// The typed fields of this kind of event.
    pub kind: EventKind,
}

impl ParsedEvent {
    /// Parses the JSON bytes of a delivery of `event`.
    pub fn parse(event: &str, json: &[u8]) -> Result<Self, PayloadError> {
        check_object(json)?;
        let routed = |e| shape_or_json(event, json, e);
        match event {
            "pull_request" => {
                let mut env: envelope::PullRequestEnvelope = read(json).map_err(routed)?;
                Ok(Self::new(
                    event,
                    env.common(),
                    EventKind::PullRequest(env.pull_request),
                ))
            }
            "check_run" => {
                let mut env: envelope::CheckRunEnvelope = read(json).map_err(routed)?;
                let common = env.common();
                let mut run = env.check_run;
                run.requested_action = env.requested_action.and_then(|a| a.identifier);
                Ok(Self::new(event, common, EventKind::CheckRun(run)))
            }
            "check_suite" => {
                let mut env: envelope::CheckSuiteEnvelope = read(json).map_err(routed)?;
                Ok(Self::new(
                    event,
                    env.common(),
                    EventKind::CheckSuite(env.check_suite),
                ))
            }
            "push" => {
                let mut env: envelope::PushEnvelope = read(json).map_err(routed)?;
                let common = env.common();
                let push = Push {
                    git_ref: env.git_ref,
                    before: env.before,
                    after: env.after,
                    created: env.created.unwrap_or(false),
                    deleted: env.deleted.unwrap_or(false),
                    forced: env.forced.unwrap_or(false),
                    compare: env.compare,
                    pusher: env.pusher.unwrap_or_default(),
                    commits: env.commits.unwrap_or_default(),
                };
                Ok(Self::new(event, common, EventKind::Push(push)))
            }
            "ping" => Self::informational(event, json, |mut env: envelope::PingEnvelope| {
                let ping = Ping {
                    zen: env.zen.0.take(),
                    hook_id: env.hook_id.0,
                };
                (env.common(), EventKind::Ping(ping))
            }),
            "installation" => {
                Self::informational(event, json, |env: envelope::InstallationEnvelope| {
                    let info = env.installation.unwrap_or_default();
                    let common = envelope::Common {
                        action: env.action.0,
                        repository: None,
                        installation_id: info.id,
                        sender: env.sender.login,
                    };
                    let installation = Installation {
                        account: info.account.login,
                        repositories: names(env.repositories),
                    };
                    (common, EventKind::Installation(installation))
                })
            }
            "installation_repositories" => Self::informational(
                event,
                json,
                |mut env: envelope::InstallationRepositoriesEnvelope| {
                    let kind = EventKind::InstallationRepositories(InstallationRepositories {
                        repository_selection: env.repository_selection.take(),
                        added: names(env.repositories_added.take()),
                        removed: names(env.repositories_removed.take()),
                    });
                    (env.common(), kind)
                },
            ),
            _ => Self::other(event, json),
        }
    }

    /// The common fields only (`action`, `repository`, `installation`, `sender`), with kind
    /// [`EventKind::Other`]: what is kept of a genuine delivery whose typed view failed
    /// ([`PayloadError::Shape`]). Fails only when the bytes are not one JSON object.
    pub fn parse_common(event: &str, json: &[u8]) -> Result<Self, PayloadError> {
        check_object(json)?;
        Self::other(event, json)
    }

    /// The `zen` of a `ping`.
    pub fn zen(&self) -> Option<&str> {
        match &self.kind {
            EventKind::Ping(ping) => ping.zen.as_deref(),
            _ => None,
        }
    }

    fn new(event: &str, common: envelope::Common, kind: EventKind) -> Self {
        Self {
            name: event.to_owned(),
            action: common.action,
            repository: common.repository,
            installation_id: common.installation_id,
            sender: common.sender,
            kind,
        }
    }

    /// An event that is never routed by the built-in rules: a shape problem falls back to
    /// [`EventKind::Other`] instead of refusing the delivery.
    fn informational<T: DeserializeOwned>(
        event: &str,
        json: &[u8],
        build: impl FnOnce(T) -> (envelope::Common, EventKind),
    ) -> Result<Self, PayloadError> {
        match read::<T>(json) {
            Ok(env) => {
                let (common, kind) = build(env);
                Ok(Self::new(event, common, kind))
            }
            Err(_) => {
                validate(json)?;
                Self::other(event, json)
            }
        }
    }

    /// Any other event: the common fields only, and never a shape error.
    fn other(event: &str, json: &[u8]) -> Result<Self, PayloadError> {
        match read::<envelope::OtherEnvelope>(json) {
            Ok(mut env) => Ok(Self::new(event, env.common(), EventKind::Other)),
            // Only possible with duplicate keys: if the whole text is JSON, still accepted.
            Err(_) => {
                validate(json)?;
                let empty = envelope::Common {
                    action: None,
                    repository: None,
                    installation_id: None,
                    sender: None,
                };
                Ok(Self::new(event, empty, EventKind::Other))
            }
        }
    }
}

/// A payload is always one JSON object (serde would read a struct from an array too).
fn check_object(json: &[u8]) -> Result<(), PayloadError> {
    if json.trim_ascii_start().first() == Some(&b'{') {
        return Ok(());
    }
    Err(match serde_json::from_slice::<IgnoredAny>(json) {
        Err(e) => PayloadError::InvalidJson(e.to_string()),
        Ok(_) => PayloadError::InvalidJson("not an object".into()),
    })
}

fn read<T: DeserializeOwned>(json: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(json)
}

/// An error in valid JSON is a shape error (missing field, wrong type, an array where an object
/// was expected); anything else is not JSON. serde stops at the first error and reports some
/// shape problems as syntax (extra array elements), so the whole text is checked on this path.
fn shape_or_json(event: &str, json: &[u8], e: serde_json::Error) -> PayloadError {
    match validate(json) {
        Ok(()) => PayloadError::Shape {
            event: event.to_owned(),
            message: e.to_string(),
        },
        Err(invalid) => invalid,
    }
}

/// Whether `json` is one JSON value, as [`PayloadError::InvalidJson`] when it is not.
fn validate(json: &[u8]) -> Result<(), PayloadError> {
    serde_json::from_slice::<IgnoredAny>(json)
        .map(|_| ())
        .map_err(|e| PayloadError::InvalidJson(e.to_string()))
}

fn names(repos: Option<Vec<RepositoryRef>>) -> Vec<String> {
    repos
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.full_name)
        .collect()
}

#[cfg(test)]
mod tests;
