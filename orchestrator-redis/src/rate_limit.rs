//! The shared rate limiter: GCRA in one Lua script, on the Redis server's clock.
//!
//! Each client key holds one number, its theoretical arrival time (TAT). A request is allowed
//! when `TAT + interval - interval * burst <= now`; the TAT then moves on by one emission
//! interval (`per / count`). So `burst` requests pass at once, and after that one per interval.
//! The script reads `TIME` on the server, so API instances with skewed clocks agree, and the key
//! expires as soon as it no longer restricts anything.
//!
//! It is also the core's [`guard::RateLimiter`], which the HTTP layer asks instead of its
//! in-process limiter when one is configured; Redis errors map onto [`StoreError`], and the HTTP
//! layer then falls back to its in-process limiter.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::error::StoreError;
use orchestrator_core::guard::{self, RateDecision, RateQuota};
use redis::Script;

use crate::connection::RedisConnection;
use crate::error::{Error, Result};
use crate::keys;

/// A sustained rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests.
    pub count: u32,
    /// Per this long.
    pub per: Duration,
}

impl Rate {
    /// `count` requests per minute.
    pub const fn per_minute(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `count` requests per second.
    pub const fn per_second(count: u32) -> Self {
        Self {
            count,
            per: Duration::from_secs(1),
        }
    }

    /// The time one request "costs": `per / count` (at least one microsecond).
    pub fn emission_interval(&self) -> Duration {
        (self.per / self.count.max(1)).max(Duration::from_micros(1))
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// When refused: how long until a request would be allowed (for `Retry-After`).
    pub retry_after: Duration,
}

/// A rate limiter shared by every process using the same Redis and prefix.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    conn: RedisConnection,
    script: Script,
}

impl RedisRateLimiter {
    /// A limiter using `conn` (and its key prefix).
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            script: Script::new(include_str!("scripts/gcra.lua")),
        }
    }

    /// Counts one request of `key` against `rate` with `burst` allowed at once (at least 1).
    pub async fn check(&self, key: &str, rate: Rate, burst: u32) -> Result<Decision> {
        let redis_key = keys::rate(self.conn.prefix(), key);
        let interval_us = u64::try_from(rate.emission_interval().as_micros()).unwrap_or(u64::MAX);
        let script = &self.script;
        let (allowed, retry_us): (i64, i64) = self
            .conn
            .run(|mut c| async move {
                script
                    .key(&redis_key)
                    .arg(interval_us)
                    .arg(burst.max(1))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match allowed {
            1 => Ok(Decision {
                allowed: true,
                retry_after: Duration::ZERO,
            }),
            0 => {
                let micros = u64::try_from(retry_us)
                    .map_err(|_| Error::Reply("negative retry_after".into()))?;
                Ok(Decision {
                    allowed: false,
                    retry_after: Duration::from_micros(micros),
                })
            }
            other => Err(Error::Reply(format!("rate limiter answered {other}"))),
        }
    }
}

#[async_trait]
impl guard::RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: RateQuota) -> Result<RateDecision, StoreError> {
        let rate = Rate {
            count: quota.requests,
            per: quota.period,
        };
        let decision = RedisRateLimiter::check(self, key, rate, quota.burst).await?;
        Ok(if decision.allowed {
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after: decision.retry_after,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_interval_divides_the_period() {
        assert_eq!(
            Rate::per_minute(100).emission_interval(),
            Duration::from_millis(600)
        );
        assert_eq!(
            Rate::per_second(20).emission_interval(),
            Duration::from_millis(50)
        );
        assert_eq!(
            Rate {
                count: 0,
                per: Duration::from_secs(1)
            }
            .emission_interval(),
            Duration::from_secs(1)
        );
    }
}
