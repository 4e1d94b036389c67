//! # orchestrator-server
//!
//! The reference server, and the builder that embeds the same orchestrator in any Rust
//! application. One binary runs the HTTP API, the task workers, or both (`serve --role
//! all|api|worker`), applies migrations (`migrate`) and can sign and post a payload file like
//! GitHub (`send`); its `main` is a few lines over [`Orchestrator::builder`].
//!
//! With only `GITHUB_WEBHOOK_SECRET` set it runs on the embedded default: a SQLite file, the
//! database-backed queue and workers in the same process. `DATABASE_URL=postgres://...`
//! switches to PostgreSQL, `REDIS_URL` to the Redis Streams queue.
//!
//! ```no_run
//! use orchestrator_server::Orchestrator;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let orchestrator = Orchestrator::builder()
//!     .webhook_secret("change-me")
//!     .database_url("sqlite://orchestrator.db?mode=rwc")
//!     .build()
//!     .await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! orchestrator.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `docs/embedding.md` walks through the examples: the receiver and workers inside an existing
//! axum application, a task type of your own, and the whole pipeline on the in-memory store.
//!
//! ## Layout
//! - `builder.rs`: [`OrchestratorBuilder`], the settings and the build steps, in order:
//!   `storage.rs` (the store, its queue, group commit: the one place that knows the store
//!   traits), `clients.rs` (GitHub, Codegen, breakers), `ingest.rs` (verifier, rules, ingest
//!   service, replay guard), `api.rs` (the routes' state, the full API, a worker's probes),
//!   `workers.rs` (handler registry, worker), `background.rs` (the scheduled services),
//!   `recovery.rs` (the reconciler with GitHub's delivery log and its schedule).
//! - `orchestrator.rs`: [`Orchestrator`], the built result: `router`, `layer`, `run_workers`,
//!   `serve`; `serve.rs`: HTTP serving with the shutdown drain.
//! - `components.rs`: [`Components`], what handler factories and background services get.
//! - `config/`: every environment variable, validated at start-up (one message per problem),
//!   composed of the crates' own config structs; `role.rs`: [`Role`].
//! - [`cli`]: the subcommands; [`send`]: the signed test delivery; [`recover`]: the `recover`
//!   subcommand (asks the running server to reconcile with GitHub's delivery log).
//! - [`telemetry`]: JSON/text logs, OTLP traces, trace context carried from a delivery to its tasks.
//! - [`health`]: the server's extra health check (GitHub reachability).
//! - [`shutdown`]: SIGTERM / Ctrl-C.
//! - `report.rs`: the reporter (check runs / statuses / one comment on the pull request) as a
//!   background service of the worker role.

mod api;
mod background;
mod builder;
pub mod cli;
mod clients;
mod components;
mod config;
mod error;
pub mod health;
mod ingest;
mod operations;
mod orchestrator;
pub mod recover;
mod recovery;
mod report;
mod role;
pub mod send;
mod serve;
pub mod shutdown;
mod storage;
pub mod telemetry;
mod workers;

pub use background::BackgroundService;
pub use builder::OrchestratorBuilder;
pub use components::Components;
pub use config::{
    Config, ConfigError, ConfigProblem, DEFAULT_BIND_ADDR, DEFAULT_DATABASE_URL, Purpose,
};
pub use error::ServerError;
pub use orchestrator::Orchestrator;
pub use role::Role;
pub use storage::{StoreBackend, migrate};
/// The shutdown token a [`BackgroundService`] gets (tokio-util's), re-exported so a service
/// needs no extra dependency to name it.
pub use tokio_util::sync::CancellationToken;

/// The corpus of payloads and signature vectors (`WEBHOOK_CORPUS_DIR`, else `../shared/corpus`
/// beside the workspace).
pub fn corpus_dir() -> std::path::PathBuf {
    match std::env::var_os("WEBHOOK_CORPUS_DIR") {
        Some(dir) => dir.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}
