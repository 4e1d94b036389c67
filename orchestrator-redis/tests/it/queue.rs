//! The queue's life cycle on one instance: publish, claim, finish, delays, depth.

use std::time::Duration;

use orchestrator_core::clock::add;
use orchestrator_core::queue::{TaskQueue, TaskRef};
use orchestrator_core::store::{Finish, QueueDepth, TaskStore};
use orchestrator_core::task::{NewTask, TaskSpec, TaskStatus, TaskType};
use orchestrator_redis::QueueConfig;
use serde_json::json;

use crate::support::{Harness, fast_config};

const LEASE: Duration = Duration::from_secs(60);

fn completed() -> Finish {
    Finish::Completed {
        output: json!({"ok": true}),
        followups: Vec::new(),
    }
}

#[tokio::test]
async fn published_tasks_are_claimed_once_finished_and_removed_from_the_stream() {
    let h = Harness::new(fast_config());
    let refs = h.commit(3).await;
    h.queue.publish(&refs).await.unwrap();
    assert_eq!(
        h.queue.depth(h.now()).await.unwrap(),
        QueueDepth {
            ready: 3,
            ..QueueDepth::default()
        }
    );

    let claims = h.queue.claim("w1", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), 3);
    for claim in &claims {
        assert_eq!(claim.task.status, TaskStatus::Running);
        assert_eq!(claim.attempt, 1);
        assert!(claim.receipt.is_some(), "claim carries its stream entry id");
    }
    assert_eq!(
        h.queue.depth(h.now()).await.unwrap(),
        QueueDepth {
            running: 3,
            ..QueueDepth::default()
        }
    );
    assert!(
        h.queue
            .claim("w2", 10, LEASE, h.now())
            .await
            .unwrap()
            .is_empty(),
        "nothing left for others"
    );

    for claim in &claims {
        let report = h.queue.finish(claim, completed(), h.now()).await.unwrap();
        assert_eq!(report.status, TaskStatus::Completed);
    }
    assert_eq!(h.queue.depth(h.now()).await.unwrap(), QueueDepth::default());
    assert_eq!(
        h.xlen(&h.queue.stream().keys().stream),
        0,
        "acknowledged entries are deleted"
    );
    for r in &refs {
        let task = h.store.get_task(r.task_id).await.unwrap().unwrap().task;
        assert_eq!(task.status, TaskStatus::Completed);
    }
    assert_eq!(h.queue.backend(), "redis");
}

#[tokio::test]
async fn retries_wait_in_the_delayed_set_and_come_back_in_due_order() {
    let h = Harness::new(fast_config());
    let refs = h.commit(3).await;
    h.queue.publish(&refs).await.unwrap();
    let claims = h.queue.claim("w1", 3, LEASE, h.now()).await.unwrap();
    assert_eq!(claims.len(), 3);
    let start = h.now();
    // Finish in an order different from the due order: 30 s, 10 s, 20 s.
    let delays = [30, 10, 20];
    for (claim, secs) in claims.iter().zip(delays) {
        let at = add(start, Duration::from_secs(secs));
        let report = h
            .queue
            .finish(
                claim,
                Finish::Retry {
                    error: "flaky".into(),
                    at,
                },
                start,
            )
            .await
            .unwrap();
        assert_eq!(report.status, TaskStatus::Retrying);
    }
    let depth = h.queue.depth(start).await.unwrap();
    assert_eq!((depth.ready, depth.scheduled, depth.running), (0, 3, 0));
    assert!(
        h.queue
            .claim("w1", 10, LEASE, start)
            .await
            .unwrap()
            .is_empty(),
        "nothing due yet"
    );

    h.clock.advance(Duration::from_secs(15));
    let first = h.queue.claim("w1", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(
        first.iter().map(|c| c.task.task_id).collect::<Vec<_>>(),
        vec![claims[1].task.task_id]
    );
    assert_eq!(first[0].attempt, 2);

    h.clock.advance(Duration::from_secs(20));
    let rest = h.queue.claim("w1", 10, LEASE, h.now()).await.unwrap();
    let order: Vec<_> = rest.iter().map(|c| c.task.task_id).collect();
    assert_eq!(
        order,
        vec![claims[2].task.task_id, claims[0].task.task_id],
        "due at 20 s before due at 30 s"
    );
}

#[tokio::test]
async fn a_message_for_a_task_not_yet_due_goes_back_to_the_delayed_set() {
    let h = Harness::new(fast_config());
    let refs = h.commit(1).await;
    h.queue.publish(&refs).await.unwrap();
    let claim = h
        .queue
        .claim("w1", 1, LEASE, h.now())
        .await
        .unwrap()
        .remove(0);
    let due = add(h.now(), Duration::from_secs(10));
    h.queue
        .finish(
            &claim,
            Finish::Retry {
                error: "e".into(),
                at: due,
            },
            h.now(),
        )
        .await
        .unwrap();

    // A stray duplicate says "due now" (e.g. a sweep raced the retry): the store knows better.
    h.queue
        .publish(&[TaskRef {
            task_id: refs[0].task_id,
            run_at: h.now(),
        }])
        .await
        .unwrap();
    assert!(
        h.queue
            .claim("w1", 1, LEASE, h.now())
            .await
            .unwrap()
            .is_empty()
    );
    let delayed = h.queue.stream().delayed(10).await.unwrap();
    assert_eq!(delayed, vec![(refs[0].task_id.to_string(), due)]);
    assert!(h.queue.stream().delayed(0).await.unwrap().is_empty());
    assert_eq!(h.xlen(&h.queue.stream().keys().stream), 0);

    h.clock.advance(Duration::from_secs(10));
    assert_eq!(
        h.queue.claim("w1", 1, LEASE, h.now()).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn deferred_released_and_followup_tasks_are_published_by_finish() {
    let h = Harness::new(fast_config());
    let refs = h.commit(3).await;
    h.queue.publish(&refs).await.unwrap();
    let claims = h.queue.claim("w1", 3, LEASE, h.now()).await.unwrap();
    let now = h.now();

    let followup = NewTask::new(TaskSpec::new(TaskType::CODEGEN_TRIGGER), 3, now);
    let followup_id = followup.task_id;
    let done = Finish::Completed {
        output: json!({}),
        followups: vec![followup],
    };
    let report = h.queue.finish(&claims[0], done, now).await.unwrap();
    assert_eq!(report.followups, vec![followup_id]);
    let later = add(now, Duration::from_secs(60));
    let deferred = Finish::Deferred {
        at: later,
        reason: "breaker open".into(),
        output: None,
    };
    assert_eq!(
        h.queue
            .finish(&claims[1], deferred, now)
            .await
            .unwrap()
            .status,
        TaskStatus::Pending
    );
    assert_eq!(
        h.queue
            .finish(&claims[2], Finish::Released, now)
            .await
            .unwrap()
            .status,
        TaskStatus::Pending
    );

    let next: Vec<_> = h
        .queue
        .claim("w2", 10, LEASE, now)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.task.task_id)
        .collect();
    assert_eq!(
        next,
        vec![followup_id, claims[2].task.task_id],
        "follow-up and released task, not the deferred"
    );
    h.clock.advance(Duration::from_secs(60));
    let deferred_again = h.queue.claim("w2", 10, LEASE, h.now()).await.unwrap();
    assert_eq!(deferred_again.len(), 1);
    assert_eq!(deferred_again[0].task.task_id, claims[1].task.task_id);
}

#[tokio::test]
async fn extend_lease_keeps_a_busy_workers_message_from_being_taken_over() {
    // Touches every 150 ms, 600 ms in all, against a 400 ms visibility timeout.
    let config = QueueConfig {
        visibility_timeout: Duration::from_millis(400),
        ..fast_config()
    };
    let h = Harness::new(config);
    let refs = h.commit(1).await;
    h.queue.publish(&refs).await.unwrap();
    let claim = h
        .queue
        .claim("busy", 1, LEASE, h.now())
        .await
        .unwrap()
        .remove(0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(h.queue.extend_lease(&claim, LEASE, h.now()).await.unwrap());
        assert!(
            h.queue
                .claim("other", 1, LEASE, h.now())
                .await
                .unwrap()
                .is_empty()
        );
    }
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&h.queue.stream().keys().stream)
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(10)
        .query(&mut h.redis.raw())
        .unwrap();
    let text = format!("{pending:?}");
    assert!(
        text.contains("busy") && !text.contains("other"),
        "still held by the busy worker: {text}"
    );
    assert_eq!(
        h.queue
            .finish(&claim, completed(), h.now())
            .await
            .unwrap()
            .status,
        TaskStatus::Completed
    );
}
