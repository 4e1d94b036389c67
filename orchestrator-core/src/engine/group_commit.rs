//! Group commit: many concurrent deliveries, one transaction.
//!
//! A commit costs a disk flush whatever it carries, so under load the receiver's throughput is
//! bounded by flushes per second. [`GroupCommit`] wraps a [`BatchStore`]: concurrent `ingest`
//! calls prepare their delivery in their own task ([`BatchStore::prepare`]) and wait in a
//! channel, and each committer takes everything that is waiting (up to `max_batch`) and hands it
//! to [`BatchStore::ingest_batch`] in one go. Nothing waits on a timer:
//! a lone delivery is committed at once, and batches form only while a commit is already in flight,
//! so latency never grows to buy throughput. Every caller still gets its own outcome only after
//! the commit that holds its delivery has succeeded.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{StoreError, StoreErrorKind};
use crate::event::{EventSummary, WebhookEvent};
use crate::store::{
    BatchDelivery, BatchStore, EventFilter, EventStore, IngestOutcome, NewDelivery, Page,
    ReprocessOutcome,
};
use crate::task::NewTask;

type Reply = oneshot::Sender<Result<IngestOutcome, StoreError>>;
type Job<P> = (BatchDelivery<P>, Reply);

/// An [`EventStore`] that batches concurrent `ingest` calls into shared commits of the
/// [`BatchStore`] `S`.
///
/// Must be created inside a tokio runtime (it spawns its committers).
pub struct GroupCommit<S: BatchStore> {
    inner: Arc<S>,
    jobs: mpsc::Sender<Job<S::Prepared>>,
}

impl<S: BatchStore> std::fmt::Debug for GroupCommit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<S: BatchStore> GroupCommit<S> {
    /// Wraps `inner` with `committers` concurrent committers (1 for SQLite, whose writes are
    /// serialised anyway; a few for PostgreSQL) taking up to `max_batch` deliveries each.
    pub fn new(inner: Arc<S>, committers: usize, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (jobs, receiver) = mpsc::channel::<Job<S::Prepared>>(max_batch * committers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..committers.max(1) {
            tokio::spawn(commit_loop(inner.clone(), receiver.clone(), max_batch));
        }
        Self { inner, jobs }
    }

    /// Like [`new`](Self::new) with one committer running on its own thread (a single-threaded
    /// runtime), for a store whose writes are serialised (SQLite). A commit is a chain of
    /// round trips to the database, and on the shared runtime every step of the chain would
    /// wait in line behind the request tasks that keep the workers busy under load; on its own
    /// thread the committer moves on as soon as the database answers. Falls back to
    /// [`new`](Self::new) if the thread or its runtime cannot be started.
    pub fn on_own_thread(inner: Arc<S>, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let (jobs, receiver) = mpsc::channel::<Job<S::Prepared>>(max_batch * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let Ok(runtime) = runtime else {
            return Self::new(inner, 1, max_batch);
        };
        let store = inner.clone();
        let started = std::thread::Builder::new()
            .name("group-commit".to_owned())
            .spawn(move || runtime.block_on(commit_loop(store, receiver, max_batch)));
        if started.is_err() {
            return Self::new(inner, 1, max_batch);
        }
        Self { inner, jobs }
    }
}

async fn commit_loop<S: BatchStore>(
    store: Arc<S>,
    receiver: Arc<Mutex<mpsc::Receiver<Job<S::Prepared>>>>,
    max_batch: usize,
) {
    loop {
        let mut jobs = Vec::new();
        {
            // Only one committer gathers at a time; it takes what is waiting and lets go.
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut jobs, max_batch).await == 0 {
                return; // every sender is gone
            }
        }
        let (batch, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let expected = batch.len();
        let started = std::time::Instant::now();
        let mut outcomes = store.ingest_batch(batch).await.into_iter();
        tracing::trace!(
            target: "orchestrator_core::group_commit",
            size = expected,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "batch committed"
        );
        for reply in replies {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(StoreError::new(
                    StoreErrorKind::Internal,
                    format!("ingest_batch returned fewer than {expected} outcomes"),
                ))
            });
            // The caller may have gone away (client disconnected); its delivery is stored anyway.
            let _ = reply.send(outcome);
        }
    }
}

#[async_trait]
impl<S: BatchStore> EventStore for GroupCommit<S> {
    async fn ingest_delivery(&self, delivery: NewDelivery) -> Result<IngestOutcome, StoreError> {
        // Here, in the caller's task, not in the committer that every delivery waits for.
        let prepared = self.inner.prepare(&delivery.event);
        let (reply, outcome) = oneshot::channel();
        let gone = || StoreError::new(StoreErrorKind::Unavailable, "group committer stopped");
        self.jobs
            .send(((delivery, prepared), reply))
            .await
            .map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?
    }

    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<Vec<EventSummary>, StoreError> {
        self.inner.list_events(filter, page).await
    }

    async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
        self.inner.get_event(id).await
    }

    async fn reprocess_event(
        &self,
        id: i64,
        tasks: Vec<NewTask>,
        now: DateTime<Utc>,
    ) -> Result<ReprocessOutcome, StoreError> {
        self.inner.reprocess_event(id, tasks, now).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;

    use super::*;
    use crate::event::NewEvent;
    use crate::memory::MemoryStore;

    /// Counts batches and their sizes, delegating to a MemoryStore; prepares each event with
    /// the id of the thread that prepared it and records them.
    struct Counting {
        inner: MemoryStore,
        batches: AtomicUsize,
        largest: AtomicUsize,
        /// The preparing thread of every batched event that was prepared.
        prepared: std::sync::Mutex<Vec<std::thread::ThreadId>>,
    }

    impl Counting {
        fn new() -> Self {
            Self {
                inner: MemoryStore::new(),
                batches: AtomicUsize::new(0),
                largest: AtomicUsize::new(0),
                prepared: std::sync::Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl BatchStore for Counting {
        type Prepared = std::thread::ThreadId;

        fn prepare(&self, _: &NewEvent) -> std::thread::ThreadId {
            std::thread::current().id()
        }

        async fn ingest_batch(
            &self,
            batch: Vec<BatchDelivery<std::thread::ThreadId>>,
        ) -> Vec<Result<IngestOutcome, StoreError>> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.largest.fetch_max(batch.len(), Ordering::SeqCst);
            let prepared = batch.iter().map(|(_, thread)| *thread);
            self.prepared.lock().unwrap().extend(prepared);
            // Hold the commit a moment so concurrent callers pile up behind it.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let batch = batch.into_iter().map(|(d, _)| (d, ())).collect();
            self.inner.ingest_batch(batch).await
        }
    }

    #[async_trait]
    impl EventStore for Counting {
        async fn ingest_delivery(&self, d: NewDelivery) -> Result<IngestOutcome, StoreError> {
            self.inner.ingest_delivery(d).await
        }
        async fn list_events(
            &self,
            f: &EventFilter,
            p: Page,
        ) -> Result<Vec<EventSummary>, StoreError> {
            self.inner.list_events(f, p).await
        }
        async fn get_event(&self, id: i64) -> Result<Option<WebhookEvent>, StoreError> {
            self.inner.get_event(id).await
        }
        async fn reprocess_event(
            &self,
            id: i64,
            t: Vec<NewTask>,
            now: DateTime<Utc>,
        ) -> Result<ReprocessOutcome, StoreError> {
            self.inner.reprocess_event(id, t, now).await
        }
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            delivery_id: id.to_owned(),
            event_type: "ping".to_owned(),
            action: None,
            source: "github".to_owned(),
            repository: None,
            installation_id: None,
            payload: Bytes::from_static(b"{}"),
            headers: Vec::new(),
            received_at: Utc::now(),
            parse_error: None,
        }
    }

    #[tokio::test]
    async fn concurrent_deliveries_share_commits_and_each_gets_its_own_outcome() {
        let counting = Arc::new(Counting::new());
        let store = Arc::new(GroupCommit::new(counting.clone(), 1, 64));
        let mut handles = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            // Every delivery id twice: exactly one of each pair is accepted.
            let id = format!("d-{}", i % 25);
            handles.push(tokio::spawn(async move {
                store.ingest(event(&id), Vec::new()).await
            }));
        }
        let mut accepted = 0;
        let mut duplicates = 0;
        for h in handles {
            match h.await.unwrap().unwrap() {
                IngestOutcome::Accepted { .. } => accepted += 1,
                IngestOutcome::Duplicate { .. } => duplicates += 1,
            }
        }
        assert_eq!((accepted, duplicates), (25, 25));
        let batches = counting.batches.load(Ordering::SeqCst);
        assert!(
            batches < 50,
            "50 concurrent deliveries took {batches} commits"
        );
        assert!(counting.largest.load(Ordering::SeqCst) > 1);
        assert_eq!(
            counting.prepared.lock().unwrap().len(),
            50,
            "every delivery reaches the store prepared"
        );
        let stored = store
            .list_events(
                &EventFilter::default(),
                Page {
                    limit: 100,
                    offset: 0,
                },
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), 25);
    }

    #[tokio::test]
    async fn a_committer_on_its_own_thread_answers_every_caller() {
        let store = Arc::new(GroupCommit::on_own_thread(Arc::new(MemoryStore::new()), 8));
        let mut handles = Vec::new();
        for i in 0..40 {
            let store = store.clone();
            let id = format!("t-{}", i % 20);
            handles.push(tokio::spawn(async move {
                store.ingest(event(&id), Vec::new()).await
            }));
        }
        let mut accepted = 0;
        for h in handles {
            if let IngestOutcome::Accepted { .. } = h.await.unwrap().unwrap() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 20);
    }

    #[tokio::test]
    async fn deliveries_are_prepared_in_the_callers_task_not_on_the_committer_thread() {
        let counting = Arc::new(Counting::new());
        let store = GroupCommit::on_own_thread(counting.clone(), 8);
        let caller = std::thread::current().id();
        // GroupCommit prepares each delivery here (this test's thread), not on its committer.
        store.ingest(event("p-1"), Vec::new()).await.unwrap();
        store.ingest(event("p-2"), Vec::new()).await.unwrap();
        assert_eq!(*counting.prepared.lock().unwrap(), vec![caller, caller]);
    }

    #[tokio::test]
    async fn a_lone_delivery_is_committed_without_waiting_for_company() {
        let store = GroupCommit::new(Arc::new(MemoryStore::new()), 1, 64);
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            store.ingest(event("solo"), Vec::new()),
        )
        .await
        .expect("a single delivery must not wait for a batch to fill")
        .unwrap();
        assert!(matches!(outcome, IngestOutcome::Accepted { .. }));
    }
}
