//! `push_analysis`: counts the pushed commits and the files they touched (from the delivery:
//! GitHub lists up to 20 commits with their added / modified / removed paths). Never asks for an
//! agent run.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_core::error::TaskError;
use orchestrator_core::handler::{HandlerOutcome, TaskContext, TaskHandler};
use orchestrator_core::routing::input::PushInput;
use serde_json::json;

use super::classify::{FileCounts, classify_file};
use crate::config::HandlerConfig;

/// The `push_analysis` handler.
#[derive(Clone)]
pub struct PushAnalysis {
    config: Arc<HandlerConfig>,
}

impl PushAnalysis {
    /// A push handler.
    pub fn new(config: Arc<HandlerConfig>) -> Self {
        Self { config }
    }
}

#[async_trait]
impl TaskHandler for PushAnalysis {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let push: PushInput = ctx.input()?;
        let mut added = BTreeSet::new();
        let mut modified = BTreeSet::new();
        let mut removed = BTreeSet::new();
        for commit in &push.commits {
            added.extend(commit.added.iter().map(String::as_str));
            modified.extend(commit.modified.iter().map(String::as_str));
            removed.extend(commit.removed.iter().map(String::as_str));
        }
        let all: BTreeSet<&str> = added
            .iter()
            .chain(&modified)
            .chain(&removed)
            .copied()
            .collect();
        let mut counts = FileCounts::default();
        for path in &all {
            counts.add(classify_file(path, &self.config));
        }
        Ok(HandlerOutcome::done(json!({
            "ref": push.git_ref,
            "before": push.before,
            "after": push.after,
            "forced": push.forced,
            "pusher": push.pusher,
            "commit_count": push.commits.len(),
            "files_changed": all.len(),
            "files_added": added.len(),
            "files_modified": modified.len(),
            "files_removed": removed.len(),
            "code_files": counts.code,
            "test_files": counts.test,
            "config_files": counts.config,
            "other_files": counts.other,
            "should_trigger_codegen": false,
            "trigger_reasons": [],
        })))
    }
}
