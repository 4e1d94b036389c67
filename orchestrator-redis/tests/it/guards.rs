//! The shared replay guard and rate limiter.

use std::time::Duration;

use orchestrator_redis::{Rate, RedisRateLimiter, ReplayGuard};

use crate::support::TestRedis;

#[tokio::test]
async fn replay_guard_reports_first_sighting_once_across_instances() {
    let redis = TestRedis::new();
    let api_a = ReplayGuard::new(redis.connection());
    let api_b = ReplayGuard::new(redis.connection());
    let ttl = ReplayGuard::DEFAULT_TTL;

    assert!(api_a.check_and_set("delivery-1", ttl).await.unwrap());
    assert!(
        !api_b.check_and_set("delivery-1", ttl).await.unwrap(),
        "second instance sees the replay"
    );
    assert!(!api_a.check_and_set("delivery-1", ttl).await.unwrap());
    assert!(
        api_b.check_and_set("delivery-2", ttl).await.unwrap(),
        "other ids are independent"
    );

    let key = format!("{}:delivery:delivery-1", redis.prefix);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut redis.raw())
        .unwrap();
    assert!(
        pttl > 71 * 3600 * 1000 && pttl <= 72 * 3600 * 1000,
        "72 h expiry, got {pttl} ms"
    );
}

#[tokio::test]
async fn replay_guard_forgets_on_request_and_after_its_ttl() {
    let redis = TestRedis::new();
    let guard = ReplayGuard::new(redis.connection());

    assert!(
        guard
            .check_and_set("d", ReplayGuard::DEFAULT_TTL)
            .await
            .unwrap()
    );
    guard.forget("d").await.unwrap();
    assert!(
        guard
            .check_and_set("d", ReplayGuard::DEFAULT_TTL)
            .await
            .unwrap(),
        "forgotten id is new again"
    );

    assert!(
        guard
            .check_and_set("short", Duration::from_millis(50))
            .await
            .unwrap()
    );
    assert!(
        !guard
            .check_and_set("short", Duration::from_millis(50))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        guard
            .check_and_set("short", Duration::from_millis(50))
            .await
            .unwrap(),
        "expired id is new again"
    );
}

#[tokio::test]
async fn rate_limiter_allows_the_burst_then_one_per_interval() {
    let redis = TestRedis::new();
    let limiter = RedisRateLimiter::new(redis.connection());
    let other_instance = RedisRateLimiter::new(redis.connection());
    let rate = Rate::per_second(5); // one every 200 ms

    for i in 0..3 {
        let d = limiter.check("10.0.0.1", rate, 3).await.unwrap();
        assert!(d.allowed, "request {i} of the burst");
    }
    let refused = other_instance.check("10.0.0.1", rate, 3).await.unwrap();
    assert!(!refused.allowed, "the burst is shared by all instances");
    assert!(
        refused.retry_after > Duration::from_millis(100)
            && refused.retry_after <= Duration::from_millis(200),
        "retry after about one interval, got {:?}",
        refused.retry_after
    );
    assert!(
        limiter.check("10.0.0.2", rate, 3).await.unwrap().allowed,
        "keys are independent"
    );

    tokio::time::sleep(refused.retry_after + Duration::from_millis(10)).await;
    assert!(
        limiter.check("10.0.0.1", rate, 3).await.unwrap().allowed,
        "allowed after the interval"
    );
    assert!(
        !limiter.check("10.0.0.1", rate, 3).await.unwrap().allowed,
        "but only one"
    );
}

#[tokio::test]
async fn rate_limiter_key_expires_when_it_no_longer_restricts() {
    let redis = TestRedis::new();
    let limiter = RedisRateLimiter::new(redis.connection());
    let rate = Rate::per_second(20); // 50 ms interval

    assert!(limiter.check("k", rate, 2).await.unwrap().allowed);
    let key = format!("{}:rate:k", redis.prefix);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut redis.raw())
        .unwrap();
    assert!(
        (1..=60).contains(&pttl),
        "key lives about one interval, got {pttl} ms"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query(&mut redis.raw())
        .unwrap();
    assert!(!exists);
}
