//! Which agent run statuses fail a `codegen_trigger` task: `CODEGEN_FAILURE_STATUSES` (a
//! comma-separated list, compared case-insensitively; default ERROR, FAILED, TIMEOUT,
//! MAX_ITERATIONS_REACHED, OUT_OF_TOKENS), into [`Config::handlers`].

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    let Some(statuses) = r.list("CODEGEN_FAILURE_STATUSES") else {
        return;
    };
    let valid = |s: &String| s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if statuses.is_empty() {
        r.problem(
            "CODEGEN_FAILURE_STATUSES",
            "must name at least one status (e.g. ERROR,FAILED)",
        );
    } else if let Some(bad) = statuses.iter().find(|s| !valid(s)) {
        r.problem(
            "CODEGEN_FAILURE_STATUSES",
            format!("{bad:?} is not a status name (letters, digits and _ , separated by commas)"),
        );
    } else {
        c.handlers.run_failure_statuses = statuses;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::{Config, ConfigError, Purpose};
    use crate::role::Role;

    fn load(value: Option<&str>) -> Result<Config, ConfigError> {
        let value = value.map(str::to_owned);
        Config::from_lookup(Purpose::Serve(Role::Worker), &move |name| {
            (name == "CODEGEN_FAILURE_STATUSES")
                .then(|| value.clone())
                .flatten()
        })
    }

    #[test]
    fn the_failure_statuses_default_and_can_be_set() {
        let default = load(None).unwrap().handlers.run_failure_statuses;
        assert_eq!(
            default,
            [
                "ERROR",
                "FAILED",
                "TIMEOUT",
                "MAX_ITERATIONS_REACHED",
                "OUT_OF_TOKENS"
            ]
        );
        let set = load(Some(" error, Rejected ,")).unwrap();
        assert_eq!(set.handlers.run_failure_statuses, ["error", "Rejected"]);
        assert!(set.handlers.is_run_failure(Some("REJECTED")));
        for bad in [" , ", "FAILED;ERROR", "out of tokens"] {
            let err = load(Some(bad)).unwrap_err();
            let variables: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
            assert_eq!(variables, ["CODEGEN_FAILURE_STATUSES"], "{bad:?}");
        }
    }
}
