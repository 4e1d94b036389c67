//! [`Reporter`]: one [`tick`](Reporter::tick) reads the tasks changed since the cursor and the
//! reports due for a retry, and sends what changed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::view::{self, ReportView, fingerprint};
use super::{ReportApi, ReportConfig, ReportMode, comment};
use crate::clock;
use crate::error::{ClientError, ClientErrorKind, StoreError};
use crate::observe::Observer;
use crate::store::TaskStore;
use crate::store::report::{ReportCursor, ReportKind, ReportRecord, ReportStore};
use crate::task::{Task, TaskType};

/// The name of the reporter's cursor and lease row.
const CURSOR: &str = "github";

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickSummary {
    /// Whether this reporter held the lease (otherwise it did nothing).
    pub leased: bool,
    /// Requests GitHub accepted.
    pub sent: u32,
    /// Requests that failed (retried later).
    pub failed: u32,
    /// Reports looked at that had not changed.
    pub unchanged: u32,
}

/// Sends the state of PR-level tasks to GitHub. Cheap to share; run one tick at a time.
pub struct Reporter {
    store: Arc<dyn ReportStore>,
    tasks: Arc<dyn TaskStore>,
    api: Arc<dyn ReportApi>,
    observer: Arc<dyn Observer>,
    config: ReportConfig,
    holder: String,
    /// Until when this reporter surely holds the lease (renewed once half of it is used, so an
    /// idle reporter writes to the store every `lease / 2`, not every tick).
    leased_until: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("config", &self.config)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    /// A reporter named `holder` (unique per process: it holds the lease) over `store`'s cursor
    /// and records, reading tasks from `tasks`, sending through `api`.
    pub fn new(
        store: Arc<dyn ReportStore>,
        tasks: Arc<dyn TaskStore>,
        api: Arc<dyn ReportApi>,
        observer: Arc<dyn Observer>,
        config: ReportConfig,
        holder: impl Into<String>,
    ) -> Self {
        Self {
            store,
            tasks,
            api,
            observer,
            config,
            holder: holder.into(),
            leased_until: std::sync::Mutex::new(None),
        }
    }

    /// Whether this reporter holds the lease at `now`, renewing it when half of it is used.
    async fn hold_lease(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let half = self.config.lease / 2;
        let cached = *self.leased_until.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_some_and(|until| clock::add(now, half) < until) {
            return Ok(true);
        }
        let until = clock::add(now, self.config.lease);
        let held = self
            .store
            .lease_reporter(CURSOR, &self.holder, until, now)
            .await?;
        *self.leased_until.lock().unwrap_or_else(|e| e.into_inner()) = held.then_some(until);
        Ok(held)
    }

    /// The configuration.
    pub fn config(&self) -> &ReportConfig {
        &self.config
    }

    /// One round: take the lease, report every task changed since the cursor and every report
    /// due for a retry, move the cursor. Store errors end the tick (the next one tries again);
    /// GitHub errors are recorded per report and never end it.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickSummary, StoreError> {
        let mut summary = TickSummary::default();
        if self.config.mode == ReportMode::Off {
            return Ok(summary);
        }
        if !self.hold_lease(now).await? {
            return Ok(summary);
        }
        summary.leased = true;
        let cursor = self
            .store
            .report_cursor(CURSOR)
            .await?
            .unwrap_or_else(ReportCursor::start);
        let changed = self.store.changed_tasks(&cursor, self.config.batch).await?;
        let mut roots: Vec<Uuid> = Vec::new();
        for task in &changed {
            if let Some(root) = root_of(task)
                && !roots.contains(&root)
            {
                roots.push(root);
            }
        }
        let due = self.store.due_reports(now, self.config.batch).await?;
        for task_id in due.iter().filter_map(|r| r.task_id) {
            if !roots.contains(&task_id) {
                roots.push(task_id);
            }
        }
        for root in roots {
            let retry_comment = due
                .iter()
                .any(|r| r.task_id == Some(root) && r.kind == ReportKind::Comment);
            if !self
                .report_task(root, retry_comment, now, &mut summary)
                .await?
            {
                self.forget(&due, root, now).await?;
            }
        }
        if let Some(last) = changed.last() {
            let floor = ReportCursor {
                updated_at: before(now, self.config.overlap),
                id: 0,
            };
            let next = ReportCursor::of(last).min(floor).max(cursor);
            if next != cursor {
                self.store.save_report_cursor(CURSOR, &next, now).await?;
            }
        }
        Ok(summary)
    }

    /// Renders and, when changed, sends the report of the task `root_id`; the pull request's
    /// comment follows when the task's report changed (or the comment's retry is due), so two
    /// tasks of one pull request never take turns editing it. False when the task is gone.
    async fn report_task(
        &self,
        root_id: Uuid,
        retry_comment: bool,
        now: DateTime<Utc>,
        summary: &mut TickSummary,
    ) -> Result<bool, StoreError> {
        let Some(root) = self.tasks.get_task(root_id).await?.map(|d| d.task) else {
            return Ok(false);
        };
        let codegen = if view::is_pr_level(&root.task_type) {
            let children = self.store.child_tasks(root_id).await?;
            children
                .into_iter()
                .rev()
                .find(|c| c.task_type == TaskType::CODEGEN_TRIGGER)
        } else if root.task_type == TaskType::CODEGEN_TRIGGER {
            None
        } else {
            return Ok(true);
        };
        let superseding = self.superseding_sha(&root, codegen.as_ref()).await?;
        let Some(view) = view::render(
            &self.config.check_name,
            &root,
            codegen.as_ref(),
            superseding.as_deref(),
        ) else {
            return Ok(true);
        };
        let kind = match self.config.mode {
            ReportMode::Checks => ReportKind::CheckRun,
            _ => ReportKind::Status,
        };
        let key = ReportRecord::task_key(root_id);
        let changed = self.send_if_changed(kind, key, &view, now, summary).await?;
        if self.config.pr_comment && (changed || retry_comment) {
            let key = ReportRecord::comment_key(&view.repository.full_name(), view.pr_number);
            self.send_if_changed(ReportKind::Comment, key, &view, now, summary)
                .await?;
        }
        Ok(true)
    }

    /// The task of due retries is gone (retention removed it): nothing is owed any more.
    async fn forget(
        &self,
        due: &[ReportRecord],
        task_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for record in due.iter().filter(|r| r.task_id == Some(task_id)) {
            let mut record = record.clone();
            record.retry_at = None;
            record.updated_at = now;
            self.store.save_report(&record).await?;
        }
        Ok(())
    }

    /// The newer commit of a superseded task (the cancel feature's `superseded_by`), if any.
    async fn superseding_sha(
        &self,
        root: &Task,
        codegen: Option<&Task>,
    ) -> Result<Option<String>, StoreError> {
        let newer = superseded_by(root).or_else(|| codegen.and_then(superseded_by));
        let Some(newer) = newer else {
            return Ok(None);
        };
        Ok(self
            .tasks
            .get_task(newer)
            .await?
            .and_then(|d| d.task.commit_sha))
    }

    /// Sends `view` as a report of `kind` under `key` unless GitHub already has exactly it, or a
    /// failed send of it waits for its retry time. True when a request was made.
    async fn send_if_changed(
        &self,
        kind: ReportKind,
        key: String,
        view: &ReportView,
        now: DateTime<Utc>,
        summary: &mut TickSummary,
    ) -> Result<bool, StoreError> {
        let task_id = view.external_id.parse::<Uuid>().ok();
        let mut record = self
            .store
            .report(&key)
            .await?
            .unwrap_or_else(|| ReportRecord::new(key, kind, task_id, now));
        let print = fingerprint(&match kind {
            ReportKind::CheckRun => view.check_run_body(false),
            ReportKind::Status => view.status_body(),
            ReportKind::Comment => serde_json::Value::String(comment::body(view)),
        });
        if record.fingerprint.as_deref() == Some(print.as_str()) {
            if record.retry_at.is_some() {
                record.retry_at = None;
                record.failures = 0;
                record.updated_at = now;
                self.store.save_report(&record).await?;
            }
            summary.unchanged += 1;
            return Ok(false);
        }
        if record.retry_at.is_some_and(|at| at > now) {
            return Ok(false);
        }
        record.task_id = task_id;
        record.updated_at = now;
        match self.send(kind, view, &mut record).await {
            Ok(()) => {
                self.observer.github_report(kind.as_str(), "ok");
                summary.sent += 1;
                record.fingerprint = Some(print);
                record.failures = 0;
                record.retry_at = None;
                record.last_error = None;
            }
            Err(err) => {
                summary.failed += 1;
                self.failed(&mut record, &err, now);
            }
        }
        self.store.save_report(&record).await?;
        Ok(true)
    }

    /// Records a failed send: counted, logged, and retried after a back-off (at least what
    /// GitHub asked for), until `max_failures`.
    fn failed(&self, record: &mut ReportRecord, err: &ClientError, now: DateTime<Utc>) {
        record.failures = record.failures.saturating_add(1);
        record.last_error = Some(err.to_string());
        let outcome = match err.kind() {
            ClientErrorKind::RateLimited { .. } => "rate_limited",
            ClientErrorKind::CircuitOpen { .. } => "circuit_open",
            _ => "failed",
        };
        if record.failures >= self.config.max_failures {
            record.retry_at = None;
            self.observer.github_report(record.kind.as_str(), "gave_up");
            tracing::warn!(key = %record.key, failures = record.failures, error = %err,
                "reporting to GitHub failed; giving up until the task changes again");
            return;
        }
        self.observer.github_report(record.kind.as_str(), outcome);
        let wait = self.backoff(record.failures).max(retry_after(err));
        record.retry_at = Some(clock::add(now, wait));
        tracing::warn!(key = %record.key, failures = record.failures, retry_in_secs = wait.as_secs(),
            error = %err, "reporting to GitHub failed; will retry");
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.config
            .retry_initial
            .saturating_mul(factor)
            .min(self.config.retry_max)
    }

    /// One request (a check run's first report creates it; later ones edit it).
    async fn send(
        &self,
        kind: ReportKind,
        view: &ReportView,
        record: &mut ReportRecord,
    ) -> Result<(), ClientError> {
        let (installation, repo) = (view.installation_id, &view.repository);
        match (kind, record.external_id) {
            (ReportKind::CheckRun, None) => {
                let body = view.check_run_body(true);
                let id = self.api.create_check_run(installation, repo, &body).await?;
                record.external_id = Some(id);
                Ok(())
            }
            (ReportKind::CheckRun, Some(id)) => {
                let body = view.check_run_body(false);
                self.api
                    .update_check_run(installation, repo, id, &body)
                    .await
            }
            (ReportKind::Status, _) => {
                let body = view.status_body();
                self.api
                    .create_status(installation, repo, &view.head_sha, &body)
                    .await
            }
            (ReportKind::Comment, None) => {
                let body = comment::body(view);
                let id = self
                    .api
                    .create_comment(installation, repo, view.pr_number, &body)
                    .await?;
                record.external_id = Some(id);
                Ok(())
            }
            (ReportKind::Comment, Some(id)) => {
                let body = comment::body(view);
                self.api.update_comment(installation, repo, id, &body).await
            }
        }
    }
}

/// The task whose report a change of `task` affects: itself for a PR-level task, its parent
/// for a `codegen_trigger` follow-up (or itself without a parent); `None` for the rest.
fn root_of(task: &Task) -> Option<Uuid> {
    if view::is_pr_level(&task.task_type) {
        return Some(task.task_id);
    }
    if task.task_type == TaskType::CODEGEN_TRIGGER {
        return Some(task.parent_task_id.unwrap_or(task.task_id));
    }
    None
}

/// The task that superseded `task` (`superseded_by`, set by the cancel feature), if any. Read
/// through the task's JSON so that reporting does not depend on the order the two features
/// land in; a task without the field has no successor.
fn superseded_by(task: &Task) -> Option<Uuid> {
    if task.status != crate::task::TaskStatus::Cancelled {
        return None;
    }
    let json = serde_json::to_value(task).ok()?;
    json.get("superseded_by")?.as_str()?.parse().ok()
}

fn retry_after(err: &ClientError) -> Duration {
    match err.kind() {
        ClientErrorKind::RateLimited { retry_after }
        | ClientErrorKind::Retryable { retry_after } => retry_after.unwrap_or_default(),
        ClientErrorKind::CircuitOpen { retry_after } => retry_after,
        _ => Duration::ZERO,
    }
}

/// `at - d`, saturating at the Unix epoch (the cursor's start).
fn before(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .max(DateTime::<Utc>::UNIX_EPOCH)
}
