//! Error kinds shared by the traits: store, queue, outbound clients and task handlers.
//!
//! Adapters box their native error inside these, and callers branch on `kind()` /
//! `is_retryable()`, never on strings.

use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of store failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store cannot be reached or cannot commit now (connection, pool, timeout); try later.
    Unavailable,
    /// The request conflicts with the stored state (e.g. the task's lease was lost).
    Conflict,
    /// Stored data could not be decoded, or another unexpected failure.
    Internal,
}

/// A failure of an event/task store or of a queue.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl StoreError {
    /// A new error of `kind`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A new error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The kind, for callers that branch on it.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }
}

/// What kind of failure an outbound call (GitHub, coding agent) had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// Will fail again the same way (401/402/403/404/422, a bad response body).
    Permanent,
    /// May succeed later (5xx, connection failure, timeout); `retry_after` when the server said.
    Retryable {
        /// The upstream's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The upstream's quota is (nearly) used up; the work should wait, not fail.
    RateLimited {
        /// How long until the quota resets, when known.
        retry_after: Option<Duration>,
    },
    /// The dependency's circuit breaker is open: it refused the call (nothing was sent), or
    /// this call's failure opened it. The work waits for the breaker without using an attempt.
    CircuitOpen {
        /// Until the breaker lets a probe through.
        retry_after: Duration,
    },
    /// The client is not configured (e.g. no token); nothing was sent.
    NotConfigured,
}

/// A failure of an outbound client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ClientError {
    kind: ClientErrorKind,
    status: Option<u16>,
    message: String,
    outcome_unknown: bool,
    #[source]
    source: Option<BoxError>,
}

impl ClientError {
    /// A new error of `kind`; `status` is the HTTP status when there was a response.
    pub fn new(kind: ClientErrorKind, status: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            kind,
            status,
            message: message.into(),
            outcome_unknown: false,
            source: None,
        }
    }

    /// Marks a request whose effect is unknown: it may have reached the upstream and taken
    /// effect, but no (usable) answer came back, e.g. a run creation that timed out after it was
    /// sent. A caller with a record of what it asked for reconciles instead of asking again.
    pub fn with_outcome_unknown(mut self) -> Self {
        self.outcome_unknown = true;
        self
    }

    /// Whether the request may have taken effect although it failed (see
    /// [`with_outcome_unknown`](Self::with_outcome_unknown)).
    pub fn is_outcome_unknown(&self) -> bool {
        self.outcome_unknown
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind, for callers that branch on it.
    pub fn kind(&self) -> ClientErrorKind {
        self.kind
    }

    /// The HTTP status of the response, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self.kind,
            ClientErrorKind::Permanent | ClientErrorKind::NotConfigured
        )
    }
}

/// How a task attempt failed, which decides what the worker does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskErrorKind {
    /// Try again with backoff; `retry_after` (an upstream's `Retry-After`) overrides the backoff
    /// when it is longer.
    Retryable {
        /// The upstream's wish, when it said.
        retry_after: Option<Duration>,
    },
    /// Never try again: the task fails.
    Permanent,
    /// Not a failure of the task: a dependency is unavailable (open breaker, exhausted quota).
    /// The task runs again after `after` without using an attempt.
    Deferred {
        /// How long to wait.
        after: Duration,
    },
}

/// The error a task handler returns.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    /// What the worker should do.
    pub kind: TaskErrorKind,
    /// Shown in `error_message`; never contains secrets.
    pub message: String,
    /// With a deferral: stored as the task's `output_data` (e.g. why it waits, for the report
    /// on the pull request); `None` keeps it. Ignored by the other kinds.
    pub output: Option<serde_json::Value>,
}

impl TaskError {
    /// A retryable failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            kind: TaskErrorKind::Retryable { retry_after: None },
            message: message.into(),
            output: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: TaskErrorKind::Permanent,
            message: message.into(),
            output: None,
        }
    }

    /// A deferral by `after` that uses no attempt.
    pub fn deferred(after: Duration, message: impl Into<String>) -> Self {
        Self {
            kind: TaskErrorKind::Deferred { after },
            message: message.into(),
            output: None,
        }
    }

    /// Stores `output` as the task's `output_data` when this is a deferral.
    pub fn with_output(mut self, output: serde_json::Value) -> Self {
        self.output = Some(output);
        self
    }
}

impl From<ClientError> for TaskError {
    fn from(err: ClientError) -> Self {
        let message = err.to_string();
        let kind = match err.kind {
            ClientErrorKind::Permanent | ClientErrorKind::NotConfigured => TaskErrorKind::Permanent,
            ClientErrorKind::Retryable { retry_after } => TaskErrorKind::Retryable { retry_after },
            ClientErrorKind::RateLimited { retry_after } => TaskErrorKind::Deferred {
                after: retry_after.unwrap_or(Duration::from_secs(60)),
            },
            ClientErrorKind::CircuitOpen { retry_after } => {
                TaskErrorKind::Deferred { after: retry_after }
            }
        };
        TaskError {
            kind,
            message,
            output: None,
        }
    }
}

impl From<StoreError> for TaskError {
    fn from(err: StoreError) -> Self {
        if err.is_retryable() {
            TaskError::retryable(err.to_string())
        } else {
            TaskError::permanent(err.to_string())
        }
    }
}
