//! GitHub quota accounting: every response's `X-RateLimit-*` headers are remembered per
//! credential, and once the remaining quota falls below a floor further calls are deferred until
//! the window resets instead of being sent (and failing). A rate-limit answer with a wait
//! (a secondary limit's `Retry-After`) pauses every call of that credential for that long:
//! GitHub asks for no request at all until then, and may ban an integration that keeps going.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::error::{ClientError, ClientErrorKind};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Which quota a request draws from: an installation's, or the token's (`None`).
pub(crate) type QuotaKey = Option<i64>;

/// The quota as the last response reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// `X-RateLimit-Remaining`.
    pub(crate) remaining: u64,
    /// `X-RateLimit-Reset` (epoch seconds).
    pub(crate) reset_at: Option<DateTime<Utc>>,
}

impl Quota {
    /// Reads the headers; `None` when the response has no `X-RateLimit-Remaining`.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
        let remaining = u64::try_from(number("x-ratelimit-remaining")?).ok()?;
        let reset_at = number("x-ratelimit-reset").and_then(|s| DateTime::from_timestamp(s, 0));
        Some(Self {
            remaining,
            reset_at,
        })
    }

    fn until_reset(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.reset_at
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
    }
}

/// Remembers the quota of each credential and refuses calls below the floor or while paused.
#[derive(Debug)]
pub(crate) struct QuotaGuard {
    floor: u64,
    quotas: Mutex<HashMap<QuotaKey, Quota>>,
    /// Until when each credential must send nothing (a rate-limit answer's wait).
    pauses: Mutex<HashMap<QuotaKey, DateTime<Utc>>>,
}

impl QuotaGuard {
    pub(crate) fn new(floor: u64) -> Self {
        Self {
            floor,
            quotas: Mutex::new(HashMap::new()),
            pauses: Mutex::new(HashMap::new()),
        }
    }

    /// Sends nothing for `key` until `until` (GitHub answered a rate limit with a wait).
    pub(crate) fn pause(&self, key: QuotaKey, until: DateTime<Utc>) {
        let mut pauses = self.pauses.lock().unwrap_or_else(|e| e.into_inner());
        let at = pauses.entry(key).or_insert(until);
        *at = (*at).max(until);
    }

    /// `RateLimited` while `key` is paused, or until the reset when its last known quota is
    /// below the floor and its window has not reset yet.
    pub(crate) fn check(&self, key: QuotaKey, now: DateTime<Utc>) -> Result<(), ClientError> {
        let paused = self
            .pauses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(|until| (*until - now).to_std().ok())
            .filter(|wait| !wait.is_zero());
        if let Some(wait) = paused {
            return Err(ClientError::new(
                ClientErrorKind::RateLimited {
                    retry_after: Some(wait),
                },
                None,
                format!(
                    "GitHub rate limit: paused for {} s more as GitHub asked; deferred",
                    wait.as_secs().max(1)
                ),
            ));
        }
        let quotas = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        let Some(quota) = quotas.get(&key) else {
            return Ok(());
        };
        if quota.remaining >= self.floor {
            return Ok(());
        }
        match quota.until_reset(now) {
            Some(wait) if !wait.is_zero() => Err(ClientError::new(
                ClientErrorKind::RateLimited {
                    retry_after: Some(wait),
                },
                None,
                format!(
                    "GitHub quota low ({} left, floor {}); deferred until it resets",
                    quota.remaining, self.floor
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Remembers the quota a response reported; returns it.
    pub(crate) fn record(&self, key: QuotaKey, headers: &HeaderMap) -> Option<Quota> {
        let quota = Quota::from_headers(headers)?;
        self.quotas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, quota);
        Some(quota)
    }
}

/// Whether a 403/429 is GitHub's rate limiting (primary: remaining 0; secondary: `Retry-After`),
/// and if so how long to wait.
pub(crate) fn rate_limited(
    status: StatusCode,
    headers: &HeaderMap,
    quota: Option<Quota>,
    now: DateTime<Utc>,
) -> Option<Option<Duration>> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let retry_after = crate::http::retry_after(headers, now);
    let exhausted = quota.is_some_and(|q| q.remaining == 0);
    if status == StatusCode::TOO_MANY_REQUESTS || exhausted || retry_after.is_some() {
        let wait = retry_after.or_else(|| quota.and_then(|q| q.until_reset(now)));
        return Some(wait);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(remaining: &str, reset: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", remaining.parse().unwrap());
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        h
    }

    #[test]
    fn below_the_floor_defers_until_reset_then_allows() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let guard = QuotaGuard::new(50);
        guard.record(Some(1), &headers("49", 1_700_000_600));
        let err = guard.check(Some(1), now).unwrap_err();
        assert_eq!(
            err.kind(),
            ClientErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(600))
            }
        );
        // Another credential's quota is separate.
        assert!(guard.check(None, now).is_ok());
        // After the reset the call is allowed again.
        assert!(
            guard
                .check(Some(1), now + chrono::Duration::seconds(601))
                .is_ok()
        );
        guard.record(Some(1), &headers("50", 1_700_000_600));
        assert!(guard.check(Some(1), now).is_ok());
    }

    #[test]
    fn a_pause_refuses_every_call_of_that_credential_until_it_ends() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let guard = QuotaGuard::new(50);
        guard.pause(None, now + chrono::Duration::seconds(60));
        // A shorter pause reported later does not cut the first one short.
        guard.pause(None, now + chrono::Duration::seconds(5));
        let err = guard.check(None, now).unwrap_err();
        assert_eq!(
            err.kind(),
            ClientErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(60))
            }
        );
        assert!(guard.check(Some(7), now).is_ok(), "other credentials go on");
        assert!(
            guard
                .check(None, now + chrono::Duration::seconds(60))
                .is_ok()
        );
    }

    #[test]
    fn forbidden_is_rate_limiting_only_when_the_quota_is_gone() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let h = headers("0", 1_700_000_030);
        let q = Quota::from_headers(&h);
        assert_eq!(
            rate_limited(StatusCode::FORBIDDEN, &h, q, now),
            Some(Some(Duration::from_secs(30)))
        );
        let h = headers("10", 1_700_000_030);
        let q = Quota::from_headers(&h);
        assert_eq!(rate_limited(StatusCode::FORBIDDEN, &h, q, now), None);
        assert!(rate_limited(StatusCode::TOO_MANY_REQUESTS, &h, q, now).is_some());
        assert_eq!(rate_limited(StatusCode::NOT_FOUND, &h, q, now), None);
    }
}
