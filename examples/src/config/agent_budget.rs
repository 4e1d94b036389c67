//! The agent budget of Codegen run creations, into [`Config::handlers`]`.budget` (the core's
//! `AgentBudgetConfig`): `AGENT_BUDGET_PER_MINUTE` (global, default 10, Codegen's documented
//! limit; 0 turns it off), `AGENT_BUDGET_PER_REPO_PER_HOUR` (default unset; 0 is unset too)
//! and `AGENT_BUDGET_RUNS_PER_HEAD` (runs per pull-request head SHA, default 1; 0: no limit).

use super::Config;
use super::read::Reader;

pub(super) fn read(r: &mut Reader<'_>, c: &mut Config) {
    let budget = &mut c.handlers.budget;
    budget.per_minute = limit(r, "AGENT_BUDGET_PER_MINUTE", budget.per_minute);
    budget.per_repo_per_hour = limit(
        r,
        "AGENT_BUDGET_PER_REPO_PER_HOUR",
        budget.per_repo_per_hour,
    );
    budget.max_runs_per_head = limit(r, "AGENT_BUDGET_RUNS_PER_HEAD", budget.max_runs_per_head);
}

/// A limit: a whole number, 0 for none.
fn limit(r: &mut Reader<'_>, name: &'static str, default: Option<u32>) -> Option<u32> {
    let value: u32 = r.parse(
        name,
        default.unwrap_or(0),
        "a whole number (0 for no limit)",
    );
    (value > 0).then_some(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::super::{Config, ConfigError, Purpose};
    use crate::role::Role;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(Purpose::Serve(Role::Worker), &move |name| {
            vars.get(name).cloned()
        })
    }

    #[test]
    fn the_budget_defaults_to_codegens_limit_and_one_run_per_head() {
        let budget = load(&[]).unwrap().handlers.budget;
        assert_eq!(budget.per_minute, Some(10));
        assert_eq!(budget.per_repo_per_hour, None);
        assert_eq!(budget.max_runs_per_head, Some(1));
        assert_eq!(budget.run_policy().max_runs_per_head, Some(1));
    }

    #[test]
    fn each_limit_is_set_and_zero_turns_it_off() {
        let budget = load(&[
            ("AGENT_BUDGET_PER_MINUTE", "0"),
            ("AGENT_BUDGET_PER_REPO_PER_HOUR", "20"),
            ("AGENT_BUDGET_RUNS_PER_HEAD", "0"),
        ])
        .unwrap()
        .handlers
        .budget;
        assert_eq!(budget.per_minute, None);
        assert_eq!(budget.per_repo_per_hour, Some(20));
        assert_eq!(budget.max_runs_per_head, None);
        let err = load(&[
            ("AGENT_BUDGET_PER_MINUTE", "-1"),
            ("AGENT_BUDGET_RUNS_PER_HEAD", "one"),
        ])
        .unwrap_err();
        let variables: Vec<_> = err.problems.iter().map(|p| p.variable).collect();
        assert_eq!(
            variables,
            ["AGENT_BUDGET_PER_MINUTE", "AGENT_BUDGET_RUNS_PER_HEAD"]
        );
    }
}
