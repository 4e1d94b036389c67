//! The Redis lock behind one recovery runner across instances: one holder at a time across
//! connections, released on drop, kept while renewed, taken over once its holder stops
//! renewing (and then the stale holder can neither renew nor release it), and the reconciler
//! taking it instead of the store's lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::Ingestor;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::recovery::memory::FakeDeliveryLog;
use orchestrator_core::recovery::{Reconciler, RecoveryConfig, RunnerLock};
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::recovery::RecoveryStore;
use orchestrator_redis::RedisLock;

use crate::support::TestRedis;

/// Tries `lock` for `holder` until it is taken, at most 5 s (a dropped lease is released in the
/// background).
async fn take(
    lock: &RedisLock,
    holder: &str,
    ttl: Duration,
) -> orchestrator_core::store::recovery::RunnerLease {
    let started = Instant::now();
    loop {
        if let Some(lease) = lock.try_lock(holder, ttl, Utc::now()).await.unwrap() {
            return lease;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn one_holder_at_a_time_across_connections_and_released_on_drop() {
    let redis = TestRedis::new();
    let one = RedisLock::recovery(redis.connection());
    let two = RedisLock::recovery(redis.connection());
    assert_eq!(one.key(), format!("{}:lock:recovery", redis.prefix));
    let ttl = Duration::from_secs(60);
    let lease = one.try_lock("one", ttl, Utc::now()).await.unwrap().unwrap();
    assert!(
        two.try_lock("two", ttl, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        one.try_lock("one", ttl, Utc::now())
            .await
            .unwrap()
            .is_none(),
        "not reentrant"
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(one.key())
        .query(&mut redis.raw())
        .unwrap();
    assert!(pttl > 55_000 && pttl <= 60_000, "{pttl}");
    drop(lease);
    let lease = take(&two, "two", ttl).await;
    drop(lease);
}

#[tokio::test]
async fn renewed_it_holds_and_once_renewal_stops_another_takes_it() {
    let redis = TestRedis::new();
    let one = RedisLock::recovery(redis.connection());
    let two = RedisLock::recovery(redis.connection());
    let ttl = Duration::from_secs(2);
    let first = one.try_lock("one", ttl, Utc::now()).await.unwrap().unwrap();
    // Renewed every 0.5 s for 3 s: longer than its TTL, and nobody else gets in.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(first.renew(ttl, Utc::now()).await.unwrap());
        assert!(
            two.try_lock("two", ttl, Utc::now())
                .await
                .unwrap()
                .is_none()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // It stops renewing (a hung runner): Redis expires it and the other takes it over.
    let second = take(&two, "two", ttl).await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "taken {:?} after the start, before the last renewal's TTL ran out",
        started.elapsed()
    );
    assert!(
        !first.renew(ttl, Utc::now()).await.unwrap(),
        "the stale holder cannot renew"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let holder: Option<String> = redis::cmd("GET")
        .arg(two.key())
        .query(&mut redis.raw())
        .unwrap();
    assert!(
        holder.is_some_and(|h| h.starts_with("two:")),
        "the stale holder's release left the new holder's lock alone"
    );
    drop(second);
}

#[tokio::test]
async fn the_reconciler_takes_the_redis_lock_instead_of_the_stores_lease() {
    let redis = TestRedis::new();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let ingestor = Arc::new(Ingestor::new(
        SignatureVerifier::new([WebhookSecret::new("s")]),
        Router::empty(),
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    ));
    let config = RecoveryConfig {
        hooks: "repo:octo/repo:42".parse().unwrap(),
        ..RecoveryConfig::default()
    };
    let reconciler = |lock: RedisLock| {
        let lock: Arc<dyn RunnerLock> = Arc::new(lock);
        Reconciler::new(
            Arc::new(FakeDeliveryLog::new(10)),
            store.clone(),
            ingestor.clone(),
            clock.clone(),
            config.clone(),
        )
        .with_lock(lock)
    };
    let first = reconciler(RedisLock::recovery(redis.connection()));
    let second = reconciler(RedisLock::recovery(redis.connection()));
    // Another instance holds the Redis lock: no run, although the store's lease is free.
    let other = RedisLock::recovery(redis.connection());
    let held = other
        .try_lock("other", Duration::from_secs(60), clock.now())
        .await
        .unwrap()
        .unwrap();
    assert!(first.tick(true).await.unwrap().is_none());
    assert!(second.tick(true).await.unwrap().is_none());
    assert!(
        store
            .try_lock_runner("free", Duration::from_secs(1), clock.now())
            .await
            .unwrap()
            .is_some(),
        "the store's own lease was never taken"
    );
    drop(held);
    assert_eq!(tick(&first, true).await.len(), 1, "one scheduled run");
    // Released after the tick: the other instance gets its turn.
    assert!(tick(&second, false).await.is_empty());
}

/// Ticks until the lock is free (a dropped lease is released in the background), at most 5 s.
async fn tick(
    reconciler: &Reconciler,
    scheduled: bool,
) -> Vec<orchestrator_core::store::recovery::RecoveryRun> {
    let started = Instant::now();
    loop {
        if let Some(runs) = reconciler.tick(scheduled).await.unwrap() {
            return runs;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
