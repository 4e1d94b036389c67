//! The shared aggregate behind `GET /api/v1/metrics`, `GET /api/v1/admin/stats` and the
//! console's overview: the store's figures ([`Stats`]), the queue depth and the last recovery
//! run, computed by one caller at a time and shared by every other.
//!
//! The store's figures are full counts (0.76 s on a million rows of PostgreSQL), so they must
//! not be paid per request and per open browser. [`Figures::get`] is a single flight with a
//! maximum age chosen by the caller:
//! - a snapshot computed less than `max_age` ago (the injected clock) is served as it is: the
//!   self-refreshing overview asks for at most `console::OVERVIEW_MAX_AGE` (10 s), so however
//!   many browsers refresh it, the store counts at most once per that age;
//! - otherwise the caller computes a new one while the others wait for it (an async mutex held
//!   across the computation), and every caller that arrived before that computation *started*
//!   takes its result instead of counting again. So `max_age = 0` (the JSON routes) still gives
//!   exact figures, as fresh as the request, while a burst of requests costs at most two
//!   computations instead of one each.
//!
//! Which computation a caller may share is decided by a sequence number, not by time, so a
//! frozen test clock cannot make a stale snapshot look fresh to the exact routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The shared aggregate (see the module docs). One per [`AppState`].
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// Computations started so far; a caller notes it on arrival.
    started: AtomicU64,
    /// The latest snapshot. Held across a computation: that is the single flight.
    slot: Mutex<Option<Arc<Snapshot>>>,
}

impl Figures {
    /// A snapshot at most `max_age` old, or one whose computation started after this call.
    pub(crate) async fn get(
        &self,
        app: &AppState,
        max_age: Duration,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let arrived = self.started.load(Ordering::SeqCst);
        let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        let mut slot = self.slot.lock().await;
        let now = app.clock().now();
        if let Some(snapshot) = slot.as_ref()
            && (snapshot.seq > arrived || now.signed_duration_since(snapshot.computed_at) < max_age)
        {
            return Ok(snapshot.clone());
        }
        let seq = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let snapshot = Arc::new(compute(app, seq, now).await?);
        *slot = Some(snapshot.clone());
        Ok(snapshot)
    }
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
