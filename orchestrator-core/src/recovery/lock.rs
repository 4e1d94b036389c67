//! The one-runner lock of recovery across instances, as the reconciler takes it: the
//! [`RunnerLock`] contract, and [`StoreLock`], the store's own lease (a PostgreSQL advisory
//! lock, a SQLite lease row, a mutex in memory). A Redis lock (`orchestrator-redis`'s
//! `RedisLock`) stands in when Redis is configured.
//!
//! A lease that expires on its own is renewed by the runner while its run proceeds (see
//! [`RunnerLease::renew`]); a runner that stops renewing (it hung, or died without releasing)
//! loses the lease once it expires, and the next runner resumes its run from the stored cursor.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::store::recovery::{RecoveryStore, RunnerLease};

/// Who runs recovery: at most one holder at a time across every instance.
#[async_trait]
pub trait RunnerLock: Send + Sync + 'static {
    /// The lease for `holder`, for `ttl` where it expires, or `None` while another runner
    /// holds it.
    async fn try_lock(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError>;
}

/// [`RunnerLock`] through the recovery store's own lease
/// ([`RecoveryStore::try_lock_runner`]).
#[derive(Clone)]
pub struct StoreLock(pub Arc<dyn RecoveryStore>);

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

#[async_trait]
impl RunnerLock for StoreLock {
    async fn try_lock(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError> {
        self.0.try_lock_runner(holder, ttl, now).await
    }
}
