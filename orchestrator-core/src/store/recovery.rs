//! The recovery store: runs of the reconciler (their window, counters, cursor and status), the
//! batched "which of these delivery GUIDs do we have" look-up, hooks learned from stored
//! deliveries, and the one-runner lease. See [`crate::recovery`] for how a run uses them.
//!
//! A run is stored before it starts and saved after every page, with the hook it is on and that
//! hook's `cursor`, so a run stopped by a crash or a rate limit resumes where it stopped.
//!
//! A redelivery request is recorded as an intent ([`RedeliveryIntent`]) before it is sent, so a
//! run resumed after a crash between the request and its page being saved does not ask GitHub a
//! second time for the same attempt within the redelivery window.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

/// How missing deliveries are recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryMode {
    /// Read the request from GitHub's API and ingest it here (`source = "recovered"`).
    #[default]
    Fetch,
    /// Ask GitHub to send it again; the receiver verifies it as usual.
    Redeliver,
}

impl RecoveryMode {
    /// The stored and shown name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecoveryMode::Fetch => "fetch",
            RecoveryMode::Redeliver => "redeliver",
        }
    }
}

impl FromStr for RecoveryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fetch" => Ok(RecoveryMode::Fetch),
            "redeliver" => Ok(RecoveryMode::Redeliver),
            other => Err(format!(
                "unknown recovery mode {other:?} (expected fetch or redeliver)"
            )),
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Stored, not picked up yet.
    Pending,
    /// Being worked on (or its runner crashed: the next runner resumes it).
    Running,
    /// Stopped by a rate limit or an unreachable GitHub; resumed from its cursor later.
    Interrupted,
    /// Every hook was paged back to the cutoff.
    Succeeded,
    /// Stopped for good (a permanent error such as a missing permission).
    Failed,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Pending,
        RunStatus::Running,
        RunStatus::Interrupted,
        RunStatus::Succeeded,
        RunStatus::Failed,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// Whether the run may still make progress (pending, running, interrupted).
    pub const fn is_open(self) -> bool {
        matches!(
            self,
            RunStatus::Pending | RunStatus::Running | RunStatus::Interrupted
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown recovery run status {s:?}"))
    }
}

/// One reconciliation run (the `recovery_runs` row and the admin route's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRun {
    /// The run's id.
    pub run_id: Uuid,
    /// `scheduled` (the background service) or `manual` (the admin route / CLI).
    pub trigger: String,
    /// How missing deliveries are recovered.
    pub mode: RecoveryMode,
    /// Only list what is missing; change nothing.
    pub dry_run: bool,
    /// The hooks of the run, in the order they are paged (`app`, `repo:o/n:id`, `org:o:id`).
    pub hooks: Vec<String>,
    /// Deliveries older than this are not looked at (the cutoff).
    pub since: DateTime<Utc>,
    /// Deliveries newer than this are not looked at.
    pub until: DateTime<Utc>,
    /// Where it stands.
    pub status: RunStatus,
    /// The hook being paged (`None` before the first and after the last).
    pub hook: Option<String>,
    /// The `cursor` of that hook's next page (`None`: from the newest).
    pub cursor: Option<String>,
    /// Delivery attempts listed in the window.
    pub listed: u64,
    /// GUIDs that GitHub has and this store had not (relevant ones only).
    pub missing: u64,
    /// Missing GUIDs recovered (fetched and ingested, or redelivery requested).
    pub recovered: u64,
    /// Missing GUIDs that could not be recovered.
    pub failed: u64,
    /// Errors met (failed pages or deliveries).
    pub errors: u64,
    /// The last error, for the operator.
    pub last_error: Option<String>,
    /// The missing GUIDs (a dry run's answer; at most the first 1,000).
    pub missing_guids: Vec<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When a runner first started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (succeeded or failed).
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// How many missing GUIDs a run keeps for display.
pub const MAX_MISSING_GUIDS: usize = 1000;

/// A hook learned from a stored delivery's `X-GitHub-Hook-ID`,
/// `X-GitHub-Hook-Installation-Target-Type` / `-ID` headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LearnedHook {
    /// `X-GitHub-Hook-ID`.
    pub hook_id: i64,
    /// `repository`, `organization`, `integration`, ...
    pub target_type: Option<String>,
    /// `X-GitHub-Hook-Installation-Target-ID`.
    pub target_id: Option<i64>,
    /// The `owner/name` of a delivery of it (names a repository or organization hook's path).
    pub repository: Option<String>,
}

/// Extends a held [`RunnerLease`] that expires on its own (a lease row, a Redis key).
#[async_trait]
pub trait RenewLease: Send + Sync + 'static {
    /// Extends the lease to `now + ttl`; `Ok(false)` when it is no longer held (it expired and
    /// another runner took it).
    async fn renew(&self, ttl: Duration, now: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// Held by the one runner of recovery across instances; dropping it lets another runner in.
/// A lease that expires on its own carries its renewal, which the runner calls while its run
/// proceeds.
pub struct RunnerLease {
    renewal: Option<Box<dyn RenewLease>>,
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl RunnerLease {
    /// A lease whose `release` runs when it is dropped (closing a session holding an advisory
    /// lock, clearing a lease row, unlocking a mutex).
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            renewal: None,
            release: Some(Box::new(release)),
        }
    }

    /// The same lease, renewed by `renewal` (a lease that expires unless renewed).
    pub fn with_renewal(mut self, renewal: impl RenewLease) -> Self {
        self.renewal = Some(Box::new(renewal));
        self
    }

    /// Extends the lease to `now + ttl`; `Ok(false)` when it was lost. A lease without an
    /// expiry (a session lock) is always still held.
    pub async fn renew(&self, ttl: Duration, now: DateTime<Utc>) -> Result<bool, StoreError> {
        match &self.renewal {
            Some(renewal) => renewal.renew(ttl, now).await,
            None => Ok(true),
        }
    }
}

impl Drop for RunnerLease {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl fmt::Debug for RunnerLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerLease")
            .field("renewable", &self.renewal.is_some())
            .finish()
    }
}

/// The record, made before `POST .../attempts` is sent, that a run asked GitHub to redeliver
/// one attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeliveryIntent {
    /// `X-GitHub-Delivery` of the delivery.
    pub guid: String,
    /// The attempt asked to be redelivered (a redelivery by GitHub adds a newer attempt).
    pub attempt_id: i64,
    /// The hook the attempt is listed on.
    pub hook: String,
    /// The run that asked.
    pub run_id: Uuid,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
}

/// Storage of recovery runs and the look-ups the reconciler needs.
#[async_trait]
pub trait RecoveryStore: Send + Sync + 'static {
    /// Stores a new run.
    async fn create_run(&self, run: &RecoveryRun) -> Result<(), StoreError>;

    /// Saves a run's progress (status, hook, cursor, counters, times) by its id.
    async fn save_run(&self, run: &RecoveryRun) -> Result<(), StoreError>;

    /// One run.
    async fn get_run(&self, run_id: Uuid) -> Result<Option<RecoveryRun>, StoreError>;

    /// Runs, newest first, at most `limit`. With `before` (keyset paging: the last run of the
    /// previous page), only the runs stored before that one; none when it is unknown.
    async fn list_runs(
        &self,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecoveryRun>, StoreError>;

    /// The oldest run that can still make progress (pending, running or interrupted).
    async fn open_run(&self) -> Result<Option<RecoveryRun>, StoreError>;

    /// When the latest succeeded non-dry `scheduled` run started.
    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Which of `guids` are stored as events' delivery ids: one query, however many.
    async fn known_deliveries(&self, guids: &[String]) -> Result<HashSet<String>, StoreError>;

    /// Hooks named by the headers of deliveries stored since `since`, one per hook id.
    async fn learned_hooks(&self, since: DateTime<Utc>) -> Result<Vec<LearnedHook>, StoreError>;

    /// Records `intent` before the redelivery request is sent: `true` when it was recorded (send
    /// it), `false` when the same attempt of the same GUID was already asked for at or after
    /// `not_before` (do not ask again). One statement, so two runners never both get `true`.
    async fn claim_redelivery(
        &self,
        intent: &RedeliveryIntent,
        not_before: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Forgets `run_id`'s intent for `guid`: GitHub refused the request, nothing was redelivered,
    /// so a later run may ask again at once.
    async fn release_redelivery(&self, guid: &str, run_id: Uuid) -> Result<(), StoreError>;

    /// The one-runner lease for `holder`, for `ttl` (where the store needs one), or `None`
    /// while another runner holds it. A lease with an expiry is renewable
    /// ([`RunnerLease::renew`]).
    async fn try_lock_runner(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError>;
}
