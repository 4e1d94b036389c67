//! Recovery from GitHub's delivery log: `GITHUB_RECOVERY_HOOKS`,
//! `GITHUB_RECOVERY_INTERVAL_SECONDS`, `GITHUB_RECOVERY_MAX_LOOKBACK_HOURS`.
//!
//! Hooks default to `auto` (hooks learned from stored deliveries' `X-GitHub-Hook-ID` headers)
//! when GitHub credentials are set, and to none (recovery off) otherwise. Naming the App hook
//! without App credentials is a problem, since it can only be read with the App's JWT.

use std::time::Duration;

use orchestrator_core::recovery::{HookRef, HookSelection};

use super::Config;
use super::read::Reader;

const HOUR: u64 = 3600;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    let credentials = c.github.token.is_some() || c.github.app.is_some();
    let recovery = &mut c.recovery;
    recovery.hooks = match r.get("GITHUB_RECOVERY_HOOKS") {
        None => HookSelection {
            hooks: Vec::new(),
            auto: credentials,
        },
        Some(list) => match list.parse::<HookSelection>() {
            Ok(selection) => selection,
            Err(e) => {
                r.problem("GITHUB_RECOVERY_HOOKS", e.to_string());
                HookSelection::default()
            }
        },
    };
    if recovery.hooks.hooks.contains(&HookRef::App) && c.github.app.is_none() {
        r.problem(
            "GITHUB_RECOVERY_HOOKS",
            "`app` needs GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY (its log is read with the App's JWT)",
        );
    }
    if !recovery.hooks.hooks.is_empty() && !credentials {
        r.problem(
            "GITHUB_RECOVERY_HOOKS",
            "reading a delivery log needs GITHUB_TOKEN or a GitHub App",
        );
    }
    recovery.interval = r.secs("GITHUB_RECOVERY_INTERVAL_SECONDS", recovery.interval);
    recovery.max_lookback = r.duration(
        "GITHUB_RECOVERY_MAX_LOOKBACK_HOURS",
        recovery.max_lookback,
        HOUR,
        "a whole number of hours",
    );
    if recovery.max_lookback < Duration::from_secs(HOUR) {
        r.problem("GITHUB_RECOVERY_MAX_LOOKBACK_HOURS", "must be at least 1");
    }
    recovery.first_lookback = recovery.first_lookback.min(recovery.max_lookback);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::{Config, Purpose};

    fn load(vars: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(Purpose::Migrate, &|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_credentials() {
        let off = load(&[]).unwrap();
        assert!(!off.recovery.hooks.auto && off.recovery.hooks.hooks.is_empty());
        assert_eq!(off.recovery.interval, Duration::from_secs(300));
        assert_eq!(off.recovery.max_lookback, Duration::from_secs(72 * 3600));
        let on = load(&[("GITHUB_TOKEN", "ghp_x")]).unwrap();
        assert!(on.recovery.hooks.auto);
    }

    #[test]
    fn hooks_interval_and_lookback_are_read_and_checked() {
        let c = load(&[
            ("GITHUB_TOKEN", "ghp_x"),
            ("GITHUB_RECOVERY_HOOKS", "repo:octo/repo:42, org:octo:7"),
            ("GITHUB_RECOVERY_INTERVAL_SECONDS", "0"),
            ("GITHUB_RECOVERY_MAX_LOOKBACK_HOURS", "12"),
        ])
        .unwrap();
        assert_eq!(c.recovery.hooks.hooks.len(), 2);
        assert!(!c.recovery.hooks.auto);
        assert!(c.recovery.interval.is_zero());
        assert_eq!(c.recovery.max_lookback, Duration::from_secs(12 * 3600));
        assert_eq!(c.recovery.first_lookback, Duration::from_secs(12 * 3600));

        let bad = load(&[
            ("GITHUB_TOKEN", "ghp_x"),
            ("GITHUB_RECOVERY_HOOKS", "app,repo:nope"),
            ("GITHUB_RECOVERY_MAX_LOOKBACK_HOURS", "0"),
        ])
        .unwrap_err();
        let vars: Vec<&str> = bad.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            vars,
            [
                "GITHUB_RECOVERY_HOOKS",
                "GITHUB_RECOVERY_MAX_LOOKBACK_HOURS"
            ]
        );
    }
}
