//! The shared agent budget: two instances (two workers) on one prefix share the count.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orchestrator_core::budget::{AgentBudget, AgentBudgetConfig, BudgetDecision, BudgetScope};
use orchestrator_core::clock::{Clock, ManualClock};
use orchestrator_redis::RedisAgentBudget;

use crate::support::TestRedis;

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

fn secs(at: DateTime<Utc>, s: i64) -> DateTime<Utc> {
    at + chrono::Duration::seconds(s)
}

#[tokio::test]
async fn two_instances_on_one_prefix_share_the_global_rate() {
    let redis = TestRedis::new();
    let clock = ManualClock::default();
    let start = clock.now();
    let a = RedisAgentBudget::new(redis.connection(), config(Some(2), None));
    let b = RedisAgentBudget::new(redis.connection(), config(Some(2), None));

    assert!(granted(&a.acquire(Some("o/a"), clock.now()).await.unwrap()));
    clock.advance(Duration::from_secs(10));
    assert!(granted(&b.acquire(Some("o/b"), clock.now()).await.unwrap()));
    clock.advance(Duration::from_secs(5));
    // Both instances see the two slots taken, and the same exact wait.
    for budget in [&a, &b] {
        let wait = budget.acquire(Some("o/c"), clock.now()).await.unwrap();
        assert_eq!(
            wait,
            BudgetDecision::Wait {
                scope: BudgetScope::Global,
                until: secs(start, 60),
            }
        );
        assert_eq!(wait.wait(clock.now()), Duration::from_secs(45));
    }
    let state = b.state(clock.now()).await.unwrap();
    assert_eq!(state.backend, "redis");
    assert_eq!(state.remaining, Some(0));
    assert_eq!(state.next_free_at, Some(secs(start, 60)));

    clock.advance(Duration::from_secs(45));
    assert!(granted(&b.acquire(Some("o/c"), clock.now()).await.unwrap()));
    assert!(!granted(
        &a.acquire(Some("o/d"), clock.now()).await.unwrap()
    ));

    // Keys live under the test's prefix, with an expiry of one window.
    let key = format!("{}:{{agent_budget}}:global", redis.prefix);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query(&mut redis.raw())
        .unwrap();
    assert!(
        pttl > 0 && pttl <= 60_000,
        "one minute's expiry, got {pttl} ms"
    );
}

#[tokio::test]
async fn a_repository_limit_and_a_given_back_slot_are_shared() {
    let redis = TestRedis::new();
    let clock = ManualClock::default();
    let start = clock.now();
    let a = RedisAgentBudget::new(redis.connection(), config(Some(10), Some(1)));
    let b = RedisAgentBudget::new(redis.connection(), config(Some(10), Some(1)));

    let BudgetDecision::Granted(permit) = a.acquire(Some("o/a"), clock.now()).await.unwrap() else {
        panic!("the first creation of o/a is granted");
    };
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        b.acquire(Some("o/a"), clock.now()).await.unwrap(),
        BudgetDecision::Wait {
            scope: BudgetScope::Repository,
            until: secs(start, 3600),
        }
    );
    assert!(granted(&b.acquire(Some("o/b"), clock.now()).await.unwrap()));
    // The refused call took nothing: one global slot used per grant only.
    assert_eq!(a.state(clock.now()).await.unwrap().remaining, Some(9));

    // The slot of a creation the ledger refused is given back on one instance...
    a.release(&permit).await.unwrap();
    // ... and is free on the other.
    assert!(granted(&b.acquire(Some("o/a"), clock.now()).await.unwrap()));
}
