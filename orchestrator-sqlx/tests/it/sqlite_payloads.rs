//! SQLite keeps large payloads zstd-compressed: what a user of the store sees is the body byte
//! for byte, whichever way it was stored, and the file holds a fraction of the bytes.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use orchestrator_core::engine::GroupCommit;
use orchestrator_core::store::{EventStore, IngestOutcome};
use orchestrator_sqlx::{PoolOptions, SqliteStore};

use crate::support::{at, event, task, test_options};

/// The 28 KiB `pull_request/opened` body of the shared corpus.
fn corpus_pull_request() -> Bytes {
    let dir = std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let path = dir.join("github-payloads/pull_request/opened.payload.json");
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

async fn accepted(store: &dyn EventStore, delivery: &str, payload: &Bytes) -> i64 {
    let mut new = event(delivery, "pull_request", at(0));
    new.payload = payload.clone();
    match store
        .ingest(new, vec![task("pull_request_analysis", 0, at(0))])
        .await
        .unwrap()
    {
        IngestOutcome::Accepted { event_id, .. } => event_id,
        other => panic!("{other:?}"),
    }
}

/// `(payload_encoding, length(payload))` of a stored event.
async fn stored_form(store: &SqliteStore, id: i64) -> (Option<String>, i64) {
    sqlx::query_as("SELECT payload_encoding, length(payload) FROM webhook_events WHERE id = ?")
        .bind(id)
        .fetch_one(store.reader())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payloads_are_stored_compressed_and_read_back_byte_for_byte() {
    let body = corpus_pull_request();
    assert!(body.len() > 20_000);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("payloads.db").display());
    let store = SqliteStore::connect(&url, &test_options(2)).await.unwrap();

    // Straight into the store (compressed in the writer), and through the group committer
    // (compressed beforehand in the caller's task by `prepare`).
    let direct = accepted(&store, "direct", &body).await;
    let group = GroupCommit::new(Arc::new(store.clone()), 1, 16);
    let grouped = accepted(&group, "grouped", &body).await;
    let small = Bytes::from_static(br#"{"zen":"Design for failure."}"#);
    let tiny = accepted(&store, "small", &small).await;

    for id in [direct, grouped] {
        assert_eq!(store.get_event(id).await.unwrap().unwrap().payload, body);
        let (encoding, stored_len) = stored_form(&store, id).await;
        assert_eq!(encoding.as_deref(), Some("zstd"));
        assert!(
            stored_len * 5 < i64::try_from(body.len()).unwrap(),
            "{stored_len} bytes stored for a {} byte body",
            body.len()
        );
    }
    assert_eq!(store.get_event(tiny).await.unwrap().unwrap().payload, small);
    assert_eq!(
        stored_form(&store, tiny).await.0,
        None,
        "short bodies stay text"
    );
    store.close().await;

    // Reopened with compression off: new rows are JSON text that SQL can read, and the
    // compressed rows written before stay readable.
    let plain = SqliteStore::connect(
        &url,
        &PoolOptions {
            sqlite_compress_payloads: false,
            ..test_options(2)
        },
    )
    .await
    .unwrap();
    let text = accepted(&plain, "text", &body).await;
    assert_eq!(stored_form(&plain, text).await.0, None);
    let number: i64 = sqlx::query_scalar(
        "SELECT json_extract(payload, '$.number') FROM webhook_events WHERE id = ?",
    )
    .bind(text)
    .fetch_one(plain.reader())
    .await
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(Some(number), parsed["number"].as_i64());
    for id in [direct, grouped, text] {
        assert_eq!(plain.get_event(id).await.unwrap().unwrap().payload, body);
    }
    plain.close().await;
}
