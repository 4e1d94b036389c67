//! Property tests of the task model: backoff bounds, the status state machine, the circuit
//! breaker against a model of its specification, and the in-memory store's invariants under
//! random operation sequences.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use orchestrator_core::clock::{self, Clock, ManualClock};
use orchestrator_core::error::TaskError;
use orchestrator_core::event::NewEvent;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::retry::{Backoff, RetryDecision, RetryPolicy};
use orchestrator_core::store::{
    AttemptStore, Claim, EventFilter, EventStore, Finish, Page, TaskFilter, TaskStore,
};
use orchestrator_core::task::{
    ExecutionStatus, NewTask, TaskSpec, TaskStatus, TaskType, Transition,
};
use proptest::prelude::*;

fn backoff() -> impl Strategy<Value = Backoff> {
    (0u64..10_000, 1.0f64..4.0, 0u64..600_000, 0.0f64..=1.0).prop_map(
        |(base, factor, max, jitter)| Backoff {
            base: Duration::from_millis(base),
            factor,
            max: Duration::from_millis(max),
            jitter,
        },
    )
}

proptest! {
    #[test]
    fn backoff_base_delay_is_monotone_and_capped(b in backoff(), retry in 1u32..200) {
        prop_assert!(b.base_delay(retry) <= b.base_delay(retry + 1));
        prop_assert!(b.base_delay(retry) <= b.max);
    }

    #[test]
    fn backoff_jitter_stays_within_its_band(b in backoff(), retry in 1u32..200, unit in 0.0f64..1.0) {
        let base = b.base_delay(retry);
        let delay = b.delay(retry, unit);
        prop_assert!(delay <= base);
        prop_assert!(delay >= base.mul_f64(1.0 - b.jitter));
    }

    #[test]
    fn retry_policy_retries_only_within_budget(
        b in backoff(),
        used in 0u32..6,
        max in 0u32..6,
        unit in 0.0f64..1.0,
        upstream in proptest::option::of(0u64..7200),
    ) {
        let policy = RetryPolicy { max_retries: max, backoff: b, max_retry_after: Duration::from_secs(3600) };
        let now = ManualClock::default().now();
        let error = TaskError {
            kind: orchestrator_core::error::TaskErrorKind::Retryable { retry_after: upstream.map(Duration::from_secs) },
            message: "x".into(),
            output: None,
        };
        match policy.decide(&error, used, max, now, unit) {
            RetryDecision::RetryAt(at) => {
                prop_assert!(used < max);
                let backoff = b.delay(used + 1, unit);
                let wanted = upstream.map(|s| Duration::from_secs(s.min(3600))).unwrap_or_default();
                prop_assert_eq!(at, clock::add(now, backoff.max(wanted)));
            }
            RetryDecision::GiveUp => prop_assert!(used >= max),
            RetryDecision::DeferUntil(_) => prop_assert!(false, "a retryable error is never a deferral"),
        }
        prop_assert_eq!(policy.decide(&TaskError::permanent("p"), used, max, now, unit), RetryDecision::GiveUp);
        let deferred = TaskError::deferred(Duration::from_secs(7200), "open");
        prop_assert_eq!(
            policy.decide(&deferred, used, max, now, unit),
            RetryDecision::DeferUntil(clock::add(now, Duration::from_secs(3600)))
        );
    }
}

const TRANSITIONS: [Transition; 9] = [
    Transition::Claim,
    Transition::Complete,
    Transition::ScheduleRetry,
    Transition::Fail,
    Transition::Defer,
    Transition::Release,
    Transition::LeaseExpired,
    Transition::Cancel,
    Transition::ManualRetry,
];

proptest! {
    #[test]
    fn terminal_states_are_left_only_by_manual_retry(steps in proptest::collection::vec(0usize..9, 1..60)) {
        let mut status = TaskStatus::Pending;
        for step in steps {
            let transition = TRANSITIONS[step];
            match status.apply(transition) {
                Ok(next) => {
                    if status.is_terminal() {
                        prop_assert_eq!(transition, Transition::ManualRetry);
                        prop_assert_ne!(status, TaskStatus::Completed, "a completed task never runs again");
                        prop_assert_eq!(next, TaskStatus::Pending);
                    }
                    if transition == Transition::Claim {
                        prop_assert!(status.is_runnable());
                        prop_assert_eq!(next, TaskStatus::Running);
                    }
                    status = next;
                }
                Err(err) => {
                    prop_assert_eq!(err.from, status);
                    prop_assert_eq!(err.transition, transition);
                    if transition == Transition::Claim {
                        prop_assert!(!status.is_runnable());
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum BreakerOp {
    /// One call: acquire, and report `success` if it was let through.
    Call(bool),
    /// Two callers at once: acquire twice, then report the first one's outcome.
    Race(bool),
    /// Time passes.
    Advance(u64),
}

fn breaker_op() -> impl Strategy<Value = BreakerOp> {
    prop_oneof![
        4 => any::<bool>().prop_map(BreakerOp::Call),
        1 => any::<bool>().prop_map(BreakerOp::Race),
        2 => (0u64..40).prop_map(BreakerOp::Advance),
    ]
}

/// The breaker as the spec describes it: consecutive failures open it, it stays open for
/// `recovery` (late answers of calls made before it opened change nothing), then lets one probe
/// through whose outcome closes or re-opens it.
struct Spec {
    threshold: u32,
    recovery: Duration,
    failures: u32,
    opened_at: Option<DateTime<Utc>>,
}

impl Spec {
    fn state(&self, now: DateTime<Utc>) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if now >= clock::add(at, self.recovery) => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    fn report(&mut self, before: BreakerState, success: bool, now: DateTime<Utc>) {
        if before != BreakerState::HalfOpen && self.opened_at.is_some() {
            // The late answer of a call let through while closed: the open period ignores it.
            return;
        }
        if success {
            self.failures = 0;
            self.opened_at = None;
        } else if before == BreakerState::HalfOpen {
            self.opened_at = Some(now);
        } else {
            self.failures += 1;
            if self.failures >= self.threshold {
                self.opened_at = Some(now);
            }
        }
    }
}

proptest! {
    #[test]
    fn breaker_follows_its_specification(
        threshold in 1u32..6,
        recovery in 1u64..60,
        ops in proptest::collection::vec(breaker_op(), 1..80),
    ) {
        let clock = Arc::new(ManualClock::default());
        let recovery = Duration::from_secs(recovery);
        let breaker = CircuitBreaker::new("dep", BreakerConfig { failure_threshold: threshold, recovery }, clock.clone());
        let mut spec = Spec { threshold, recovery, failures: 0, opened_at: None };
        for op in ops {
            let now = clock.now();
            let before = spec.state(now);
            prop_assert_eq!(breaker.state(), before);
            match op {
                BreakerOp::Advance(s) => clock.advance(Duration::from_secs(s)),
                BreakerOp::Call(success) => {
                    let allowed = breaker.acquire();
                    prop_assert_eq!(allowed.is_ok(), before != BreakerState::Open, "{:?}", before);
                    if allowed.is_ok() {
                        if success { breaker.on_success() } else { breaker.on_failure() }
                        spec.report(before, success, now);
                    }
                }
                BreakerOp::Race(success) => {
                    let first = breaker.acquire();
                    let second = breaker.acquire();
                    prop_assert_eq!(first.is_ok(), before != BreakerState::Open);
                    // Half-open lets exactly one probe through.
                    prop_assert_eq!(second.is_ok(), before == BreakerState::Closed);
                    if first.is_ok() {
                        if success { breaker.on_success() } else { breaker.on_failure() }
                        spec.report(before, success, now);
                    }
                    if second.is_ok() {
                        breaker.on_success();
                        spec.report(BreakerState::Closed, true, now);
                    }
                }
            }
            prop_assert_eq!(breaker.state(), spec.state(clock.now()));
        }
    }
}

#[derive(Debug, Clone)]
enum StoreOp {
    Claim(usize),
    /// Finish the n-th outstanding claim (modulo) with outcome kind k.
    Finish(usize, u8),
    Advance(u64),
    Expire,
    ManualRetry(usize),
}

fn store_op() -> impl Strategy<Value = StoreOp> {
    prop_oneof![
        3 => (1usize..4).prop_map(StoreOp::Claim),
        4 => (any::<usize>(), 0u8..5).prop_map(|(n, k)| StoreOp::Finish(n, k)),
        2 => (0u64..90).prop_map(StoreOp::Advance),
        1 => Just(StoreOp::Expire),
        1 => any::<usize>().prop_map(StoreOp::ManualRetry),
    ]
}

/// Checks the invariants every store must keep, whatever happened.
async fn check_invariants(store: &MemoryStore) -> Result<(), TestCaseError> {
    let tasks = store
        .list_tasks(
            &TaskFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .await
        .unwrap();
    for task in &tasks {
        let detail = store.get_task(task.task_id).await.unwrap().unwrap();
        let running = detail
            .executions
            .iter()
            .filter(|e| e.status == ExecutionStatus::Running)
            .count();
        prop_assert_eq!(running, usize::from(task.status == TaskStatus::Running));
        prop_assert_eq!(
            task.lease_owner.is_some(),
            task.status == TaskStatus::Running
        );
        prop_assert_eq!(task.attempts as usize, detail.executions.len());
        prop_assert!(task.retry_count <= task.max_retries);
        for (i, e) in detail.executions.iter().enumerate() {
            prop_assert_eq!(e.attempt as usize, i + 1);
        }
        prop_assert_eq!(task.completed_at.is_some(), task.status.is_terminal());
    }
    for event in store
        .list_events(
            &EventFilter::default(),
            Page {
                limit: 1000,
                offset: 0,
            },
        )
        .await
        .unwrap()
    {
        let all_terminal = tasks
            .iter()
            .filter(|t| t.webhook_event_id == Some(event.id))
            .all(|t| t.status.is_terminal());
        prop_assert_eq!(
            event.processed,
            all_terminal,
            "event {} processed flag",
            event.id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_keeps_its_invariants(ops in proptest::collection::vec(store_op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async move {
            let clock = ManualClock::default();
            let store = MemoryStore::new();
            let lease = Duration::from_secs(60);
            let mut ids = Vec::new();
            for e in 0..3 {
                let tasks: Vec<NewTask> = (0..e + 1)
                    .map(|_| NewTask::new(TaskSpec::new(TaskType::new("t").unwrap()), 2, clock.now()))
                    .collect();
                ids.extend(tasks.iter().map(|t| t.task_id));
                let event = NewEvent {
                    delivery_id: format!("d-{e}"),
                    event_type: "push".into(),
                    action: None,
                    source: "github".into(),
                    repository: None,
                    installation_id: None,
                    payload: bytes::Bytes::from_static(b"{}"),
                    headers: vec![],
                    received_at: clock.now(),
                    parse_error: None,
                };
                store.ingest(event, tasks).await.unwrap();
            }
            let mut claims: Vec<Claim> = Vec::new();
            for op in ops {
                let now = clock.now();
                match op {
                    StoreOp::Claim(n) => claims.extend(store.claim_due("w", n, clock::add(now, lease), now).await.unwrap()),
                    StoreOp::Finish(_, _) if claims.is_empty() => {}
                    StoreOp::Finish(n, kind) => {
                        let claim = claims.remove(n % claims.len());
                        let finish = match kind {
                            0 => Finish::Completed { output: serde_json::json!({}), followups: vec![] },
                            1 if claim.task.retry_count < claim.task.max_retries => {
                                Finish::Retry { error: "r".into(), at: clock::add(now, Duration::from_secs(5)) }
                            }
                            1 | 2 => Finish::Failed { error: "f".into() },
                            3 => Finish::Deferred { at: clock::add(now, Duration::from_secs(10)), reason: "d".into(), output: None },
                            _ => Finish::Released,
                        };
                        // A claim whose lease was taken away must be refused and change nothing.
                        let held = store.get_task(claim.task.task_id).await.unwrap().unwrap().executions
                            .iter().any(|e| e.execution_id == claim.execution_id && e.status == ExecutionStatus::Running);
                        let result = store.finish_attempt(&claim, finish, now).await;
                        prop_assert_eq!(result.is_ok(), held);
                    }
                    StoreOp::Advance(s) => clock.advance(Duration::from_secs(s)),
                    StoreOp::Expire => {
                        store.expire_leases(now).await.unwrap();
                    }
                    StoreOp::ManualRetry(n) => {
                        store.retry_task(ids[n % ids.len()], now).await.unwrap();
                    }
                }
                check_invariants(&store).await?;
            }
            Ok(())
        })?;
    }
}

/// A jitter setting read from configuration as `NaN` must not panic the worker when it
/// schedules a retry: it counts as no jitter.
#[test]
fn a_nan_jitter_means_no_jitter_instead_of_a_panic() {
    let b = Backoff {
        jitter: f64::NAN,
        ..Backoff::default()
    };
    let delay = std::panic::catch_unwind(|| b.delay(3, 0.5));
    assert_eq!(delay.ok(), Some(Duration::from_secs(4)));
    let normal = Backoff::default();
    assert_eq!(normal.delay(3, f64::NAN), Duration::from_secs(4));
}

/// A call let through while the breaker was closed may answer after it opened. That late answer
/// says nothing about the open period: a success must not close the breaker before its recovery
/// time, and a failure must not push the recovery time back.
#[test]
fn a_late_answer_of_a_call_sent_before_the_breaker_opened_changes_nothing() {
    let clock = Arc::new(ManualClock::default());
    let breaker = CircuitBreaker::new(
        "dep",
        BreakerConfig {
            failure_threshold: 2,
            recovery: Duration::from_secs(30),
        },
        clock.clone(),
    );
    breaker.acquire().unwrap(); // a slow call, still out
    breaker.acquire().unwrap(); // a second slow call
    for _ in 0..2 {
        breaker.acquire().unwrap();
        breaker.on_failure();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    breaker.on_success(); // the first slow call answers late
    assert_eq!(breaker.state(), BreakerState::Open);
    assert!(breaker.acquire().is_err());
    clock.advance(Duration::from_secs(10));
    breaker.on_failure(); // the second slow call fails late
    clock.advance(Duration::from_secs(20));
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen,
        "recovery counts from when the breaker opened"
    );
    breaker.acquire().unwrap();
    assert!(breaker.acquire().is_err(), "one probe");
    breaker.on_success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}
