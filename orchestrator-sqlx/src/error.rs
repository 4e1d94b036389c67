//! This crate's errors and their mapping onto the core's [`StoreError`] kinds.

use orchestrator_core::error::{StoreError, StoreErrorKind};

/// A failure to open or migrate a database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names no supported database (`postgres://`, `postgresql://`, `sqlite:`).
    #[error("unsupported database URL scheme (use postgres://... or sqlite://...)")]
    UnsupportedUrl,
    /// The driver failed (connect, query).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<Error> for StoreError {
    fn from(err: Error) -> Self {
        match err {
            Error::Database(err) => store_error(err),
            other => {
                StoreError::with_source(StoreErrorKind::Internal, "database setup failed", other)
            }
        }
    }
}

/// Boxes a driver error into the core kind callers branch on: connection trouble and lock
/// timeouts are `Unavailable` (retryable), unique violations `Conflict`, the rest `Internal`.
pub(crate) fn store_error(err: sqlx::Error) -> StoreError {
    let kind = match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreErrorKind::Unavailable,
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreErrorKind::Conflict
            } else if is_transient(db.code().as_deref()) {
                StoreErrorKind::Unavailable
            } else {
                StoreErrorKind::Internal
            }
        }
        _ => StoreErrorKind::Internal,
    };
    StoreError::with_source(kind, "database operation failed", err)
}

/// PostgreSQL serialization failure / deadlock / admin shutdown / too many connections, and
/// SQLite BUSY / LOCKED: trying again later can succeed.
fn is_transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("40001" | "40P01" | "57P01" | "53300" | "5" | "6" | "517" | "261" | "262")
    )
}

/// A stored value that does not decode (a bug or a foreign write).
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Internal,
        format!("stored data does not decode: {what}"),
    )
}

/// The claim no longer holds its task.
pub(crate) fn lost_claim(claim: &orchestrator_core::queue::Claim) -> StoreError {
    StoreError::new(
        StoreErrorKind::Conflict,
        format!(
            "task {} is no longer held by execution {} of {}",
            claim.task.task_id, claim.execution_id, claim.worker_id
        ),
    )
}
