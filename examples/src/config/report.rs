//! Reporting back on the pull request (issue 17): `REPORT_TO_GITHUB` (`checks`, `statuses` or
//! `off`; unset: checks with a GitHub App, statuses with a token, off without credentials),
//! `REPORT_CHECK_NAME` (default `webhook-orchestrator`), `REPORT_PR_COMMENT` (default false),
//! the reporter's pace (`REPORT_INTERVAL_SECONDS`, the coalescing window: every change between
//! two ticks is one request with the latest state) and back-off (`REPORT_RETRY_INITIAL_SECONDS`,
//! `REPORT_RETRY_MAX_SECONDS`, `REPORT_RETRY_MAX_TRIES`). Into [`Config::report`] and
//! [`Config::report_to`]; the mode for the credentials is resolved by [`Config::report_mode`],
//! so credentials set after reading still count. `CODEGEN_MANUAL_FIX_REPOS` (the repositories
//! whose failed checks wait for "Ask Codegen to fix") goes to [`Config::handlers`].

use orchestrator_core::github::RepoRef;
use orchestrator_core::report::ReportMode;

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    if r.get("REPORT_TO_GITHUB").is_some() {
        let choices = [
            ("checks", ReportMode::Checks),
            ("statuses", ReportMode::Statuses),
            ("off", ReportMode::Off),
        ];
        c.report_to = Some(r.choice("REPORT_TO_GITHUB", ReportMode::Off, &choices));
    }
    if let Some(name) = r.get("REPORT_CHECK_NAME") {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            r.problem("REPORT_CHECK_NAME", "must be 1 to 100 characters");
        } else {
            c.report.check_name = name.to_owned();
        }
    }
    c.report.pr_comment = r.bool("REPORT_PR_COMMENT", c.report.pr_comment);
    read_pace(r, c);
    read_manual_fix(r, c);
    let mode = c.report_mode();
    if mode == ReportMode::Checks && c.github.app.is_none() {
        r.problem(
            "REPORT_TO_GITHUB",
            "checks need a GitHub App (GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY); use statuses with a token",
        );
    }
    if mode == ReportMode::Statuses && c.github.app.is_none() && c.github.token.is_none() {
        r.problem(
            "REPORT_TO_GITHUB",
            "statuses need GITHUB_TOKEN or a GitHub App",
        );
    }
    if !c.handlers.manual_fix_repos.is_empty() && mode != ReportMode::Checks {
        r.problem(
            "CODEGEN_MANUAL_FIX_REPOS",
            "needs check runs (a GitHub App, REPORT_TO_GITHUB=checks): only a check run has the \
             Ask Codegen to fix button that starts these runs",
        );
    }
}

/// The tick interval and the retry back-off of failed reports.
fn read_pace(r: &mut Reader<'_>, c: &mut Config) {
    let report = &mut c.report;
    report.interval = r.secs("REPORT_INTERVAL_SECONDS", report.interval);
    if report.interval.is_zero() {
        r.problem("REPORT_INTERVAL_SECONDS", "must be at least 1");
    }
    report.retry_initial = r.secs("REPORT_RETRY_INITIAL_SECONDS", report.retry_initial);
    report.retry_max = r.secs("REPORT_RETRY_MAX_SECONDS", report.retry_max);
    if report.retry_initial.is_zero() {
        r.problem("REPORT_RETRY_INITIAL_SECONDS", "must be at least 1");
    } else if report.retry_max < report.retry_initial {
        r.problem(
            "REPORT_RETRY_MAX_SECONDS",
            "must be at least REPORT_RETRY_INITIAL_SECONDS",
        );
    }
    report.max_failures = r.parse(
        "REPORT_RETRY_MAX_TRIES",
        report.max_failures,
        "a whole number",
    );
    if report.max_failures == 0 {
        r.problem("REPORT_RETRY_MAX_TRIES", "must be at least 1");
    }
}

/// `CODEGEN_MANUAL_FIX_REPOS`: `owner/name` entries or `*`, comma-separated.
fn read_manual_fix(r: &mut Reader<'_>, c: &mut Config) {
    let Some(value) = r.get("CODEGEN_MANUAL_FIX_REPOS") else {
        return;
    };
    let repos: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |s: &String| s == "*" || RepoRef::parse(s).is_some();
    match repos.iter().find(|s| !valid(s)) {
        Some(bad) => r.problem(
            "CODEGEN_MANUAL_FIX_REPOS",
            format!("{bad:?} is neither owner/name nor * (comma-separated)"),
        ),
        None => c.handlers.manual_fix_repos = repos,
    }
}

impl Config {
    /// Where reports go: `REPORT_TO_GITHUB`, else checks with a GitHub App, statuses with a
    /// token, off without credentials.
    pub fn report_mode(&self) -> ReportMode {
        self.report_to.unwrap_or_else(|| {
            ReportMode::default_for(self.github.app.is_some(), self.github.token.is_some())
        })
    }
}
