//! The outbound clients: `GITHUB_TOKEN`, `GITHUB_APP_ID` + `GITHUB_APP_PRIVATE_KEY`,
//! `GITHUB_API_URL`, `CODEGEN_TOKEN` + `CODEGEN_ORG_ID`, `CODEGEN_API_URL`,
//! `CODEGEN_POLL_SECONDS`, `CIRCUIT_BREAKER_FAILURE_THRESHOLD`,
//! `CIRCUIT_BREAKER_RECOVERY_SECONDS` (both clients' breakers).

use std::time::Duration;

use orchestrator_codegen::GitHubAppConfig;
use orchestrator_core::secret::Secret;

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    codegen_credentials(r, c);
    c.github.token = r.secret("GITHUB_TOKEN");
    c.github.app = github_app(r);
    if let Some(url) = r
        .get("GITHUB_API_URL")
        .and_then(|u| r.url("GITHUB_API_URL", &u))
    {
        c.github.base_url = url;
    }
    if let Some(url) = r
        .get("CODEGEN_API_URL")
        .and_then(|u| r.url("CODEGEN_API_URL", &u))
    {
        c.codegen.base_url = url;
    }
    let breaker = &mut c.github.breaker;
    breaker.failure_threshold = r.parse(
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        breaker.failure_threshold,
        "a whole number",
    );
    if breaker.failure_threshold == 0 {
        r.problem("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "must be at least 1");
    }
    breaker.recovery = r.secs("CIRCUIT_BREAKER_RECOVERY_SECONDS", breaker.recovery);
    c.codegen.breaker = c.github.breaker;
    let poll = &mut c.handlers.poll_initial;
    *poll = r.secs("CODEGEN_POLL_SECONDS", *poll);
    if *poll < Duration::from_secs(1) {
        r.problem("CODEGEN_POLL_SECONDS", "must be at least 1");
    }
}

/// `CODEGEN_TOKEN` and `CODEGEN_ORG_ID`: both or neither.
fn codegen_credentials(r: &mut Reader<'_>, c: &mut Config) {
    match (r.secret("CODEGEN_TOKEN"), r.get("CODEGEN_ORG_ID")) {
        (Some(token), Some(org)) => {
            match org
                .parse::<u64>()
                .ok()
                .and_then(|id| i64::try_from(id).ok())
            {
                Some(org_id) => {
                    c.codegen.token = Some(token);
                    c.codegen.org_id = Some(org_id);
                }
                None => r.problem(
                    "CODEGEN_ORG_ID",
                    format!("{org:?} is not a numeric organization id"),
                ),
            }
        }
        (Some(_), None) => r.problem("CODEGEN_ORG_ID", "required when CODEGEN_TOKEN is set"),
        (None, Some(_)) => r.problem("CODEGEN_TOKEN", "required when CODEGEN_ORG_ID is set"),
        (None, None) => {}
    }
}

/// `GITHUB_APP_ID` and `GITHUB_APP_PRIVATE_KEY` (PEM text with `\n` escapes, or a file's path):
/// both or neither.
fn github_app(r: &mut Reader<'_>) -> Option<GitHubAppConfig> {
    match (r.get("GITHUB_APP_ID"), r.get("GITHUB_APP_PRIVATE_KEY")) {
        (Some(id), Some(key)) => {
            let app_id = id.parse::<u64>().ok();
            if app_id.is_none() {
                r.problem("GITHUB_APP_ID", format!("{id:?} is not a numeric app id"));
            }
            let pem = private_key(r, &key);
            app_id.zip(pem).map(|(app_id, pem)| GitHubAppConfig {
                app_id,
                private_key_pem: Secret::new(pem),
            })
        }
        (Some(_), None) => {
            r.problem(
                "GITHUB_APP_PRIVATE_KEY",
                "required when GITHUB_APP_ID is set",
            );
            None
        }
        (None, Some(_)) => {
            r.problem(
                "GITHUB_APP_ID",
                "required when GITHUB_APP_PRIVATE_KEY is set",
            );
            None
        }
        (None, None) => None,
    }
}

/// The PEM text of `GITHUB_APP_PRIVATE_KEY`: the value itself, or the file it names.
fn private_key(r: &mut Reader<'_>, key: &str) -> Option<String> {
    if key.contains("-----BEGIN") {
        return Some(key.replace("\\n", "\n"));
    }
    match std::fs::read_to_string(key) {
        Ok(pem) if pem.contains("-----BEGIN") => Some(pem),
        Ok(_) => {
            r.problem(
                "GITHUB_APP_PRIVATE_KEY",
                "the file named holds no PEM private key",
            );
            None
        }
        Err(_) => {
            r.problem(
                "GITHUB_APP_PRIVATE_KEY",
                "neither a PEM private key nor the path of a readable key file",
            );
            None
        }
    }
}
