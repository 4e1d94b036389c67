//! Delayed tasks: a sorted set of task ids scored by due time (ms), and the mover that appends
//! due ones to the stream.
//!
//! Retries, deferrals and tasks published before their due time wait in the set, not in the
//! stream, so a worker never receives a message it cannot run yet. The mover is one Lua script
//! (`ZRANGEBYSCORE` + `XADD` + `ZREM`), so a task is never in both places or in neither, and it
//! appends in due-time order. It runs at the start of every claim; "now" comes from the queue's
//! clock, so tests move time without sleeping. A task id is a set member, so scheduling the same
//! task twice keeps one entry (the later due time).

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::stream::TaskStream;

impl TaskStream {
    /// Moves up to `move_batch` delayed tasks due at `now` to the stream; how many.
    pub async fn move_due(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut inv = self.move_script.key(&self.keys.delayed);
        inv.key(&self.keys.stream)
            .arg(now.timestamp_millis())
            .arg(self.config.move_batch);
        self.conn
            .run(move |mut c| async move { inv.invoke_async::<u64>(&mut c).await })
            .await
    }

    /// The delayed task ids with their due times, earliest first (at most `limit`).
    pub async fn delayed(&self, limit: usize) -> Result<Vec<(String, DateTime<Utc>)>> {
        if limit == 0 {
            // `ZRANGE key 0 -1` would list the whole set.
            return Ok(Vec::new());
        }
        let key = &self.keys.delayed;
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let rows: Vec<(String, i64)> = self
            .conn
            .run(|mut c| async move {
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(stop)
                    .arg("WITHSCORES")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, ms)| {
                (
                    id,
                    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default(),
                )
            })
            .collect())
    }
}
