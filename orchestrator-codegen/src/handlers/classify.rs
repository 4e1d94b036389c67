//! Classification rules: what kind of file a path is, what kind of failure a check is, and the
//! reasons an agent run is asked for. Pure functions over [`HandlerConfig`], so the decision
//! tables are tested without any I/O.

use serde::{Deserialize, Serialize};

use crate::config::HandlerConfig;

/// What a changed file is. Each file is exactly one kind, tested in this order: test, config,
/// code, other (a `tests/foo.rs` is a test, not code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// Under a test directory, or named like a test (`test_x.py`, `x_test.go`, `x.spec.ts`).
    Test,
    /// Configuration (`*.yml`, `Dockerfile`, `.github/workflows/*`).
    Config,
    /// Source code by extension.
    Code,
    /// Anything else (docs, images).
    Other,
}

/// Classifies a repository path.
pub fn classify_file(path: &str, rules: &HandlerConfig) -> FileKind {
    let lower = path.to_ascii_lowercase();
    let (dirs, name) = match lower.rsplit_once('/') {
        Some((dirs, name)) => (dirs, name),
        None => ("", lower.as_str()),
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
        _ => (name, None),
    };
    let is_code_ext = ext.is_some_and(|e| rules.code_extensions.iter().any(|c| c == e));
    let in_test_dir = dirs
        .split('/')
        .any(|d| rules.test_dirs.iter().any(|t| t == d));
    // `FooTest.java` / `FooTests.cs`: only the original case tells it from `contest.py`.
    let original_stem = path
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .split('.')
        .next()
        .unwrap_or("");
    let camel_test = original_stem.ends_with("Test") || original_stem.ends_with("Tests");
    let test_name = stem.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_spec")
        || stem.ends_with(".test")
        || stem.ends_with(".spec")
        || camel_test;
    if is_code_ext && (in_test_dir || test_name) {
        return FileKind::Test;
    }
    let in_ci_dir = lower.starts_with(".github/") || lower.starts_with(".circleci/");
    let config_ext = ext.is_some_and(|e| rules.config_extensions.iter().any(|c| c == e));
    if in_ci_dir || config_ext || rules.config_file_names.iter().any(|n| n == name) {
        return FileKind::Config;
    }
    if is_code_ext {
        return FileKind::Code;
    }
    FileKind::Other
}

/// How many files of each kind a change touched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileCounts {
    pub(crate) code: usize,
    pub(crate) test: usize,
    pub(crate) config: usize,
    pub(crate) other: usize,
}

impl FileCounts {
    pub(crate) fn add(&mut self, kind: FileKind) {
        match kind {
            FileKind::Code => self.code += 1,
            FileKind::Test => self.test += 1,
            FileKind::Config => self.config += 1,
            FileKind::Other => self.other += 1,
        }
    }
}

/// What kind of failure a check run is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// `test`, `spec`, `unit`, `integration`, `e2e`.
    Test,
    /// `lint`, `format`, `fmt`, `style`, `clippy`.
    Lint,
    /// `build`, `compile`.
    Build,
    /// Anything else.
    Other,
}

/// Classifies a check by name (case-insensitive; tests win over lint over build, as before).
pub fn classify_check(name: &str) -> CheckKind {
    let lower = name.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&["test", "spec", "unit", "integration", "e2e"]) {
        CheckKind::Test
    } else if has(&["lint", "format", "fmt", "style", "clippy"]) {
        CheckKind::Lint
    } else if has(&["build", "compile"]) {
        CheckKind::Build
    } else {
        CheckKind::Other
    }
}

/// Why an agent run is asked for. Stored in `trigger_reasons` and passed to `codegen_trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerReason {
    /// A pull request was opened with code changes.
    NewPrWithCodeChanges,
    /// A draft pull request was marked ready for review.
    ReadyForReview,
    /// A push to a pull request changed more code files than the threshold.
    SignificantCodeChanges,
    /// A test check failed.
    TestFailure,
    /// A lint / format check failed.
    LintFailure,
    /// A build / compile check failed.
    BuildFailure,
    /// Another check failed.
    CheckFailure,
}

impl TriggerReason {
    /// The reason a failed check of `kind` gives.
    pub fn for_check(kind: CheckKind) -> Self {
        match kind {
            CheckKind::Test => TriggerReason::TestFailure,
            CheckKind::Lint => TriggerReason::LintFailure,
            CheckKind::Build => TriggerReason::BuildFailure,
            CheckKind::Other => TriggerReason::CheckFailure,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerReason::NewPrWithCodeChanges => "new_pr_with_code_changes",
            TriggerReason::ReadyForReview => "ready_for_review",
            TriggerReason::SignificantCodeChanges => "significant_code_changes",
            TriggerReason::TestFailure => "test_failure",
            TriggerReason::LintFailure => "lint_failure",
            TriggerReason::BuildFailure => "build_failure",
            TriggerReason::CheckFailure => "check_failure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_fall_into_one_kind_each() {
        let rules = HandlerConfig::default();
        let table = [
            ("src/main.rs", FileKind::Code),
            ("app/models/user.rb", FileKind::Code),
            ("tests/api.rs", FileKind::Test),
            ("pkg/server_test.go", FileKind::Test),
            ("src/test_utils.py", FileKind::Test),
            ("web/Button.test.tsx", FileKind::Test),
            ("spec/models/user_spec.rb", FileKind::Test),
            ("src/UserServiceTest.java", FileKind::Test),
            ("src/contest.py", FileKind::Code),
            ("Cargo.toml", FileKind::Config),
            ("Dockerfile", FileKind::Config),
            (".github/workflows/ci.yml", FileKind::Config),
            ("tests/fixtures/data.json", FileKind::Config),
            ("README.md", FileKind::Other),
            ("docs/logo.png", FileKind::Other),
        ];
        for (path, kind) in table {
            assert_eq!(classify_file(path, &rules), kind, "{path}");
        }
    }

    #[test]
    fn checks_classify_by_name() {
        assert_eq!(classify_check("Unit Tests (ubuntu)"), CheckKind::Test);
        assert_eq!(classify_check("rspec"), CheckKind::Test);
        assert_eq!(classify_check("clippy"), CheckKind::Lint);
        assert_eq!(classify_check("cargo fmt"), CheckKind::Lint);
        assert_eq!(classify_check("build (release)"), CheckKind::Build);
        assert_eq!(classify_check("deploy-preview"), CheckKind::Other);
        assert_eq!(
            TriggerReason::for_check(CheckKind::Lint).as_str(),
            "lint_failure"
        );
    }
}
