//! [`RedisQueue`]: the core's [`TaskQueue`] on Redis Streams, with the store as the source of
//! truth.
//!
//! Redis only carries task ids. A claim reads messages (`XREADGROUP`, plus takeovers of quiet
//! consumers' messages) and confirms each with the store's conditional
//! [`AttemptStore::start_attempt`] (pending -> running): a message delivered twice, or a task
//! published twice, still runs once. A message the store refuses is acknowledged and dropped —
//! unless its task is not due yet (it goes to the delayed set), or it was taken over from a
//! worker whose lease is still live (it stays pending and is looked at again later). Finishing
//! writes the store first, then acknowledges and publishes the retry or follow-ups.
//!
//! While Redis is unreachable the store keeps working: publishes fail fast (backoff), their
//! task references wait in a bounded in-memory backlog that the next successful call sends,
//! and the [`Sweeper`] re-publishes whatever was lost (the process died after the commit).
//! When Redis itself lost the queue's data, [`crate::loss`] notices (a missing consumer group,
//! or a stream that ran dry while the store has old runnable tasks) and re-publishes at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::clock::{self, Clock};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::observe::Observer;
use orchestrator_core::queue::{TaskQueue, TaskRef};
use orchestrator_core::store::{AttemptStore, Claim, Finish, FinishReport, QueueDepth, TaskStore};
use orchestrator_core::task::TaskStatus;

use crate::config::QueueConfig;
use crate::connection::RedisConnection;
use crate::error::{Error, Result};
use crate::loss::LossWatch;
use crate::stream::{Delivery, TaskStream};
use crate::sweeper::{Sweeper, interval_passed};

/// A task queue on Redis Streams over a store's [`AttemptStore`] (and its [`TaskStore`] for
/// due times).
pub struct RedisQueue {
    stream: Arc<TaskStream>,
    tasks: Arc<dyn TaskStore>,
    store: Arc<dyn AttemptStore>,
    clock: Arc<dyn Clock>,
    sweeper: Sweeper,
    loss: LossWatch,
    backlog: Mutex<Backlog>,
    last_reclaim: Mutex<Option<Instant>>,
    last_sweep: Mutex<Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// What could not be sent while Redis was away: task references to publish and entries to
/// acknowledge (a lost acknowledgement would only cost a redelivery, but this saves it).
#[derive(Default)]
struct Backlog {
    tasks: VecDeque<TaskRef>,
    acks: VecDeque<String>,
}

/// What to do with one delivered message after asking the store.
enum Verdict {
    Claimed(Box<Claim>),
    Ack(String),
    Reschedule(String, TaskRef),
    Leave,
}

impl RedisQueue {
    /// A queue named `config.name` on `conn`, confirming claims with `attempts` and reading
    /// tasks it cannot start (not due yet, still leased) from `tasks` — usually one store seen
    /// through both traits; `clock` gives "now" for publishing (due or delayed).
    pub fn new(
        conn: RedisConnection,
        config: QueueConfig,
        tasks: Arc<dyn TaskStore>,
        attempts: Arc<dyn AttemptStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let stream = Arc::new(TaskStream::new(conn, config)?);
        let sweeper = Sweeper::new(stream.clone(), tasks.clone(), attempts.clone());
        let loss = LossWatch::new(stream.clone(), attempts.clone(), sweeper.clone());
        Ok(Self {
            stream,
            tasks,
            store: attempts,
            clock,
            sweeper,
            loss,
            backlog: Mutex::new(Backlog::default()),
            last_reclaim: Mutex::new(None),
            last_sweep: Mutex::new(None),
        })
    }

    /// Reports resets after lost queue data to `observer` (`queue_reset`).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.loss.observer = observer;
        self
    }

    /// The Redis side alone (keys, dead letters, raw operations).
    pub fn stream(&self) -> &TaskStream {
        &self.stream
    }

    /// The sweeper, to run on its own schedule or on demand.
    pub fn sweeper(&self) -> &Sweeper {
        &self.sweeper
    }

    /// Task references waiting in memory for Redis to come back.
    pub fn backlog_len(&self) -> usize {
        self.backlog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tasks
            .len()
    }

    fn backlog_is_empty(&self) -> bool {
        let backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        backlog.tasks.is_empty() && backlog.acks.is_empty()
    }

    /// Sends `acks` and `tasks` (after the backlog); on failure keeps both in the backlog.
    async fn send(&self, now: DateTime<Utc>, acks: &[String], tasks: &[TaskRef]) -> Result<()> {
        let (mut all_acks, mut all_tasks): (Vec<String>, Vec<TaskRef>) = {
            let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
            (
                backlog.acks.drain(..).collect(),
                backlog.tasks.drain(..).collect(),
            )
        };
        all_acks.extend_from_slice(acks);
        all_tasks.extend_from_slice(tasks);
        let sent = self.stream.apply(now, &all_acks, &all_tasks).await;
        if let Err(err) = &sent {
            let limit = self.stream.config().backlog_limit;
            let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
            backlog.tasks.extend(all_tasks);
            backlog.acks.extend(all_acks);
            let excess = backlog.tasks.len().saturating_sub(limit);
            backlog.tasks.drain(..excess);
            let excess = backlog.acks.len().saturating_sub(limit);
            backlog.acks.drain(..excess);
            tracing::warn!(error = %err, backlog = backlog.tasks.len(), "sending to redis failed; kept for later");
        }
        sent
    }

    fn reclaim_due(&self) -> bool {
        let interval = self.stream.config().reclaim_interval;
        let mut last = self.last_reclaim.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// The Redis half of a claim: backlog, due delayed tasks, takeovers, new messages.
    async fn deliveries(
        &self,
        worker: &str,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        if !self.backlog_is_empty() {
            self.send(now, &[], &[]).await?;
        }
        self.stream.move_due(now).await?;
        let mut out = Vec::new();
        if self.reclaim_due() {
            let (taken, dead) = self.stream.reclaim(worker, max, now).await?;
            if dead > 0 {
                tracing::warn!(dead, stream = %self.stream.keys().stream, "messages moved to the dead-letter stream");
            }
            out = taken;
        }
        let more = self
            .stream
            .read(worker, max.saturating_sub(out.len()))
            .await?;
        out.extend(more);
        Ok(out)
    }

    /// Asks the store to start the task of one message.
    async fn confirm(
        &self,
        delivery: Delivery,
        worker: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Verdict, StoreError> {
        let entry = delivery.entry_id;
        let Some(task_id) = delivery.task_id else {
            tracing::warn!(entry = %entry, "stream entry without a task id; dropped");
            return Ok(Verdict::Ack(entry));
        };
        let claimed = |claim: Option<Claim>, entry: String| match claim {
            Some(mut claim) => {
                claim.receipt = Some(entry);
                Some(Verdict::Claimed(Box::new(claim)))
            }
            None => None,
        };
        let first = self
            .store
            .start_attempt(task_id, worker, lease_until, now)
            .await?;
        if let Some(verdict) = claimed(first, entry.clone()) {
            return Ok(verdict);
        }
        let Some(detail) = self.tasks.get_task(task_id).await? else {
            return Ok(Verdict::Ack(entry));
        };
        let task = detail.task;
        if task.status.is_runnable() && task.run_at > now {
            return Ok(Verdict::Reschedule(
                entry,
                TaskRef {
                    task_id,
                    run_at: task.run_at,
                },
            ));
        }
        if task.status == TaskStatus::Running {
            if task.lease_expires_at.is_some_and(|at| at <= now) {
                // Its worker died: take the task over now instead of waiting for a sweep.
                let freed = self.store.expire_leases(now).await?;
                let others: Vec<TaskRef> = freed
                    .into_iter()
                    .filter(|id| *id != task_id)
                    .map(|id| TaskRef {
                        task_id: id,
                        run_at: now,
                    })
                    .collect();
                if !others.is_empty() {
                    let _ = self.send(now, &[], &others).await;
                }
                let again = self
                    .store
                    .start_attempt(task_id, worker, lease_until, now)
                    .await?;
                return Ok(claimed(again, entry.clone()).unwrap_or(Verdict::Ack(entry)));
            }
            if delivery.reclaimed {
                // The holder's lease is live: look again after another visibility timeout.
                return Ok(Verdict::Leave);
            }
        }
        Ok(Verdict::Ack(entry))
    }
}

#[async_trait]
impl TaskQueue for RedisQueue {
    async fn publish(&self, tasks: &[TaskRef]) -> Result<(), StoreError> {
        Ok(self.send(self.clock.now(), &[], tasks).await?)
    }

    async fn claim(
        &self,
        worker: &str,
        max: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deliveries = self.deliveries(worker, max, now).await;
        self.loss.after_group_ops(now).await;
        let deliveries = match deliveries {
            Ok(d) if d.is_empty() => {
                self.loss.after_empty_claim(now).await;
                d
            }
            Ok(d) => d,
            Err(Error::BackingOff { retry_in }) => {
                // Pace a caller that loops on errors; a blocking read would have waited too.
                let pause = self
                    .stream
                    .config()
                    .block
                    .max(self.stream.connection().config().backoff_min);
                tokio::time::sleep(retry_in.min(pause)).await;
                return Err(Error::BackingOff { retry_in }.into());
            }
            Err(err) => return Err(err.into()),
        };
        let lease_until = clock::add(now, lease);
        let verdicts = futures::future::join_all(
            deliveries
                .into_iter()
                .map(|d| self.confirm(d, worker, lease_until, now)),
        )
        .await;
        let (mut claims, mut acks, mut later, mut failure) =
            (Vec::new(), Vec::new(), Vec::new(), None);
        for verdict in verdicts {
            match verdict {
                Ok(Verdict::Claimed(claim)) => claims.push(*claim),
                Ok(Verdict::Ack(entry)) => acks.push(entry),
                Ok(Verdict::Reschedule(entry, task)) => {
                    acks.push(entry);
                    later.push(task);
                }
                // Left pending: a later takeover scan looks at it again.
                Ok(Verdict::Leave) => {}
                Err(err) => failure = Some(err),
            }
        }
        if let Err(err) = self.send(now, &acks, &later).await {
            // Kept in the backlog; even if lost, the messages come back through takeover.
            tracing::warn!(error = %err, "acknowledging skipped messages failed");
        }
        match failure {
            Some(err) if claims.is_empty() => Err(err),
            _ => Ok(claims),
        }
    }

    async fn finish(
        &self,
        claim: &Claim,
        finish: Finish,
        now: DateTime<Utc>,
    ) -> Result<FinishReport, StoreError> {
        let followup_due: Vec<DateTime<Utc>> = match &finish {
            Finish::Completed { followups, .. } => followups.iter().map(|t| t.run_at).collect(),
            _ => Vec::new(),
        };
        let report = match self.store.finish_attempt(claim, finish, now).await {
            Ok(report) => report,
            Err(err) if err.kind() == StoreErrorKind::Conflict => {
                // The claim lost its task (the lease ran out and the task went back to the
                // queue with a message of its own): this message is done. Left pending, it would
                // be taken over again and again until it was dead-lettered for nothing.
                let acks: Vec<String> = claim.receipt.iter().cloned().collect();
                if let Err(ack) = self.send(now, &acks, &[]).await {
                    tracing::warn!(error = %ack, task_id = %claim.task.task_id, "acknowledging a lost claim failed");
                }
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let mut tasks = Vec::with_capacity(report.followups.len() + 1);
        if report.status.is_runnable() {
            tasks.push(TaskRef {
                task_id: claim.task.task_id,
                run_at: report.run_at.unwrap_or(now),
            });
        }
        for (i, id) in report.followups.iter().enumerate() {
            tasks.push(TaskRef {
                task_id: *id,
                run_at: followup_due.get(i).copied().unwrap_or(now),
            });
        }
        let acks: Vec<String> = claim.receipt.iter().cloned().collect();
        if let Err(err) = self.send(now, &acks, &tasks).await {
            // The store has the outcome; the acknowledgement waits in the backlog.
            tracing::warn!(error = %err, task_id = %claim.task.task_id, "acknowledging a finished task failed");
        }
        Ok(report)
    }

    async fn extend_lease(
        &self,
        claim: &Claim,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let held = self
            .store
            .extend_lease(claim, clock::add(now, lease))
            .await?;
        if held && let Some(entry) = &claim.receipt {
            if let Err(err) = self.stream.touch(&claim.worker_id, entry).await {
                tracing::warn!(error = %err, "refreshing the message of a running task failed");
            }
            self.loss.after_group_ops(now).await;
        }
        Ok(held)
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let freed = self.store.expire_leases(now).await?;
        let tasks: Vec<TaskRef> = freed
            .iter()
            .map(|id| TaskRef {
                task_id: *id,
                run_at: now,
            })
            .collect();
        let _ = self.send(now, &[], &tasks).await;
        let mut count = freed.len() as u64;
        let sweep_due = interval_passed(&self.last_sweep, self.stream.config().sweep_interval, now)
            && match self.sweeper.take_turn(now).await {
                Ok(turn) => turn,
                Err(err) => {
                    tracing::warn!(error = %err, "sweep skipped: redis unavailable");
                    false
                }
            };
        if sweep_due {
            match self.sweeper.sweep_once(now).await {
                Ok(swept) => count += swept,
                Err(err) => tracing::warn!(error = %err, "sweep failed"),
            }
        }
        Ok(count)
    }

    async fn depth(&self, now: DateTime<Utc>) -> Result<QueueDepth, StoreError> {
        let depth = self.stream.depth(now).await;
        // An API process measuring the queue may be the one that finds the group gone.
        self.loss.after_group_ops(now).await;
        Ok(depth?)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
