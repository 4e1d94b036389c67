//! # orchestrator-server
//!
//! The reference server: the orchestrator's crates wired into the service the spec describes.
//! One binary runs the HTTP API, the task workers, or both (`serve --role all|api|worker`),
//! applies migrations (`migrate`) and can sign and post a payload file like GitHub (`send`).
//!
//! With only `GITHUB_WEBHOOK_SECRET` set it runs on the embedded default: a SQLite file, the
//! database-backed queue and workers in the same process. `DATABASE_URL=postgres://...`
//! switches to PostgreSQL, `REDIS_URL` to the Redis Streams queue.
//!
//! ## Layout
//! - [`config`]: every environment variable, validated at start-up (one message per problem).
//! - [`cli`]: the subcommands; [`send`]: the signed test delivery.
//! - [`app`]: builds the store, queue, clients, handlers, API and workers from a [`Config`] and
//!   runs them until shutdown ([`run`]), so tests start the same server in-process or as a binary.
//! - [`telemetry`]: JSON/text logs, OTLP traces, trace context carried from a delivery to its tasks.
//! - [`health`]: the server's extra health checks (queue, GitHub reachability, breakers).
//! - [`shutdown`]: SIGTERM / Ctrl-C.

pub mod app;
pub mod cli;
pub mod config;
pub mod error;
pub mod health;
pub mod send;
pub mod shutdown;
pub mod telemetry;

pub use app::{migrate, run};
pub use config::{Config, Role};
pub use error::ServerError;

/// The corpus of payloads and signature vectors (`WEBHOOK_CORPUS_DIR`, else `../shared/corpus`
/// beside the workspace).
pub fn corpus_dir() -> std::path::PathBuf {
    match std::env::var_os("WEBHOOK_CORPUS_DIR") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}
