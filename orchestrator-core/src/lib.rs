//! # orchestrator-core
//!
//! The storage- and transport-agnostic heart of the GitHub webhook orchestrator. It proves a
//! delivery is genuine, reads the fields that matter, decides which tasks it causes, and runs
//! those tasks with retries and circuit breakers. It has no HTTP server, database driver, Redis
//! client or HTTP client: adapters implement its traits.
//!
//! ## Layout
//! - The path of a delivery: [`delivery`] (envelope headers, size limit) -> [`signature`]
//!   (`X-Hub-Signature-256`) -> [`payload`] (typed view of the JSON) -> [`routing`] (rules that
//!   yield [`task::TaskSpec`]s) -> [`store::EventStore::ingest`] (one transaction), driven by
//!   [`engine::Ingestor`].
//! - The path of a task: [`queue::TaskQueue`] (claim with a lease) -> [`handler`] (one
//!   [`handler::TaskHandler`] per [`task::TaskType`]) -> [`retry`] / [`breaker`] -> back to the
//!   store, driven by [`engine::Worker`].
//! - The model: [`task`] (types, the status state machine, executions), [`event`] (stored
//!   deliveries).
//! - Contracts for adapters: [`store`], [`queue`], [`github`], [`agent`], [`clock`],
//!   [`observe`]; [`error`] holds the error kinds they share.
//! - [`report`]: reporting task state back on the pull request (check runs, commit statuses,
//!   one comment), from a background [`report::Reporter`] over [`store::report::ReportStore`].
//! - [`budget`]: agent budgets (a global rate of run creations, runs per repository per hour;
//!   the per-head-SHA rule is the ledger's), the [`budget::AgentBudget`] trait and its
//!   in-process implementation.
//! - [`guard`]: optional shared guards for several API instances (a delivery replay guard in
//!   front of the store's unique constraint, a rate limiter), with an in-memory delivery guard.
//! - [`cleanup`]: the `cleanup` task (the retention cleanup run by a worker, its counts in the
//!   task's output).
//! - [`memory`]: in-memory implementations of the store traits (the task queue is
//!   [`queue::StoreQueue`] over them), GitHub and the coding agent, for tests and embedding. The
//!   in-memory delivery guard is [`guard::MemoryDeliveryGuard`]; the shared [`guard::RateLimiter`]
//!   has no in-memory implementation, because without one the HTTP layer limits in process.
//! - [`secret`]: [`secret::Secret`], the redacted string every crate keeps tokens and keys in.
//! - [`prelude`]: the names an embedder needs (handlers, rules, task model, memory store,
//!   clocks, `async_trait`) in one `use orchestrator_core::prelude::*`.

pub mod agent;
pub mod breaker;
pub mod budget;
pub mod cleanup;
pub mod clock;
pub mod delivery;
pub mod engine;
pub mod error;
pub mod event;
pub mod github;
pub mod guard;
pub mod handler;
pub mod memory;
pub mod observe;
pub mod payload;
pub mod prelude;
pub mod queue;
pub mod recovery;
pub mod report;
pub mod retry;
pub mod routing;
pub mod secret;
pub mod signature;
pub mod store;
pub mod task;
