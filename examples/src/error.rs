//! The server's error type: what stops a command, with the message an operator reads.

use orchestrator_core::error::StoreError;

use crate::config::ConfigError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid (one line per problem).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command-line or environment value cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The database or the queue failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Listening or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
