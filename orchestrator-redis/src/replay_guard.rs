//! The shared replay guard: has any API instance seen this `X-GitHub-Delivery` id lately?
//!
//! One `SET <prefix>:delivery:<id> 1 NX PX <ttl>` answers it across all instances in one round
//! trip. It stands in front of the database's unique constraint on the delivery id, which stays
//! the source of truth: the guard only saves a transaction for the common redelivery. GitHub
//! keeps deliveries for about three days, hence the default TTL of 72 hours.
//!
//! Ask it only after the signature is verified: otherwise anyone could mark a delivery id as
//! seen before GitHub sends it. If the database then refuses the delivery, call
//! [`ReplayGuard::forget`] so that GitHub's redelivery is accepted.

use std::time::Duration;

use crate::connection::RedisConnection;
use crate::error::Result;
use crate::keys;

/// Remembers delivery ids for a while, shared by every process using the same Redis and prefix.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    conn: RedisConnection,
}

impl ReplayGuard {
    /// How long a delivery id is remembered by default (GitHub keeps deliveries ~3 days).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 3600);

    /// A guard using `conn` (and its key prefix).
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }

    /// Records `delivery_id` for `ttl`; true when it was not recorded yet (first seen).
    pub async fn check_and_set(&self, delivery_id: &str, ttl: Duration) -> Result<bool> {
        let key = keys::delivery(self.conn.prefix(), delivery_id);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Option<String> = self
            .conn
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    /// Forgets `delivery_id`, so that a redelivery is accepted again. Call it when the delivery
    /// was marked seen but then not stored (the database refused the transaction).
    pub async fn forget(&self, delivery_id: &str) -> Result<()> {
        let key = keys::delivery(self.conn.prefix(), delivery_id);
        self.conn
            .run(|mut c| async move { redis::cmd("DEL").arg(&key).query_async::<()>(&mut c).await })
            .await
    }
}
