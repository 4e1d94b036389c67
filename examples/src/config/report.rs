//! Reporting back on the pull request (issue 17): `REPORT_TO_GITHUB` (`checks`, `statuses` or
//! `off`; unset: checks with a GitHub App, statuses with a token, off without credentials),
//! `REPORT_CHECK_NAME` (default `webhook-orchestrator`), `REPORT_PR_COMMENT` (default false).
//! Into [`Config::report`] and [`Config::report_to`]; the mode for the credentials is resolved by
//! [`Config::report_mode`], so credentials set after reading still count.

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
