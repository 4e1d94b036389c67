//! [`RedisLock`]: a lock shared by every process using the same Redis and key prefix, for the
//! core's [`RunnerLock`] (one recovery runner across instances when Redis is configured).
//!
//! Design: `SET <prefix>:lock:<name> <token> NX PX <ttl>` takes it, where the token is the
//! holder's name plus a fresh random id, so only this acquisition can renew or release it.
//! Renewal (`PEXPIRE` while the value is still the token) and release (`DEL` while it is) are
//! Lua scripts, atomic on the server. Redis expires an abandoned lock on its own (a crashed or
//! hung holder stops renewing), using its own clock, so the TTL is a span, not a deadline. A Redis
//! error while taking it is a retryable store error: the reconciler tries again on its next tick.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::recovery::RunnerLock;
use orchestrator_core::store::recovery::{RenewLease, RunnerLease};
use redis::Script;
use uuid::Uuid;

use crate::connection::RedisConnection;
use crate::error::Result;
use crate::keys;

/// One named lock on Redis.
#[derive(Debug, Clone)]
pub struct RedisLock {
    conn: RedisConnection,
    key: String,
    scripts: Arc<Scripts>,
}

#[derive(Debug)]
struct Scripts {
    renew: Script,
    release: Script,
}

impl RedisLock {
    /// The lock `name` under `conn`'s key prefix (`<prefix>:lock:<name>`).
    pub fn new(conn: RedisConnection, name: &str) -> Self {
        let key = keys::lock(conn.prefix(), name);
        Self {
            conn,
            key,
            scripts: Arc::new(Scripts {
                renew: Script::new(include_str!("scripts/lock_renew.lua")),
                release: Script::new(include_str!("scripts/lock_release.lua")),
            }),
        }
    }

    /// The one-runner lock of recovery (`<prefix>:lock:recovery`).
    pub fn recovery(conn: RedisConnection) -> Self {
        Self::new(conn, "recovery")
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Takes the lock for `ttl` with `token`; `false` while someone else holds it.
    async fn acquire(&self, token: &str, ttl: Duration) -> Result<bool> {
        let key = self.key.clone();
        let reply: Option<String> = self
            .conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    /// Extends the lock to `ttl` from now while `token` holds it.
    async fn renew(&self, token: &str, ttl: Duration) -> Result<bool> {
        let (key, script) = (&self.key, &self.scripts.renew);
        let renewed: i64 = self
            .conn
            .run(|mut c| async move {
                script
                    .key(key)
                    .arg(token)
                    .arg(millis(ttl))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(renewed == 1)
    }

    /// Releases the lock while `token` holds it.
    async fn release(&self, token: &str) -> Result<bool> {
        let (key, script) = (&self.key, &self.scripts.release);
        let released: i64 = self
            .conn
            .run(|mut c| async move { script.key(key).arg(token).invoke_async(&mut c).await })
            .await?;
        Ok(released == 1)
    }
}

/// A TTL in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Renews one acquisition of a [`RedisLock`].
struct Renewal {
    lock: RedisLock,
    token: String,
}

#[async_trait]
impl RenewLease for Renewal {
    async fn renew(&self, ttl: Duration, _now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.lock.renew(&self.token, ttl).await?)
    }
}

#[async_trait]
impl RunnerLock for RedisLock {
    async fn try_lock(
        &self,
        holder: &str,
        ttl: Duration,
        _now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError> {
        let token = format!("{holder}:{}", Uuid::new_v4().simple());
        if !self.acquire(&token, ttl).await? {
            return Ok(None);
        }
        let lock = self.clone();
        let release_token = token.clone();
        let lease = RunnerLease::new(move || {
            // Released in the background; if that fails the key expires on its own.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = lock.release(&release_token).await {
                        tracing::warn!(error = %e, "redis lock not released; it expires on its own");
                    }
                });
            }
        });
        Ok(Some(lease.with_renewal(Renewal {
            lock: self.clone(),
            token,
        })))
    }
}
