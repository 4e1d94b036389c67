//! The Redis side of the queue alone: one stream with a consumer group, its delayed set and its
//! dead-letter stream. It moves task ids and knows nothing of task state;
//! [`RedisQueue`](crate::RedisQueue) pairs it with the store. Benchmarks use it directly to
//! measure the broker's own enqueue -> claim -> ack cycle.
//!
//! Every entry carries one field, `task` = the task id. Acknowledged entries are deleted
//! (`XACK` + `XDEL`), so the stream holds exactly the messages not yet done; if the consumer
//! group disappears (`NOGROUP`: a Redis restart without persistence, an operator's mistake; or
//! `UNBLOCKED`: the stream was deleted under a blocked read) it is recreated reading from id
//! `0`, which redelivers everything still unfinished and nothing that was finished. A group
//! this process had to create is noted ([`TaskStream::take_group_created`]): the messages it
//! had are gone, and [`RedisQueue`](crate::RedisQueue) re-publishes from the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::QueueDepth;
use redis::streams::StreamReadReply;
use redis::{Script, Value};
use uuid::Uuid;

use crate::config::QueueConfig;
use crate::connection::{RedisConnection, Slot, is_group_lost};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;

/// One delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stream entry id (acknowledge with it).
    pub entry_id: String,
    /// The task it names; `None` for an entry without a readable task id.
    pub task_id: Option<Uuid>,
    /// True when it was taken over from a consumer that went quiet.
    pub reclaimed: bool,
}

/// One queue's stream, delayed set and dead-letter stream.
pub struct TaskStream {
    pub(crate) conn: RedisConnection,
    pub(crate) keys: QueueKeys,
    pub(crate) config: QueueConfig,
    pub(crate) move_script: Script,
    reclaim_script: Script,
    readers: Mutex<HashMap<String, Arc<Slot>>>,
    /// A group operation of this process has succeeded.
    group_used: AtomicBool,
    /// This process created the missing group; `true` when it had used the group before.
    group_created: Mutex<Option<bool>>,
}

impl std::fmt::Debug for TaskStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskStream")
            .field("keys", &self.keys)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TaskStream {
    /// The stream of queue `config.name` on `conn`.
    pub fn new(conn: RedisConnection, config: QueueConfig) -> Result<Self> {
        config.validate()?;
        let keys = QueueKeys::new(conn.prefix(), &config.name);
        Ok(Self {
            conn,
            keys,
            config,
            move_script: Script::new(include_str!("scripts/move_due.lua")),
            reclaim_script: Script::new(include_str!("scripts/reclaim.lua")),
            readers: Mutex::new(HashMap::new()),
            group_used: AtomicBool::new(false),
            group_created: Mutex::new(None),
        })
    }

    /// Its keys.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// Its settings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The connection it uses.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// Creates the consumer group (and the stream) if missing, reading from the start.
    pub async fn ensure_group(&self) -> Result<()> {
        self.create_group().await.map(drop)
    }

    /// Whether this process created the consumer group because it was missing, since the last
    /// call: `Some(true)` when the group had worked for this process before (Redis lost it),
    /// `Some(false)` when it was missing from the first use (a first start, or a loss while no
    /// process was running). Only the process whose `XGROUP CREATE` succeeded sees it.
    pub fn take_group_created(&self) -> Option<bool> {
        self.group_created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Notes again a group creation taken with [`take_group_created`](Self::take_group_created)
    /// whose recovery failed, so that the next call retries it.
    pub(crate) fn note_group_created(&self, used_before: bool) {
        let mut created = self.group_created.lock().unwrap_or_else(|e| e.into_inner());
        *created = Some(created.unwrap_or(false) || used_before);
    }

    /// Creates the consumer group if missing; true when this call created it.
    async fn create_group(&self) -> Result<bool> {
        let (stream, group) = (&self.keys.stream, &self.config.group);
        let created = self
            .conn
            .run(|mut c| async move {
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(stream)
                    .arg(group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        match created {
            Ok(()) => {
                tracing::info!(stream = %stream, group = %group, "created consumer group");
                Ok(true)
            }
            Err(Error::Command(e)) if e.code() == Some("BUSYGROUP") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs `op`; when Redis says the group is missing, recreates it (noting it when this
    /// process created it) and runs `op` once more.
    pub(crate) async fn grouped<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let done = match op().await {
            Err(err) if is_group_lost(&err) => {
                // Not a warning: every first start looks like this; a loss is reported (once,
                // by the process that resets) in `crate::loss`.
                tracing::info!(stream = %self.keys.stream, "consumer group missing; recreating it");
                if self.create_group().await? {
                    self.note_group_created(self.group_used.load(Ordering::Relaxed));
                }
                op().await
            }
            other => other,
        };
        if done.is_ok() {
            self.group_used.store(true, Ordering::Relaxed);
        }
        done
    }

    /// In one round trip: acknowledges and deletes `acks`, appends the due `tasks` to the stream
    /// and puts the others in the delayed set (scored by due time).
    pub async fn apply(
        &self,
        now: DateTime<Utc>,
        acks: &[String],
        tasks: &[TaskRef],
    ) -> Result<()> {
        if acks.is_empty() && tasks.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if !acks.is_empty() {
            pipe.cmd("XACK")
                .arg(&self.keys.stream)
                .arg(&self.config.group)
                .arg(acks)
                .ignore();
            pipe.cmd("XDEL").arg(&self.keys.stream).arg(acks).ignore();
        }
        for task in tasks {
            let id = task.task_id.to_string();
            if task.run_at <= now {
                pipe.cmd("XADD")
                    .arg(&self.keys.stream)
                    .arg("*")
                    .arg("task")
                    .arg(id)
                    .ignore();
            } else {
                pipe.cmd("ZADD")
                    .arg(&self.keys.delayed)
                    .arg(task.run_at.timestamp_millis())
                    .arg(id)
                    .ignore();
            }
        }
        self.conn
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    /// Reads up to `max` new messages for `consumer`; when there are none, waits up to the
    /// configured block time on the consumer's own connection.
    pub async fn read(&self, consumer: &str, max: usize) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let found = self.grouped(|| self.read_once(None, consumer, max)).await?;
        if !found.is_empty() || self.config.block.is_zero() {
            return Ok(found);
        }
        let slot = self.reader(consumer);
        self.grouped(|| self.read_once(Some(&slot), consumer, max))
            .await
    }

    async fn read_once(
        &self,
        blocking: Option<&Slot>,
        consumer: &str,
        max: usize,
    ) -> Result<Vec<Delivery>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.config.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(max);
        if blocking.is_some() {
            cmd.arg("BLOCK")
                .arg(u64::try_from(self.config.block.as_millis()).unwrap_or(u64::MAX));
        }
        cmd.arg("STREAMS").arg(&self.keys.stream).arg(">");
        let query = |mut c: redis::aio::MultiplexedConnection| async move {
            cmd.query_async::<Option<StreamReadReply>>(&mut c).await
        };
        let reply = match blocking {
            Some(slot) => self.conn.run_on(slot, query).await?,
            None => self.conn.run(query).await?,
        };
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        Ok(entries
            .map(|e| Delivery {
                task_id: e
                    .get::<String>("task")
                    .and_then(|s| Uuid::parse_str(&s).ok()),
                entry_id: e.id,
                reclaimed: false,
            })
            .collect())
    }

    fn reader(&self, consumer: &str) -> Arc<Slot> {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let timeout = self.config.block + self.conn.config().response_timeout;
        readers
            .entry(consumer.to_owned())
            .or_insert_with(|| Arc::new(Slot::new(timeout)))
            .clone()
    }

    /// Takes over for `consumer` up to `max` messages that were not acknowledged or refreshed
    /// for the visibility timeout, and moves those already delivered `max_deliveries` times to
    /// the dead-letter stream. Returns the taken messages and how many were dead-lettered.
    pub async fn reclaim(
        &self,
        consumer: &str,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Delivery>, u64)> {
        if max == 0 {
            return Ok((Vec::new(), 0));
        }
        let idle_ms = u64::try_from(self.config.visibility_timeout.as_millis()).unwrap_or(u64::MAX);
        let reply: Value = self
            .grouped(|| {
                let mut inv = self.reclaim_script.key(&self.keys.stream);
                inv.key(&self.keys.dead)
                    .arg(&self.config.group)
                    .arg(consumer)
                    .arg(idle_ms)
                    .arg(self.config.reclaim_batch)
                    .arg(self.config.max_deliveries)
                    .arg(now.timestamp_millis())
                    .arg(max);
                self.conn
                    .run(move |mut c| async move { inv.invoke_async::<Value>(&mut c).await })
            })
            .await?;
        parse_reclaim(reply)
    }

    /// Resets the idle time of a message `consumer` holds (the worker is alive and busy), so it
    /// is not taken over.
    pub async fn touch(&self, consumer: &str, entry_id: &str) -> Result<()> {
        let (stream, group) = (&self.keys.stream, &self.config.group);
        self.grouped(|| {
            self.conn.run(|mut c| async move {
                redis::cmd("XCLAIM")
                    .arg(stream)
                    .arg(group)
                    .arg(consumer)
                    .arg(0)
                    .arg(entry_id)
                    .arg("JUSTID")
                    .query_async::<()>(&mut c)
                    .await
            })
        })
        .await
    }
}

impl TaskStream {
    /// How much waits where: `ready` = undelivered stream entries plus delayed tasks already
    /// due, `scheduled` = delayed tasks not yet due, `running` = delivered and not acknowledged,
    /// `dead_letter` = the dead-letter stream's length.
    pub async fn depth(&self, now: DateTime<Utc>) -> Result<QueueDepth> {
        let now_ms = now.timestamp_millis();
        let (len, pending, due, later, dead): (u64, Value, u64, u64, u64) = self
            .grouped(|| {
                let mut pipe = redis::pipe();
                pipe.cmd("XLEN").arg(&self.keys.stream);
                pipe.cmd("XPENDING")
                    .arg(&self.keys.stream)
                    .arg(&self.config.group);
                pipe.cmd("ZCOUNT")
                    .arg(&self.keys.delayed)
                    .arg("-inf")
                    .arg(now_ms);
                pipe.cmd("ZCOUNT")
                    .arg(&self.keys.delayed)
                    .arg(format!("({now_ms}"))
                    .arg("+inf");
                pipe.cmd("XLEN").arg(&self.keys.dead);
                self.conn
                    .run(move |mut c| async move { pipe.query_async(&mut c).await })
            })
            .await?;
        let running = match pending {
            Value::Array(summary) => match summary.into_iter().next() {
                Some(count) => redis::from_redis_value::<u64>(count)
                    .map_err(|e| Error::Reply(e.to_string()))?,
                None => 0,
            },
            _ => return Err(Error::Reply("XPENDING summary".into())),
        };
        Ok(QueueDepth {
            ready: len.saturating_sub(running) + due,
            scheduled: later,
            running,
            dead_letter: dead,
        })
    }
}

fn parse_reclaim(reply: Value) -> Result<(Vec<Delivery>, u64)> {
    let bad = || Error::Reply("reclaim script".into());
    let Value::Array(mut parts) = reply else {
        return Err(bad());
    };
    let (Some(Value::Int(dead)), Some(Value::Array(entries))) = (parts.pop(), parts.pop()) else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(mut pair) = entry else {
            return Err(bad());
        };
        let (Some(Value::Array(fields)), Some(id)) = (pair.pop(), pair.pop()) else {
            return Err(bad());
        };
        let entry_id: String =
            redis::from_redis_value(id).map_err(|e| Error::Reply(e.to_string()))?;
        let mut task_id = None;
        let mut it = fields.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            if redis::from_redis_value::<String>(k).is_ok_and(|k| k == "task") {
                task_id = redis::from_redis_value::<String>(v)
                    .ok()
                    .and_then(|s| Uuid::parse_str(&s).ok());
            }
        }
        out.push(Delivery {
            entry_id,
            task_id,
            reclaimed: true,
        });
    }
    Ok((out, u64::try_from(dead).unwrap_or(0)))
}
