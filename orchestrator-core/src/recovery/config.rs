//! The reconciler's validated settings and a manual run's request, with the checks that make a
//! bad request a 400 before anything is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::hook::{HookRef, HookSelection};
use crate::store::recovery::RecoveryMode;

/// How the reconciler runs (the server reads them from `GITHUB_RECOVERY_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// The hooks of a scheduled run (`GITHUB_RECOVERY_HOOKS`).
    pub hooks: HookSelection,
    /// Time between scheduled runs (`GITHUB_RECOVERY_INTERVAL_SECONDS`, 300; zero: off).
    pub interval: Duration,
    /// The first run's look-back (24 h).
    pub first_lookback: Duration,
    /// Later runs start this long before the previous successful run started.
    pub overlap: Duration,
    /// The longest look-back of any run (`GITHUB_RECOVERY_MAX_LOOKBACK_HOURS`, 72 h).
    pub max_lookback: Duration,
    /// Recover only events some routing rule could route (default true).
    pub relevant_only: bool,
    /// The mode of scheduled runs (default `fetch`).
    pub mode: RecoveryMode,
    /// How long the one-runner lease holds where it expires on its own (a SQLite lease row, a
    /// Redis lock); the runner renews it every third of this while its run proceeds.
    pub lease_ttl: Duration,
    /// How long a redelivery asked for is trusted to be on its way: within it, the same attempt
    /// of the same GUID is not asked for again (a run resumed after a crash). 1 h.
    pub redelivery_window: Duration,
    /// The most pages one hook is read in one run (a bound on API calls).
    pub max_pages: u32,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            hooks: HookSelection::default(),
            interval: Duration::from_secs(300),
            first_lookback: Duration::from_secs(24 * 3600),
            overlap: Duration::from_secs(600),
            max_lookback: Duration::from_secs(72 * 3600),
            relevant_only: true,
            mode: RecoveryMode::Fetch,
            lease_ttl: Duration::from_secs(3600),
            redelivery_window: Duration::from_secs(3600),
            max_pages: 1000,
        }
    }
}

/// A manual run's request (`POST /api/v1/admin/recover`, `recover` CLI); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// The window's start (default: the maximum look-back).
    pub since: Option<DateTime<Utc>>,
    /// The window's end (default: now).
    pub until: Option<DateTime<Utc>>,
    /// The hooks (default: the configured selection).
    pub hooks: Option<Vec<HookRef>>,
    /// The mode (default: the configured one).
    pub mode: Option<RecoveryMode>,
    /// List what is missing, change nothing.
    pub dry_run: bool,
}

/// Why a run could not be started; nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `since` is after `until`.
    #[error("`since` ({since}) is after `until` ({until})")]
    InvertedWindow {
        /// The start asked for.
        since: DateTime<Utc>,
        /// The end asked for.
        until: DateTime<Utc>,
    },
    /// The window ends in the future.
    #[error("`until` ({0}) is in the future")]
    Future(DateTime<Utc>),
    /// No hook to read: none named and none configured or learned.
    #[error(
        "no hook to recover from: name one (`app`, `repo:OWNER/NAME:HOOK_ID`, `org:ORG:HOOK_ID`) or configure GITHUB_RECOVERY_HOOKS"
    )]
    NoHooks,
}
