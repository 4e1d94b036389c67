//! The breaker's state machine and a set of breakers for health and metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::BreakerConfig;
use crate::clock::{self, Clock};
use crate::observe::Observer;

/// The observable state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused.
    Open,
    /// One probe may pass.
    HalfOpen,
}

impl BreakerState {
    /// Name for health output and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// A call refused because the breaker is open (or its single probe is already out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open; retry in {retry_after:?}")]
pub struct BreakerOpen {
    /// Until a probe may pass.
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<DateTime<Utc>>,
    probe_in_flight: bool,
}

/// A circuit breaker for one dependency.
pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    observer: Option<Arc<dyn Observer>>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish()
    }
}

/// A breaker's name and state, for health and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerSnapshot {
    /// Dependency name (`github`, `codegen`).
    pub name: String,
    /// Current state.
    pub state: BreakerState,
    /// Consecutive failures counted.
    pub consecutive_failures: u32,
}

impl CircuitBreaker {
    /// A closed breaker named after its dependency.
    pub fn new(name: impl Into<String>, config: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            name: name.into(),
            config,
            clock,
            observer: None,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    /// Reports state changes to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now (an open breaker whose recovery time has passed reads as half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        self.effective_state(&inner)
    }

    /// How long until an open breaker lets a probe through; `None` unless it is open.
    pub fn open_for(&self) -> Option<Duration> {
        let inner = self.lock();
        if self.effective_state(&inner) != BreakerState::Open {
            return None;
        }
        let reopen = clock::add(inner.opened_at?, self.config.recovery);
        Some(
            (reopen - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Name, state and failure count.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let inner = self.lock();
        BreakerSnapshot {
            name: self.name.clone(),
            state: self.effective_state(&inner),
            consecutive_failures: inner.consecutive_failures,
        }
    }

    fn effective_state(&self, inner: &Inner) -> BreakerState {
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at))
                if self.clock.now() >= clock::add(at, self.config.recovery) =>
            {
                BreakerState::HalfOpen
            }
            (state, _) => state,
        }
    }

    /// Asks to make a call. `Ok` means go ahead and then report [`on_success`](Self::on_success)
    /// or [`on_failure`](Self::on_failure); in half-open state only one caller gets `Ok`.
    pub fn acquire(&self) -> Result<(), BreakerOpen> {
        let mut inner = self.lock();
        let now = self.clock.now();
        match self.effective_state(&inner) {
            BreakerState::Closed => Ok(()),
            BreakerState::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                self.set_state(&mut inner, BreakerState::HalfOpen);
                Ok(())
            }
            BreakerState::HalfOpen => Err(BreakerOpen {
                retry_after: Duration::from_secs(1),
            }),
            BreakerState::Open => {
                let reopen = inner
                    .opened_at
                    .map(|at| clock::add(at, self.config.recovery))
                    .unwrap_or(now);
                let retry_after = (reopen - now).to_std().unwrap_or(Duration::ZERO);
                Err(BreakerOpen { retry_after })
            }
        }
    }

    /// Reports a successful call: the breaker closes and the failure count resets.
    ///
    /// While the breaker is open no call has been let through, so a report then is the late
    /// answer of a call made before it opened and changes nothing (a success must not cut the
    /// recovery time short, a failure must not extend it).
    pub fn on_success(&self) {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            return;
        }
        inner.consecutive_failures = 0;
        inner.probe_in_flight = false;
        inner.opened_at = None;
        self.set_state(&mut inner, BreakerState::Closed);
    }

    /// Reports a failed call: counts it, and opens the breaker at the threshold or when the
    /// half-open probe failed.
    pub fn on_failure(&self) {
        let mut inner = self.lock();
        if inner.state == BreakerState::Open {
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let probe_failed = inner.probe_in_flight;
        inner.probe_in_flight = false;
        if probe_failed || inner.consecutive_failures >= self.config.failure_threshold.max(1) {
            inner.opened_at = Some(self.clock.now());
            self.set_state(&mut inner, BreakerState::Open);
        }
    }

    fn set_state(&self, inner: &mut Inner, state: BreakerState) {
        let changed = inner.state != state;
        inner.state = state;
        if changed && let Some(observer) = &self.observer {
            observer.breaker(&self.name, state);
        }
    }
}

/// The breakers of a process, for `/health` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct BreakerSet {
    breakers: Arc<Mutex<Vec<Arc<CircuitBreaker>>>>,
}

impl BreakerSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a breaker.
    pub fn add(&self, breaker: Arc<CircuitBreaker>) {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(breaker);
    }

    /// Every breaker's snapshot, in the order added.
    pub fn snapshot(&self) -> Vec<BreakerSnapshot> {
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|b| b.snapshot())
            .collect()
    }
}
