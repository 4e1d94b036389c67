//! Per-client rate limits (GCRA, via `governor`), keyed by the client's IP address.
//!
//! The key is the connection's peer address (axum's `ConnectInfo<SocketAddr>`, present when
//! the server is started with `into_make_service_with_connect_info`), or, when a trusted-proxy
//! header is configured, the last address in that header (the one the proxy itself appended).
//! Requests with neither share one bucket, which is safe (never unlimited) but coarse.
//!
//! By default the state is in-process: several API processes each enforce the limit for the
//! traffic they see. With a shared limiter (the core's [`SharedRateLimiter`], e.g. Redis; see
//! [`AppStateBuilder::shared_rate_limiter`](crate::AppStateBuilder::shared_rate_limiter)) all
//! instances count against one budget per client, keyed `webhook:<ip>` / `api:<ip>` with the same
//! quotas. When the shared limiter fails, the in-process limiter decides instead (a warning is
//! logged when that starts, an info line when it ends): an outage of the shared limiter never
//! turns into 500s or into no limit at all. Limits are refused with 429, `Retry-After` and the
//! error body.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName};
use orchestrator_core::guard::{RateDecision, RateLimiter as SharedRateLimiter, RateQuota};

use crate::config::RateLimit;

/// How many checks between two sweeps of idle client entries.
const SWEEP_EVERY: u64 = 4096;

/// One limit shared by all clients, each with its own bucket.
pub(crate) struct Limiter {
    inner: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    checks: AtomicU64,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("clients", &self.inner.len())
            .finish()
    }
}

impl Limiter {
    /// A limiter for `limit`, `None` when the limit is off.
    pub(crate) fn new(limit: RateLimit) -> Option<Self> {
        if !limit.is_enabled() {
            return None;
        }
        let per_request = limit.period / limit.requests;
        let burst = NonZeroU32::new(limit.burst.max(1))?;
        let quota =
            Quota::with_period(per_request.max(Duration::from_nanos(1)))?.allow_burst(burst);
        Some(Self {
            inner: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one request from `client`'s bucket, or says how long to wait.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.inner.retain_recent();
        }
        self.inner
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.inner.clock().now()))
    }
}

/// One route group's limit: its quota, the in-process buckets and, when configured, the shared
/// limiter that takes precedence over them.
pub(crate) struct RouteLimit {
    /// `webhook` or `api`: the shared limiter's key space, so the two quotas never share a key.
    group: &'static str,
    quota: RateQuota,
    local: Limiter,
    shared: Option<Arc<dyn SharedRateLimiter>>,
    /// Whether the last shared check failed (to log the switch to and from the fallback once).
    degraded: AtomicBool,
}

impl std::fmt::Debug for RouteLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLimit")
            .field("group", &self.group)
            .field("quota", &self.quota)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl RouteLimit {
    /// The limit of `group`, `None` when `limit` is off (the shared limiter is then never asked).
    pub(crate) fn new(
        group: &'static str,
        limit: RateLimit,
        shared: Option<Arc<dyn SharedRateLimiter>>,
    ) -> Option<Self> {
        Some(Self {
            group,
            quota: limit.quota(),
            local: Limiter::new(limit)?,
            shared,
            degraded: AtomicBool::new(false),
        })
    }

    /// Takes one request of `client`: from the shared limiter when there is one and it answers,
    /// else from the in-process buckets.
    pub(crate) async fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            let key = format!("{}:{client}", self.group);
            match shared.check(&key, self.quota).await {
                Ok(decision) => {
                    if self.degraded.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            group = self.group,
                            "shared rate limiter answers again; in-process fallback ended"
                        );
                    }
                    return match decision {
                        RateDecision::Allowed => Ok(()),
                        RateDecision::Limited { retry_after } => Err(retry_after),
                    };
                }
                Err(err) => {
                    if !self.degraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(group = self.group, error = %err, "shared rate limiter failed; limiting in-process until it answers");
                    }
                }
            }
        }
        self.local.check(client)
    }
}

/// The client address used as the limit's key.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted: Option<&HeaderName>,
) -> IpAddr {
    let forwarded = trusted
        .and_then(|name| headers.get_all(name).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    forwarded
        .or(peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::HeaderValue;

    #[test]
    fn the_burst_is_allowed_then_refused_with_a_wait() {
        let limiter = Limiter::new(RateLimit::per_minute(1, 2)).unwrap();
        let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(limiter.check(client).is_ok());
        assert!(limiter.check(client).is_ok());
        let wait = limiter.check(client).unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        // Another client has its own bucket.
        assert!(
            limiter
                .check(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
                .is_ok()
        );
    }

    #[test]
    fn zero_turns_the_limit_off() {
        assert!(Limiter::new(RateLimit::OFF).is_none());
        assert!(Limiter::new(RateLimit::per_second(0, 20)).is_none());
    }

    #[test]
    fn the_trusted_header_is_used_only_when_configured() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        let peer: SocketAddr = "9.9.9.9:1234".parse().unwrap();
        let name = HeaderName::from_static("x-forwarded-for");
        assert_eq!(client_ip(&headers, Some(peer), None).to_string(), "9.9.9.9");
        assert_eq!(
            client_ip(&headers, Some(peer), Some(&name)).to_string(),
            "2.2.2.2"
        );
        assert_eq!(
            client_ip(&HeaderMap::new(), Some(peer), Some(&name)).to_string(),
            "9.9.9.9"
        );
    }
}
