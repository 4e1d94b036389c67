//! End-to-end tests: the real `orchestrator-server` binary, started as a process on SQLite and
//! on PostgreSQL, with wiremock standing in for GitHub and Codegen, driven through the public
//! HTTP API only; and the `Orchestrator` builder in-process (`builder.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod agent_budget;
mod agent_runs;
mod agent_stub;
mod builder;
mod cancel;
mod cleanup_task;
mod console;
mod crash;
mod faults;
mod hostile;
mod operations;
mod pause;
mod pull_request;
mod recovery;
mod redis_flush;
mod report;
mod run_failure;
mod shutdown;
mod supersede;
mod support;
mod tracing;
