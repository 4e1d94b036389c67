//! Integration tests of orchestrator-redis against a real Redis (`TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Every test writes under its own key prefix and deletes its keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod budget;
mod delivery;
mod flush;
mod guards;
mod lock;
mod postgres;
mod queue;
mod recovery;
mod support;
