//! Shared helpers for the benchmarks: the corpus location and signed bodies.
//!
//! ## Layout
//! - `benches/signature.rs`: `X-Hub-Signature-256` verification of 1 KiB, 16 KiB, 28 KiB and
//!   1 MiB bodies (throughput in bytes).
//! - `benches/parse_route.rs`: [`ParsedEvent::parse`] + [`Router::route`] of corpus payloads,
//!   including the largest `pull_request` one (~28 KiB).
//! - `benches/store.rs`: ingest commits/s and claim + complete/s on PostgreSQL and SQLite
//!   (baseline: `pgbench/run.sh`).
//! - `benches/redis_queue.rs`: the Redis Streams queue's own cycle and end-to-end no-op tasks
//!   (baseline: `redis-benchmark`).
//! - `load/`: the end-to-end load benchmark against the real server binary (`load/run.sh`
//!   runs it beside a Node receiver and pgbench).
//! - `bulk/`: a bulk retry of 100,000 failed tasks through the real server on PostgreSQL
//!   against a bare SQL `UPDATE`, and the receiver's p99 under load while it runs.
//! - [`driver`]: what `load/` and `bulk/` share (starting the server, the HTTP client, the
//!   load connections).
//!
//! Results and the machine they ran on: `docs/benchmarks.md`.
//!
//! [`ParsedEvent::parse`]: orchestrator_core::payload::ParsedEvent::parse
//! [`Router::route`]: orchestrator_core::routing::Router::route

use std::path::PathBuf;

pub mod driver;

/// The shared corpus: `WEBHOOK_CORPUS_DIR`, or `<workspace>/../shared/corpus`.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        })
}

/// Reads `github-payloads/<file>` from the corpus.
pub fn payload(file: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(corpus_dir().join("github-payloads").join(file))
}

/// A body of `len` bytes shaped like JSON (repeated corpus text, so not trivially compressible
/// patterns matter nothing to SHA-256, but the bytes are realistic).
pub fn body_of_len(len: usize) -> Vec<u8> {
    let seed: &[u8] = br#"{"action":"opened","number":2,"pull_request":{"title":"Update the README with new information."},"#;
    seed.iter().copied().cycle().take(len).collect()
}
