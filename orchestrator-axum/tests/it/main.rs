//! Integration tests of the HTTP API: every endpoint and status code through
//! `tower::ServiceExt::oneshot`, against the core's in-memory store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod admin;
mod budget;
mod cancel;
mod connections;
#[cfg(feature = "console")]
mod console;
mod down;
mod events;
mod figures;
mod layer;
mod logging;
mod openapi;
mod operations;
mod pause;
mod rate_limit;
mod recovery;
mod reprocess;
mod serve;
mod shared_rate_limit;
mod system;
mod tasks;
mod unparsed;
mod utils;
mod webhook;
