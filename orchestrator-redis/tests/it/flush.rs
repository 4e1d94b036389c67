//! Redis losing its data mid-run (`FLUSHDB` of a private `redis-server`, what a restart without
//! persistence leaves; or a failover that lost the stream's entries): every runnable task runs
//! within the 30 s promise on the queue clock, never after the sweeper's 300 s staleness;
//! running tasks come back through their lease; tasks due later run when due.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use orchestrator_core::clock::Clock;
use orchestrator_core::observe::Observer;
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{Claim, Finish, TaskStore};
use orchestrator_core::task::TaskStatus;
use orchestrator_redis::{QueueConfig, RedisQueue};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Harness, PrivateRedis, TestRedis, fast_config};

const LEASE: Duration = Duration::from_secs(20);
/// What the README promises after Redis lost its data.
const PROMISE: Duration = Duration::from_secs(30);

/// Counts `queue_reset` observations, by reason.
#[derive(Default)]
struct Resets(Mutex<Vec<String>>);

impl Observer for Resets {
    fn queue_reset(&self, reason: &str) {
        self.0.lock().unwrap().push(reason.to_owned());
    }
}

impl Resets {
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Queue settings of these tests: the sweeper's staleness stays the default 300 s.
fn config() -> QueueConfig {
    let config = QueueConfig {
        block: Duration::from_millis(20),
        ..fast_config()
    };
    assert_eq!(config.sweep_after, Duration::from_secs(300));
    config
}

/// A harness on `redis` whose queue reports resets to the returned observer.
fn harness(redis: TestRedis, config: QueueConfig) -> (Harness, Arc<Resets>) {
    let mut h = Harness::on(redis, config.clone());
    let resets = Arc::new(Resets::default());
    h.queue = instance(&h, config, &resets);
    (h, resets)
}

/// Another process's queue over the harness's keys and store, reporting to `resets`.
fn instance(h: &Harness, config: QueueConfig, resets: &Arc<Resets>) -> Arc<RedisQueue> {
    let queue = RedisQueue::new(
        h.redis.connection(),
        config,
        h.store.clone(),
        h.store.clone(),
        h.clock.clone() as Arc<dyn Clock>,
    )
    .unwrap()
    .with_observer(resets.clone());
    Arc::new(queue)
}

async fn complete(queue: &RedisQueue, claim: &Claim, now: DateTime<Utc>) {
    let done = Finish::Completed {
        output: json!({}),
        followups: Vec::new(),
    };
    let report = queue.finish(claim, done, now).await.unwrap();
    assert_eq!(report.status, TaskStatus::Completed);
}

/// Claims and completes with `queues` in turn, at the queue clock's `now`, until `want` ran (or
/// 10 s of real time passed: the tasks were not delivered); panics when a task runs twice.
/// Retryable errors (Redis reconnecting) are tolerated.
async fn run(
    queues: &[Arc<RedisQueue>],
    want: &[Uuid],
    now: DateTime<Utc>,
    ran: &mut HashSet<Uuid>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !want.iter().all(|id| ran.contains(id)) {
        assert!(
            Instant::now() < deadline,
            "{} of {} tasks did not run",
            want.iter().filter(|id| !ran.contains(id)).count(),
            want.len()
        );
        for (i, queue) in queues.iter().enumerate() {
            let claims = match queue.claim(&format!("w{i}"), 50, LEASE, now).await {
                Ok(claims) => claims,
                Err(err) => {
                    assert!(err.is_retryable(), "{err}");
                    continue;
                }
            };
            for claim in claims {
                assert!(ran.insert(claim.task.task_id), "task ran twice");
                complete(queue, &claim, now).await;
            }
        }
    }
}

/// One claim at `now` that must find nothing.
async fn assert_nothing_claimed(queue: &RedisQueue, now: DateTime<Utc>) {
    let claims = queue.claim("w", 10, LEASE, now).await.unwrap();
    assert!(claims.is_empty(), "{} claimed", claims.len());
}

async fn status(h: &Harness, id: Uuid) -> TaskStatus {
    h.store.get_task(id).await.unwrap().unwrap().task.status
}

#[tokio::test]
async fn a_flushed_redis_runs_every_runnable_task_within_30_s_without_waiting_for_the_sweeper() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let (h, resets) = harness(TestRedis::on(server.url()), config());
    let start = h.now();
    // Three tasks taken before the flush: one whose worker dies, one whose worker finishes after
    // the flush, one that fails and is scheduled to retry in 40 s (in Redis's delayed set).
    let taken = h.commit(3).await;
    h.queue.publish(&taken).await.unwrap();
    let claims = h.queue.claim("w", 3, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), 3);
    let (dies, finishes, retries) = (&claims[0], &claims[1], &claims[2]);
    let retry_at = start + chrono::Duration::seconds(40);
    let failed = Finish::Retry {
        error: "503 from upstream".into(),
        at: retry_at,
    };
    h.queue.finish(retries, failed, h.now()).await.unwrap();
    assert_eq!(h.queue.stream().delayed(10).await.unwrap().len(), 1);
    // Four published and waiting in the stream, one committed whose publish was lost.
    let waiting = h.commit(4).await;
    h.queue.publish(&waiting).await.unwrap();
    let unpublished = h.commit(1).await;

    server.flush();

    // The first claims after the flush find the group gone, re-publish from the store and run
    // the five due tasks: no time passes on the queue clock.
    let mut ran = HashSet::new();
    let due: Vec<Uuid> = waiting
        .iter()
        .chain(&unpublished)
        .map(|t| t.task_id)
        .collect();
    run(std::slice::from_ref(&h.queue), &due, h.now(), &mut ran).await;
    assert_eq!(resets.seen(), ["group_missing"], "one reset, counted once");
    // The task that was due later is back in the delayed set at its due time.
    let delayed = h.queue.stream().delayed(10).await.unwrap();
    assert_eq!(delayed, [(retries.task.task_id.to_string(), retry_at)]);
    // A live worker finishes its task normally although its message is gone.
    complete(&h.queue, finishes, h.now()).await;

    // The dead worker's task comes back through its lease, as with the database queue.
    h.clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(status(&h, dies.task.task_id).await, TaskStatus::Running);
    assert_eq!(h.queue.requeue_expired(h.now()).await.unwrap(), 1);
    run(
        std::slice::from_ref(&h.queue),
        &[dies.task.task_id],
        h.now(),
        &mut ran,
    )
    .await;
    assert_eq!(status(&h, retries.task.task_id).await, TaskStatus::Retrying);

    // The retry runs when due.
    h.clock.set(retry_at);
    run(
        std::slice::from_ref(&h.queue),
        &[retries.task.task_id],
        h.now(),
        &mut ran,
    )
    .await;
    let elapsed = h.now().signed_duration_since(start).to_std().unwrap();
    assert!(
        elapsed < h.queue.stream().config().sweep_after,
        "the sweeper never had to act"
    );

    for claim in &claims {
        assert_eq!(status(&h, claim.task.task_id).await, TaskStatus::Completed);
    }
    for id in &due {
        assert_eq!(status(&h, *id).await, TaskStatus::Completed);
    }
    let depth = h.queue.depth(h.now()).await.unwrap();
    assert_eq!(
        (depth.ready, depth.scheduled, depth.running),
        (0, 0, 0),
        "{depth:?}"
    );
    assert_eq!(resets.seen(), ["group_missing"], "no second reset");
}

#[tokio::test]
async fn a_redis_restarted_without_persistence_is_noticed_after_reconnecting() {
    let Some(mut server) = PrivateRedis::start() else {
        return;
    };
    let (h, resets) = harness(TestRedis::on(server.url()), config());
    let refs = h.commit(3).await;
    h.queue.publish(&refs).await.unwrap();
    let first = h.queue.claim("w", 1, LEASE, h.now()).await.unwrap();
    assert_eq!(first.len(), 1);

    server.restart();
    // The queue reconnects (with backoff: claims fail meanwhile), finds the group gone and
    // re-publishes the two tasks that were waiting; the running one keeps its lease.
    let mut ran = HashSet::new();
    let waiting: Vec<Uuid> = refs
        .iter()
        .map(|r| r.task_id)
        .filter(|id| *id != first[0].task.task_id)
        .collect();
    run(std::slice::from_ref(&h.queue), &waiting, h.now(), &mut ran).await;
    assert!(!ran.contains(&first[0].task.task_id));
    assert_eq!(resets.seen(), ["group_missing"]);
    complete(&h.queue, &first[0], h.now()).await;
}

#[tokio::test]
async fn several_processes_finding_redis_flushed_reset_once_and_run_each_task_once() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let config = config();
    let (h, resets) = harness(TestRedis::on(server.url()), config.clone());
    let queues: Vec<Arc<RedisQueue>> = std::iter::once(h.queue.clone())
        .chain((0..3).map(|_| instance(&h, config.clone(), &resets)))
        .collect();
    // Every process has used the group.
    for queue in &queues {
        assert_nothing_claimed(queue, h.now()).await;
    }
    let published = h.commit(10).await;
    h.queue.publish(&published).await.unwrap();
    let unpublished = h.commit(20).await;

    server.flush();
    // All four notice at the same moment (their metrics scrape, here); one recreates the group.
    let depths = futures::future::join_all(queues.iter().map(|q| q.depth(h.now()))).await;
    assert!(depths.iter().all(Result::is_ok), "{depths:?}");
    assert_eq!(
        resets.seen(),
        ["group_missing"],
        "one process reset the queue"
    );
    assert_eq!(
        h.xlen(&h.queue.stream().keys().stream),
        30,
        "one message per runnable task, not one per process"
    );

    let mut ran = HashSet::new();
    let all: Vec<Uuid> = published
        .iter()
        .chain(&unpublished)
        .map(|t| t.task_id)
        .collect();
    run(&queues, &all, h.now(), &mut ran).await;
    assert_eq!(ran.len(), 30);
    assert_eq!(resets.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_blocked_when_redis_is_flushed_recovers_and_refills_the_delayed_set() {
    let Some(server) = PrivateRedis::start() else {
        return;
    };
    let config = QueueConfig {
        block: Duration::from_secs(2),
        ..config()
    };
    let (h, resets) = harness(TestRedis::on(server.url()), config);
    let later = h.now() + chrono::Duration::seconds(25);
    let mut refs = h.commit(3).await;
    h.queue.publish(&refs).await.unwrap();
    let claims = h.queue.claim("w", 3, LEASE, h.now()).await.unwrap();
    for claim in &claims {
        let deferred = Finish::Deferred {
            at: later,
            reason: "breaker open".into(),
            output: None,
        };
        h.queue.finish(claim, deferred, h.now()).await.unwrap();
    }
    assert_eq!(h.queue.stream().delayed(10).await.unwrap().len(), 3);

    // A worker waits on the empty stream when Redis loses everything.
    let (queue, now) = (h.queue.clone(), h.now());
    let blocked = tokio::spawn(async move { queue.claim("w", 10, LEASE, now).await });
    server.wait_for_blocked_read();
    server.flush();
    let claimed = blocked.await.unwrap();
    assert!(
        claimed.unwrap().is_empty(),
        "the interrupted read is not an error"
    );
    assert_eq!(resets.seen(), ["group_missing"]);
    let delayed = h.queue.stream().delayed(10).await.unwrap();
    assert_eq!(delayed.len(), 3, "deferred tasks are scheduled again");
    assert!(delayed.iter().all(|(_, at)| *at == later));

    h.clock.set(later);
    let mut ran = HashSet::new();
    refs.sort_by_key(|r| r.task_id);
    let ids: Vec<Uuid> = refs.iter().map(|r| r.task_id).collect();
    run(std::slice::from_ref(&h.queue), &ids, h.now(), &mut ran).await;
}

#[tokio::test]
async fn a_stream_that_lost_its_entries_is_refilled_once_its_tasks_are_older_than_lost_after() {
    // A failover to a replica that missed the last writes: the group is there, the entries are
    // not. Nothing is flushed, so the shared Redis (own prefix) will do.
    let config = config();
    let (h, resets) = harness(TestRedis::new(), config.clone());
    assert_nothing_claimed(&h.queue, h.now()).await;
    let refs = h.commit(5).await;
    h.queue.publish(&refs).await.unwrap();
    let _: i64 = redis::cmd("XTRIM")
        .arg(&h.queue.stream().keys().stream)
        .arg("MAXLEN")
        .arg(0)
        .query(&mut h.redis.raw())
        .unwrap();

    // Younger than `lost_after`: maybe still being published; left alone.
    h.clock.advance(config.lost_after / 2);
    assert_nothing_claimed(&h.queue, h.now()).await;
    assert!(resets.seen().is_empty());

    h.clock.advance(config.lost_after);
    assert_nothing_claimed(&h.queue, h.now()).await;
    assert_eq!(resets.seen(), ["stream_drained"]);
    let mut ran = HashSet::new();
    let ids: Vec<Uuid> = refs.iter().map(|r| r.task_id).collect();
    run(std::slice::from_ref(&h.queue), &ids, h.now(), &mut ran).await;
    assert!(config.lost_after + config.lost_check_interval < PROMISE);
    assert_eq!(resets.seen().len(), 1);
}
