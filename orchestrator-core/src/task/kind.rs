//! Task types: an open set.
//!
//! The five types of the spec are constants; users register handlers for types of their own
//! (any lower-case identifier), so a task type is a validated string, not a closed enum.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The name of a kind of task, e.g. `pull_request_analysis`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskType(Cow<'static, str>);

/// A task type name that is empty, too long or not `[a-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task type {0:?}: use 1-64 characters of a-z, 0-9, '_', '.', '-'")]
pub struct InvalidTaskType(pub String);

impl TaskType {
    /// Analyse a pull request's changes and decide whether an agent should act.
    pub const PULL_REQUEST_ANALYSIS: TaskType = TaskType(Cow::Borrowed("pull_request_analysis"));
    /// Analyse a failed check run.
    pub const CHECK_FAILURE_ANALYSIS: TaskType = TaskType(Cow::Borrowed("check_failure_analysis"));
    /// Analyse a failed check suite.
    pub const CHECK_SUITE_FAILURE_ANALYSIS: TaskType =
        TaskType(Cow::Borrowed("check_suite_failure_analysis"));
    /// Analyse a push to the default branch.
    pub const PUSH_ANALYSIS: TaskType = TaskType(Cow::Borrowed("push_analysis"));
    /// Start a coding-agent run and follow it to its end.
    pub const CODEGEN_TRIGGER: TaskType = TaskType(Cow::Borrowed("codegen_trigger"));

    /// The built-in types of the spec.
    pub const BUILT_IN: [TaskType; 5] = [
        Self::PULL_REQUEST_ANALYSIS,
        Self::CHECK_FAILURE_ANALYSIS,
        Self::CHECK_SUITE_FAILURE_ANALYSIS,
        Self::PUSH_ANALYSIS,
        Self::CODEGEN_TRIGGER,
    ];

    /// A task type from a literal, usable in a `const`:
    /// `const LABEL_ISSUE: TaskType = TaskType::from_static("label_issue");`.
    ///
    /// # Panics
    /// When `name` is not a valid task type (1-64 characters of `a-z`, `0-9`, `_`, `.`, `-`);
    /// in a `const` that is a compile error.
    pub const fn from_static(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= 64,
            "a task type has 1-64 characters"
        );
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-',
                "a task type uses only a-z, 0-9, '_', '.', '-'"
            );
            i += 1;
        }
        TaskType(Cow::Borrowed(name))
    }

    /// A validated user-defined (or built-in) task type.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidTaskType> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !ok {
            return Err(InvalidTaskType(name));
        }
        if let Some(builtin) = Self::BUILT_IN.iter().find(|t| t.as_str() == name) {
            return Ok(builtin.clone());
        }
        Ok(TaskType(Cow::Owned(name)))
    }

    /// The name as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TaskType {
    type Error = InvalidTaskType;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TaskType::new(value)
    }
}

impl From<TaskType> for String {
    fn from(value: TaskType) -> Self {
        value.0.into_owned()
    }
}

impl std::str::FromStr for TaskType {
    type Err = InvalidTaskType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskType::new(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const LABEL_ISSUE: TaskType = TaskType::from_static("label_issue");

    #[test]
    fn a_static_task_type_equals_the_validated_one() {
        assert_eq!(LABEL_ISSUE, TaskType::new("label_issue").unwrap());
        assert_eq!(
            TaskType::from_static("push_analysis"),
            TaskType::PUSH_ANALYSIS
        );
        assert!(std::panic::catch_unwind(|| TaskType::from_static("Bad Name")).is_err());
        assert!(std::panic::catch_unwind(|| TaskType::from_static("")).is_err());
    }
}
