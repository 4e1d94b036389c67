//! Failures: a crash between commit and publish, a lost consumer group, killed connections,
//! a Redis that goes away and comes back, and one that is not there at all.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{Claim, Finish};
use orchestrator_core::task::TaskStatus;
use orchestrator_redis::{QueueConfig, RedisConfig, RedisConnection, RedisQueue};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Harness, Proxy, TestRedis, commit_tasks, fast_config};

const LEASE: Duration = Duration::from_secs(60);

async fn finish_all(queue: &RedisQueue, claims: &[Claim], now: chrono::DateTime<chrono::Utc>) {
    for claim in claims {
        let report = queue
            .finish(
                claim,
                Finish::Completed {
                    output: json!({}),
                    followups: Vec::new(),
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(report.status, TaskStatus::Completed);
    }
}

/// Claims and completes until `want` distinct tasks ran, tolerating errors; panics on a rerun.
async fn run_until(
    queue: &RedisQueue,
    want: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> HashSet<Uuid> {
    let mut ran = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ran.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} tasks ran",
            ran.len()
        );
        match queue.claim("w", 50, LEASE, now).await {
            Ok(claims) => {
                for c in &claims {
                    assert!(
                        ran.insert(c.task.task_id),
                        "task {} ran twice",
                        c.task.task_id
                    );
                }
                finish_all(queue, &claims, now).await;
            }
            Err(err) => assert!(err.is_retryable(), "unexpected error: {err}"),
        }
    }
    ran
}

#[tokio::test]
async fn the_sweeper_publishes_tasks_lost_between_commit_and_publish() {
    let config = QueueConfig {
        sweep_after: Duration::from_secs(300),
        ..fast_config()
    };
    let h = Harness::new(config);
    let published = h.commit(2).await;
    h.queue.publish(&published).await.unwrap();
    let lost = h.commit(3).await; // the process died before XADD

    let claims = h.queue.claim("w", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), 2, "only the published tasks are visible");
    finish_all(&h.queue, &claims, h.now()).await;
    assert_eq!(
        h.queue.sweeper().sweep_once(h.now()).await.unwrap(),
        0,
        "not stale yet"
    );

    h.clock.advance(Duration::from_secs(301));
    assert_eq!(h.queue.sweeper().sweep_once(h.now()).await.unwrap(), 3);
    let claims = h.queue.claim("w", 10, LEASE, h.now()).await.unwrap();
    let mut got: Vec<_> = claims.iter().map(|c| c.task.task_id).collect();
    let mut want: Vec<_> = lost.iter().map(|r| r.task_id).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    finish_all(&h.queue, &claims, h.now()).await;
}

#[tokio::test]
async fn requeue_expired_runs_the_sweep_on_its_interval() {
    let config = QueueConfig {
        sweep_after: Duration::from_secs(60),
        sweep_interval: Duration::from_secs(30),
        ..fast_config()
    };
    let h = Harness::new(config);
    assert_eq!(h.queue.requeue_expired(h.now()).await.unwrap(), 0);
    let lost = h.commit(2).await;
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(
        h.queue.requeue_expired(h.now()).await.unwrap(),
        2,
        "sweep due: lost tasks re-published"
    );
    assert_eq!(
        h.queue.requeue_expired(h.now()).await.unwrap(),
        0,
        "next sweep waits for the interval"
    );
    let claims = h.queue.claim("w", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), lost.len());
}

#[tokio::test]
async fn several_worker_processes_sweep_a_lost_task_once_per_interval_not_once_each() {
    let config = QueueConfig {
        sweep_after: Duration::from_secs(60),
        sweep_interval: Duration::from_secs(30),
        ..fast_config()
    };
    let h = Harness::new(config.clone());
    let others: Vec<_> = (0..3).map(|_| h.another_instance(config.clone())).collect();
    let lost = h.commit(1).await;
    h.clock.advance(Duration::from_secs(61));
    let mut swept = h.queue.requeue_expired(h.now()).await.unwrap();
    for other in &others {
        swept += other.requeue_expired(h.now()).await.unwrap();
    }
    assert_eq!(swept, 1, "one process swept");
    assert_eq!(
        h.xlen(&h.queue.stream().keys().stream),
        1,
        "one message for the lost task, not one per process"
    );
    // The next interval: again exactly one sweep (the task is still unclaimed and stale).
    h.clock.advance(Duration::from_secs(31));
    let mut swept = 0;
    for other in &others {
        swept += other.requeue_expired(h.now()).await.unwrap();
    }
    assert_eq!(swept, 1);
    let claims = others[0].claim("w", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].task.task_id, lost[0].task_id);
}

#[tokio::test]
async fn a_deleted_consumer_group_is_recreated_and_unfinished_messages_are_delivered() {
    let h = Harness::new(fast_config());
    let refs = h.commit(10).await;
    h.queue.publish(&refs[..5]).await.unwrap();
    let running = h.queue.claim("w", 2, LEASE, h.now()).await.unwrap();
    assert_eq!(running.len(), 2);

    let stream = h.queue.stream().keys().stream.clone();
    let destroyed: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream)
        .arg("workers")
        .query(&mut h.redis.raw())
        .unwrap();
    assert_eq!(destroyed, 1);
    h.queue.publish(&refs[5..]).await.unwrap();

    // 3 never claimed + 5 new; the 2 running ones are redelivered but not started again.
    let ran = run_until(&h.queue, 8, h.now()).await;
    assert!(running.iter().all(|c| !ran.contains(&c.task.task_id)));
    finish_all(&h.queue, &running, h.now()).await;
    assert!(
        h.queue
            .claim("w", 50, LEASE, h.now())
            .await
            .unwrap()
            .is_empty()
    );
    let depth = h.queue.depth(h.now()).await.unwrap();
    assert_eq!((depth.ready, depth.running), (0, 0), "{depth:?}");

    // Even with the whole stream gone (a restart without persistence), the sweeper has the rest.
    let more = h.commit(2).await;
    h.queue.publish(&more).await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query(&mut h.redis.raw())
        .unwrap();
    assert!(
        h.queue
            .claim("w", 50, LEASE, h.now())
            .await
            .unwrap()
            .is_empty()
    );
    h.clock.advance(Duration::from_secs(301));
    assert_eq!(h.queue.sweeper().sweep_once(h.now()).await.unwrap(), 2);
    run_until(&h.queue, 2, h.now()).await;
}

#[tokio::test]
async fn killed_connections_are_remade_and_nothing_is_lost_or_run_twice() {
    let h = Harness::new(fast_config());
    let refs = h.commit(40).await;
    h.queue.publish(&refs[..20]).await.unwrap();
    let first = h.queue.claim("w", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(first.len(), 10);

    let killed = h.redis.kill_own_clients();
    assert!(killed >= 1, "the queue's named connections were found");
    // Publishing right after the kill may fail; the tasks wait in the backlog.
    if h.queue.publish(&refs[20..]).await.is_err() {
        assert_eq!(h.queue.backlog_len(), 20);
    }
    finish_all(&h.queue, &first, h.now()).await;
    let rest = run_until(&h.queue, 30, h.now()).await;
    assert!(first.iter().all(|c| !rest.contains(&c.task.task_id)));
    assert_eq!(h.queue.backlog_len(), 0);
    let depth = h.queue.depth(h.now()).await.unwrap();
    assert_eq!((depth.ready, depth.running), (0, 0), "{depth:?}");
}

#[tokio::test]
async fn while_redis_is_away_ingest_commits_and_publishing_catches_up_when_it_returns() {
    let redis = TestRedis::new();
    let mut proxy = Proxy::start().await;
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let config = RedisConfig {
        url: proxy.url(),
        ..redis.config()
    };
    let queue = RedisQueue::new(
        RedisConnection::new(config).unwrap(),
        fast_config(),
        store.clone(),
        store.clone(),
        clock.clone() as Arc<dyn Clock>,
    )
    .unwrap();
    let before = commit_tasks(store.as_ref(), 3, clock.now()).await;
    queue.publish(&before).await.unwrap();

    proxy.down();
    let during = commit_tasks(store.as_ref(), 4, clock.now()).await; // the database still commits
    let started = Instant::now();
    let err = queue.publish(&during).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "publish fails fast: {:?}",
        started.elapsed()
    );
    assert_eq!(queue.backlog_len(), 4);
    assert!(queue.claim("w", 10, LEASE, clock.now()).await.is_err());

    proxy.up().await;
    let ran = run_until(&queue, 7, clock.now()).await;
    assert_eq!(ran.len(), 7);
    assert_eq!(queue.backlog_len(), 0);
}

#[tokio::test]
async fn an_unreachable_redis_fails_claims_promptly_without_a_hot_loop() {
    let redis = TestRedis::new();
    let config = RedisConfig {
        url: "redis://127.0.0.1:1".into(),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..redis.config()
    };
    let conn = RedisConnection::new(config).unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let queue = RedisQueue::new(
        conn.clone(),
        fast_config(),
        store.clone(),
        store,
        clock.clone() as Arc<dyn Clock>,
    )
    .unwrap();

    let started = Instant::now();
    let err = queue.claim("w", 10, LEASE, clock.now()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "first failure is prompt: {:?}",
        started.elapsed()
    );

    let window = Instant::now();
    let mut calls = 0u32;
    while window.elapsed() < Duration::from_secs(2) {
        let call = Instant::now();
        assert!(queue.claim("w", 10, LEASE, clock.now()).await.is_err());
        assert!(
            call.elapsed() < Duration::from_secs(1),
            "each claim returns promptly"
        );
        calls += 1;
    }
    let attempts = conn.connect_attempts();
    // 100 ms doubling to 1 s (jittered down to half): at most ~8 attempts in 2 s, not thousands.
    assert!(attempts <= 12, "{attempts} connection attempts in 2 s");
    assert!(calls <= 200, "a claim loop is paced: {calls} calls in 2 s");
    assert!(calls >= 2);
}
