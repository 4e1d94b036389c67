//! Validated settings of the two clients and of the handlers.
//!
//! The server reads the environment (`GITHUB_TOKEN`, `GITHUB_APP_ID`, `GITHUB_API_URL`,
//! `CODEGEN_TOKEN`, `CODEGEN_ORG_ID`, `CODEGEN_API_URL`, ...) and fills these structs; this crate
//! never reads the environment itself. Secrets are held in [`Secret`], whose `Debug` is redacted,
//! so no config type can leak a token into a log line. [`Secret`] is the core's
//! (`orchestrator_core::secret::Secret`), re-exported here.

use std::time::Duration;

use orchestrator_core::breaker::BreakerConfig;
use orchestrator_core::budget::AgentBudgetConfig;
pub use orchestrator_core::secret::Secret;
use url::Url;

/// Bounds on one HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connection set-up (default 10 s).
    pub connect: Duration,
    /// The whole request, body included (default 30 s).
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            total: Duration::from_secs(30),
        }
    }
}

/// Authenticating as a GitHub App: a JWT signed with the App's key is exchanged for the token of
/// the installation a delivery came from.
#[derive(Debug, Clone)]
pub struct GitHubAppConfig {
    /// `GITHUB_APP_ID`.
    pub app_id: u64,
    /// The App's RSA private key, PEM (PKCS#1 as GitHub issues it, or PKCS#8).
    pub private_key_pem: Secret,
}

/// Settings of [`GitHubClient`](crate::github::GitHubClient).
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// `GITHUB_API_URL` (default `https://api.github.com`; GitHub Enterprise: `https://host/api/v3`).
    pub base_url: Url,
    /// `GITHUB_TOKEN`: used when no App is configured or a task has no installation id.
    pub token: Option<Secret>,
    /// App authentication, preferred when a task carries an installation id.
    pub app: Option<GitHubAppConfig>,
    /// `User-Agent` (GitHub rejects requests without one).
    pub user_agent: String,
    /// Request bounds.
    pub timeouts: Timeouts,
    /// Below this many remaining requests, further calls are deferred until the quota resets
    /// (default 50), so background analysis never starves other users of the same token.
    pub rate_limit_floor: u64,
    /// Page size for listings (GitHub's maximum, 100).
    pub per_page: u32,
    /// Safety bound on pages followed in one listing (default 50: 5,000 items; GitHub caps a
    /// pull request's file list at 3,000).
    pub max_pages: u32,
    /// The client's circuit breaker.
    pub breaker: BreakerConfig,
}

/// The default public GitHub API.
pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
/// The default Codegen API.
pub const DEFAULT_CODEGEN_API_URL: &str = "https://api.codegen.com";

// The two constants are valid URLs (checked by a unit test), so this cannot fail.
#[allow(clippy::expect_used)]
fn parse_default(url: &str) -> Url {
    Url::parse(url).expect("default API URL constants are valid")
}

impl Default for GitHubConfig {
    fn default() -> Self {
        Self {
            base_url: parse_default(DEFAULT_GITHUB_API_URL),
            token: None,
            app: None,
            user_agent: concat!("webhook-orchestrator/", env!("CARGO_PKG_VERSION")).to_owned(),
            timeouts: Timeouts::default(),
            rate_limit_floor: 50,
            per_page: 100,
            max_pages: 50,
            breaker: BreakerConfig::default(),
        }
    }
}

/// Settings of [`CodegenClient`](crate::codegen::CodegenClient).
#[derive(Debug, Clone)]
pub struct CodegenConfig {
    /// `CODEGEN_API_URL` (default `https://api.codegen.com`).
    pub base_url: Url,
    /// `CODEGEN_TOKEN`; without it (or without an org id) the client reports itself unconfigured.
    pub token: Option<Secret>,
    /// `CODEGEN_ORG_ID`.
    pub org_id: Option<i64>,
    /// `User-Agent`.
    pub user_agent: String,
    /// Request bounds.
    pub timeouts: Timeouts,
    /// The client's circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for CodegenConfig {
    fn default() -> Self {
        Self {
            base_url: parse_default(DEFAULT_CODEGEN_API_URL),
            token: None,
            org_id: None,
            user_agent: concat!("webhook-orchestrator/", env!("CARGO_PKG_VERSION")).to_owned(),
            timeouts: Timeouts::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// The decision rules of the handlers; defaults reproduce the earlier implementation.
#[derive(Debug, Clone)]
pub struct HandlerConfig {
    /// File extensions (without dot, lower case) that count as code.
    pub code_extensions: Vec<String>,
    /// File extensions that count as configuration.
    pub config_extensions: Vec<String>,
    /// File names (exact, lower case) that count as configuration (`dockerfile`, `makefile`, ...).
    pub config_file_names: Vec<String>,
    /// Path segments that mark a test file (`test`, `tests`, `spec`, `__tests__`).
    pub test_dirs: Vec<String>,
    /// A `synchronize` triggers an agent run when MORE than this many code files changed (3).
    pub synchronize_code_file_threshold: usize,
    /// Check conclusions that count as failures (`failure`, `cancelled`, `timed_out`).
    pub failure_conclusions: Vec<String>,
    /// First wait before reading an agent run again (30 s); doubles up to `poll_max`.
    pub poll_initial: Duration,
    /// Longest wait between two reads of an agent run (5 min).
    pub poll_max: Duration,
    /// How long a run is followed before the task gives up with status `timeout` (2 h).
    pub max_wait: Duration,
    /// Priority of the `codegen_trigger` follow-ups (higher runs first).
    pub trigger_priority: i32,
    /// The agent budget: a global rate of run creations (10 per minute by default), runs per
    /// repository per hour (unset by default) and runs per pull-request head SHA (1 by
    /// default; applied by the agent-run ledger).
    pub budget: AgentBudgetConfig,
    /// A run whose creation answer was lost and that the agent's run list does not show is
    /// looked for again until the intent is this old (60 s), before the task stops for a person:
    /// the list may lag behind the creation.
    pub reconcile_grace: Duration,
    /// While the agent's run list cannot be read (5xx, rate limit, open breaker), looking for a
    /// lost run is retried until the intent is this old (1 h); then the task stops for a person.
    pub reconcile_max_wait: Duration,
    /// Agent run statuses that end the `codegen_trigger` task `failed` (compared
    /// case-insensitively; `CODEGEN_FAILURE_STATUSES`): ERROR, FAILED, TIMEOUT,
    /// MAX_ITERATIONS_REACHED, OUT_OF_TOKENS. Such a task is never retried automatically (each
    /// run costs); a manual retry asks for one new run.
    pub run_failure_statuses: Vec<String>,
    /// Repositories (`owner/name`, compared case-insensitively; `*`: every repository) whose
    /// failed-check analyses start no Codegen run on their own (`CODEGEN_MANUAL_FIX_REPOS`):
    /// the analysis ends with `codegen_on_request: true`, its check asks for a person
    /// (`action_required` with the "Ask Codegen to fix" button), and pressing it starts the run.
    /// Empty by default (every run is automatic); pull-request analyses are not affected.
    pub manual_fix_repos: Vec<String>,
}

/// The agent run statuses that fail a `codegen_trigger` task by default.
pub const DEFAULT_RUN_FAILURE_STATUSES: &[&str] = &[
    "ERROR",
    "FAILED",
    "TIMEOUT",
    "MAX_ITERATIONS_REACHED",
    "OUT_OF_TOKENS",
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for HandlerConfig {
    fn default() -> Self {
        Self {
            code_extensions: strings(&[
                "rs", "py", "js", "jsx", "ts", "tsx", "mjs", "cjs", "go", "java", "kt", "kts",
                "scala", "rb", "php", "c", "h", "cc", "cpp", "cxx", "hpp", "cs", "swift", "m",
                "mm", "dart", "ex", "exs", "erl", "hs", "clj", "lua", "pl", "r", "sh", "bash",
                "sql", "vue", "svelte", "zig", "nim", "fs", "groovy",
            ]),
            config_extensions: strings(&[
                "json",
                "yaml",
                "yml",
                "toml",
                "ini",
                "cfg",
                "conf",
                "env",
                "properties",
                "xml",
                "lock",
                "gradle",
            ]),
            config_file_names: strings(&[
                "dockerfile",
                "makefile",
                ".gitignore",
                ".dockerignore",
                ".editorconfig",
                ".env",
                "procfile",
                "gemfile",
                "requirements.txt",
                "go.mod",
                "go.sum",
                "codeowners",
            ]),
            test_dirs: strings(&["test", "tests", "spec", "specs", "__tests__", "testing"]),
            synchronize_code_file_threshold: 3,
            failure_conclusions: strings(&["failure", "cancelled", "timed_out"]),
            poll_initial: Duration::from_secs(30),
            poll_max: Duration::from_secs(300),
            max_wait: Duration::from_secs(2 * 60 * 60),
            trigger_priority: 5,
            budget: AgentBudgetConfig::default(),
            reconcile_grace: Duration::from_secs(60),
            reconcile_max_wait: Duration::from_secs(60 * 60),
            run_failure_statuses: strings(DEFAULT_RUN_FAILURE_STATUSES),
            manual_fix_repos: Vec::new(),
        }
    }
}

impl HandlerConfig {
    /// Whether a check conclusion counts as a failure (case-insensitive).
    pub fn is_failure_conclusion(&self, conclusion: Option<&str>) -> bool {
        conclusion.is_some_and(|c| {
            self.failure_conclusions
                .iter()
                .any(|f| f.eq_ignore_ascii_case(c))
        })
    }
}

impl HandlerConfig {
    /// Whether failed-check analyses of `repository` (`owner/name`) wait for a person's "Ask
    /// Codegen to fix" instead of starting a run ([`manual_fix_repos`](Self::manual_fix_repos)).
    pub fn fixes_on_request(&self, repository: Option<&str>) -> bool {
        self.manual_fix_repos
            .iter()
            .any(|r| r == "*" || repository.is_some_and(|repo| r.eq_ignore_ascii_case(repo.trim())))
    }

    /// Whether an agent run status is one of `run_failure_statuses` (case-insensitive).
    pub fn is_run_failure(&self, status: Option<&str>) -> bool {
        status.is_some_and(|s| {
            self.run_failure_statuses
                .iter()
                .any(|f| f.eq_ignore_ascii_case(s.trim()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_secrets_are_redacted() {
        let mut gh = GitHubConfig::default();
        assert_eq!(gh.base_url.as_str(), "https://api.github.com/");
        gh.token = Some(Secret::new("ghp_supersecret"));
        gh.app = Some(GitHubAppConfig {
            app_id: 1,
            private_key_pem: Secret::new("-----BEGIN"),
        });
        let shown = format!("{gh:?}");
        assert!(
            !shown.contains("supersecret") && !shown.contains("BEGIN"),
            "{shown}"
        );
        let cg = CodegenConfig {
            token: Some(Secret::new("cg_secret")),
            ..Default::default()
        };
        assert_eq!(cg.base_url.as_str(), "https://api.codegen.com/");
        assert!(!format!("{cg:?}").contains("cg_secret"));
    }

    #[test]
    fn failure_conclusions_compare_case_insensitively() {
        let c = HandlerConfig::default();
        assert!(c.is_failure_conclusion(Some("FAILURE")));
        assert!(c.is_failure_conclusion(Some("timed_out")));
        assert!(!c.is_failure_conclusion(Some("success")));
        assert!(!c.is_failure_conclusion(None));
    }

    #[test]
    fn run_failure_statuses_compare_case_insensitively() {
        let c = HandlerConfig::default();
        for status in [
            "ERROR",
            "failed",
            "Timeout",
            "max_iterations_reached",
            "OUT_OF_TOKENS",
        ] {
            assert!(c.is_run_failure(Some(status)), "{status}");
        }
        for status in ["COMPLETE", "CANCELLED", "STOPPED", "RUNNING"] {
            assert!(!c.is_run_failure(Some(status)), "{status}");
        }
        assert!(!c.is_run_failure(None));
        let narrow = HandlerConfig {
            run_failure_statuses: vec!["error".into()],
            ..HandlerConfig::default()
        };
        assert!(narrow.is_run_failure(Some("ERROR")));
        assert!(!narrow.is_run_failure(Some("TIMEOUT")));
    }
}
