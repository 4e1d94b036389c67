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
//!
//! As the core's [`DeliveryGuard`] (what the ingestor uses) the key holds `pending` while a
//! delivery is being stored (`SET NX PX` with the short in-flight TTL) and then the stored event's
//! id (`SET PX` with the 72-hour TTL), so a redelivery is answered with the real event id. An id
//! that is only pending is left to the database; see [`orchestrator_core::guard`] for why this
//! never loses a delivery. Redis errors map onto [`StoreError`]; the ingestor then asks the
//! database instead.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::error::StoreError;
use orchestrator_core::guard::{self, DeliveryGuard, Sighting};

use crate::connection::RedisConnection;
use crate::error::Result;
use crate::keys;

/// The value of a key marked by [`ReplayGuard::first_seen`] and not yet stored.
const PENDING: &str = "pending";
/// The value of a key marked by [`ReplayGuard::check_and_set`].
const SEEN: &str = "seen";

/// Remembers delivery ids for a while, shared by every process using the same Redis and prefix.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    conn: RedisConnection,
    stored_ttl: Duration,
    in_flight_ttl: Duration,
}

impl ReplayGuard {
    /// How long a delivery id is remembered by default (GitHub keeps deliveries ~3 days).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 3600);

    /// A guard using `conn` (and its key prefix), remembering stored ids for
    /// [`DEFAULT_TTL`](Self::DEFAULT_TTL) and in-flight ones for [`guard::IN_FLIGHT_TTL`].
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            stored_ttl: Self::DEFAULT_TTL,
            in_flight_ttl: guard::IN_FLIGHT_TTL,
        }
    }

    /// Sets how long the [`DeliveryGuard`] methods remember stored and in-flight ids.
    pub fn with_ttls(mut self, stored: Duration, in_flight: Duration) -> Self {
        self.stored_ttl = stored;
        self.in_flight_ttl = in_flight;
        self
    }

    async fn set(&self, delivery_id: &str, value: String, ttl: Duration, nx: bool) -> Result<bool> {
        let key = keys::delivery(self.conn.prefix(), delivery_id);
        let reply: Option<String> = self
            .conn
            .run(|mut c| async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(&key).arg(value);
                if nx {
                    cmd.arg("NX");
                }
                cmd.arg("PX").arg(millis(ttl)).query_async(&mut c).await
            })
            .await?;
        Ok(reply.is_some())
    }

    /// Records `delivery_id` for `ttl`; true when it was not recorded yet (first seen).
    pub async fn check_and_set(&self, delivery_id: &str, ttl: Duration) -> Result<bool> {
        self.set(delivery_id, SEEN.to_owned(), ttl, true).await
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

/// A TTL in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl DeliveryGuard for ReplayGuard {
    async fn first_seen(&self, delivery_id: &str) -> Result<Sighting, StoreError> {
        if self
            .set(delivery_id, PENDING.to_owned(), self.in_flight_ttl, true)
            .await?
        {
            return Ok(Sighting::First);
        }
        let key = keys::delivery(self.conn.prefix(), delivery_id);
        let value: Option<String> = self
            .conn
            .run(|mut c| async move { redis::cmd("GET").arg(&key).query_async(&mut c).await })
            .await?;
        // Gone since the SET (forgotten or expired), pending, or marked by `check_and_set`: the
        // database decides.
        Ok(match value.and_then(|v| v.parse::<i64>().ok()) {
            Some(event_id) => Sighting::Stored { event_id },
            None => Sighting::InFlight,
        })
    }

    async fn stored(&self, delivery_id: &str, event_id: i64) -> Result<(), StoreError> {
        self.set(delivery_id, event_id.to_string(), self.stored_ttl, false)
            .await?;
        Ok(())
    }

    async fn forget(&self, delivery_id: &str) -> Result<(), StoreError> {
        Ok(ReplayGuard::forget(self, delivery_id).await?)
    }
}
