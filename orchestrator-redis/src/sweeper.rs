//! The sweeper: re-publishes runnable tasks that have waited too long without being claimed.
//!
//! Ingest commits the database transaction first and publishes (`XADD`) after; a process that
//! dies in between, or a Redis that lost its data, leaves tasks in the store that no message
//! names. The sweeper asks the store for runnable, due tasks unchanged for `sweep_after`
//! ([`TaskStore::stale_runnable`]) and publishes them again. A task that did have a message gets
//! a second one; that is harmless, because a claim is confirmed by the store's conditional
//! update and the extra message is dropped.
//!
//! [`RedisQueue::requeue_expired`](orchestrator_core::queue::TaskQueue::requeue_expired) runs a
//! sweep every `sweep_interval` — once per interval across all processes sharing the queue
//! ([`Sweeper::take_turn`]), so that N workers do not publish N copies of every stale task —
//! so a worker loop needs nothing more; [`Sweeper::run`] is there
//! for processes that want their own schedule.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::clock::Clock;
use orchestrator_core::error::StoreError;
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::TaskStore;
use redis::Script;

use crate::stream::TaskStream;

/// Re-publishes stale runnable tasks.
#[derive(Clone)]
pub struct Sweeper {
    stream: Arc<TaskStream>,
    store: Arc<dyn TaskStore>,
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
    /// A sweeper publishing to `stream` what `store` says is stale.
    pub fn new(stream: Arc<TaskStream>, store: Arc<dyn TaskStore>) -> Self {
        Self {
            stream,
            store,
            turn_script: Script::new(include_str!("scripts/sweep_turn.lua")),
        }
    }

    /// Whether this process should sweep at `now`: true for the first caller of every
    /// `sweep_interval` (queue clock) among all processes sharing the queue.
    pub async fn take_turn(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let config = self.stream.config();
        let interval = u64::try_from(config.sweep_interval.as_millis()).unwrap_or(u64::MAX);
        // The mark outlives the interval a little (real time) and then goes: a sweep too many
        // is harmless, a mark that never expires is not.
        let ttl = interval.saturating_mul(2).max(1000);
        let mut inv = self.turn_script.key(&self.stream.keys().swept);
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
            .store
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
