//! Settings: how to reach Redis ([`RedisConfig`]) and how the queue behaves ([`QueueConfig`]).
//! Both are plain structs with defaults; the server fills them from its environment and calls
//! `validate`.

use std::time::Duration;

use crate::error::{Error, Result};

/// How to reach Redis, shared by the queue, the replay guard and the rate limiter. Its `Debug`
/// shows the URL without its password ([`RedisConfig::redacted_url`]).
#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` (or `rediss://`).
    pub url: String,
    /// Prefix of every key this crate writes (default `orchestrator`).
    pub prefix: String,
    /// Sent as `CLIENT SETNAME` on every new connection, so operators (and tests) can tell
    /// this process's connections apart in `CLIENT LIST`.
    pub client_name: Option<String>,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long a (non-blocking) command may wait for its reply.
    pub response_timeout: Duration,
    /// Delay after the first failure before the next connection attempt; doubles per failure.
    pub backoff_min: Duration,
    /// Cap of that delay.
    pub backoff_max: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            prefix: "orchestrator".to_owned(),
            client_name: None,
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("prefix", &self.prefix)
            .field("client_name", &self.client_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .finish()
    }
}

impl RedisConfig {
    /// The URL fit for logs: the password (the whole user info when it has no user name part)
    /// and any query string are replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Defaults with `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks the settings that would otherwise fail late.
    pub fn validate(&self) -> Result<()> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err(Error::Config(
                "prefix must be non-empty and contain no whitespace".into(),
            ));
        }
        if let Some(name) = &self.client_name
            && (name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()))
        {
            return Err(Error::Config(
                "client_name must be non-empty and contain no spaces".into(),
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(Error::Config(
                "backoff_min must be > 0 and <= backoff_max".into(),
            ));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::Config("timeouts must be > 0".into()));
        }
        Ok(())
    }
}

/// `url` without credentials: `redis://user:***@host/0`, `redis://***@host`, `...?***`. The
/// user info ends at the last `@`, so a password with unescaped `/`, `?` or `@` is hidden too.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => (format!("{user}:***@"), rest),
            None => ("***@".to_owned(), rest),
        },
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((rest, _)) => format!("{rest}?***"),
        None => rest.to_owned(),
    };
    format!("{scheme}://{userinfo}{rest}")
}

/// How the Redis Streams queue behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Queue name, part of its keys (default `tasks`).
    pub name: String,
    /// Consumer group of the workers (default `workers`).
    pub group: String,
    /// A delivered message that nobody acknowledged or refreshed for this long is taken over by
    /// another worker (its worker is presumed dead). Measured by Redis (real time).
    pub visibility_timeout: Duration,
    /// Deliveries of one message before it goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// How long a claim waits on an empty stream (`XREADGROUP BLOCK`); zero never blocks.
    pub block: Duration,
    /// Least real time between two scans for messages to take over.
    pub reclaim_interval: Duration,
    /// Messages looked at per takeover scan.
    pub reclaim_batch: usize,
    /// Due delayed tasks moved to the stream per claim.
    pub move_batch: usize,
    /// A runnable task unchanged for this long is published again by the sweeper (it may have
    /// been lost between the database commit and `XADD`).
    pub sweep_after: Duration,
    /// Least time (queue clock) between two automatic sweeps from `requeue_expired`.
    pub sweep_interval: Duration,
    /// Tasks re-published per sweep at most (per reset: this many due ones plus this many
    /// scheduled for later).
    pub sweep_limit: u32,
    /// When the stream and the due part of the delayed set are empty while the store has a
    /// runnable, due task unchanged for this long, Redis lost its message (a restart without
    /// persistence, a failover that lost writes, a process that died before publishing): the
    /// queue re-publishes every runnable task at once instead of waiting for `sweep_after`.
    /// Keep it above the time between a commit and its publish.
    pub lost_after: Duration,
    /// Least time (queue clock) between two of those checks in one process, and between two
    /// resets (every runnable task re-published) across all processes sharing the queue.
    pub lost_check_interval: Duration,
    /// Task references kept in memory while Redis is unreachable, published when it returns
    /// (older ones are dropped; the sweeper finds them).
    pub backlog_limit: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            name: "tasks".to_owned(),
            group: "workers".to_owned(),
            visibility_timeout: Duration::from_secs(120),
            max_deliveries: 5,
            block: Duration::from_millis(500),
            reclaim_interval: Duration::from_secs(1),
            reclaim_batch: 100,
            move_batch: 500,
            sweep_after: Duration::from_secs(300),
            sweep_interval: Duration::from_secs(60),
            sweep_limit: 1000,
            lost_after: Duration::from_secs(10),
            lost_check_interval: Duration::from_secs(5),
            backlog_limit: 10_000,
        }
    }
}

impl QueueConfig {
    /// Checks the settings that would otherwise fail late.
    pub fn validate(&self) -> Result<()> {
        let plain =
            |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || "{}".contains(c));
        if !plain(&self.name) || !plain(&self.group) {
            return Err(Error::Config(
                "queue name and group must be non-empty, without spaces or braces".into(),
            ));
        }
        if self.visibility_timeout.is_zero() {
            // Every delivered message would be taken over at once, from live workers too, and
            // dead-lettered after `max_deliveries` scans.
            return Err(Error::Config("visibility_timeout must be > 0".into()));
        }
        if self.max_deliveries == 0 {
            return Err(Error::Config("max_deliveries must be at least 1".into()));
        }
        if self.reclaim_batch == 0 || self.move_batch == 0 || self.sweep_limit == 0 {
            return Err(Error::Config("batch sizes must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        assert!(RedisConfig::default().validate().is_ok());
        assert!(QueueConfig::default().validate().is_ok());
        let bad = RedisConfig {
            prefix: "a b".into(),
            ..RedisConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = RedisConfig {
            backoff_max: Duration::from_millis(1),
            ..RedisConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = QueueConfig {
            max_deliveries: 0,
            ..QueueConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = QueueConfig {
            visibility_timeout: Duration::ZERO,
            ..QueueConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = QueueConfig {
            name: "a{b}".into(),
            ..QueueConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn debug_and_redacted_url_never_show_the_password() {
        let config = RedisConfig::new("redis://app:hunter2-secret@cache.internal:6380/2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("cache.internal:6380/2"), "{shown}");
        assert_eq!(
            config.redacted_url(),
            "redis://app:***@cache.internal:6380/2"
        );
        assert_eq!(redact_url("rediss://:p%40ss@h:1"), "rediss://:***@h:1");
        assert_eq!(redact_url("redis://tokenonly@h"), "redis://***@h");
        assert_eq!(redact_url("redis://u:p/w?x@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://h:1/0?password=pw"), "redis://h:1/0?***");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
