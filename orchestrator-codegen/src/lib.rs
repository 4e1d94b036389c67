//! # orchestrator-codegen
//!
//! The work the orchestrator exists for: the GitHub REST and Codegen agent clients (reqwest),
//! and the task handlers that decide from GitHub's state whether a coding agent should act and
//! then drive the agent's run to its end.
//!
//! ## Design note
//! Both clients speak plain HTTPS/JSON through one `reqwest::Client` each, with bounded connect
//! and total timeouts and redirects disabled (a redirect could carry a token to another host).
//! Each client owns a core [`CircuitBreaker`](orchestrator_core::breaker::CircuitBreaker)
//! (`github`, `codegen`; expose it with `breaker()` for the server's `BreakerSet`): only signs of
//! an unhealthy dependency count (5xx, 429, timeouts, connection failures), and an open breaker
//! answers `CircuitOpen` without sending, which the worker turns into a deferral that uses no
//! attempt. GitHub quota works the same way: `X-RateLimit-Remaining` of every response feeds
//! `github_api_rate_limit_remaining`, and below a floor calls are deferred until the reset.
//! GitHub App authentication signs an RS256 JWT and caches one installation token per
//! installation until shortly before it expires. Agent runs are never fired and forgotten, and
//! created at most once: an intent is committed to the agent-run ledger before the request is
//! sent and the run id right after, a retry that finds an intent without a run id looks the run
//! up by its metadata (or stops the task for a person) instead of creating another, and the run
//! is followed with `Waiting` outcomes (no worker slot held) until it ends or times out.
//!
//! ## Layout
//! - `config.rs`: validated settings ([`GitHubConfig`], [`CodegenConfig`], [`HandlerConfig`]);
//!   secrets in [`Secret`] (redacted `Debug`).
//! - [`github`]: [`GitHubClient`] (`client.rs`), App auth (`app_auth.rs`), quota
//!   (`rate_limit.rs`), response shapes (`wire.rs`).
//! - [`codegen`]: the agent client, [`CodegenClient`].
//! - `http.rs`: plumbing both clients share (status mapping, `Retry-After`, breaker permits).
//! - [`handlers`]: one handler per built-in task type, the classification rules, the prompt, and
//!   [`register_handlers`](handlers::register_handlers).
//! - `error.rs`: what can fail while building a client.
//! - `failpoint.rs`: crash-test failpoints, compiled in only with the `failpoints` feature (a
//!   testing aid).

pub mod codegen;
mod config;
mod error;
mod failpoint;
pub mod github;
pub mod handlers;
mod http;

pub use codegen::CodegenClient;
pub use config::{
    CodegenConfig, DEFAULT_CODEGEN_API_URL, DEFAULT_GITHUB_API_URL, DEFAULT_RUN_FAILURE_STATUSES,
    GitHubAppConfig, GitHubConfig, HandlerConfig, Secret, Timeouts,
};
pub use error::Error;
pub use github::GitHubClient;
