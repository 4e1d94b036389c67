//! The API's settings: admin token, duplicate policy, rate limits, metrics access, retention.
//!
//! The server reads these from the environment; this crate only takes the validated struct
//! (it never reads files or variables itself).

use std::time::Duration;

use http::HeaderName;
use orchestrator_core::guard::RateQuota;
use orchestrator_core::store::RetentionPolicy;

/// The default path of the webhook receiver.
pub const WEBHOOK_PATH: &str = "/api/v1/webhooks/github";

/// The bearer token of the `/api/v1/*` routes. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token; `None` when it is empty (an empty token would let anyone in).
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.is_empty()).then_some(Self(token))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Compared in constant time, like a request's token.
impl PartialEq for AdminToken {
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            self.0.as_bytes(),
            other.0.as_bytes(),
        ))
    }
}

impl Eq for AdminToken {}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// What the receiver answers for a delivery id it has already stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// 409 with the error body, as the spec says.
    #[default]
    Conflict,
    /// 200 with `"status": "duplicate"`: GitHub redeliveries reuse the delivery id, and a 409
    /// makes GitHub record the redelivery as failed although the event is safely stored.
    Acknowledge,
}

/// One GCRA limit: `requests` per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests replenished per `period`; 0 turns the limit off.
    pub requests: u32,
    /// The replenishment period.
    pub period: Duration,
    /// Requests allowed at once (at least 1 when the limit is on).
    pub burst: u32,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        requests: 0,
        period: Duration::from_secs(1),
        burst: 0,
    };

    /// `requests` per second with bursts of `burst`.
    pub const fn per_second(requests: u32, burst: u32) -> Self {
        Self {
            requests,
            period: Duration::from_secs(1),
            burst,
        }
    }

    /// `requests` per minute with bursts of `burst`.
    pub const fn per_minute(requests: u32, burst: u32) -> Self {
        Self {
            requests,
            period: Duration::from_secs(60),
            burst,
        }
    }

    /// Whether the limit is on.
    pub fn is_enabled(&self) -> bool {
        self.requests > 0 && !self.period.is_zero()
    }

    /// The same limit as the core's quota, for a shared
    /// [`RateLimiter`](orchestrator_core::guard::RateLimiter) (burst at least 1).
    pub fn quota(&self) -> RateQuota {
        RateQuota {
            requests: self.requests,
            period: self.period,
            burst: self.burst.max(1),
        }
    }
}

/// The rate limits of the two route groups (`/health` and `/metrics` are never limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// The webhook receiver (default 10 per second, burst 20).
    pub webhook: RateLimit,
    /// Every other `/api/v1/*` route (default 100 per minute, burst 50).
    pub api: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            webhook: RateLimit::per_second(10, 20),
            api: RateLimit::per_minute(100, 50),
        }
    }
}

impl RateLimits {
    /// Both limits off.
    pub const OFF: RateLimits = RateLimits {
        webhook: RateLimit::OFF,
        api: RateLimit::OFF,
    };
}

/// Everything the HTTP layer is configured with.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer token of the `/api/v1/*` routes. `None` locks them: every request gets 401.
    pub admin_token: Option<AdminToken>,
    /// Answer to a duplicate delivery id.
    pub duplicate_policy: DuplicatePolicy,
    /// Per-client request limits.
    pub rate_limits: RateLimits,
    /// A header set by a trusted reverse proxy holding the client address (e.g.
    /// `x-forwarded-for`; its last entry is used, the one the proxy appended). `None` keys
    /// limits on the peer address of the connection. Only set it behind a proxy that
    /// overwrites or appends the header, or clients can choose their own key.
    pub trusted_proxy_header: Option<HeaderName>,
    /// Whether `/metrics` requires the admin token too.
    pub metrics_require_token: bool,
    /// What `POST /api/v1/admin/cleanup` removes.
    pub retention: RetentionPolicy,
    /// Where the receiver listens (default [`WEBHOOK_PATH`]; must start with `/`); used by the
    /// [`WebhookLayer`](crate::WebhookLayer), the full router and the OpenAPI document alike.
    pub webhook_path: String,
    /// How long the receiver waits for a whole body (default 10 s, GitHub's own patience). A
    /// client that stalls its upload gets 408 instead of holding a connection and a task.
    pub body_read_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            duplicate_policy: DuplicatePolicy::default(),
            rate_limits: RateLimits::default(),
            trusted_proxy_header: None,
            metrics_require_token: false,
            retention: RetentionPolicy::default(),
            webhook_path: WEBHOOK_PATH.to_owned(),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

impl ApiConfig {
    /// Sets the admin token (an empty string leaves the API locked).
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = AdminToken::new(token);
        self
    }

    /// Sets the duplicate policy.
    pub fn with_duplicate_policy(mut self, policy: DuplicatePolicy) -> Self {
        self.duplicate_policy = policy;
        self
    }

    /// Sets the rate limits.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }
}
