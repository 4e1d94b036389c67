//! Exponential backoff with jitter: `base * factor^(n-1)`, capped, then jittered downwards by up
//! to `jitter` of itself ("equal jitter" for jitter = 0.5), so many tasks that failed together do
//! not come back together.

use std::time::Duration;

/// An exponential backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (default 1 s).
    pub base: Duration,
    /// Growth per retry (default 2).
    pub factor: f64,
    /// Upper bound of any delay (default 300 s).
    pub max: Duration,
    /// Fraction of the delay that is random, 0.0..=1.0 (default 0.5).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (1-based) without jitter: capped and monotone.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(1024) as i32;
        let secs = self.base.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let cap = self.max.as_secs_f64();
        if !secs.is_finite() || secs >= cap {
            self.max
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// The delay before retry `retry` with jitter; `unit` is a random number in `0.0..1.0`.
    /// Always within `[base_delay * (1 - jitter), base_delay]`; a `NaN` jitter or unit counts as 0
    /// (`Duration::mul_f64` would panic on it).
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let delay = self.base_delay(retry);
        let fraction = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let jitter = fraction(self.jitter) * fraction(unit);
        delay.mul_f64(1.0 - jitter)
    }

    /// [`delay`](Self::delay) with a fresh random number.
    pub fn delay_random(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }
}
