//! This crate's errors and their mapping onto the core's [`StoreError`] kinds.

use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::event::NewEvent;
use orchestrator_core::store::{EventStore, IngestOutcome, ingest_each};
use orchestrator_core::task::NewTask;

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
    // The driver's message goes into ours: log lines print the error's `Display`, and "disk
    // full" or "connection refused" is what the operator needs to read there.
    StoreError::with_source(kind, format!("database operation failed: {err}"), err)
}

/// PostgreSQL serialization failure / deadlock / admin shutdown / too many connections / disk
/// full, and SQLite BUSY / LOCKED / FULL: trying again later can succeed (a full disk gets
/// space back; nothing was written).
fn is_transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "40001"
                | "40P01"
                | "57P01"
                | "53300"
                | "53100"
                | "5"
                | "6"
                | "517"
                | "261"
                | "262"
                | "13"
        )
    )
}

/// Whether every other statement would fail the same way now: the database cannot be reached
/// (I/O, pool timeout, a server shutting down or out of connections), its disk is full, or
/// SQLite's write lock stayed taken for the whole busy timeout. A batch that failed so is not
/// retried one delivery at a time: each would wait as long as the batch did for the same
/// failure, and a batch of ten would keep its senders waiting past GitHub's 10 s. A deadlock,
/// a serialization failure or a constraint is different: alone, a delivery can succeed.
pub(crate) fn fails_every_statement(err: &StoreError) -> bool {
    let Some(err) = std::error::Error::source(err).and_then(|s| s.downcast_ref::<sqlx::Error>())
    else {
        return false;
    };
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("57P01" | "53300" | "53100" | "13" | "5" | "6" | "261" | "262" | "517")
        ),
        _ => false,
    }
}

/// The outcomes of a batch after its one-transaction attempt (`together`): those outcomes when
/// it committed; when it failed in a way every delivery shares ([`fails_every_statement`]),
/// that failure for each at once; else each delivery ingested on its own.
pub(crate) async fn settle_batch<S: EventStore + ?Sized>(
    store: &S,
    batch: Vec<(NewEvent, Vec<NewTask>)>,
    together: Result<Vec<IngestOutcome>, StoreError>,
) -> Vec<Result<IngestOutcome, StoreError>> {
    match together {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(err) if fails_every_statement(&err) => same_failure(batch.len(), &err),
        Err(_) => ingest_each(store, batch).await,
    }
}

/// `count` copies of a failure that every delivery of a batch shares.
fn same_failure<T>(count: usize, err: &StoreError) -> Vec<Result<T, StoreError>> {
    let shown = err.to_string();
    let prefix = format!("{:?}: ", err.kind());
    let message = shown.strip_prefix(&prefix).unwrap_or(&shown).to_owned();
    (0..count)
        .map(|_| Err(StoreError::new(err.kind(), message.clone())))
        .collect()
}

/// A stored value that does not decode (a bug or a foreign write).
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Internal,
        format!("stored data does not decode: {what}"),
    )
}

/// The claim no longer holds its task.
pub(crate) fn lost_claim(claim: &orchestrator_core::store::Claim) -> StoreError {
    StoreError::new(
        StoreErrorKind::Conflict,
        format!(
            "task {} is no longer held by execution {} of {}",
            claim.task.task_id, claim.execution_id, claim.worker_id
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_failures_every_statement_shares_skip_the_one_by_one_retry() {
        assert!(fails_every_statement(&store_error(
            sqlx::Error::PoolTimedOut
        )));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(fails_every_statement(&store_error(sqlx::Error::Io(
            refused
        ))));
        assert!(!fails_every_statement(&store_error(
            sqlx::Error::RowNotFound
        )));
        assert!(!fails_every_statement(&StoreError::new(
            StoreErrorKind::Unavailable,
            "no driver error behind it"
        )));
    }

    #[test]
    fn a_shared_failure_keeps_its_kind_and_words() {
        let err = store_error(sqlx::Error::PoolTimedOut);
        let copies: Vec<Result<(), StoreError>> = same_failure(3, &err);
        assert_eq!(copies.len(), 3);
        for copy in copies {
            let copy = copy.unwrap_err();
            assert_eq!(copy.kind(), StoreErrorKind::Unavailable);
            assert_eq!(copy.to_string(), err.to_string());
        }
    }
}
