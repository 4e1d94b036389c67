//! Pool and durability settings, filled from the server's configuration.

use std::time::Duration;

/// How SQLite makes commits durable (`PRAGMA synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteDurability {
    /// `synchronous=FULL`: every commit is synced to disk before it is acknowledged, so an
    /// acknowledged delivery survives a power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is synced at checkpoints only. A process crash loses
    /// nothing; a power loss or OS crash may lose the last commits.
    Normal,
}

/// Connection-pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a caller waits for a free connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Option<Duration>,
    /// SQLite: how long a writer waits for the write lock before giving up.
    pub sqlite_busy_timeout: Duration,
    /// SQLite: commit durability.
    pub sqlite_durability: SqliteDurability,
    /// SQLite: store delivery payloads of 1 KiB and more zstd-compressed (about 9x smaller for
    /// GitHub's JSON; read back byte for byte). On by default: the single writer moves a ninth
    /// of the bytes. Off stores the JSON text, for SQL tools that read `payload` directly;
    /// either way rows written under the other setting stay readable.
    pub sqlite_compress_payloads: bool,
    /// Apply the embedded migrations when connecting.
    pub run_migrations: bool,
    /// PostgreSQL: wait for the WAL flush on queue writes too (claim, finish, lease changes).
    ///
    /// Off by default: those statements run with `synchronous_commit = off`, which returns
    /// before the commit record is flushed. A crash of the database server can then forget the
    /// last fraction of a second of claims and finishes; the tasks concerned are claimed and run
    /// again (at-least-once, as after a worker crash), nothing is lost. Ingest, reprocess and
    /// manual retries always wait for the flush: a delivery is acknowledged only once durable.
    pub durable_queue_writes: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            sqlite_busy_timeout: Duration::from_secs(30),
            sqlite_durability: SqliteDurability::Full,
            sqlite_compress_payloads: true,
            run_migrations: true,
            durable_queue_writes: false,
        }
    }
}

impl PoolOptions {
    /// The sqlx pool options for these settings.
    pub(crate) fn pool<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB> {
        sqlx::pool::PoolOptions::new()
            .max_connections(self.max_connections.max(1))
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
    }
}
