//! The shared aggregate behind `GET /api/v1/metrics`, `GET /api/v1/admin/stats` and the
//! console's overview: the store's figures ([`Stats`]), the queue depth and the last recovery
//! run, computed by one caller at a time and shared by every other.
//!
//! The store's figures are full counts (0.76 s on a million rows of PostgreSQL), so they must
//! not be paid per request and per open browser. Two ways to read them:
//! - [`Figures::get`] is a single flight with a maximum age chosen by the caller: a snapshot
//!   computed less than `max_age` ago (the injected clock) is served as it is; otherwise the
//!   caller computes a new one while the others wait for it, and every caller that arrived
//!   before that computation *started* takes its result instead of counting again. So
//!   `max_age = 0` (the JSON routes) still gives exact figures, as fresh as the request, while a
//!   burst of requests costs at most two computations instead of one each.
//! - [`Figures::maintained`] (the self-refreshing overview) never makes a page wait for a count
//!   while the snapshot it holds is usable: past `max_age` it answers with the snapshot it has
//!   and starts one background computation (at most one at a time), so the figures are kept
//!   about `max_age` old while anyone looks, and the count is paid by no request. Only a
//!   snapshot older than [`STALE_LIMIT`] times `max_age` (nobody looked for a while) or none at
//!   all makes the page wait, as [`Figures::get`] does.
//!
//! Which computation a caller may share is decided by a sequence number, not by time, so a
//! frozen test clock cannot make a stale snapshot look fresh to the exact routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::recovery::RecoveryRun;
use orchestrator_core::store::{QueueDepth, Stats};
use tokio::sync::Mutex;

use crate::state::AppState;

/// What the last recovery run looked like when the snapshot was taken.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "console"), allow(dead_code))]
pub(crate) enum LastRun {
    /// Recovery is not configured (or its store did not answer): nothing to show.
    Unknown,
    /// No run yet.
    Never,
    /// The newest run.
    Run(Box<RecoveryRun>),
}

/// The figures of one computation.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "console"), allow(dead_code))]
pub(crate) struct Snapshot {
    /// Which computation this was (1, 2, ...).
    seq: u64,
    /// When it started (the injected clock).
    pub(crate) computed_at: DateTime<Utc>,
    /// The store's counts.
    pub(crate) stats: Stats,
    /// `None` when the queue could not say.
    pub(crate) depth: Option<QueueDepth>,
    /// The newest recovery run.
    pub(crate) last_run: LastRun,
}

/// How many times its maximum age a snapshot may be and still be shown by
/// [`Figures::maintained`] while a fresher one is computed.
pub(crate) const STALE_LIMIT: u32 = 6;

/// The shared aggregate (see the module docs). One per [`AppState`].
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// Computations started so far; a caller notes it on arrival.
    started: AtomicU64,
    /// Held across a computation: that is the single flight.
    flight: Mutex<()>,
    /// The latest snapshot, readable while a computation runs.
    latest: std::sync::Mutex<Option<Arc<Snapshot>>>,
    /// A background computation of [`Figures::maintained`] is under way.
    refreshing: AtomicBool,
}

impl Figures {
    /// A snapshot at most `max_age` old, or one whose computation started after this call.
    pub(crate) async fn get(
        &self,
        app: &AppState,
        max_age: Duration,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let arrived = self.started.load(Ordering::SeqCst);
        let _flight = self.flight.lock().await;
        let now = app.clock().now();
        if let Some(snapshot) = self.latest()
            && (snapshot.seq > arrived || age(&snapshot, now) < max_age)
        {
            return Ok(snapshot);
        }
        let seq = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let snapshot = Arc::new(compute(app, seq, now).await?);
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot.clone());
        Ok(snapshot)
    }

    /// The snapshot it holds if it is at most `max_age` old; if it is older but within
    /// [`STALE_LIMIT`] times `max_age`, that same snapshot while one background computation
    /// refreshes it; otherwise (none yet, or long unread) a fresh one, as [`Figures::get`].
    pub(crate) async fn maintained(
        &self,
        app: &AppState,
        max_age: Duration,
    ) -> Result<Arc<Snapshot>, StoreError> {
        if let Some(snapshot) = self.latest() {
            let age = age(&snapshot, app.clock().now());
            if age < max_age {
                return Ok(snapshot);
            }
            if age < max_age.saturating_mul(STALE_LIMIT) {
                self.refresh_in_background(app, max_age);
                return Ok(snapshot);
            }
        }
        self.get(app, max_age).await
    }

    /// Starts one computation on the runtime unless one is under way.
    fn refresh_in_background(&self, app: &AppState, max_age: Duration) {
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let app = app.clone();
        tokio::spawn(async move {
            let figures = app.figures();
            if let Err(err) = figures.get(&app, max_age).await {
                tracing::warn!(error = %err, "figures: background refresh failed");
            }
            figures.refreshing.store(false, Ordering::SeqCst);
        });
    }

    fn latest(&self) -> Option<Arc<Snapshot>> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How long ago `snapshot` was computed, by the injected clock (zero if the clock went back).
fn age(snapshot: &Snapshot, now: DateTime<Utc>) -> Duration {
    now.signed_duration_since(snapshot.computed_at)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// Counts everything once.
async fn compute(app: &AppState, seq: u64, now: DateTime<Utc>) -> Result<Snapshot, StoreError> {
    let stats = app.tasks().stats(now).await?;
    let depth = match app.queue().depth(now).await {
        Ok(depth) => Some(depth),
        Err(err) => {
            tracing::warn!(error = %err, "figures: queue depth unavailable");
            None
        }
    };
    let last_run = match app.reconciler() {
        None => LastRun::Unknown,
        Some(reconciler) => match reconciler.store().list_runs(None, 1).await {
            Ok(runs) => runs
                .into_iter()
                .next()
                .map_or(LastRun::Never, |run| LastRun::Run(Box::new(run))),
            Err(err) => {
                tracing::warn!(error = %err, "figures: recovery runs unavailable");
                LastRun::Unknown
            }
        },
    };
    Ok(Snapshot {
        seq,
        computed_at: now,
        stats,
        depth,
        last_run,
    })
}
