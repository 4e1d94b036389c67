//! Key names. Every key starts with the configured prefix, so several deployments (and parallel
//! tests) share one Redis without seeing each other.
//!
//! The queue's keys carry the queue name in a hash tag (`{tasks}`), so that in Redis Cluster the
//! stream, the delayed set and the dead-letter stream live in one slot and the Lua scripts that
//! touch two of them at once stay legal.

/// The keys of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// The stream the consumer group reads (`<prefix>:{<queue>}:stream`).
    pub stream: String,
    /// The sorted set of task ids scored by due time in ms (`<prefix>:{<queue>}:delayed`).
    pub delayed: String,
    /// The dead-letter stream (`<prefix>:{<queue>}:dead`).
    pub dead: String,
    /// When the last sweep ran, shared by all processes (`<prefix>:{<queue>}:swept`).
    pub swept: String,
    /// When the last reset ran (every runnable task re-published after Redis lost the queue's
    /// data), shared by all processes (`<prefix>:{<queue>}:reset`).
    pub reset: String,
}

impl QueueKeys {
    /// The keys of queue `queue` under `prefix`.
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            stream: format!("{prefix}:{{{queue}}}:stream"),
            delayed: format!("{prefix}:{{{queue}}}:delayed"),
            dead: format!("{prefix}:{{{queue}}}:dead"),
            swept: format!("{prefix}:{{{queue}}}:swept"),
            reset: format!("{prefix}:{{{queue}}}:reset"),
        }
    }
}

/// The replay guard's key for one delivery id (`<prefix>:delivery:<id>`).
pub fn delivery(prefix: &str, delivery_id: &str) -> String {
    format!("{prefix}:delivery:{delivery_id}")
}

/// The rate limiter's key for one client key (`<prefix>:rate:<key>`).
pub fn rate(prefix: &str, key: &str) -> String {
    format!("{prefix}:rate:{key}")
}

/// The agent budget's log of one scope (`<prefix>:{agent_budget}:<scope>`, e.g. `global` or
/// `repo:owner/name`); one hash tag, because one script touches several scopes.
pub fn agent_budget(prefix: &str, scope: &str) -> String {
    format!("{prefix}:{{agent_budget}}:{scope}")
}

/// A named lock's key (`<prefix>:lock:<name>`), see [`RedisLock`](crate::RedisLock).
pub fn lock(prefix: &str, name: &str) -> String {
    format!("{prefix}:lock:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_share_a_hash_tag() {
        let keys = QueueKeys::new("wo", "tasks");
        assert_eq!(keys.stream, "wo:{tasks}:stream");
        assert_eq!(keys.delayed, "wo:{tasks}:delayed");
        assert_eq!(keys.dead, "wo:{tasks}:dead");
        assert_eq!(keys.swept, "wo:{tasks}:swept");
        assert_eq!(keys.reset, "wo:{tasks}:reset");
        assert_eq!(delivery("wo", "abc"), "wo:delivery:abc");
        assert_eq!(rate("wo", "1.2.3.4"), "wo:rate:1.2.3.4");
        assert_eq!(agent_budget("wo", "global"), "wo:{agent_budget}:global");
        assert_eq!(lock("wo", "recovery"), "wo:lock:recovery");
    }
}
