//! `REDIS_SWEEP_AFTER_SECONDS`: when the Redis queue's sweeper publishes a task again.
//!
//! A task whose publish never reached Redis (Redis was down and the API process that held it in
//! memory died) is found by the sweeper once it has been runnable and unchanged this long. The
//! default (5 minutes) keeps the sweep cheap; a shorter one brings such tasks back sooner (an
//! extra message for a task that did have one is harmless: claims are confirmed by the store).

use std::time::Duration;

use super::read::Reader;

/// The Redis queue settings an operator may tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisQueueSettings {
    /// `REDIS_SWEEP_AFTER_SECONDS`: a runnable task unchanged this long is published again.
    pub sweep_after: Duration,
}

impl RedisQueueSettings {
    /// How often workers look for such tasks: a fifth of `sweep_after`, between 1 s and 60 s.
    pub fn sweep_interval(&self) -> Duration {
        (self.sweep_after / 5).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Self {
        let sweep_after = r.secs("REDIS_SWEEP_AFTER_SECONDS", 300);
        if sweep_after < Duration::from_secs(1) {
            r.problem("REDIS_SWEEP_AFTER_SECONDS", "must be at least 1");
        }
        Self { sweep_after }
    }
}
