//! Recovery runs that stop and go on, on each store: the runner lease renewed while a long run
//! proceeds (no second runner gets in) and taken over once its holder stops renewing; a run
//! interrupted by a secondary limit, or cut off by a crash, resumed from its stored cursor by a
//! new runner (a new process), never from scratch; and a `redeliver` run resumed after a crash
//! between the POST and saving its page not asking GitHub again for the same attempt.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_core::engine::Ingestor;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::recovery::memory::FakeDeliveryLog;
use orchestrator_core::recovery::{
    DeliveryLog, DeliveryPage, DeliveryRequest, HookRef, Reconciler, RecoveryConfig, RunRequest,
};
use orchestrator_core::routing::{EventRule, Router};
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::recovery::{RecoveryMode, RecoveryRun, RecoveryStore, RunStatus};
use orchestrator_core::store::{EventFilter, Page};
use orchestrator_core::task::TaskType;
use serde_json::json;
use tokio::sync::Notify;

use crate::recovery::{Recoverable, summary};
use crate::support::at;

const HOOK: &str = "repo:octo/repo:42";
const TTL: Duration = Duration::from_secs(600);

/// A second runner trying the lease, with what each try answered.
type Intruder = (Arc<dyn RecoveryStore>, Mutex<Vec<bool>>);

/// The in-memory log with a clock that moves before every call, an intruder that tries the
/// runner lease before every call, and a point after which the log hangs (where a test aborts
/// the runner, as a crash would stop it).
struct TestLog {
    inner: FakeDeliveryLog,
    clock: Arc<ManualClock>,
    calls: AtomicUsize,
    step: Duration,
    intruder: Option<Intruder>,
    hang_after: Option<usize>,
    hung: Notify,
}

impl TestLog {
    fn new(page_size: usize, clock: Arc<ManualClock>) -> Self {
        Self {
            inner: FakeDeliveryLog::new(page_size),
            clock,
            calls: AtomicUsize::new(0),
            step: Duration::ZERO,
            intruder: None,
            hang_after: None,
            hung: Notify::new(),
        }
    }

    async fn step<T>(&self, answer: impl Future<Output = T>) -> T {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.clock.advance(self.step);
        if let Some((store, got)) = &self.intruder {
            let lease = store
                .try_lock_runner("intruder", TTL, self.clock.now())
                .await
                .unwrap();
            got.lock().unwrap().push(lease.is_some());
        }
        let out = answer.await;
        if self.hang_after == Some(n) {
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        out
    }

    fn calls(&self, kind: &str) -> Vec<String> {
        self.inner
            .calls()
            .into_iter()
            .filter(|c| c.starts_with(kind))
            .collect()
    }
}

#[async_trait]
impl DeliveryLog for TestLog {
    async fn list_deliveries(
        &self,
        hook: &HookRef,
        cursor: Option<&str>,
    ) -> Result<DeliveryPage, ClientError> {
        self.step(self.inner.list_deliveries(hook, cursor)).await
    }
    async fn get_delivery(&self, hook: &HookRef, id: i64) -> Result<DeliveryRequest, ClientError> {
        self.step(self.inner.get_delivery(hook, id)).await
    }
    async fn redeliver(&self, hook: &HookRef, id: i64) -> Result<(), ClientError> {
        self.step(self.inner.redeliver(hook, id)).await
    }
}

/// A store, a clock at `at(3600)`, an ingestor routing `issues`, and the log.
struct Rig<S> {
    store: Arc<S>,
    clock: Arc<ManualClock>,
    ingestor: Arc<Ingestor>,
}

impl<S: Recoverable> Rig<S> {
    fn new(store: &Arc<S>) -> Self {
        let clock = Arc::new(ManualClock::new(at(3600)));
        let router = Router::empty().with_rule(EventRule::new(
            "issues",
            "issues",
            TaskType::new("analyze").unwrap(),
        ));
        let ingestor = Arc::new(Ingestor::new(
            SignatureVerifier::new([WebhookSecret::new("s")]),
            router,
            store.clone(),
            Arc::new(StoreQueue::new(store.clone())),
            clock.clone(),
        ));
        Self {
            store: store.clone(),
            clock,
            ingestor,
        }
    }

    /// `guids` (oldest first) as failed attempts with ids 1, 2, ... a minute apart.
    fn log(&self, page_size: usize, guids: &[&str]) -> TestLog {
        let log = TestLog::new(page_size, self.clock.clone());
        for (i, guid) in guids.iter().enumerate() {
            push(&log, i as i64 + 1, guid);
        }
        log
    }

    /// A reconciler with a holder of its own (as a new process would have).
    fn reconciler(&self, log: &Arc<TestLog>, mode: RecoveryMode) -> Reconciler {
        let config = RecoveryConfig {
            hooks: HOOK.parse().unwrap(),
            mode,
            lease_ttl: TTL,
            ..RecoveryConfig::default()
        };
        Reconciler::new(
            log.clone(),
            self.store.clone(),
            self.ingestor.clone(),
            self.clock.clone(),
            config,
        )
    }

    async fn delivery_ids(&self) -> Vec<String> {
        let page = Page {
            limit: 1000,
            offset: 0,
        };
        let events = self
            .store
            .list_events(&EventFilter::default(), page)
            .await
            .unwrap();
        let mut ids: Vec<String> = events.into_iter().map(|e| e.delivery_id).collect();
        ids.sort();
        ids
    }
}

/// Adds a failed attempt `id` of `guid` to the log, `id` minutes into the hour.
fn push(log: &TestLog, id: i64, guid: &str) {
    let headers = vec![
        ("X-GitHub-Delivery".into(), guid.into()),
        ("X-GitHub-Event".into(), "issues".into()),
    ];
    let payload = json!({"action": "opened", "repository": {"full_name": "octo/repo"}});
    let hook: HookRef = HOOK.parse().unwrap();
    log.inner
        .push(&hook, summary(id, guid, at(id * 60), 502), headers, payload);
}

/// Ticks until the lease is free (a released PostgreSQL session or lease row goes away in the
/// background), at most 5 s.
async fn tick(reconciler: &Reconciler) -> Vec<RecoveryRun> {
    for _ in 0..250 {
        if let Some(runs) = reconciler.tick(false).await.unwrap() {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the runner lease was never released");
}

/// Runs `reconciler`'s tick until the log hangs, then aborts it there, as a crash would.
async fn crash_at_the_hang(reconciler: Reconciler, log: &Arc<TestLog>) {
    let hung = log.hung.notified();
    let handle = tokio::spawn(async move { reconciler.tick(true).await.map(|_| ()) });
    tokio::time::timeout(Duration::from_secs(10), hung)
        .await
        .expect("the run reached the hang");
    handle.abort();
    assert!(handle.await.unwrap_err().is_cancelled());
}

fn rate_limited() -> ClientError {
    ClientError::new(
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        },
        Some(403),
        "You have exceeded a secondary rate limit",
    )
}

pub async fn a_long_run_renews_its_lease_so_no_second_runner_gets_in<S: Recoverable>(
    store: &Arc<S>,
) {
    let rig = Rig::new(store);
    let mut log = rig.log(1, &["a", "b", "c", "d", "e", "f"]);
    // 12 calls (6 pages of one, 6 fetches), 100 s each: the run lasts twice the lease's TTL.
    log.step = Duration::from_secs(100);
    let intruder: Arc<dyn RecoveryStore> = store.clone();
    log.intruder = Some((intruder, Mutex::new(Vec::new())));
    let log = Arc::new(log);
    let reconciler = rig.reconciler(&log, RecoveryMode::Fetch);
    let runs = reconciler.tick(true).await.unwrap().unwrap();
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].recovered, 6);
    assert!(rig.clock.now() >= at(3600) + chrono::Duration::seconds(2 * 600));
    let tries = log.intruder.as_ref().unwrap().1.lock().unwrap().clone();
    assert_eq!(tries.len(), 12);
    assert!(
        tries.iter().all(|got| !got),
        "a second runner got the lease during the run: {tries:?}"
    );
    assert_eq!(rig.delivery_ids().await, ["a", "b", "c", "d", "e", "f"]);
}

/// Only for leases that expire (SQLite's row, the memory store's); PostgreSQL's advisory lock
/// lasts as long as its session.
pub async fn an_expiring_lease_is_taken_over_once_its_holder_stops_renewing<S: Recoverable>(
    store: &S,
) {
    let first = store
        .try_lock_runner("first", TTL, at(0))
        .await
        .unwrap()
        .unwrap();
    // Renewed every 200 s: still held 100 s after each renewal and past the first TTL.
    for t in [200, 400, 600, 800] {
        assert!(first.renew(TTL, at(t)).await.unwrap());
        let second = store
            .try_lock_runner("second", TTL, at(t + 100))
            .await
            .unwrap();
        assert!(second.is_none(), "taken at {t} + 100 s while renewed");
    }
    // The first runner hangs (it renews no more): once the last renewal's TTL ran out, the
    // second runner takes the lease, and the first learns it lost it.
    assert!(
        store
            .try_lock_runner("second", TTL, at(1399))
            .await
            .unwrap()
            .is_none()
    );
    let second = store
        .try_lock_runner("second", TTL, at(1401))
        .await
        .unwrap();
    assert!(second.is_some());
    assert!(!first.renew(TTL, at(1402)).await.unwrap());
    // The stale holder's release leaves the new holder's lease alone.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store
            .try_lock_runner("third", TTL, at(1403))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn a_rate_limited_run_resumes_from_its_cursor_in_a_new_runner<S: Recoverable>(
    store: &Arc<S>,
) {
    let rig = Rig::new(store);
    let log = rig.log(2, &["a", "b", "c", "d", "e"]);
    // list p1, get, get, list p2, then the first fetch of page 2 hits a secondary limit.
    log.inner
        .fail_next([None, None, None, None, Some(rate_limited())]);
    let log = Arc::new(log);
    let first = rig.reconciler(&log, RecoveryMode::Fetch);
    let run = first.tick(true).await.unwrap().unwrap().remove(0);
    assert_eq!(run.status, RunStatus::Interrupted);
    assert_eq!(run.cursor.as_deref(), Some("2"));
    let stored = store.get_run(run.run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Interrupted);
    assert_eq!(stored.cursor.as_deref(), Some("2"));
    assert_eq!(stored.hook.as_deref(), Some(HOOK));
    drop(first);

    // Another process's first tick resumes the stored run at page 2.
    let second = rig.reconciler(&log, RecoveryMode::Fetch);
    let runs = tick(&second).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].run_id, run.run_id);
    assert_resumed_at_page_2(&rig, &log, &runs[0], 6, "c asked twice, the rest once").await;
}

pub async fn a_crashed_run_resumes_from_its_saved_cursor<S: Recoverable>(store: &Arc<S>) {
    let rig = Rig::new(store);
    let mut log = rig.log(2, &["a", "b", "c", "d", "e"]);
    // list p1, get e, get d, list p2: the process dies with page 2 in hand.
    log.hang_after = Some(4);
    let log = Arc::new(log);
    crash_at_the_hang(rig.reconciler(&log, RecoveryMode::Fetch), &log).await;
    let crashed = store.list_runs(None, 10).await.unwrap().remove(0);
    assert_eq!(crashed.status, RunStatus::Running);
    assert_eq!(crashed.cursor.as_deref(), Some("2"));
    assert_eq!(crashed.recovered, 2);

    let runs = tick(&rig.reconciler(&log, RecoveryMode::Fetch)).await;
    assert_eq!(runs[0].run_id, crashed.run_id);
    assert_resumed_at_page_2(&rig, &log, &runs[0], 5, "each delivery fetched once").await;
}

/// A run of the five deliveries `a`-`e` (two per page) that stopped with page 2 in hand and was
/// resumed: it succeeded with all five, page 2 was listed again (and no page twice more), the
/// deliveries were fetched `gets` times, and every one is stored once.
async fn assert_resumed_at_page_2<S: Recoverable>(
    rig: &Rig<S>,
    log: &TestLog,
    run: &RecoveryRun,
    gets: usize,
    why: &str,
) {
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!((run.listed, run.recovered), (5, 5));
    assert_eq!(
        log.calls("list"),
        [
            "list repo:octo/repo:42 -",
            "list repo:octo/repo:42 2",
            "list repo:octo/repo:42 2",
            "list repo:octo/repo:42 4",
        ]
    );
    assert_eq!(log.calls("get").len(), gets, "{why}");
    assert_eq!(rig.delivery_ids().await, ["a", "b", "c", "d", "e"]);
}

pub async fn a_resumed_redeliver_run_does_not_ask_github_twice<S: Recoverable>(store: &Arc<S>) {
    let rig = Rig::new(store);
    let mut log = rig.log(2, &["a", "b", "c", "d"]);
    // list p1, POST d's attempt: the process dies before the page is saved.
    log.hang_after = Some(2);
    let log = Arc::new(log);
    crash_at_the_hang(rig.reconciler(&log, RecoveryMode::Redeliver), &log).await;
    assert_eq!(log.calls("redeliver"), ["redeliver repo:octo/repo:42 4"]);

    let runs = tick(&rig.reconciler(&log, RecoveryMode::Redeliver)).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    let asked = [
        "redeliver repo:octo/repo:42 4",
        "redeliver repo:octo/repo:42 3",
        "redeliver repo:octo/repo:42 2",
        "redeliver repo:octo/repo:42 1",
    ];
    assert_eq!(log.calls("redeliver"), asked, "d was not asked again");
    // d's count died with the crash; its redelivery was asked for once all the same.
    assert_eq!(runs[0].recovered, 3);
    assert!(
        rig.delivery_ids().await.is_empty(),
        "redeliver stores nothing itself"
    );

    // Within the window another run asks for nothing again, unless GitHub's redelivery of a
    // GUID failed here too (a newer attempt): then that one is asked for.
    push(&log, 5, "c");
    let reconciler = rig.reconciler(&log, RecoveryMode::Redeliver);
    reconciler.request_run(RunRequest::default()).await.unwrap();
    let runs = tick(&reconciler).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    assert_eq!(runs[0].recovered, 1);
    assert_eq!(log.calls("redeliver").len(), 5);
    assert_eq!(log.calls("redeliver")[4], "redeliver repo:octo/repo:42 5");

    // A refused request (a secondary limit) is no intent: the resumed run asks again. After
    // the window, what is still missing is asked for again.
    rig.clock.advance(Duration::from_secs(2 * 3600));
    log.inner.fail_next([None, Some(rate_limited())]);
    reconciler.request_run(RunRequest::default()).await.unwrap();
    let runs = tick(&reconciler).await;
    assert_eq!(runs[0].status, RunStatus::Interrupted);
    let runs = tick(&reconciler).await;
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    let after: Vec<String> = log.calls("redeliver").split_off(5);
    assert_eq!(
        after,
        [
            "redeliver repo:octo/repo:42 5", // refused
            "redeliver repo:octo/repo:42 5",
            "redeliver repo:octo/repo:42 4",
            "redeliver repo:octo/repo:42 2",
            "redeliver repo:octo/repo:42 1",
        ]
    );
}
