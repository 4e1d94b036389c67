//! WAL checkpoints off the write path.
//!
//! In WAL mode every committed page is written twice: appended to the WAL by the commit, and
//! copied into the database file by a checkpoint. SQLite's automatic checkpoint runs inside the
//! commit that crosses `wal_autocheckpoint` pages, on the one writer connection, so under load
//! the writer (the receiver's only serial stage) spends a large share of its time copying pages.
//! Here a background task runs `PRAGMA wal_checkpoint(PASSIVE)` on a reader connection shortly
//! after ingest commits, beside the writer: a passive checkpoint never blocks the writer or
//! readers and never changes what is durable (every commit is already synced in the WAL). The
//! writer keeps an automatic checkpoint at [`WRITER_AUTOCHECKPOINT_PAGES`] as a backstop; it
//! finds little left to copy, and its checkpoint lets the WAL restart from the beginning.

use std::time::Duration;

use sqlx::sqlite::SqlitePool;
use tokio::sync::mpsc;

/// The writer's own automatic checkpoint threshold, in pages (the SQLite default is 1,000).
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: &str = "1000";

/// Least time between two background checkpoints, so each copies a worthwhile run of pages.
const PAUSE: Duration = Duration::from_millis(20);

/// Starts the checkpointer on `reader`; it stops once every returned sender is dropped.
pub(super) fn spawn(reader: SqlitePool) -> mpsc::Sender<()> {
    let (wake, mut woken) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while woken.recv().await.is_some() {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&reader)
                .await
            {
                tracing::debug!(%error, "background WAL checkpoint failed");
            }
            tokio::time::sleep(PAUSE).await;
        }
    });
    wake
}
