//! Whether a failed attempt is tried again, and when.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Backoff;
use crate::clock;
use crate::error::{TaskError, TaskErrorKind};

/// Retry limits and schedule (defaults: 3 retries, 1 s base, factor 2, 300 s cap).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The delay schedule.
    pub backoff: Backoff,
    /// The longest upstream `Retry-After` honoured (longer ones are cut to this; default 1 h).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this instant (uses one retry).
    RetryAt(DateTime<Utc>),
    /// Run again at this instant without using a retry (deferral).
    DeferUntil(DateTime<Utc>),
    /// Give up: the task fails.
    GiveUp,
}

impl RetryPolicy {
    /// Decides for a task that has used `retries_used` of `max_retries` and just failed with
    /// `error`; `unit` is a random number in `0.0..1.0` for jitter.
    pub fn decide(
        &self,
        error: &TaskError,
        retries_used: u32,
        max_retries: u32,
        now: DateTime<Utc>,
        unit: f64,
    ) -> RetryDecision {
        match error.kind {
            TaskErrorKind::Permanent => RetryDecision::GiveUp,
            TaskErrorKind::Deferred { after } => {
                RetryDecision::DeferUntil(clock::add(now, after.min(self.max_retry_after)))
            }
            TaskErrorKind::Retryable { retry_after } => {
                if retries_used >= max_retries {
                    return RetryDecision::GiveUp;
                }
                let backoff = self.backoff.delay(retries_used + 1, unit);
                let wait = match retry_after {
                    Some(upstream) => backoff.max(upstream.min(self.max_retry_after)),
                    None => backoff,
                };
                RetryDecision::RetryAt(clock::add(now, wait))
            }
        }
    }
}
