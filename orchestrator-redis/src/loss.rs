//! Noticing that Redis lost the queue's data, and recovering at once.
//!
//! Redis restarted without persistence, a `FLUSHDB`, a failover to a replica that missed the
//! last writes: the stream, its consumer group and the delayed set are gone (or short), while
//! the store still has runnable tasks that no message names. The regular sweep would find them
//! only once they are `sweep_after` old. Two signals trigger a reset instead — every runnable
//! task re-published from the store, whatever its age ([`Sweeper::republish_all`]):
//! - **the group is missing**: a group operation (`XREADGROUP`, the takeover scan, `XPENDING`,
//!   `XCLAIM`) answered `NOGROUP` or `UNBLOCKED`, and this process's `XGROUP CREATE` made anew
//!   a group it had used before ([`TaskStream::take_group_created`]). Only one process wins
//!   that create. A group missing at a process's first use is not taken as a loss (every first
//!   start looks like that, and its tasks were published): the next signal covers that case.
//! - **the stream ran dry**: a claim found nothing, the stream and the due part of the delayed
//!   set are empty, yet the store has a runnable, due task unchanged for `lost_after`. Checked
//!   at most every `lost_check_interval` (queue clock) per process. This also covers a loss
//!   while no process was running, a winner of the create that died before re-publishing, and
//!   a failover that kept the group but lost entries.
//!
//! Across processes at most one reset runs per `lost_check_interval`
//! ([`Sweeper::take_reset_turn`]; the turn's mark lives in Redis, so a new loss frees it), so
//! the stream holds at most one extra message per task; the store's conditional start still
//! runs each task once. Tasks that were running keep their lease: their worker finishes them,
//! or, if it died, the lease runs out and `requeue_expired` returns them, as with the database
//! queue. A reset is logged with one warning line and reported to the
//! [`Observer`] (`queue_reset`).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::observe::{NoopObserver, Observer};
use orchestrator_core::store::AttemptStore;

use crate::error::Result;
use crate::stream::TaskStream;
use crate::sweeper::{Republished, Sweeper, interval_passed};

/// Why a reset ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// The consumer group was missing and this process recreated it.
    GroupMissing,
    /// The stream was empty while the store had old runnable, due tasks.
    StreamDrained,
}

impl LossReason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::GroupMissing => "group_missing",
            LossReason::StreamDrained => "stream_drained",
        }
    }
}

/// Watches for lost queue data on behalf of one [`RedisQueue`](crate::RedisQueue).
pub(crate) struct LossWatch {
    stream: Arc<TaskStream>,
    store: Arc<dyn AttemptStore>,
    sweeper: Sweeper,
    pub(crate) observer: Arc<dyn Observer>,
    last_check: Mutex<Option<DateTime<Utc>>>,
}

impl LossWatch {
    pub(crate) fn new(
        stream: Arc<TaskStream>,
        store: Arc<dyn AttemptStore>,
        sweeper: Sweeper,
    ) -> Self {
        Self {
            stream,
            store,
            sweeper,
            observer: Arc::new(NoopObserver),
            last_check: Mutex::new(None),
        }
    }

    /// After group operations: resets when one of them made anew a group this process had
    /// used. A failed reset is noted again, so the next call retries it.
    pub(crate) async fn after_group_ops(&self, now: DateTime<Utc>) {
        if self.stream.take_group_created() != Some(true) {
            return;
        }
        if let Err(err) = self.reset(LossReason::GroupMissing, now).await {
            tracing::warn!(error = %err, "re-publishing after the consumer group was lost failed; retrying at the next claim");
            self.stream.note_group_created(true);
        }
    }

    /// After a claim that found nothing: resets when the stream ran dry while the store has
    /// old runnable, due tasks. At most every `lost_check_interval` in this process.
    pub(crate) async fn after_empty_claim(&self, now: DateTime<Utc>) {
        let interval = self.stream.config().lost_check_interval;
        if !interval_passed(&self.last_check, interval, now) {
            return;
        }
        let lost = match self.drained_with_old_tasks(now).await {
            Ok(lost) => lost,
            Err(err) => {
                tracing::debug!(error = %err, "checking for lost queue data failed");
                return;
            }
        };
        if lost && let Err(err) = self.reset(LossReason::StreamDrained, now).await {
            tracing::warn!(error = %err, "re-publishing runnable tasks the stream lost failed");
        }
    }

    async fn drained_with_old_tasks(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        if !self.stream.drained(now).await? {
            return Ok(false);
        }
        let after = chrono::Duration::from_std(self.stream.config().lost_after)
            .unwrap_or(chrono::Duration::MAX);
        let old = now
            .checked_sub_signed(after)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(!self.store.stale_runnable(old, now, 1).await?.is_empty())
    }

    /// Re-publishes every runnable task if this process gets the reset turn.
    async fn reset(&self, reason: LossReason, now: DateTime<Utc>) -> Result<(), StoreError> {
        if !self.sweeper.take_reset_turn(now).await? {
            // Another process reset the queue within the interval, after the loss.
            return Ok(());
        }
        let published = match self.sweeper.republish_all(now).await {
            Ok(published) => published,
            Err(err) => {
                if let Err(release) = self.sweeper.release_reset_turn().await {
                    tracing::debug!(error = %release, "releasing the reset turn failed");
                }
                return Err(err);
            }
        };
        self.log(reason, published);
        self.observer.queue_reset(reason.as_str());
        Ok(())
    }

    fn log(&self, reason: LossReason, published: Republished) {
        let stream = &self.stream.keys().stream;
        let (due, scheduled) = (published.due, published.scheduled);
        match reason {
            LossReason::GroupMissing => tracing::warn!(
                reason = reason.as_str(), stream = %stream, due, scheduled,
                "redis lost the task queue (consumer group missing: restart without persistence, flush or failover); re-published the store's runnable tasks"
            ),
            LossReason::StreamDrained => tracing::warn!(
                reason = reason.as_str(), stream = %stream, due, scheduled,
                "runnable tasks had no message in redis (data lost, or a process died before publishing); re-published the store's runnable tasks"
            ),
        }
    }
}

impl TaskStream {
    /// Whether nothing waits in Redis at `now`: no stream entry (delivered or not; finished
    /// ones are deleted) and no due task in the delayed set.
    pub(crate) async fn drained(&self, now: DateTime<Utc>) -> Result<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&self.keys.stream);
        pipe.cmd("ZCOUNT")
            .arg(&self.keys.delayed)
            .arg("-inf")
            .arg(now.timestamp_millis());
        let (len, due): (u64, u64) = self
            .conn
            .run(move |mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        Ok(len == 0 && due == 0)
    }
}
