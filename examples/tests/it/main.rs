//! End-to-end tests: the real `orchestrator-server` binary, started as a process on SQLite and
//! on PostgreSQL, with wiremock standing in for GitHub and Codegen, driven through the public
//! HTTP API only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod crash;
mod faults;
mod pull_request;
mod shutdown;
mod support;
mod tracing;
