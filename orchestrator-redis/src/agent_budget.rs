//! [`RedisAgentBudget`]: the agent budget shared by every instance using the same Redis and
//! key prefix.
//!
//! The same sliding-window log as the core's in-process budget (`budget/window.rs`): one sorted
//! set per scope (`<prefix>:{agent_budget}:global`, `<prefix>:{agent_budget}:repo:<owner/name>`)
//! whose members are slot ids scored by grant time in ms. One Lua script
//! (`scripts/agent_budget.lua`) prunes, decides and takes the slots of every scope of a
//! creation at once, so two workers never both take the last slot. Giving a slot back removes
//! its member. The keys share a hash tag (one Redis Cluster slot, as the script needs) and
//! expire one window after their newest entry.
//!
//! Time is the caller's (the worker's injected clock), not the server's `TIME` as in the GCRA
//! rate limiter: the wait a task is deferred by is then exact for that caller, and tests drive
//! it with a manual clock. Instances whose clocks are skewed by a few seconds disagree by that
//! much about when a slot frees; a wait is never longer than one window.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::budget::{
    self, AgentBudget, AgentBudgetConfig, BudgetDecision, BudgetPermit, BudgetScope, BudgetState,
};
use orchestrator_core::error::StoreError;
use redis::Script;
use uuid::Uuid;

use crate::connection::RedisConnection;
use crate::error::Error;
use crate::keys;

/// An agent budget in Redis (see the module documentation).
#[derive(Debug, Clone)]
pub struct RedisAgentBudget {
    conn: RedisConnection,
    config: AgentBudgetConfig,
    script: Script,
}

impl RedisAgentBudget {
    /// A budget applying `config`, its log under `conn`'s key prefix.
    pub fn new(conn: RedisConnection, config: AgentBudgetConfig) -> Self {
        Self {
            conn,
            config,
            script: Script::new(include_str!("scripts/agent_budget.lua")),
        }
    }

    fn key(&self, scope: BudgetScope, repository: Option<&str>) -> String {
        match scope {
            BudgetScope::Global => keys::agent_budget(self.conn.prefix(), "global"),
            BudgetScope::Repository => keys::agent_budget(
                self.conn.prefix(),
                &format!("repo:{}", repository.unwrap_or_default()),
            ),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .ok_or_else(|| Error::Reply(format!("agent budget answered a bad time {ms}")).into())
}

#[async_trait]
impl AgentBudget for RedisAgentBudget {
    fn config(&self) -> &AgentBudgetConfig {
        &self.config
    }

    async fn acquire(
        &self,
        repository: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<BudgetDecision, StoreError> {
        let windows = self.config.windows(repository);
        let slot = Uuid::now_v7();
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(now.timestamp_millis()).arg(slot.to_string());
        for (scope, window) in &windows {
            invocation
                .key(self.key(*scope, repository))
                .arg(window.limit.max(1))
                .arg(millis(window.length));
        }
        let invocation = &invocation;
        let (granted, free_at, which): (i64, i64, usize) = self
            .conn
            .run(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await?;
        if granted == 1 {
            let counts_for_repo = windows.iter().any(|(s, _)| *s == BudgetScope::Repository);
            return Ok(BudgetDecision::Granted(BudgetPermit {
                slot,
                repository: repository.filter(|_| counts_for_repo).map(str::to_owned),
                taken_at: now,
            }));
        }
        let scope = which
            .checked_sub(1)
            .and_then(|i| windows.get(i))
            .map(|(scope, _)| *scope)
            .ok_or_else(|| Error::Reply(format!("agent budget named scope {which}")))?;
        Ok(BudgetDecision::Wait {
            scope,
            until: from_millis(free_at)?,
        })
    }

    async fn release(&self, permit: &BudgetPermit) -> Result<(), StoreError> {
        let mut keys = vec![self.key(BudgetScope::Global, None)];
        if let Some(repository) = permit.repository.as_deref() {
            keys.push(self.key(BudgetScope::Repository, Some(repository)));
        }
        let member = permit.slot.to_string();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("ZREM").arg(key).arg(&member).ignore();
        }
        let pipe = &pipe;
        self.conn
            .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await?;
        Ok(())
    }

    async fn state(&self, now: DateTime<Utc>) -> Result<BudgetState, StoreError> {
        let Some(window) = self.config.global_window() else {
            return Ok(budget::global_state(&self.config, "redis", &[], now));
        };
        let key = self.key(BudgetScope::Global, None);
        let start = format!("({}", now.timestamp_millis() - millis(window.length));
        let scores: Vec<(String, i64)> = self
            .conn
            .run(|mut c| async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(&start)
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let times = scores
            .into_iter()
            .map(|(_, ms)| from_millis(ms))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(budget::global_state(&self.config, "redis", &times, now))
    }
}
