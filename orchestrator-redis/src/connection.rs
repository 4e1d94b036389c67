//! A reconnecting Redis handle with capped, jittered backoff.
//!
//! Commands run on a multiplexed connection (many requests in flight on one socket). When a
//! command fails in a way a new connection could fix (I/O error, timeout, a server that is
//! loading or turned replica in a failover) the connection is dropped and the next command
//! reconnects — but never sooner than the backoff allows: after the n-th failure in a row the
//! next attempt waits `min(backoff_max, backoff_min * 2^(n-1))`, jittered down by up to half so
//! that many processes do not reconnect in step. Inside that window commands fail at once with
//! [`Error::BackingOff`] and send nothing, so a caller looping on errors cannot turn an outage
//! into a hot loop against the network. One success resets the backoff.
//!
//! Each new connection sends `CLIENT SETNAME` when a name is configured (operators can find a
//! process's connections in `CLIENT LIST`). Blocking reads use a separate connection slot, because a
//! blocked `XREADGROUP` on the shared socket would hold up every command queued behind it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, RedisResult};

use crate::config::RedisConfig;
use crate::error::{Error, Result};

/// A shared, reconnecting handle to one Redis server. Cloning is cheap; clones share the
/// connection and the backoff.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: RedisConfig,
    shared: Slot,
    backoff: Mutex<Backoff>,
    attempts: AtomicU64,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show only the prefix and the name.
        f.debug_struct("RedisConnection")
            .field("prefix", &self.inner.config.prefix)
            .field("client_name", &self.inner.config.client_name)
            .finish_non_exhaustive()
    }
}

/// One lazily (re)connected socket.
pub(crate) struct Slot {
    conn: tokio::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    response_timeout: Duration,
}

impl Slot {
    /// A slot whose commands may wait `response_timeout` for a reply.
    pub(crate) fn new(response_timeout: Duration) -> Self {
        Self {
            conn: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            response_timeout,
        }
    }
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl RedisConnection {
    /// A handle for `config`. Does not connect: the first command does, so a process starts
    /// (and its API answers) while Redis is down.
    pub fn new(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let client = redis::Client::open(config.url.as_str()).map_err(Error::Command)?;
        let shared = Slot::new(config.response_timeout);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                shared,
                backoff: Mutex::new(Backoff::default()),
                attempts: AtomicU64::new(0),
            }),
        })
    }

    /// The settings it was made with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// Connection attempts made so far (successful or not); for tests and diagnostics.
    pub fn connect_attempts(&self) -> u64 {
        self.inner.attempts.load(Ordering::Relaxed)
    }

    /// `PING`, for health checks.
    pub async fn ping(&self) -> Result<()> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await?;
        Ok(())
    }

    /// Runs `f` on the shared connection.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_on(&self.inner.shared, f).await
    }

    /// Runs `f` on the connection of `slot`, (re)connecting first when needed.
    pub(crate) async fn run_on<T, F, Fut>(&self, slot: &Slot, f: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (generation, conn) = self.connection(slot).await?;
        match f(conn).await {
            Ok(value) => Ok(value),
            Err(err) if is_connection_error(&err) => {
                let mut guard = slot.conn.lock().await;
                if guard.as_ref().is_some_and(|(g, _)| *g == generation) {
                    *guard = None;
                }
                drop(guard);
                self.failed();
                tracing::warn!(error = %err, "redis connection lost");
                Err(Error::Unavailable(err))
            }
            Err(err) => Err(Error::Command(err)),
        }
    }

    async fn connection(&self, slot: &Slot) -> Result<(u64, MultiplexedConnection)> {
        let mut guard = slot.conn.lock().await;
        if let Some((generation, conn)) = guard.as_ref() {
            return Ok((*generation, conn.clone()));
        }
        if let Some(retry_in) = self.backing_off() {
            return Err(Error::BackingOff { retry_in });
        }
        self.inner.attempts.fetch_add(1, Ordering::Relaxed);
        let config = &self.inner.config;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(slot.response_timeout));
        let connect = async {
            let mut conn = self
                .inner
                .client
                .get_multiplexed_async_connection_with_config(&connection_config)
                .await?;
            if let Some(name) = &config.client_name {
                redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg(name)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            Ok::<_, RedisError>(conn)
        };
        // The connection timeout covers the socket; this one also covers the handshake.
        let outcome = tokio::time::timeout(config.connect_timeout.saturating_mul(2), connect).await;
        match outcome {
            Ok(Ok(conn)) => {
                let generation = slot.generation.fetch_add(1, Ordering::Relaxed) + 1;
                *guard = Some((generation, conn.clone()));
                self.succeeded();
                Ok((generation, conn))
            }
            Ok(Err(err)) => {
                self.failed();
                tracing::warn!(error = %err, "redis connection attempt failed");
                Err(Error::Unavailable(err))
            }
            Err(_) => {
                self.failed();
                let err = RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ));
                Err(Error::Unavailable(err))
            }
        }
    }

    /// How long the backoff still forbids a connection attempt, if it does.
    pub(crate) fn backing_off(&self) -> Option<Duration> {
        let backoff = self.inner.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let until = backoff.until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    fn failed(&self) {
        let config = &self.inner.config;
        let mut backoff = self.inner.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.failures = backoff.failures.saturating_add(1);
        let delay = backoff_delay(config.backoff_min, config.backoff_max, backoff.failures);
        let jittered = rand::rng().random_range(delay / 2..=delay);
        backoff.until = Some(Instant::now() + jittered);
    }

    fn succeeded(&self) {
        let mut backoff = self.inner.backoff.lock().unwrap_or_else(|e| e.into_inner());
        *backoff = Backoff::default();
    }
}

/// The un-jittered delay after `failures` failures in a row.
fn backoff_delay(min: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    min.saturating_mul(1u32 << doublings).min(max)
}

/// Whether `err` means the connection (or the server behind it) is unusable for now, as
/// opposed to a command that Redis refused.
pub(crate) fn is_connection_error(err: &RedisError) -> bool {
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
    {
        return true;
    }
    matches!(
        err.code(),
        Some("LOADING" | "READONLY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN")
    )
}

/// Whether `err` says the consumer group (or its stream) does not exist: `NOGROUP`, or
/// `UNBLOCKED` (the stream was deleted, e.g. by `FLUSHDB`, while a read was blocked on it).
pub(crate) fn is_group_lost(err: &Error) -> bool {
    match err {
        Error::Command(e) => {
            matches!(e.code(), Some("NOGROUP" | "UNBLOCKED"))
                || e.to_string().contains("NOGROUP")
                || e.to_string().contains("UNBLOCKED")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        assert_eq!(backoff_delay(min, max, 1), Duration::from_millis(100));
        assert_eq!(backoff_delay(min, max, 2), Duration::from_millis(200));
        assert_eq!(backoff_delay(min, max, 4), Duration::from_millis(800));
        assert_eq!(backoff_delay(min, max, 7), max);
        assert_eq!(backoff_delay(min, max, u32::MAX), max);
    }
}
