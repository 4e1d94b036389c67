//! Delivery guarantees across consumers: exactly-once execution, takeover, dead letters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_core::error::StoreErrorKind;
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::store::{Finish, TaskStore};
use orchestrator_core::task::{ExecutionStatus, TaskStatus};
use orchestrator_redis::QueueConfig;
use serde_json::json;
use uuid::Uuid;

use crate::support::{Harness, fast_config};

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_consumers_run_ten_thousand_tasks_exactly_once_despite_duplicate_messages() {
    const TASKS: usize = 10_000;
    const CONSUMERS: usize = 8;
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(30),
        ..fast_config()
    };
    let h = Harness::new(config.clone());
    let mut refs = Vec::new();
    for _ in 0..10 {
        refs.extend(h.commit(TASKS / 10).await);
    }
    for chunk in refs.chunks(1000) {
        h.queue.publish(chunk).await.unwrap();
    }
    // Every fifth task is published twice, as a sweep racing ingest would.
    let duplicates: Vec<_> = refs.iter().step_by(5).copied().collect();
    h.queue.publish(&duplicates).await.unwrap();

    let runs: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        let queue = h.another_instance(config.clone());
        let (runs, done, now) = (runs.clone(), done.clone(), h.now());
        consumers.push(tokio::spawn(async move {
            let worker = format!("consumer-{i}");
            let mut ran = 0usize;
            while done.load(Ordering::SeqCst) < TASKS && Instant::now() < deadline {
                for claim in queue.claim(&worker, 50, LEASE, now).await.unwrap() {
                    *runs.lock().unwrap().entry(claim.task.task_id).or_default() += 1;
                    let finish = Finish::Completed {
                        output: json!({}),
                        followups: Vec::new(),
                    };
                    queue.finish(&claim, finish, now).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                    ran += 1;
                }
            }
            ran
        }));
    }
    let mut per_consumer = Vec::new();
    for c in consumers {
        per_consumer.push(c.await.unwrap());
    }
    assert_eq!(
        done.load(Ordering::SeqCst),
        TASKS,
        "all tasks ran before the deadline ({per_consumer:?})"
    );
    {
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), TASKS);
        assert!(runs.values().all(|n| *n == 1), "a task ran twice");
    }
    assert!(
        per_consumer.iter().filter(|n| **n > 0).count() >= CONSUMERS / 2,
        "work was shared: {per_consumer:?}"
    );

    // Drain the leftover duplicates: they are dropped, not run.
    for _ in 0..20 {
        let claims = h.queue.claim("drain", 500, LEASE, h.now()).await.unwrap();
        assert!(
            claims.is_empty(),
            "a duplicate message started a finished task"
        );
        if h.queue.depth(h.now()).await.unwrap().ready == 0 {
            break;
        }
    }
    let depth = h.queue.depth(h.now()).await.unwrap();
    assert_eq!(
        (depth.ready, depth.running, depth.dead_letter),
        (0, 0, 0),
        "{depth:?}"
    );
    for r in refs.iter().step_by(97) {
        let detail = h.store.get_task(r.task_id).await.unwrap().unwrap();
        assert_eq!(detail.task.status, TaskStatus::Completed);
        assert_eq!(detail.executions.len(), 1);
    }
}

#[tokio::test]
async fn messages_of_a_consumer_that_died_before_starting_them_are_taken_over() {
    let config = QueueConfig {
        visibility_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let h = Harness::new(config.clone());
    let refs = h.commit(5).await;
    h.queue.publish(&refs).await.unwrap();
    // The dying worker read the messages, then crashed before asking the store.
    let read = h.queue.stream().read("dead-worker", 10).await.unwrap();
    assert_eq!(read.len(), 5);

    let survivor = h.another_instance(config);
    assert!(
        survivor
            .claim("survivor", 10, LEASE, h.now())
            .await
            .unwrap()
            .is_empty(),
        "not before the timeout"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let claims = survivor
        .claim("survivor", 10, LEASE, h.now())
        .await
        .unwrap();
    let mut taken: Vec<_> = claims.iter().map(|c| c.receipt.clone().unwrap()).collect();
    let mut original: Vec<_> = read.iter().map(|d| d.entry_id.clone()).collect();
    taken.sort();
    original.sort();
    assert_eq!(taken, original, "the same messages, taken over");
    assert!(
        claims
            .iter()
            .all(|c| c.attempt == 1 && c.worker_id == "survivor")
    );
    for claim in &claims {
        survivor
            .finish(
                claim,
                Finish::Completed {
                    output: json!({}),
                    followups: Vec::new(),
                },
                h.now(),
            )
            .await
            .unwrap();
    }
    assert_eq!(h.queue.depth(h.now()).await.unwrap().running, 0);
}

#[tokio::test]
async fn a_task_whose_worker_died_mid_run_is_taken_over_once_its_lease_ran_out() {
    let h = Harness::new(fast_config());
    let refs = h.commit(1).await;
    h.queue.publish(&refs).await.unwrap();
    let lost = h
        .queue
        .claim("dies", 1, Duration::from_secs(30), h.now())
        .await
        .unwrap()
        .remove(0);

    let survivor = h.another_instance(fast_config());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        survivor
            .claim("survivor", 1, LEASE, h.now())
            .await
            .unwrap()
            .is_empty(),
        "the lease is still live: the message waits"
    );
    h.clock.advance(Duration::from_secs(31));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let claims = survivor.claim("survivor", 1, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), 1, "taken over after the lease ran out");
    assert_eq!(claims[0].task.task_id, lost.task.task_id);
    assert_eq!(claims[0].attempt, 2);
    let detail = h.store.get_task(lost.task.task_id).await.unwrap().unwrap();
    assert_eq!(detail.executions[0].status, ExecutionStatus::Abandoned);
}

#[tokio::test]
async fn a_message_delivered_too_often_goes_to_the_dead_letter_stream() {
    let config = QueueConfig {
        max_deliveries: 2,
        ..fast_config()
    };
    let h = Harness::new(config.clone());
    let refs = h.commit(1).await;
    h.queue.publish(&refs).await.unwrap();
    let hung = h
        .queue
        .claim("hung", 1, Duration::from_secs(3600), h.now())
        .await
        .unwrap()
        .remove(0);

    let b = h.another_instance(config.clone());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        b.claim("b", 1, LEASE, h.now()).await.unwrap().is_empty(),
        "second delivery: lease live, waits"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(b.claim("c", 1, LEASE, h.now()).await.unwrap().is_empty());

    let dead = h.queue.stream().dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].task_id, Some(hung.task.task_id));
    assert_eq!(dead[0].entry_id, hung.receipt.clone().unwrap());
    assert_eq!(dead[0].deliveries, 2);
    assert_eq!(dead[0].consumer, "b");
    assert_eq!(dead[0].at, Some(h.now()));
    let depth = h.queue.depth(h.now()).await.unwrap();
    assert_eq!((depth.ready, depth.running, depth.dead_letter), (0, 0, 1));

    // The store still decides: once the hung worker's lease runs out the task runs again.
    h.clock.advance(Duration::from_secs(3601));
    assert_eq!(h.queue.requeue_expired(h.now()).await.unwrap(), 1);
    let again = b.claim("b", 1, LEASE, h.now()).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

#[tokio::test]
async fn a_worker_that_lost_its_task_acknowledges_its_stale_message() {
    // No takeovers in this test: the stale message may only go away by its acknowledgement.
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(600),
        ..fast_config()
    };
    let h = Harness::new(config.clone());
    let refs = h.commit(1).await;
    h.queue.publish(&refs).await.unwrap();
    let slow = h
        .queue
        .claim("slow", 1, Duration::from_secs(30), h.now())
        .await
        .unwrap()
        .remove(0);
    // The lease runs out while "slow" still works; the task goes back with a new message.
    h.clock.advance(Duration::from_secs(31));
    assert_eq!(h.queue.requeue_expired(h.now()).await.unwrap(), 1);
    let other = h.another_instance(config);
    let taken = other.claim("other", 1, LEASE, h.now()).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_ne!(taken[0].receipt, slow.receipt);

    let late = h
        .queue
        .finish(
            &slow,
            Finish::Completed {
                output: serde_json::json!({}),
                followups: Vec::new(),
            },
            h.now(),
        )
        .await;
    assert_eq!(late.unwrap_err().kind(), StoreErrorKind::Conflict);
    assert_eq!(
        h.queue.depth(h.now()).await.unwrap().running,
        1,
        "only the live claim's message is still pending"
    );
    assert_eq!(h.xlen(&h.queue.stream().keys().stream), 1);
}
