//! The SQLite writer keeps writing after a commit that SQLite itself rolled back (a full disk,
//! an I/O error): such a failure must cost that one transaction, not every later write.

use orchestrator_core::store::{EventStore, IngestOutcome};
use orchestrator_sqlx::SqliteStore;

use crate::support::{at, event, task, test_options};

#[tokio::test]
async fn a_transaction_sqlite_rolled_back_itself_does_not_stop_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqliteStore::connect(&url, &test_options(2)).await.unwrap();

    // What a commit on a full disk leaves behind: SQLite ended the transaction on its own, so
    // sqlx's COMMIT and then its ROLLBACK fail, and sqlx still counts the transaction as open.
    let mut tx = store.writer().begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
    assert!(tx.commit().await.is_err());

    let outcome = store
        .ingest(
            event("after-the-failure", "pull_request", at(0)),
            vec![task("pull_request_analysis", 0, at(0))],
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, IngestOutcome::Accepted { .. }),
        "{outcome:?}"
    );
}
