//! Routing: which tasks a delivery causes.
//!
//! PLACEHOLDER API (being filled in): rules are data; a [`Router`] holds named rules, each
//! turning a [`ParsedEvent`] into zero or more [`TaskSpec`]s.

pub mod input;

use std::sync::Arc;

use crate::payload::ParsedEvent;
use crate::task::TaskSpec;

/// One routing rule.
pub trait Rule: Send + Sync + 'static {
    /// A unique name, so a user can remove or replace a rule.
    fn name(&self) -> &str;
    /// The tasks this rule asks for (empty when it does not match).
    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec>;
}

/// An ordered set of rules; every matching rule contributes its tasks.
#[derive(Clone, Default)]
pub struct Router {
    rules: Vec<Arc<dyn Rule>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rules.iter().map(|r| r.name())).finish()
    }
}

impl Router {
    /// A router without rules (every event stored, no task).
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in rules of the spec.
    pub fn with_default_rules() -> Self {
        Self::default()
    }

    /// Adds a rule (replacing one of the same name).
    pub fn add(&mut self, rule: impl Rule) -> &mut Self {
        let name = rule.name().to_owned();
        self.rules.retain(|r| r.name() != name);
        self.rules.push(Arc::new(rule));
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

    /// All tasks the rules ask for.
    pub fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        self.rules.iter().flat_map(|r| r.route(event)).collect()
    }
}
