//! The prompt a `codegen_trigger` sends: repository, pull request, reasons with one instruction
//! each, the failing checks (name, conclusion, title, summary) and the changed files.

use std::fmt::Write as _;

use super::CodegenTriggerInput;
use super::classify::TriggerReason;

/// Longest check summary copied into a prompt (check outputs can be 65 kB).
const MAX_SUMMARY_CHARS: usize = 2_000;

/// The instruction for one reason.
pub(crate) fn instruction(reason: TriggerReason) -> &'static str {
    match reason {
        TriggerReason::NewPrWithCodeChanges => {
            "Review the code changes of this new pull request; fix bugs and add missing tests."
        }
        TriggerReason::ReadyForReview => {
            "The pull request is ready for review: review it and fix problems before a human does."
        }
        TriggerReason::SignificantCodeChanges => {
            "The latest push changed many code files: check the new changes for regressions and fix them."
        }
        TriggerReason::TestFailure => {
            "Tests are failing: find the cause and fix the code (or the tests, if they are wrong)."
        }
        TriggerReason::LintFailure => {
            "Lint or formatting checks are failing: fix the reported issues."
        }
        TriggerReason::BuildFailure => "The build is failing: fix the compilation errors.",
        TriggerReason::CheckFailure => "A CI check is failing: find out why and fix it.",
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push_str("\n[truncated]");
    }
    out
}

/// Builds the prompt for `repository` / `pr_number` from the trigger's input.
pub fn build_prompt(
    repository: &str,
    pr_number: Option<i64>,
    input: &CodegenTriggerInput,
) -> String {
    // Writing to a String cannot fail; the results are ignored on purpose.
    let mut p = String::new();
    let _ = writeln!(p, "Repository: {repository}");
    if let Some(number) = pr_number {
        let _ = write!(p, "Pull request: #{number}");
        if let Some(title) = &input.pr_title {
            let _ = write!(p, " \"{title}\"");
        }
        if let Some(url) = &input.pr_url {
            let _ = write!(p, " ({url})");
        }
        p.push('\n');
    }
    if let Some(branch) = &input.head_ref {
        let _ = writeln!(p, "Branch: {branch}");
    }
    let _ = writeln!(p, "Requested by: {}", input.source_task_type);
    p.push_str("\nReasons:\n");
    for reason in &input.reasons {
        let _ = writeln!(p, "- {}: {}", reason.as_str(), instruction(*reason));
    }
    if !input.failing_checks.is_empty() {
        p.push_str("\nFailing checks:\n");
        for check in &input.failing_checks {
            let conclusion = check.conclusion.as_deref().unwrap_or("unknown");
            let _ = write!(p, "- {} ({conclusion})", check.name);
            if let Some(url) = &check.html_url {
                let _ = write!(p, " {url}");
            }
            p.push('\n');
            if let Some(title) = &check.title {
                let _ = writeln!(p, "  Title: {title}");
            }
            if let Some(summary) = check.summary.as_deref().filter(|s| !s.trim().is_empty()) {
                let _ = writeln!(
                    p,
                    "  Summary:\n{}",
                    truncate(summary.trim(), MAX_SUMMARY_CHARS)
                );
            }
        }
    }
    if !input.changed_files.is_empty() {
        p.push_str("\nChanged files:\n");
        for file in &input.changed_files {
            let _ = writeln!(p, "- {file}");
        }
    }
    p.push_str("\nPush your fixes to the pull request's branch and summarise what you changed.\n");
    p
}
