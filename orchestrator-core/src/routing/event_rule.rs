//! A declarative rule: "this event (and these actions) -> one task of that type".
//!
//! For routing without code, e.g. `issue_comment.created` to a user-defined `comment_triage`
//! task. It deserializes from configuration:
//!
//! ```
//! use orchestrator_core::routing::{EventRule, Router};
//!
//! let rule: EventRule = serde_json::from_str(
//!     r#"{"name":"triage","event":"issue_comment","actions":["created"],
//!         "task_type":"comment_triage","priority":5,"config":{"model":"small"}}"#,
//! )
//! .unwrap();
//! let router = Router::with_default_rules().with_rule(rule);
//! assert!(router.rule_names().contains(&"triage"));
//! ```
//!
//! The task's `input_data` is an [`EventInput`]; a handler that needs more of the payload reads
//! the stored event (the task keeps `webhook_event_id`). For the typed events the task's
//! `pr_number`, `branch` and `commit_sha` are filled as the built-in rules do.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Rule, empty_object, spec};
use crate::payload::{EventKind, ParsedEvent};
use crate::task::{TaskSpec, TaskType};

/// `input_data` of a task made by an [`EventRule`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInput {
    /// `X-GitHub-Event`.
    pub event: String,
    /// The payload's action.
    pub action: Option<String>,
    /// The App installation.
    pub installation_id: Option<i64>,
    /// Who triggered the delivery.
    pub sender: Option<String>,
}

/// Routes one event name (optionally only some actions) to one task type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRule {
    /// The rule's unique name (the router replaces a rule of the same name).
    pub name: String,
    /// The `X-GitHub-Event` it matches.
    pub event: String,
    /// The actions it matches; `None` matches every delivery of the event, with or without an
    /// action.
    #[serde(default)]
    pub actions: Option<Vec<String>>,
    /// The task type to create (its handler must be registered with the worker).
    pub task_type: TaskType,
    /// Priority of the tasks.
    #[serde(default)]
    pub priority: i32,
    /// `config` of the tasks.
    #[serde(default = "empty_object")]
    pub config: Value,
}

impl EventRule {
    /// A rule named `name` creating a `task_type` task for every `event` delivery.
    pub fn new(name: impl Into<String>, event: impl Into<String>, task_type: TaskType) -> Self {
        Self {
            name: name.into(),
            event: event.into(),
            actions: None,
            task_type,
            priority: 0,
            config: empty_object(),
        }
    }

    /// Matches only these actions.
    pub fn with_actions<S: Into<String>>(mut self, actions: impl IntoIterator<Item = S>) -> Self {
        self.actions = Some(actions.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the tasks' priority.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the tasks' `config`.
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    fn matches(&self, event: &ParsedEvent) -> bool {
        event.name == self.event
            && match &self.actions {
                None => true,
                Some(actions) => event
                    .action
                    .as_deref()
                    .is_some_and(|a| actions.iter().any(|x| x == a)),
            }
    }
}

impl Rule for EventRule {
    fn name(&self) -> &str {
        &self.name
    }

    fn may_route(&self, event: &str, action: Option<&str>) -> bool {
        event == self.event
            && match &self.actions {
                None => true,
                Some(actions) => action.is_some_and(|a| actions.iter().any(|x| x == a)),
            }
    }

    fn route(&self, event: &ParsedEvent) -> Vec<TaskSpec> {
        if !self.matches(event) {
            return Vec::new();
        }
        let input = EventInput {
            event: event.name.clone(),
            action: event.action.clone(),
            installation_id: event.installation_id,
            sender: event.sender.clone(),
        };
        let mut task = spec(
            self.task_type.clone(),
            self.priority,
            &self.config,
            event,
            &input,
        );
        let number = |n: u64| i64::try_from(n).ok();
        match &event.kind {
            EventKind::PullRequest(pr) => {
                task.pr_number = number(pr.number);
                task.branch = pr.head.git_ref.clone();
                task.commit_sha = pr.head.sha.clone();
            }
            EventKind::CheckRun(run) => {
                task.pr_number = run.pull_requests.first().and_then(|p| number(p.number));
                task.branch = run.check_suite.head_branch.clone();
                task.commit_sha = run.head_sha.clone();
            }
            EventKind::CheckSuite(suite) => {
                task.pr_number = suite.pull_requests.first().and_then(|p| number(p.number));
                task.branch = suite.head_branch.clone();
                task.commit_sha = suite.head_sha.clone();
            }
            EventKind::Push(push) => {
                task.branch = push.branch().map(str::to_owned);
                task.commit_sha = push.after.clone();
            }
            _ => {}
        }
        vec![task]
    }
}
