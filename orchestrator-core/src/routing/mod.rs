//! Routing: which tasks a delivery causes.
//!
//! Rules are data: a [`Router`] holds named [`Rule`]s, each turning a [`ParsedEvent`] into zero
//! or more [`TaskSpec`]s; every matching rule contributes. A user extends or replaces the
//! defaults without forking: remove a built-in by name, re-add it with other settings, add an
//! [`EventRule`] (event + actions -> task type, deserializable from configuration) or implement
//! [`Rule`] for anything finer.
//!
//! ## Layout
//! - `builtin.rs`: the four default rules of the spec, each with a stable public name and
//!   configurable actions / conclusions, priority and config.
//! - `event_rule.rs`: the declarative [`EventRule`].
//! - [`input`]: the typed `input_data` of the built-in task types (shared with the handlers).
//! - [`report`]: the buttons of the orchestrator's own checks ([`ReportButtonsRule`]) and
//!   [`OwnChecks`], which keeps the other rules away from them (no reporting loop).

mod builtin;
mod event_rule;
pub mod input;
pub mod report;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::payload::ParsedEvent;
use crate::task::{TaskSpec, TaskType};

pub use builtin::{
    CheckRunFailureRule, CheckSuiteFailureRule, DEFAULT_FAILURE_CONCLUSIONS,
    DEFAULT_PULL_REQUEST_ACTIONS, PullRequestRule, PushDefaultBranchRule,
};
pub use event_rule::{EventInput, EventRule};
pub use report::{OwnChecks, ReportButtonsRule};

/// One routing rule.
pub trait Rule: Send + Sync + 'static {
    /// A unique name, so a user can remove or replace a rule.
    fn name(&self) -> &str;
    /// The tasks this rule asks for (empty when it does not match).
    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec>;
    /// Whether a delivery of `event` with `action` could cause tasks, judged without its
    /// payload (recovery decides from GitHub's delivery summaries which deliveries are worth
    /// fetching). `false` only when it never could; the default says it might.
    fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        let _ = (event, action);
        true
    }

    /// Whether the rule sees `check_run` / `check_suite` deliveries about the orchestrator's
    /// own checks ([`OwnChecks`], once the router knows them); by default it does not, so no
    /// rule analyses a check the orchestrator reported itself.
    fn handles_own_checks(&self) -> bool {
        false
    }
}

/// An ordered set of rules; every matching rule contributes its tasks.
#[derive(Clone, Default)]
pub struct Router {
    rules: Vec<Arc<dyn Rule>>,
    own_checks: Option<OwnChecks>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| r.name()))
            .finish()
    }
}

impl Router {
    /// A router without rules (every event stored, no task).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in rules of the spec, in this order: [`PullRequestRule`]
    /// (`pull_request_analysis`), [`CheckRunFailureRule`] (`check_run_failure`),
    /// [`CheckSuiteFailureRule`] (`check_suite_failure`), [`PushDefaultBranchRule`]
    /// (`push_default_branch`).
    pub fn with_default_rules() -> Self {
        Self::empty()
            .with_rule(PullRequestRule::default())
            .with_rule(CheckRunFailureRule::default())
            .with_rule(CheckSuiteFailureRule::default())
            .with_rule(PushDefaultBranchRule::default())
    }

    /// Adds a rule (replacing one of the same name, in its place).
    pub fn add(&mut self, rule: impl Rule) -> &mut Self {
        let rule: Arc<dyn Rule> = Arc::new(rule);
        match self.rules.iter().position(|r| r.name() == rule.name()) {
            Some(i) => self.rules[i] = rule,
            None => self.rules.push(rule),
        }
        self
    }

    /// [`Router::add`] for building a router in one expression.
    pub fn with_rule(mut self, rule: impl Rule) -> Self {
        self.add(rule);
        self
    }

    /// Removes the rule named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.name() != name);
        before != self.rules.len()
    }

    /// The rule names, in order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name()).collect()
    }

    /// Whether some rule could route a delivery of `event` with `action` (see
    /// [`Rule::may_route`]).
    pub fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        self.rules.iter().any(|rule| rule.may_route(event, action))
    }

    /// Names the orchestrator's own checks: deliveries about them reach only the rules that
    /// [handle them](Rule::handles_own_checks).
    pub fn ignore_own_checks(&mut self, own: OwnChecks) -> &mut Self {
        self.own_checks = Some(own);
        self
    }

    /// All tasks the rules ask for.
    pub fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        let own = self.own_checks.as_ref().is_some_and(|o| o.concerns(event));
        self.rules
            .iter()
            .filter(|r| !own || r.handles_own_checks())
            .flat_map(|r| r.route(event))
            .collect()
    }
}

/// A spec with the fields every rule fills the same way.
fn spec(
    task_type: TaskType,
    priority: i32,
    config: &Value,
    event: &ParsedEvent,
    input: &impl Serialize,
) -> TaskSpec {
    TaskSpec {
        task_type,
        priority,
        repository: event.repository.as_ref().map(|r| r.full_name.clone()),
        pr_number: None,
        branch: None,
        commit_sha: None,
        config: config.clone(),
        // The input types are plain structs with string keys: serialisation cannot fail.
        input_data: serde_json::to_value(input).unwrap_or_else(|_| empty_object()),
    }
}

/// `{}`, the default `config`.
fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

#[cfg(test)]
mod tests;
