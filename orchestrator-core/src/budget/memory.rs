//! [`MemoryAgentBudget`]: the budget of one process (the default without Redis, and tests).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::window::{self, WindowLimit};
use super::{
    AgentBudget, AgentBudgetConfig, BudgetDecision, BudgetPermit, BudgetScope, BudgetState,
};
use crate::error::StoreError;

const GLOBAL: &str = "global";

/// One scope's granted creations: when, and the slot's id.
type Log = Vec<(DateTime<Utc>, Uuid)>;

/// An in-process [`AgentBudget`]: one log of granted creations per scope, behind a mutex.
#[derive(Debug)]
pub struct MemoryAgentBudget {
    config: AgentBudgetConfig,
    logs: Mutex<HashMap<String, Log>>,
}

impl MemoryAgentBudget {
    /// A budget applying `config`.
    pub fn new(config: AgentBudgetConfig) -> Self {
        Self {
            config,
            logs: Mutex::new(HashMap::new()),
        }
    }

    fn key(scope: BudgetScope, repository: Option<&str>) -> String {
        match scope {
            BudgetScope::Global => GLOBAL.to_owned(),
            BudgetScope::Repository => format!("repo:{}", repository.unwrap_or_default()),
        }
    }
}

/// Drops the entries that left `window`.
fn prune(log: &mut Log, window: WindowLimit, now: DateTime<Utc>) {
    log.retain(|(at, _)| window::inside(*at, window, now));
}

#[async_trait]
impl AgentBudget for MemoryAgentBudget {
    fn config(&self) -> &AgentBudgetConfig {
        &self.config
    }

    async fn acquire(
        &self,
        repository: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<BudgetDecision, StoreError> {
        let windows = self.config.windows(repository);
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait: Option<(BudgetScope, DateTime<Utc>)> = None;
        for (scope, w) in &windows {
            let log = logs.entry(Self::key(*scope, repository)).or_default();
            prune(log, *w, now);
            let times: Vec<_> = log.iter().map(|(at, _)| *at).collect();
            if let Some(free) = window::free_at(&times, *w, now)
                && wait.is_none_or(|(_, until)| free > until)
            {
                wait = Some((*scope, free));
            }
        }
        if let Some((scope, until)) = wait {
            return Ok(BudgetDecision::Wait { scope, until });
        }
        let slot = Uuid::now_v7();
        for (scope, _) in &windows {
            logs.entry(Self::key(*scope, repository))
                .or_default()
                .push((now, slot));
        }
        let counts_for_repo = windows.iter().any(|(s, _)| *s == BudgetScope::Repository);
        Ok(BudgetDecision::Granted(BudgetPermit {
            slot,
            repository: repository.filter(|_| counts_for_repo).map(str::to_owned),
            taken_at: now,
        }))
    }

    async fn release(&self, permit: &BudgetPermit) -> Result<(), StoreError> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        for log in logs.values_mut() {
            log.retain(|(_, slot)| *slot != permit.slot);
        }
        logs.retain(|_, log| !log.is_empty());
        Ok(())
    }

    async fn state(&self, now: DateTime<Utc>) -> Result<BudgetState, StoreError> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let times: Vec<_> = logs
            .get(GLOBAL)
            .map(|log| log.iter().map(|(at, _)| *at).collect())
            .unwrap_or_default();
        Ok(super::global_state(&self.config, "memory", &times, now))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::time::Duration;

    fn config(per_minute: Option<u32>, per_repo_per_hour: Option<u32>) -> AgentBudgetConfig {
        AgentBudgetConfig {
            per_minute,
            per_repo_per_hour,
            ..AgentBudgetConfig::default()
        }
    }

    fn granted(d: &BudgetDecision) -> bool {
        matches!(d, BudgetDecision::Granted(_))
    }

    #[tokio::test]
    async fn the_global_rate_grants_its_limit_then_waits_exactly_until_the_oldest_leaves() {
        let clock = ManualClock::default();
        let start = clock.now();
        let budget = MemoryAgentBudget::new(config(Some(2), None));
        assert!(granted(
            &budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        ));
        clock.advance(Duration::from_secs(10));
        assert!(granted(
            &budget.acquire(Some("o/b"), clock.now()).await.unwrap()
        ));
        clock.advance(Duration::from_secs(5));
        let third = budget.acquire(Some("o/c"), clock.now()).await.unwrap();
        assert_eq!(
            third,
            BudgetDecision::Wait {
                scope: BudgetScope::Global,
                until: start + chrono::Duration::seconds(60),
            }
        );
        assert_eq!(third.wait(clock.now()), Duration::from_secs(45));
        let state = budget.state(clock.now()).await.unwrap();
        assert_eq!(state.remaining, Some(0));
        assert_eq!(
            state.next_free_at,
            Some(start + chrono::Duration::seconds(60))
        );
        clock.advance(Duration::from_secs(45));
        assert!(granted(
            &budget.acquire(Some("o/c"), clock.now()).await.unwrap()
        ));
        let state = budget.state(clock.now()).await.unwrap();
        assert_eq!(
            (state.remaining, state.next_free_at),
            (Some(0), Some(start + chrono::Duration::seconds(70)))
        );
    }

    #[tokio::test]
    async fn the_repository_limit_is_per_repository_and_per_hour() {
        let clock = ManualClock::default();
        let start = clock.now();
        let budget = MemoryAgentBudget::new(config(None, Some(1)));
        assert!(granted(
            &budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        ));
        assert!(granted(
            &budget.acquire(Some("o/b"), clock.now()).await.unwrap()
        ));
        clock.advance(Duration::from_secs(600));
        let again = budget.acquire(Some("o/a"), clock.now()).await.unwrap();
        assert_eq!(
            again,
            BudgetDecision::Wait {
                scope: BudgetScope::Repository,
                until: start + chrono::Duration::seconds(3600),
            }
        );
        assert_eq!(again.wait(clock.now()), Duration::from_secs(3000));
        // No repository known: only the global rate (here none) applies.
        assert!(granted(&budget.acquire(None, clock.now()).await.unwrap()));
        clock.advance(Duration::from_secs(3000));
        assert!(granted(
            &budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        ));
    }

    #[tokio::test]
    async fn a_refusal_takes_nothing_and_the_later_freeing_scope_is_named() {
        let clock = ManualClock::default();
        let start = clock.now();
        let budget = MemoryAgentBudget::new(config(Some(1), Some(1)));
        assert!(granted(
            &budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        ));
        // Both full: the repository's hour frees last.
        let wait = budget.acquire(Some("o/a"), clock.now()).await.unwrap();
        assert!(matches!(
            wait,
            BudgetDecision::Wait {
                scope: BudgetScope::Repository,
                ..
            }
        ));
        clock.advance(Duration::from_secs(60));
        // Global free again; another repository proceeds; the refused call took no slot.
        assert!(granted(
            &budget.acquire(Some("o/b"), clock.now()).await.unwrap()
        ));
        let wait = budget.acquire(Some("o/a"), clock.now()).await.unwrap();
        assert_eq!(
            wait,
            BudgetDecision::Wait {
                scope: BudgetScope::Repository,
                until: start + chrono::Duration::seconds(3600),
            }
        );
    }

    #[tokio::test]
    async fn a_released_slot_is_free_again_and_no_rate_grants_everything() {
        let clock = ManualClock::default();
        let budget = MemoryAgentBudget::new(config(Some(1), Some(1)));
        let BudgetDecision::Granted(permit) =
            budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        else {
            panic!("the first creation is granted");
        };
        assert!(!granted(
            &budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        ));
        budget.release(&permit).await.unwrap();
        assert_eq!(budget.state(clock.now()).await.unwrap().remaining, Some(1));
        assert!(granted(
            &budget.acquire(Some("o/a"), clock.now()).await.unwrap()
        ));

        let open = MemoryAgentBudget::new(AgentBudgetConfig::unlimited());
        for _ in 0..100 {
            assert!(granted(
                &open.acquire(Some("o/a"), clock.now()).await.unwrap()
            ));
        }
        let state = open.state(clock.now()).await.unwrap();
        assert_eq!((state.remaining, state.next_free_at), (None, None));
        assert_eq!(state.max_runs_per_head, Some(1));
    }
}
