//! The names an embedder needs, in one import: `use orchestrator_core::prelude::*;`.
//!
//! Writing a task handler ([`TaskHandler`], [`TaskContext`], [`HandlerOutcome`],
//! [`TaskError`], [`async_trait`](macro@async_trait)), routing deliveries to it ([`EventRule`],
//! [`Rule`], [`ParsedEvent`], [`TaskType`], [`TaskSpec`]), and testing it on the in-memory store
//! with an injected clock ([`MemoryStore`], [`ManualClock`], the store traits to read events and
//! tasks back). The router of rules is deliberately left out: its name, `Router`, would clash
//! with axum's.

pub use async_trait::async_trait;

pub use crate::clock::{Clock, ManualClock};
pub use crate::error::TaskError;
pub use crate::github::RepoRef;
pub use crate::handler::{HandlerOutcome, TaskContext, TaskHandler};
pub use crate::memory::MemoryStore;
pub use crate::payload::ParsedEvent;
pub use crate::routing::{EventInput, EventRule, Rule};
pub use crate::secret::Secret;
pub use crate::store::{EventStore, Page, TaskFilter, TaskStore};
pub use crate::task::{Task, TaskSpec, TaskStatus, TaskType};
