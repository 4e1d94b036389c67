//! Circuit breakers, one per outbound dependency.
//!
//! Closed: calls pass; `failure_threshold` consecutive failures open it. Open: calls are refused
//! without being made until `recovery` has passed. Half-open: exactly one probe passes; its
//! success closes the breaker, its failure opens it again. Answers that arrive while it is open
//! come from calls made before it opened and are ignored. Time comes from the injected clock.

mod config;
mod state;

pub use config::BreakerConfig;
pub use state::{BreakerOpen, BreakerSet, BreakerSnapshot, BreakerState, CircuitBreaker};
