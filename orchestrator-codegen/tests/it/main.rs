//! Integration tests of the GitHub and Codegen clients and the handlers, against wiremock servers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod agent_runs;
mod app_auth;
mod breaker;
mod budget;
mod codegen;
mod codegen_trigger;
mod deliveries;
mod github;
mod handlers;
mod pipeline;
mod props;
mod report;
mod run_end;
mod support;
