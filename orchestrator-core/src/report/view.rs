//! What a pull request's author sees for one task: [`ReportView`], rendered from the task rows
//! alone ([`render`]), and the JSON bodies GitHub takes for it (check run, commit status).
//!
//! One view per *PR-level* task (`pull_request_analysis`, `check_failure_analysis`,
//! `check_suite_failure_analysis`): its `codegen_trigger` follow-up does not get a check of its
//! own but drives the analysis' check on (in progress while the Codegen run goes, its page as
//! `details_url`, the run's end as the conclusion). A `codegen_trigger` without such a parent is
//! reported on its own.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::github::RepoRef;
use crate::task::{Task, TaskStatus, TaskType};

/// GitHub's limit on a check run's summary.
const MAX_SUMMARY: usize = 60_000;
/// GitHub's limit on a commit status description.
const MAX_DESCRIPTION: usize = 140;
/// The `requested_action` identifier of the "Ask Codegen to fix" button.
pub const ASK_CODEGEN_ACTION: &str = "codegen_fix";
/// The output key (`true`) of a failed-check analysis that found work for Codegen but started
/// no run because automatic runs are off for its repository: its check asks a person
/// (`action_required` with the "Ask Codegen to fix" button).
pub const CODEGEN_ON_REQUEST: &str = "codegen_on_request";

/// A check run's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Stored, not started.
    Queued,
    /// Being analysed, or its Codegen run is going.
    InProgress,
    /// Finished; see the conclusion.
    Completed,
}

impl CheckStatus {
    /// GitHub's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Queued => "queued",
            CheckStatus::InProgress => "in_progress",
            CheckStatus::Completed => "completed",
        }
    }
}

/// A completed check run's `conclusion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// The analysis found work and the Codegen run finished well.
    Success,
    /// The Codegen run (or the analysis itself) failed.
    Failure,
    /// Nothing to do, skipped, Codegen not configured.
    Neutral,
    /// Cancelled or superseded by a newer commit.
    Cancelled,
    /// A person must act (the Codegen run could not be found again, or a failure waits for
    /// "Ask Codegen to fix").
    ActionRequired,
}

impl Conclusion {
    /// GitHub's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
            Conclusion::Cancelled => "cancelled",
            Conclusion::ActionRequired => "action_required",
        }
    }

    /// The commit-status `state` standing in for it (statuses know no neutral / cancelled).
    pub const fn status_state(self) -> &'static str {
        match self {
            Conclusion::Success | Conclusion::Neutral => "success",
            Conclusion::Failure | Conclusion::ActionRequired => "failure",
            Conclusion::Cancelled => "error",
        }
    }
}

/// Everything reported for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportView {
    /// The check name / status context.
    pub name: String,
    /// The repository.
    pub repository: RepoRef,
    /// The App installation (for its token).
    pub installation_id: Option<i64>,
    /// The pull request.
    pub pr_number: i64,
    /// The commit the check is on.
    pub head_sha: String,
    /// Our id on GitHub's side (`external_id`): the task id.
    pub external_id: String,
    /// Status.
    pub status: CheckStatus,
    /// Conclusion once completed.
    pub conclusion: Option<Conclusion>,
    /// Short title.
    pub title: String,
    /// Markdown summary.
    pub summary: String,
    /// The Codegen run's page, once known.
    pub details_url: Option<String>,
    /// Whether the "Ask Codegen to fix" button is offered.
    pub ask_codegen: bool,
}

impl ReportView {
    /// The body of `POST /repos/{o}/{r}/check-runs` (`create`) or of the `PATCH` of an existing
    /// one (the same without `head_sha`). An edit without the button sends `"actions": []`, so a
    /// button offered before (a failure waiting for a person) is gone once it was pressed.
    pub fn check_run_body(&self, create: bool) -> Value {
        let mut body = json!({
            "name": self.name,
            "external_id": self.external_id,
            "status": self.status.as_str(),
            "output": { "title": self.title, "summary": self.summary },
        });
        if create {
            body["head_sha"] = json!(self.head_sha);
        }
        if let Some(conclusion) = self.conclusion {
            body["conclusion"] = json!(conclusion.as_str());
        }
        if let Some(url) = &self.details_url {
            body["details_url"] = json!(url);
        }
        if self.ask_codegen {
            body["actions"] = json!([{
                "label": "Ask Codegen to fix",
                "description": "Start a Codegen run for this failure",
                "identifier": ASK_CODEGEN_ACTION,
            }]);
        } else if !create {
            body["actions"] = json!([]);
        }
        body
    }

    /// The body of `POST /repos/{o}/{r}/statuses/{sha}`.
    pub fn status_body(&self) -> Value {
        let state = match self.conclusion {
            Some(c) => c.status_state(),
            None => "pending",
        };
        let mut body = json!({
            "state": state,
            "context": self.name,
            "description": truncate(&self.title, MAX_DESCRIPTION),
        });
        if let Some(url) = &self.details_url {
            body["target_url"] = json!(url);
        }
        body
    }

    /// A short line for the pull-request comment.
    pub fn comment_line(&self) -> String {
        let state = match self.conclusion {
            Some(c) => c.as_str(),
            None => self.status.as_str(),
        };
        let link = self
            .details_url
            .as_ref()
            .map(|u| format!(" ([Codegen run]({u}))"))
            .unwrap_or_default();
        format!(
            "| `{}` | `{}` | **{}** | {}{} |",
            escape(&self.name),
            short_sha(&self.head_sha),
            state,
            escape(&self.title),
            link
        )
    }
}

/// A stable fingerprint of a body: what was sent, so an unchanged view is not sent again.
pub fn fingerprint(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    hex::encode(&digest[..16])
}

/// Whether `task_type` gets a check of its own.
pub fn is_pr_level(task_type: &TaskType) -> bool {
    *task_type == TaskType::PULL_REQUEST_ANALYSIS
        || *task_type == TaskType::CHECK_FAILURE_ANALYSIS
        || *task_type == TaskType::CHECK_SUITE_FAILURE_ANALYSIS
}

/// The check name of `task`: `name` for pull-request analyses and Codegen runs,
/// `name / <check>` for the analysis of a failed check, `name / check suite` for a suite.
pub fn check_name(base: &str, task: &Task) -> String {
    if task.task_type == TaskType::CHECK_FAILURE_ANALYSIS {
        let check = str_field(&task.input_data, "name").unwrap_or("check");
        return format!("{base} / {check}");
    }
    if task.task_type == TaskType::CHECK_SUITE_FAILURE_ANALYSIS {
        return format!("{base} / check suite");
    }
    base.to_owned()
}

/// The view of `root` (a PR-level task, or a `codegen_trigger` without one) with its latest
/// `codegen_trigger` follow-up `codegen`, or `None` when `root` concerns no pull-request head
/// (no repository, number or commit). `superseded_by_sha` names the newer commit of a
/// superseded task.
pub fn render(
    base_name: &str,
    root: &Task,
    codegen: Option<&Task>,
    superseded_by_sha: Option<&str>,
) -> Option<ReportView> {
    let repository = RepoRef::parse(root.repository.as_deref()?)?;
    let pr_number = root.pr_number?;
    let head_sha = root.commit_sha.clone().filter(|s| !s.is_empty())?;
    let phase = if root.task_type == TaskType::CODEGEN_TRIGGER {
        codegen_phase(root, superseded_by_sha)
    } else {
        analysis_phase(root, codegen, superseded_by_sha)
    };
    let codegen_task = if root.task_type == TaskType::CODEGEN_TRIGGER {
        Some(root)
    } else {
        codegen
    };
    let details_url = codegen_task.and_then(run_url);
    let superseded = superseded_by_sha.filter(|_| phase.conclusion == Some(Conclusion::Cancelled));
    let summary = truncate(
        &summary(
            root,
            codegen_task,
            &phase,
            details_url.as_deref(),
            superseded,
        ),
        MAX_SUMMARY,
    );
    Some(ReportView {
        name: check_name(base_name, root),
        installation_id: root
            .input_data
            .get("installation_id")
            .and_then(Value::as_i64),
        repository,
        pr_number,
        head_sha,
        external_id: root.task_id.to_string(),
        status: phase.status,
        conclusion: phase.conclusion,
        title: phase.title,
        summary,
        details_url,
        ask_codegen: phase.ask_codegen,
    })
}

/// Status, conclusion and title of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Phase {
    status: CheckStatus,
    conclusion: Option<Conclusion>,
    title: String,
    ask_codegen: bool,
}

impl Phase {
    fn open(status: CheckStatus, title: impl Into<String>) -> Self {
        Self {
            status,
            conclusion: None,
            title: title.into(),
            ask_codegen: false,
        }
    }

    fn done(conclusion: Conclusion, title: impl Into<String>) -> Self {
        Self {
            status: CheckStatus::Completed,
            conclusion: Some(conclusion),
            title: title.into(),
            ask_codegen: false,
        }
    }
}

fn cancelled(superseded_by_sha: Option<&str>, what: &str) -> Phase {
    match superseded_by_sha {
        Some(sha) => Phase::done(
            Conclusion::Cancelled,
            format!("Superseded by {}", short_sha(sha)),
        ),
        None => Phase::done(Conclusion::Cancelled, format!("{what} cancelled")),
    }
}

fn analysis_phase(root: &Task, codegen: Option<&Task>, superseded: Option<&str>) -> Phase {
    match root.status {
        TaskStatus::Pending if root.started_at.is_none() => {
            Phase::open(CheckStatus::Queued, "Queued for analysis")
        }
        TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying => {
            Phase::open(CheckStatus::InProgress, "Analysing")
        }
        TaskStatus::Failed => Phase::done(Conclusion::Failure, "The analysis failed"),
        TaskStatus::Cancelled => cancelled(superseded, "Analysis"),
        TaskStatus::Completed => match codegen {
            Some(c) => codegen_phase(c, None),
            None => {
                let flag = |key: &str| {
                    root.output_data
                        .as_ref()
                        .and_then(|o| o.get(key))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                };
                if flag(CODEGEN_ON_REQUEST) && is_check_analysis(root) {
                    let mut phase =
                        Phase::done(Conclusion::ActionRequired, "Waiting for Ask Codegen to fix");
                    phase.ask_codegen = true;
                    phase
                } else if flag("should_trigger_codegen") {
                    Phase::done(Conclusion::Success, "Analysis done")
                } else {
                    Phase::done(Conclusion::Neutral, "Nothing for Codegen to do")
                }
            }
        },
    }
}

fn is_check_analysis(task: &Task) -> bool {
    task.task_type == TaskType::CHECK_FAILURE_ANALYSIS
        || task.task_type == TaskType::CHECK_SUITE_FAILURE_ANALYSIS
}

fn codegen_phase(c: &Task, superseded: Option<&str>) -> Phase {
    let output_status = c
        .output_data
        .as_ref()
        .and_then(|o| str_field(o, "status"))
        .unwrap_or_default();
    if budget_wait(c).is_some() {
        return Phase::open(CheckStatus::InProgress, "Waiting for the agent budget");
    }
    match c.status {
        TaskStatus::Pending if c.started_at.is_none() => {
            Phase::open(CheckStatus::InProgress, "Codegen run requested")
        }
        TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying => {
            if run_url(c).is_some() || c.codegen_task_id.is_some() {
                Phase::open(CheckStatus::InProgress, "Codegen run in progress")
            } else {
                Phase::open(CheckStatus::InProgress, "Starting a Codegen run")
            }
        }
        TaskStatus::Completed => match output_status {
            "completed" => Phase::done(Conclusion::Success, "Codegen run finished"),
            "failed" => Phase::done(Conclusion::Failure, "Codegen run failed"),
            "timeout" => Phase::done(Conclusion::Failure, "Codegen run did not finish in time"),
            "cancelled" => Phase::done(Conclusion::Cancelled, "Codegen run cancelled"),
            "skipped" => Phase::done(Conclusion::Neutral, "Codegen run skipped"),
            _ => Phase::done(Conclusion::Neutral, "Codegen task finished"),
        },
        // A run that ended in a failure status fails its task (output `status: failed`).
        TaskStatus::Failed => match output_status {
            "needs_attention" => {
                Phase::done(Conclusion::ActionRequired, "Codegen run needs an operator")
            }
            "failed" => Phase::done(Conclusion::Failure, "Codegen run failed"),
            "timeout" => Phase::done(Conclusion::Failure, "Codegen run did not finish in time"),
            _ => Phase::done(Conclusion::Failure, "Could not run Codegen"),
        },
        // A run a person stopped cancels its task (output `status: cancelled`).
        TaskStatus::Cancelled if superseded.is_none() && output_status == "cancelled" => {
            Phase::done(Conclusion::Cancelled, "Codegen run cancelled")
        }
        TaskStatus::Cancelled => cancelled(superseded, "Codegen run"),
    }
}

/// The Codegen run's page of a `codegen_trigger` task (http(s) only).
fn run_url(c: &Task) -> Option<String> {
    c.codegen_task_url
        .clone()
        .or_else(|| {
            c.output_data
                .as_ref()
                .and_then(|o| str_field(o, "web_url"))
                .map(str::to_owned)
        })
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The Markdown summary: why analysed, the run, why waiting, the newer commit of a superseded
/// task.
fn summary(
    root: &Task,
    codegen: Option<&Task>,
    phase: &Phase,
    url: Option<&str>,
    superseded_by_sha: Option<&str>,
) -> String {
    let mut lines = vec![format!("**{}**", escape(&phase.title)), String::new()];
    if let Some(sha) = superseded_by_sha {
        lines.push(format!(
            "**Superseded:** commit `{}` was pushed to this pull request; it is analysed instead",
            escape(sha)
        ));
    }
    lines.push(format!("**Why analysed:** {}", why(root)));
    if let Some(out) = root
        .output_data
        .as_ref()
        .filter(|_| root.task_type != TaskType::CODEGEN_TRIGGER)
    {
        lines.extend(analysis_lines(out));
    }
    if let Some(c) = codegen {
        lines.extend(run_lines(c, url));
    }
    for task in std::iter::once(root).chain(codegen) {
        if let Some(wait) = waiting(task) {
            lines.push(wait);
        }
    }
    if let Some(err) = root
        .error_message
        .as_deref()
        .filter(|_| root.status.is_terminal())
    {
        lines.push(format!("**Error:** {}", escape(err)));
    }
    if phase.ask_codegen {
        lines.push(
            "Automatic Codegen runs are off for this repository: use **Ask Codegen to fix** \
             above to start one run for this failure."
                .into(),
        );
    }
    lines.push(String::new());
    lines.push(format!("<sub>task `{}`</sub>", root.task_id));
    lines.join("\n")
}

fn why(root: &Task) -> String {
    let input = &root.input_data;
    let pr = root.pr_number.unwrap_or_default();
    if root.task_type == TaskType::PULL_REQUEST_ANALYSIS {
        let action = str_field(input, "action").unwrap_or("changed");
        return format!("pull request #{pr} was `{}`", escape(action));
    }
    if root.task_type == TaskType::CHECK_FAILURE_ANALYSIS {
        let name = str_field(input, "name").unwrap_or("a check");
        let conclusion = str_field(input, "conclusion").unwrap_or("failure");
        return format!(
            "check `{}` concluded `{}` on pull request #{pr}",
            escape(name),
            escape(conclusion)
        );
    }
    if root.task_type == TaskType::CHECK_SUITE_FAILURE_ANALYSIS {
        let conclusion = str_field(input, "conclusion").unwrap_or("failure");
        return format!(
            "the check suite concluded `{}` on pull request #{pr}",
            escape(conclusion)
        );
    }
    let source = str_field(input, "source_task_type").unwrap_or("an analysis");
    format!(
        "`{}` asked for a Codegen run on pull request #{pr}",
        escape(source)
    )
}

fn analysis_lines(out: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(reasons) = out.get("trigger_reasons").and_then(Value::as_array) {
        let names: Vec<String> = reasons
            .iter()
            .filter_map(Value::as_str)
            .map(|r| format!("`{}`", escape(r)))
            .collect();
        if !names.is_empty() {
            lines.push(format!("**Reasons:** {}", names.join(", ")));
        }
    }
    if let Some(files) = out.get("files_changed").and_then(Value::as_u64) {
        let n = |k: &str| out.get(k).and_then(Value::as_u64).unwrap_or(0);
        lines.push(format!(
            "**Files:** {files} changed ({} code, {} test, {} config)",
            n("code_files"),
            n("test_files"),
            n("config_files")
        ));
    }
    if let Some(skipped) = str_field(out, "skipped") {
        lines.push(format!("**Skipped:** {}", escape(skipped)));
    }
    lines
}

fn run_lines(c: &Task, url: Option<&str>) -> Vec<String> {
    let out = c.output_data.as_ref();
    let field = |k: &str| out.and_then(|o| str_field(o, k));
    let run = match (c.codegen_task_id.as_deref(), url) {
        (Some(id), Some(url)) => format!("[run {}]({url})", escape(id)),
        (Some(id), None) => format!("run {}", escape(id)),
        (None, Some(url)) => format!("[run]({url})"),
        (None, None) => "not started yet".to_owned(),
    };
    let mut lines = vec![format!("**Codegen:** {run}")];
    if let Some(status) = field("agent_status") {
        lines.push(format!("**Run status:** `{}`", escape(status)));
    }
    if let Some(result) = field("result").or_else(|| field("summary")) {
        lines.push(format!("**Result:** {}", escape(result)));
    }
    if let Some(reason) = field("reason") {
        lines.push(format!("**Why not:** {}", escape(reason)));
    }
    lines
}

/// Why an open task that already ran is waiting: the agent budget, or its next attempt and the
/// last error.
fn waiting(task: &Task) -> Option<String> {
    let open = matches!(task.status, TaskStatus::Pending | TaskStatus::Retrying);
    if !open || task.started_at.is_none() {
        return None;
    }
    if let Some((scope, until)) = budget_wait(task) {
        let limit = match scope {
            "repository" => "the repository's hourly limit of Codegen runs",
            _ => "the global rate of Codegen runs",
        };
        return Some(format!(
            "**Waiting for agent budget** until {} ({limit} is used up)",
            rfc3339(until)
        ));
    }
    let at = rfc3339(task.run_at);
    Some(match task.error_message.as_deref() {
        Some(err) => format!(
            "**Waiting:** next attempt at {at} (last error: {})",
            escape(err)
        ),
        None => format!("**Waiting:** next check at {at}"),
    })
}

/// The scope and end of an open task's wait for the agent budget: the deferral's marker in
/// `output_data` (`budget::OUTPUT_KEY`), as long as no failed attempt came after it.
fn budget_wait(task: &Task) -> Option<(&str, DateTime<Utc>)> {
    let open = matches!(task.status, TaskStatus::Pending | TaskStatus::Retrying);
    let marker = task
        .output_data
        .as_ref()?
        .get(crate::budget::OUTPUT_KEY)
        .filter(|_| open && task.started_at.is_some())?;
    let retry_count = marker.get("retry_count").and_then(Value::as_u64)?;
    if retry_count != u64::from(task.retry_count) {
        return None;
    }
    let until = str_field(marker, "until")?.parse::<DateTime<Utc>>().ok()?;
    Some((str_field(marker, "scope").unwrap_or("global"), until))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The first 7 characters of a SHA.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// Makes payload text safe inside Markdown: no HTML, no table breaks, no code-span breaks.
fn escape(text: &str) -> String {
    text.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
