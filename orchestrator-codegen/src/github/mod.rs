//! The GitHub REST client: [`GitHubClient`] implements the core's
//! [`GitHubApi`](orchestrator_core::github::GitHubApi).
//!
//! - `client.rs`: requests, paging, status mapping, metrics.
//! - `app_auth.rs`: GitHub App JWT and the installation-token cache.
//! - `rate_limit.rs`: `X-RateLimit-*` accounting and the low-quota floor.
//! - `report.rs`: the reporting calls ([`ReportApi`](orchestrator_core::report::ReportApi)).
//! - `wire.rs`: the JSON shapes of GitHub's answers.
//! - `deliveries.rs`: the webhook delivery log (list, get one, redeliver) for recovery.

mod app_auth;
mod client;
mod deliveries;
mod rate_limit;
mod report;
mod wire;

pub use client::GitHubClient;
