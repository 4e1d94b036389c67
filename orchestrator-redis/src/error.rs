//! The crate's one error type, and how it maps onto the core's [`StoreError`] kinds.

use std::time::Duration;

use orchestrator_core::error::{StoreError, StoreErrorKind};

/// A failure of a Redis operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached, or the connection broke (I/O, timeout, a server that is loading
    /// or became a replica during a failover). Trying later can succeed.
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// An earlier failure is still being backed off; no command was sent.
    #[error("redis is unavailable; next connection attempt in {retry_in:?}")]
    BackingOff {
        /// Until the next connection attempt is allowed.
        retry_in: Duration,
    },
    /// Redis answered a command with an error that reconnecting does not fix.
    #[error("redis command failed: {0}")]
    Command(#[source] redis::RedisError),
    /// A reply did not have the expected shape.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    /// The configuration is not usable.
    #[error("invalid redis configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::BackingOff { .. })
    }
}

impl From<Error> for StoreError {
    fn from(err: Error) -> Self {
        let kind = if err.is_retryable() {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Internal
        };
        StoreError::with_source(kind, "redis queue", err)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
