//! The reconciler: runs stored in the [`RecoveryStore`], executed by whoever holds the
//! one-runner lease, page by page, saving the cursor after every page.
//!
//! - [`Reconciler::request_run`] stores a manual run (`pending`); [`Reconciler::tick`] takes the
//!   one-runner lease ([`RunnerLock`]: the store's, or a Redis lock), finishes every open run (oldest first: a crashed or rate-limited one resumes from its
//!   hook and cursor), then starts a scheduled one when asked.
//! - A scheduled run's window: from the previous successful run's start minus the overlap (the
//!   first look-back when there is none), never more than the maximum look-back, to now.
//! - A page's missing GUIDs are recovered one by one: `fetch` ingests the request through
//!   [`Ingestor::ingest_recovered`], `redeliver` asks GitHub to send it again; never both. A
//!   redelivery is recorded as an intent before it is asked for
//!   ([`RecoveryStore::claim_redelivery`]): a run resumed after a crash does not ask again for
//!   the same attempt within the redelivery window; a refused request forgets its intent.
//! - A lease that expires (SQLite, Redis) is renewed before every page and every recovery once
//!   a third of its TTL has passed; a runner that finds its lease lost stops at once, without
//!   saving, and the holder resumes the run from its stored cursor.
//! - A rate limit, an open breaker or an unreachable GitHub stops the run as `interrupted` with
//!   its cursor before the page it was on; a permanent error on a hook (no permission) is
//!   counted and the run goes on with the next hook, ending `failed`.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use super::config::{RecoveryConfig, RequestError, RunRequest};
use super::hook::HookRef;
use super::lock::{RunnerLock, StoreLock};
use super::log::{DeliveryLog, DeliverySummary};
use super::plan::{Candidate, plan_page};
use crate::clock::Clock;
use crate::delivery::headers;
use crate::engine::Ingestor;
use crate::error::{ClientError, ClientErrorKind, StoreError};
use crate::observe::{NoopObserver, Observer};
use crate::store::recovery::{
    LearnedHook, MAX_MISSING_GUIDS, RecoveryMode, RecoveryRun, RecoveryStore, RedeliveryIntent,
    RunStatus, RunnerLease,
};

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The store failed; the run stays open and resumes later.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a hook's paging ended.
enum HookEnd {
    /// Paged back to the cutoff (or the log's end).
    Done,
    /// A permanent error: counted, the next hook goes on.
    Failed,
    /// A limit or an outage: the run stops here and resumes from the saved cursor.
    Interrupted,
    /// The runner lease expired and another runner holds it: stop without saving.
    LeaseLost,
}

/// The lease of the running tick and when it was last renewed.
struct Held {
    lease: RunnerLease,
    renewed_at: DateTime<Utc>,
    lost: bool,
}

/// The reconciler. Cheap to share (`Arc`).
pub struct Reconciler {
    log: Arc<dyn DeliveryLog>,
    store: Arc<dyn RecoveryStore>,
    lock: Arc<dyn RunnerLock>,
    ingestor: Arc<Ingestor>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    config: RecoveryConfig,
    holder: String,
    /// Hooks learned from stored deliveries, and the time learned through.
    learned: tokio::sync::Mutex<(Vec<HookRef>, Option<DateTime<Utc>>)>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("config", &self.config)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler reading `log`, storing runs in `store` and ingesting through `ingestor`;
    /// one runner at a time by the store's lease (see [`with_lock`](Self::with_lock)).
    pub fn new(
        log: Arc<dyn DeliveryLog>,
        store: Arc<dyn RecoveryStore>,
        ingestor: Arc<Ingestor>,
        clock: Arc<dyn Clock>,
        config: RecoveryConfig,
    ) -> Self {
        Self {
            log,
            lock: Arc::new(StoreLock(store.clone())),
            store,
            ingestor,
            clock,
            observer: Arc::new(NoopObserver),
            config,
            holder: Uuid::new_v4().to_string(),
            learned: tokio::sync::Mutex::new((Vec::new(), None)),
        }
    }

    /// Reports recoveries and runs to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Takes the one-runner lock from `lock` (a Redis lock) instead of the store's lease.
    pub fn with_lock(mut self, lock: Arc<dyn RunnerLock>) -> Self {
        self.lock = lock;
        self
    }

    /// The settings.
    pub fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// The store of runs.
    pub fn store(&self) -> &Arc<dyn RecoveryStore> {
        &self.store
    }

    /// Checks `request` and stores it as a pending manual run; nothing is stored when it is
    /// refused. Run it with [`tick`](Self::tick).
    pub async fn request_run(&self, request: RunRequest) -> Result<RecoveryRun, RunRequestError> {
        let now = self.clock.now();
        let until = request.until.unwrap_or(now);
        if until > now {
            return Err(RequestError::Future(until).into());
        }
        let since = request
            .since
            .unwrap_or_else(|| crate::clock::sub(now, self.config.max_lookback));
        if since > until {
            return Err(RequestError::InvertedWindow { since, until }.into());
        }
        let hooks = match request.hooks {
            Some(hooks) if !hooks.is_empty() => hooks,
            _ => self.configured_hooks(now).await?,
        };
        if hooks.is_empty() {
            return Err(RequestError::NoHooks.into());
        }
        let mode = request.mode.unwrap_or(self.config.mode);
        let run = new_run("manual", mode, request.dry_run, &hooks, since, until, now);
        self.store.create_run(&run).await?;
        Ok(run)
    }

    /// Takes the one-runner lease (returns `None` at once when another runner holds it),
    /// finishes every open run, then, when `scheduled`, runs a scheduled pass. Answers the runs
    /// it worked on.
    pub async fn tick(&self, scheduled: bool) -> Result<Option<Vec<RecoveryRun>>, RecoveryError> {
        let now = self.clock.now();
        let Some(lease) = self
            .lock
            .try_lock(&self.holder, self.config.lease_ttl, now)
            .await?
        else {
            tracing::debug!("recovery: another runner holds the lease");
            return Ok(None);
        };
        let mut held = Held {
            lease,
            renewed_at: now,
            lost: false,
        };
        let mut done = Vec::new();
        while let Some(run) = self.store.open_run().await? {
            let run = self.execute(run, &mut held).await?;
            let stop = run.status == RunStatus::Interrupted || held.lost;
            done.push(run);
            if stop {
                return Ok(Some(done));
            }
        }
        if scheduled && let Some(run) = self.scheduled_run().await? {
            done.push(self.execute(run, &mut held).await?);
        }
        Ok(Some(done))
    }

    /// Renews the lease once a third of its TTL has passed; `false` when it was lost.
    async fn keep(&self, held: &mut Held) -> Result<bool, RecoveryError> {
        if held.lost {
            return Ok(false);
        }
        let now = self.clock.now();
        let ttl = self.config.lease_ttl;
        if now < crate::clock::add(held.renewed_at, ttl / 3) {
            return Ok(true);
        }
        if held.lease.renew(ttl, now).await? {
            held.renewed_at = now;
            return Ok(true);
        }
        tracing::warn!("recovery: the runner lease expired and another runner took it; stopping");
        held.lost = true;
        Ok(false)
    }

    /// Stores the scheduled run due now (`None` when there is no hook to read).
    async fn scheduled_run(&self) -> Result<Option<RecoveryRun>, RecoveryError> {
        let now = self.clock.now();
        let hooks = self.configured_hooks(now).await?;
        if hooks.is_empty() {
            tracing::debug!("recovery: no hook configured or learned yet");
            return Ok(None);
        }
        let oldest = crate::clock::sub(now, self.config.max_lookback);
        let since = match self.store.last_success().await? {
            Some(start) => crate::clock::sub(start, self.config.overlap),
            None => crate::clock::sub(now, self.config.first_lookback),
        }
        .max(oldest);
        let run = new_run(
            "scheduled",
            self.config.mode,
            false,
            &hooks,
            since,
            now,
            now,
        );
        self.store.create_run(&run).await?;
        Ok(Some(run))
    }

    /// The configured hooks plus, with `auto`, those learned from stored deliveries.
    async fn configured_hooks(&self, now: DateTime<Utc>) -> Result<Vec<HookRef>, StoreError> {
        let mut hooks = self.config.hooks.hooks.clone();
        if self.config.hooks.auto {
            for hook in self.learn_hooks(now).await? {
                if !hooks.contains(&hook) {
                    hooks.push(hook);
                }
            }
        }
        Ok(hooks)
    }

    /// Hooks from stored deliveries' headers; the first call reads the maximum look-back,
    /// later ones only what was stored since the previous call.
    async fn learn_hooks(&self, now: DateTime<Utc>) -> Result<Vec<HookRef>, StoreError> {
        let mut learned = self.learned.lock().await;
        let since = learned
            .1
            .unwrap_or_else(|| crate::clock::sub(now, self.config.max_lookback));
        for hook in self.store.learned_hooks(since).await? {
            if let Some(hook) = hook_of(&hook)
                && !learned.0.contains(&hook)
            {
                learned.0.push(hook);
            }
        }
        learned.1 = Some(now);
        Ok(learned.0.clone())
    }

    /// Works on `run` until it ends or is interrupted, saving it after every page.
    async fn execute(
        &self,
        mut run: RecoveryRun,
        held: &mut Held,
    ) -> Result<RecoveryRun, RecoveryError> {
        let now = self.clock.now();
        run.status = RunStatus::Running;
        run.started_at.get_or_insert(now);
        run.updated_at = now;
        self.store.save_run(&run).await?;
        tracing::info!(run_id = %run.run_id, hooks = ?run.hooks, since = %run.since, until = %run.until,
            mode = run.mode.as_str(), dry_run = run.dry_run, "recovery run started");
        let hooks: Vec<String> = run.hooks.clone();
        let start = run
            .hook
            .as_ref()
            .and_then(|h| hooks.iter().position(|x| x == h))
            .unwrap_or(0);
        let mut failed_hooks = 0;
        let mut handled = HashSet::new();
        for name in &hooks[start..] {
            if run.hook.as_deref() != Some(name.as_str()) {
                run.hook = Some(name.clone());
                run.cursor = None;
            }
            let end = match name.parse::<HookRef>() {
                Ok(hook) => self.page_hook(&mut run, &hook, &mut handled, held).await?,
                Err(err) => {
                    note_error(&mut run, err.to_string());
                    HookEnd::Failed
                }
            };
            match end {
                HookEnd::Done => {}
                HookEnd::Failed => failed_hooks += 1,
                HookEnd::Interrupted => return self.end(run, RunStatus::Interrupted).await,
                HookEnd::LeaseLost => return Ok(run),
            }
        }
        run.hook = None;
        run.cursor = None;
        let status = if failed_hooks > 0 || run.failed > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.end(run, status).await
    }

    async fn end(
        &self,
        mut run: RecoveryRun,
        status: RunStatus,
    ) -> Result<RecoveryRun, RecoveryError> {
        let now = self.clock.now();
        run.status = status;
        run.updated_at = now;
        if !status.is_open() {
            run.finished_at = Some(now);
        }
        self.store.save_run(&run).await?;
        let success_at = (status == RunStatus::Succeeded).then(|| now.timestamp());
        self.observer.recovery_run(status.as_str(), success_at);
        tracing::info!(run_id = %run.run_id, status = status.as_str(), listed = run.listed,
            missing = run.missing, recovered = run.recovered, failed = run.failed,
            errors = run.errors, "recovery run ended");
        Ok(run)
    }

    /// Pages one hook from the run's cursor back to its cutoff.
    async fn page_hook(
        &self,
        run: &mut RecoveryRun,
        hook: &HookRef,
        handled: &mut HashSet<String>,
        held: &mut Held,
    ) -> Result<HookEnd, RecoveryError> {
        for _ in 0..self.config.max_pages {
            if !self.keep(held).await? {
                return Ok(HookEnd::LeaseLost);
            }
            let page = match self.log.list_deliveries(hook, run.cursor.as_deref()).await {
                Ok(page) => page,
                Err(err) => return Ok(self.client_failure(run, hook, &err)),
            };
            let router = self.ingestor.router();
            let relevant_only = self.config.relevant_only;
            let plan = plan_page(&page.deliveries, run.since, run.until, |d| {
                !relevant_only || router.may_route(&d.event, d.action.as_deref())
            });
            let fresh: Vec<Candidate> = plan
                .candidates
                .into_iter()
                .filter(|c| !handled.contains(&c.guid))
                .collect();
            let guids: Vec<String> = fresh.iter().map(|c| c.guid.clone()).collect();
            let known = self.store.known_deliveries(&guids).await?;
            for candidate in fresh.iter().filter(|c| !known.contains(&c.guid)) {
                if !self.keep(held).await? {
                    return Ok(HookEnd::LeaseLost);
                }
                if let Some(end) = self.recover(run, hook, candidate).await? {
                    self.store.save_run(run).await?;
                    return Ok(end);
                }
                handled.insert(candidate.guid.clone());
            }
            run.listed += plan.listed;
            run.cursor = page.next_cursor.clone();
            run.updated_at = self.clock.now();
            self.store.save_run(run).await?;
            if plan.reached_cutoff || page.next_cursor.is_none() {
                return Ok(HookEnd::Done);
            }
        }
        tracing::warn!(hook = %hook, pages = self.config.max_pages, "recovery: page limit reached");
        Ok(HookEnd::Done)
    }

    /// Recovers one missing GUID; `Some` when the run must stop here.
    async fn recover(
        &self,
        run: &mut RecoveryRun,
        hook: &HookRef,
        candidate: &Candidate,
    ) -> Result<Option<HookEnd>, RecoveryError> {
        let redeliver = !run.dry_run && run.mode == RecoveryMode::Redeliver;
        if redeliver && !self.claim_redelivery(run, hook, candidate).await? {
            return Ok(None);
        }
        run.missing += 1;
        if run.missing_guids.len() < MAX_MISSING_GUIDS {
            run.missing_guids.push(candidate.guid.clone());
        }
        if run.dry_run {
            return Ok(None);
        }
        let attempt = &candidate.attempt;
        let result = match run.mode {
            RecoveryMode::Redeliver => self.log.redeliver(hook, attempt.id).await,
            RecoveryMode::Fetch => self.fetch(hook, attempt).await,
        };
        if let Err(err) = &result
            && redeliver
            && refused(err)
        {
            // GitHub refused it (a limit, no permission): nothing is on its way, ask again later.
            self.store
                .release_redelivery(&candidate.guid, run.run_id)
                .await?;
        }
        Ok(match result {
            Ok(()) => {
                run.recovered += 1;
                self.observer.delivery_recovered(run.mode.as_str());
                tracing::info!(guid = %candidate.guid, hook = %hook, mode = run.mode.as_str(),
                    event = %attempt.event, "missing delivery recovered");
                None
            }
            Err(err) if stops_run(&err) => {
                // Not counted as missing twice: the page is read again on resume.
                run.missing -= 1;
                run.missing_guids.retain(|g| g != &candidate.guid);
                Some(self.client_failure(run, hook, &err))
            }
            Err(err) => {
                run.failed += 1;
                note_error(run, format!("{}: {err}", candidate.guid));
                None
            }
        })
    }

    /// Records the intent to redeliver `candidate`'s attempt; `false` when that attempt was
    /// already asked for within the redelivery window (by this run before a crash, or another).
    async fn claim_redelivery(
        &self,
        run: &RecoveryRun,
        hook: &HookRef,
        candidate: &Candidate,
    ) -> Result<bool, RecoveryError> {
        let now = self.clock.now();
        let intent = RedeliveryIntent {
            guid: candidate.guid.clone(),
            attempt_id: candidate.attempt.id,
            hook: hook.to_string(),
            run_id: run.run_id,
            requested_at: now,
        };
        let not_before = crate::clock::sub(now, self.config.redelivery_window);
        let claimed = self.store.claim_redelivery(&intent, not_before).await?;
        if !claimed {
            tracing::info!(guid = %candidate.guid, hook = %hook, attempt = candidate.attempt.id,
                "recovery: redelivery already asked for within the window; not asked again");
        }
        Ok(claimed)
    }

    /// Reads one delivery's request and ingests it (a GUID stored meanwhile is a duplicate).
    async fn fetch(&self, hook: &HookRef, attempt: &DeliverySummary) -> Result<(), ClientError> {
        let request = self.log.get_delivery(hook, attempt.id).await?;
        let map = request_headers(&request.headers, attempt);
        let body = serde_json::to_vec(&request.payload).map_err(|e| {
            ClientError::new(ClientErrorKind::Permanent, None, "payload not JSON").with_source(e)
        })?;
        self.ingestor
            .ingest_recovered(&map, Bytes::from(body))
            .await
            .map(|_| ())
            .map_err(|e| {
                let kind = match &e {
                    crate::engine::IngestError::Store(_) => {
                        ClientErrorKind::Retryable { retry_after: None }
                    }
                    _ => ClientErrorKind::Permanent,
                };
                ClientError::new(kind, None, format!("recovered delivery not stored: {e}"))
            })
    }

    fn client_failure(&self, run: &mut RecoveryRun, hook: &HookRef, err: &ClientError) -> HookEnd {
        note_error(run, format!("{hook}: {err}"));
        if stops_run(err) {
            tracing::warn!(hook = %hook, error = %err, "recovery interrupted; it resumes from its cursor");
            HookEnd::Interrupted
        } else {
            tracing::warn!(hook = %hook, error = %err, "recovery: hook skipped");
            HookEnd::Failed
        }
    }
}

/// Why [`Reconciler::request_run`] started nothing.
#[derive(Debug, thiserror::Error)]
pub enum RunRequestError {
    /// The request is invalid (HTTP 400).
    #[error(transparent)]
    Invalid(#[from] RequestError),
    /// The store failed (HTTP 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn new_run(
    trigger: &str,
    mode: RecoveryMode,
    dry_run: bool,
    hooks: &[HookRef],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> RecoveryRun {
    RecoveryRun {
        run_id: Uuid::now_v7(),
        trigger: trigger.to_owned(),
        mode,
        dry_run,
        hooks: hooks.iter().map(HookRef::to_string).collect(),
        since,
        until,
        status: RunStatus::Pending,
        hook: None,
        cursor: None,
        listed: 0,
        missing: 0,
        recovered: 0,
        failed: 0,
        errors: 0,
        last_error: None,
        missing_guids: Vec::new(),
        created_at: now,
        started_at: None,
        finished_at: None,
        updated_at: now,
    }
}

fn note_error(run: &mut RecoveryRun, message: String) {
    run.errors += 1;
    run.last_error = Some(message);
}

/// Whether a failed request surely had no effect: refused by a limit, the breaker or a 4xx.
/// A 5xx, a timeout or a lost connection may have reached GitHub, so a redelivery intent is kept.
fn refused(err: &ClientError) -> bool {
    !err.is_outcome_unknown() && !matches!(err.kind(), ClientErrorKind::Retryable { .. })
}

/// A limit, an open breaker, an outage or a store failure: try again later, from the cursor.
fn stops_run(err: &ClientError) -> bool {
    !matches!(err.kind(), ClientErrorKind::Permanent)
}

/// The hook a learned one names: an App hook, or a repository / organization hook whose path
/// the delivery's repository gives.
pub fn hook_of(learned: &LearnedHook) -> Option<HookRef> {
    let repo = learned
        .repository
        .as_deref()
        .and_then(crate::github::RepoRef::parse);
    match learned.target_type.as_deref() {
        Some("integration") => Some(HookRef::App),
        Some("repository") => repo.map(|r| HookRef::Repo {
            owner: r.owner,
            name: r.name,
            hook_id: learned.hook_id,
        }),
        Some("organization") => repo.map(|r| HookRef::Org {
            org: r.owner,
            hook_id: learned.hook_id,
        }),
        _ => None,
    }
}

/// The request headers of a recovered delivery: GitHub's, lower-cased, as JSON (the API gives
/// the payload as JSON whatever the hook's content type), with the GUID and event from the
/// summary when missing. Unusable headers are left out.
fn request_headers(listed: &[(String, String)], attempt: &DeliverySummary) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in listed {
        let lower = name.to_ascii_lowercase();
        if lower == "content-type" || lower == "content-length" {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    map.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in [
        (headers::DELIVERY, &attempt.guid),
        (headers::EVENT, &attempt.event),
    ] {
        if !map.contains_key(name)
            && let Ok(value) = HeaderValue::from_str(value)
        {
            map.insert(name, value);
        }
    }
    map
}
