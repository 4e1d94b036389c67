//! Retry: how long to wait before the next attempt ([`backoff`]) and whether there is one
//! ([`policy`]). Kept apart, as tower does, so a policy can use another backoff.

pub mod backoff;
pub mod policy;

pub use backoff::Backoff;
pub use policy::{RetryDecision, RetryPolicy};
