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

mod as_core_traits {
    //! The same guards through the core's traits, as the ingestor and the HTTP layer use them.

    use std::time::Duration;

    use orchestrator_core::error::StoreErrorKind;
    use orchestrator_core::guard::{
        DeliveryGuard, IN_FLIGHT_TTL, RateDecision, RateLimiter, RateQuota, Sighting,
    };
    use orchestrator_redis::{RedisConfig, RedisConnection, RedisRateLimiter, ReplayGuard};

    use crate::support::TestRedis;

    fn pttl(redis: &TestRedis, key: &str) -> i64 {
        redis::cmd("PTTL").arg(key).query(&mut redis.raw()).unwrap()
    }

    #[tokio::test]
    async fn delivery_guard_marks_in_flight_then_remembers_the_event_id_across_instances() {
        let redis = TestRedis::new();
        let api_a: Box<dyn DeliveryGuard> = Box::new(ReplayGuard::new(redis.connection()));
        let api_b: Box<dyn DeliveryGuard> = Box::new(ReplayGuard::new(redis.connection()));
        let key = format!("{}:delivery:d-1", redis.prefix);

        assert_eq!(api_a.first_seen("d-1").await.unwrap(), Sighting::First);
        let in_flight = pttl(&redis, &key);
        assert!(
            in_flight > 0 && in_flight <= IN_FLIGHT_TTL.as_millis() as i64,
            "short in-flight expiry, got {in_flight} ms"
        );
        assert_eq!(
            api_b.first_seen("d-1").await.unwrap(),
            Sighting::InFlight,
            "another instance leaves an in-flight id to the database"
        );

        api_a.stored("d-1", 42).await.unwrap();
        assert_eq!(
            api_b.first_seen("d-1").await.unwrap(),
            Sighting::Stored { event_id: 42 }
        );
        let stored = pttl(&redis, &key);
        assert!(
            stored > 71 * 3600 * 1000 && stored <= 72 * 3600 * 1000,
            "72 h expiry once stored, got {stored} ms"
        );

        api_b.forget("d-1").await.unwrap();
        assert_eq!(api_a.first_seen("d-1").await.unwrap(), Sighting::First);
    }

    #[tokio::test]
    async fn an_abandoned_in_flight_mark_expires_and_foreign_marks_are_not_event_ids() {
        let redis = TestRedis::new();
        let guard = ReplayGuard::new(redis.connection())
            .with_ttls(ReplayGuard::DEFAULT_TTL, Duration::from_millis(50));

        assert_eq!(guard.first_seen("crashed").await.unwrap(), Sighting::First);
        assert_eq!(
            guard.first_seen("crashed").await.unwrap(),
            Sighting::InFlight
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            guard.first_seen("crashed").await.unwrap(),
            Sighting::First,
            "a request that died before storing holds the id only briefly"
        );

        assert!(
            guard
                .check_and_set("old-style", ReplayGuard::DEFAULT_TTL)
                .await
                .unwrap()
        );
        assert_eq!(
            guard.first_seen("old-style").await.unwrap(),
            Sighting::InFlight,
            "a mark without an event id is left to the database"
        );
    }

    #[tokio::test]
    async fn rate_limiter_trait_allows_the_burst_then_limits_with_a_wait() {
        let redis = TestRedis::new();
        let limiter: Box<dyn RateLimiter> = Box::new(RedisRateLimiter::new(redis.connection()));
        let quota = RateQuota {
            requests: 5,
            period: Duration::from_secs(1),
            burst: 2,
        };
        for i in 0..2 {
            assert_eq!(
                limiter.check("webhook:10.0.0.1", quota).await.unwrap(),
                RateDecision::Allowed,
                "request {i} of the burst"
            );
        }
        match limiter.check("webhook:10.0.0.1", quota).await.unwrap() {
            RateDecision::Limited { retry_after } => assert!(
                retry_after > Duration::from_millis(100)
                    && retry_after <= Duration::from_millis(200),
                "about one interval, got {retry_after:?}"
            ),
            RateDecision::Allowed => panic!("the third request exceeds the burst"),
        }
        assert_eq!(
            limiter.check("api:10.0.0.1", quota).await.unwrap(),
            RateDecision::Allowed,
            "another key space is independent"
        );
    }

    #[tokio::test]
    async fn redis_down_is_reported_as_an_unavailable_store_error() {
        // Nothing listens on port 1: every call fails fast, as during a Redis outage.
        let conn = RedisConnection::new(RedisConfig {
            url: "redis://127.0.0.1:1".to_owned(),
            connect_timeout: Duration::from_millis(200),
            ..RedisConfig::default()
        })
        .unwrap();
        let guard = ReplayGuard::new(conn.clone());
        let limiter = RedisRateLimiter::new(conn);
        let quota = RateQuota {
            requests: 1,
            period: Duration::from_secs(1),
            burst: 1,
        };

        let kinds = [
            DeliveryGuard::first_seen(&guard, "d")
                .await
                .unwrap_err()
                .kind(),
            DeliveryGuard::stored(&guard, "d", 1)
                .await
                .unwrap_err()
                .kind(),
            DeliveryGuard::forget(&guard, "d").await.unwrap_err().kind(),
            RateLimiter::check(&limiter, "k", quota)
                .await
                .unwrap_err()
                .kind(),
        ];
        assert_eq!(kinds, [StoreErrorKind::Unavailable; 4]);
    }
}
