//! Retry: how long to wait before the next attempt (`backoff.rs`) and whether there is one
//! (`policy.rs`). Kept apart, as tower does, so a policy can use another backoff.

mod backoff;
mod policy;

pub use backoff::Backoff;
pub use policy::{RetryDecision, RetryPolicy};
