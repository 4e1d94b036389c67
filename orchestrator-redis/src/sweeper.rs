//! The sweeper: re-publishes runnable tasks that have waited too long without being claimed.
//!
//! Ingest commits the database transaction first and publishes (`XADD`) after; a process that
//! dies in between, or a Redis that lost its data, leaves tasks in the store that no message
//! names. The sweeper asks the store for runnable, due tasks unchanged for `sweep_after`
//! ([`AttemptStore::stale_runnable`]) and publishes them again. A task that did have a message gets
//! a second one; that is harmless, because a claim is confirmed by the store's conditional
//! update and the extra message is dropped.
//!
//! [`RedisQueue::requeue_expired`](orchestrator_core::queue::TaskQueue::requeue_expired) runs a
//! sweep every `sweep_interval` — once per interval across all processes sharing the queue
//! ([`Sweeper::take_turn`]), so that N workers do not publish N copies of every stale task —
//! so a worker loop needs nothing more; [`Sweeper::run`] is there
//! for processes that want their own schedule.
//!
//! When Redis lost the queue's data, waiting for `sweep_after` is too slow:
//! [`Sweeper::republish_all`] re-publishes every runnable task whatever its age, due ones to
//! the stream and later ones to the delayed set at their due time. [`crate::loss`] decides when,
//! at most once per `lost_check_interval` across all processes ([`Sweeper::take_reset_turn`]).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use orchestrator_core::clock::Clock;
use orchestrator_core::error::StoreError;
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::{AttemptStore, TaskStore};
use redis::Script;
use uuid::Uuid;

use crate::stream::TaskStream;

/// Store reads at once while looking up the due times of scheduled tasks.
const LOOKUPS_AT_ONCE: usize = 8;

/// What [`Sweeper::republish_all`] published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Republished {
    /// Due tasks appended to the stream.
    pub due: u64,
    /// Tasks due later put in the delayed set at their due time.
    pub scheduled: u64,
}

/// Re-publishes stale runnable tasks.
#[derive(Clone)]
pub struct Sweeper {
    stream: Arc<TaskStream>,
    tasks: Arc<dyn TaskStore>,
    attempts: Arc<dyn AttemptStore>,
    turn_script: Script,
}

impl std::fmt::Debug for Sweeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sweeper")
            .field("stream", &self.stream.keys().stream)
            .finish_non_exhaustive()
    }
}

impl Sweeper {
    /// A sweeper publishing to `stream` what `attempts` says is stale (due times of tasks due
    /// later are read from `tasks`).
    pub fn new(
        stream: Arc<TaskStream>,
        tasks: Arc<dyn TaskStore>,
        attempts: Arc<dyn AttemptStore>,
    ) -> Self {
        Self {
            stream,
            tasks,
            attempts,
            turn_script: Script::new(include_str!("scripts/sweep_turn.lua")),
        }
    }

    /// Whether this process should sweep at `now`: true for the first caller of every
    /// `sweep_interval` (queue clock) among all processes sharing the queue.
    pub async fn take_turn(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let keys = self.stream.keys();
        self.turn(&keys.swept, self.stream.config().sweep_interval, now)
            .await
    }

    /// Whether this process should reset (re-publish every runnable task) at `now`: true for
    /// the first caller of every `lost_check_interval` (queue clock) among all processes
    /// sharing the queue. The mark lives in Redis, so a Redis that lost its data frees the turn.
    pub async fn take_reset_turn(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let keys = self.stream.keys();
        self.turn(&keys.reset, self.stream.config().lost_check_interval, now)
            .await
    }

    /// Gives the reset turn back (the reset failed; the next caller may try at once).
    pub(crate) async fn release_reset_turn(&self) -> Result<(), StoreError> {
        let key = &self.stream.keys().reset;
        self.stream
            .connection()
            .run(|mut c| async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await })
            .await?;
        Ok(())
    }

    async fn turn(
        &self,
        key: &str,
        interval: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        // The mark outlives the interval a little (real time) and then goes: a sweep too many
        // is harmless, a mark that never expires is not.
        let ttl = interval.saturating_mul(2).max(1000);
        let mut inv = self.turn_script.key(key);
        inv.arg(now.timestamp_millis()).arg(interval).arg(ttl);
        let turn: i64 = self
            .stream
            .connection()
            .run(move |mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        Ok(turn == 1)
    }

    /// One sweep at `now`: publishes up to `sweep_limit` runnable tasks unchanged since
    /// `now - sweep_after`; how many.
    pub async fn sweep_once(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let config = self.stream.config();
        let after = chrono::Duration::from_std(config.sweep_after).unwrap_or(chrono::Duration::MAX);
        let stale_before = now
            .checked_sub_signed(after)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let ids = self
            .attempts
            .stale_runnable(stale_before, now, config.sweep_limit)
            .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let tasks: Vec<TaskRef> = ids
            .iter()
            .map(|id| TaskRef {
                task_id: *id,
                run_at: now,
            })
            .collect();
        self.stream.apply(now, &[], &tasks).await?;
        tracing::info!(count = tasks.len(), "re-published stale runnable tasks");
        Ok(tasks.len() as u64)
    }

    /// Re-publishes runnable tasks whatever their age, for a Redis that lost the queue's data:
    /// up to `sweep_limit` due ones (oldest change first) to the stream, and up to
    /// `sweep_limit` due later to the delayed set at the due time the store has for them. A task
    /// that still had a message gets a second one, dropped when claimed.
    pub async fn republish_all(&self, now: DateTime<Utc>) -> Result<Republished, StoreError> {
        let limit = self.stream.config().sweep_limit;
        let due = self
            .attempts
            .stale_runnable(far_future(), now, limit)
            .await?;
        let known: HashSet<Uuid> = due.iter().copied().collect();
        // Every runnable task; the ones not due yet need their due time from the store.
        let all = self
            .attempts
            .stale_runnable(far_future(), far_future(), limit.saturating_mul(2))
            .await?;
        let later: Vec<Uuid> = all
            .into_iter()
            .filter(|id| !known.contains(id))
            .take(limit as usize)
            .collect();
        let store = &self.tasks;
        let scheduled: Vec<TaskRef> = futures::stream::iter(later)
            .map(|id| async move { store.get_task(id).await })
            .buffer_unordered(LOOKUPS_AT_ONCE)
            .try_filter_map(|detail| async move {
                Ok(detail
                    .map(|d| d.task)
                    .filter(|task| task.status.is_runnable())
                    .map(|task| TaskRef {
                        task_id: task.task_id,
                        run_at: task.run_at.max(now),
                    }))
            })
            .try_collect()
            .await?;
        let mut tasks: Vec<TaskRef> = due
            .iter()
            .map(|id| TaskRef {
                task_id: *id,
                run_at: now,
            })
            .collect();
        tasks.extend(scheduled);
        self.stream.apply(now, &[], &tasks).await?;
        let scheduled = tasks.iter().filter(|t| t.run_at > now).count() as u64;
        Ok(Republished {
            due: tasks.len() as u64 - scheduled,
            scheduled,
        })
    }

    /// Sweeps every `interval` (real time) until `shutdown` resolves; failures are logged and
    /// the next tick tries again.
    pub async fn run(
        &self,
        clock: Arc<dyn Clock>,
        interval: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {
                    if let Err(err) = self.sweep_once(clock.now()).await {
                        tracing::warn!(error = %err, "sweep failed");
                    }
                }
            }
        }
    }
}

/// Later than any due time: with it as `stale_before` every runnable task counts as stale, and
/// as `now` every runnable task counts as due.
fn far_future() -> DateTime<Utc> {
    // 9999-12-31T23:59:59Z: within what every supported database stores.
    DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether `interval` (queue clock) passed since the time in `last`; if so, `last` becomes
/// `now`. For schedules kept by one process.
pub(crate) fn interval_passed(
    last: &Mutex<Option<DateTime<Utc>>>,
    interval: Duration,
    now: DateTime<Utc>,
) -> bool {
    let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    let due = last.is_none_or(|at| now.signed_duration_since(at) >= interval);
    if due {
        *last = Some(now);
    }
    due
}
