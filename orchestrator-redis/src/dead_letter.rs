//! The dead-letter stream: messages delivered `max_deliveries` times without being
//! acknowledged (their workers kept dying, or kept losing them) are moved there by the takeover
//! scan, so one poison message cannot circle the workers forever.
//!
//! Each dead letter records the task id, the original entry id, the delivery count, the last
//! consumer and the time (ms). The task's row in the store is untouched: its lease expiry and
//! retry budget decide whether it runs again, and operators inspect the stream here.

use chrono::{DateTime, Utc};
use redis::streams::StreamRangeReply;
use uuid::Uuid;

use crate::error::Result;
use crate::stream::TaskStream;

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream.
    pub id: String,
    /// The task it named, when readable.
    pub task_id: Option<Uuid>,
    /// Its id in the task stream.
    pub entry_id: String,
    /// How often it had been delivered.
    pub deliveries: u32,
    /// The consumer that held it last.
    pub consumer: String,
    /// When it was dead-lettered (queue clock).
    pub at: Option<DateTime<Utc>>,
}

impl TaskStream {
    /// How many dead letters there are.
    pub async fn dead_letter_len(&self) -> Result<u64> {
        let key = &self.keys.dead;
        self.conn
            .run(|mut c| async move { redis::cmd("XLEN").arg(key).query_async(&mut c).await })
            .await
    }

    /// The oldest dead letters (at most `limit`).
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let key = &self.keys.dead;
        let reply: StreamRangeReply = self
            .conn
            .run(|mut c| async move {
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| DeadLetter {
                task_id: e
                    .get::<String>("task")
                    .and_then(|s| Uuid::parse_str(&s).ok()),
                entry_id: e.get("entry").unwrap_or_default(),
                deliveries: e.get("deliveries").unwrap_or_default(),
                consumer: e.get("consumer").unwrap_or_default(),
                at: e
                    .get::<i64>("at")
                    .and_then(DateTime::<Utc>::from_timestamp_millis),
                id: e.id,
            })
            .collect())
    }
}
