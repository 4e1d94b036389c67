//! Optional shared guards for deployments with several API instances: a delivery guard (a fast
//! replay check in front of the store's unique constraint) and a rate limiter.
//!
//! Both are optional abilities: an [`Ingestor`](crate::engine::Ingestor) works without a
//! [`DeliveryGuard`], and the HTTP layer limits in-process without a [`RateLimiter`]. Adapters
//! (Redis) implement them; [`MemoryDeliveryGuard`] serves tests and single-process embedding.
//!
//! ## How the delivery guard is used, and why it never loses a delivery
//! The store's unique constraint on the delivery id stays the authority; the guard only saves
//! the store a transaction for a redelivery it already knows. The ingestor asks it only after the
//! signature was verified and the body parsed, so unauthenticated input never marks an id.
//! - [`DeliveryGuard::first_seen`] marks an unknown id as *in flight* for a short time
//!   ([`IN_FLIGHT_TTL`]) and answers [`Sighting::First`]; the ingestor then stores the delivery.
//! - Once the store has committed it (or answered that it was already stored), the ingestor calls
//!   [`DeliveryGuard::stored`] with the event id, and the guard remembers the id for
//!   [`STORED_TTL`] (GitHub keeps deliveries about three days).
//! - A later delivery with that id gets [`Sighting::Stored`]: the ingestor answers "duplicate"
//!   with the stored event's id, without touching the store.
//! - A delivery whose id is only in flight ([`Sighting::InFlight`]: another request is storing it
//!   right now, or crashed while doing so) goes to the store, whose constraint decides. So a
//!   request that dies between the guard and the commit never makes a redelivery be refused:
//!   its mark expires after [`IN_FLIGHT_TTL`].
//! - When the store fails after [`Sighting::First`], the ingestor calls
//!   [`DeliveryGuard::forget`] so a redelivery is not held up even for that short time.
//! - When the guard itself fails (Redis down), the ingestor logs a warning and asks the store, as
//!   if there were no guard: a guard outage costs work, never a delivery.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::{self, Clock};
use crate::error::StoreError;

/// How long a stored delivery id is remembered (GitHub keeps deliveries about three days).
pub const STORED_TTL: Duration = Duration::from_secs(72 * 3600);

/// How long an id stays marked in flight when its request never reports back (it crashed): after
/// this, the store is asked again. Longer than a store commit normally takes.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);

/// What a [`DeliveryGuard`] knows about a delivery id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Unknown until now; it is now marked in flight for this caller.
    First,
    /// Another request marked it and has not reported back (yet); the store must decide.
    InFlight,
    /// It is stored as this event.
    Stored {
        /// The stored event's id.
        event_id: i64,
    },
}

/// A replay check shared by every API instance, in front of the store's unique constraint.
/// See the [module documentation](self) for the protocol.
#[async_trait]
pub trait DeliveryGuard: Send + Sync + std::fmt::Debug + 'static {
    /// What is known about `delivery_id`; an unknown id is marked in flight in the same atomic
    /// step and answers [`Sighting::First`] to exactly one caller.
    async fn first_seen(&self, delivery_id: &str) -> Result<Sighting, StoreError>;

    /// `delivery_id` is stored as `event_id`: remember it for [`STORED_TTL`].
    async fn stored(&self, delivery_id: &str, event_id: i64) -> Result<(), StoreError>;

    /// Forgets `delivery_id`, so its next delivery goes to the store. Called when it was marked
    /// in flight but could not be stored.
    async fn forget(&self, delivery_id: &str) -> Result<(), StoreError>;
}

/// Whether a rate-limited request may proceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Proceed.
    Allowed,
    /// Refuse; a request would be allowed after `retry_after`.
    Limited {
        /// For the `Retry-After` header.
        retry_after: Duration,
    },
}

/// One GCRA quota: `requests` per `period`, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// Requests replenished per `period` (at least 1).
    pub requests: u32,
    /// The replenishment period.
    pub period: Duration,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl RateQuota {
    /// The time one request "costs": `period / requests` (at least one microsecond).
    pub fn emission_interval(&self) -> Duration {
        (self.period / self.requests.max(1)).max(Duration::from_micros(1))
    }
}

/// A rate limiter shared by every API instance (the HTTP layer's alternative to its in-process
/// limiter).
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug + 'static {
    /// Counts one request of `key` against `quota`. Callers give every quota its own key space
    /// (e.g. `webhook:<ip>` and `api:<ip>`), because a key's state only makes sense for one quota.
    async fn check(&self, key: &str, quota: RateQuota) -> Result<RateDecision, StoreError>;
}

#[derive(Debug, Clone, Copy)]
enum Mark {
    InFlight,
    Stored(i64),
}

/// How many `first_seen` calls between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 1024;

/// An in-process [`DeliveryGuard`] on the injected clock, for tests and single-process embedding
/// (where it still spares the store a transaction per redelivery).
#[derive(Debug)]
pub struct MemoryDeliveryGuard {
    clock: Arc<dyn Clock>,
    stored_ttl: Duration,
    in_flight_ttl: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    marks: HashMap<String, (Mark, DateTime<Utc>)>,
    calls: u64,
}

impl MemoryDeliveryGuard {
    /// A guard with the default [`STORED_TTL`] and [`IN_FLIGHT_TTL`].
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_ttls(clock, STORED_TTL, IN_FLIGHT_TTL)
    }

    /// A guard remembering stored ids for `stored_ttl` and in-flight ones for `in_flight_ttl`.
    pub fn with_ttls(clock: Arc<dyn Clock>, stored_ttl: Duration, in_flight_ttl: Duration) -> Self {
        Self {
            clock,
            stored_ttl,
            in_flight_ttl,
            state: Mutex::new(State::default()),
        }
    }

    /// How many ids are remembered (expired ones may still count until the next sweep).
    pub fn len(&self) -> usize {
        self.lock().marks.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl DeliveryGuard for MemoryDeliveryGuard {
    async fn first_seen(&self, delivery_id: &str) -> Result<Sighting, StoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        state.calls += 1;
        if state.calls.is_multiple_of(SWEEP_EVERY) {
            state.marks.retain(|_, (_, expires)| *expires > now);
        }
        match state.marks.get(delivery_id) {
            Some((Mark::Stored(event_id), expires)) if *expires > now => Ok(Sighting::Stored {
                event_id: *event_id,
            }),
            Some((Mark::InFlight, expires)) if *expires > now => Ok(Sighting::InFlight),
            _ => {
                let expires = clock::add(now, self.in_flight_ttl);
                state
                    .marks
                    .insert(delivery_id.to_owned(), (Mark::InFlight, expires));
                Ok(Sighting::First)
            }
        }
    }

    async fn stored(&self, delivery_id: &str, event_id: i64) -> Result<(), StoreError> {
        let expires = clock::add(self.clock.now(), self.stored_ttl);
        self.lock()
            .marks
            .insert(delivery_id.to_owned(), (Mark::Stored(event_id), expires));
        Ok(())
    }

    async fn forget(&self, delivery_id: &str) -> Result<(), StoreError> {
        self.lock().marks.remove(delivery_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn marks_expire_on_the_injected_clock() {
        let clock = Arc::new(ManualClock::default());
        let guard = MemoryDeliveryGuard::new(clock.clone());
        assert_eq!(guard.first_seen("a").await.unwrap(), Sighting::First);
        assert_eq!(guard.first_seen("a").await.unwrap(), Sighting::InFlight);
        clock.advance(IN_FLIGHT_TTL);
        assert_eq!(
            guard.first_seen("a").await.unwrap(),
            Sighting::First,
            "an abandoned in-flight mark expires"
        );
        guard.stored("a", 7).await.unwrap();
        clock.advance(STORED_TTL - Duration::from_secs(1));
        assert_eq!(
            guard.first_seen("a").await.unwrap(),
            Sighting::Stored { event_id: 7 }
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(guard.first_seen("a").await.unwrap(), Sighting::First);
        guard.forget("a").await.unwrap();
        assert!(guard.is_empty());
    }

    #[test]
    fn emission_interval_divides_the_period() {
        let quota = RateQuota {
            requests: 100,
            period: Duration::from_secs(60),
            burst: 1,
        };
        assert_eq!(quota.emission_interval(), Duration::from_millis(600));
    }
}
