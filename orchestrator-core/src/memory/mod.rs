//! In-memory implementations of every contract, for tests and for embedding without a database.
//!
//! - [`MemoryStore`]: [`EventStore`](crate::store::EventStore) +
//!   [`TaskStore`](crate::store::TaskStore) + [`AttemptStore`](crate::store::AttemptStore) +
//!   [`AgentRunStore`](crate::store::agent_run::AgentRunStore) in one process; wrapped in a
//!   [`StoreQueue`](crate::queue::StoreQueue) it is also the task queue.
//!   It is the *reference implementation*: the SQL and Redis adapters mirror its
//!   semantics, which are spelt out on [`MemoryStore`] and checked by `tests/memory_store.rs`.
//! - [`FakeGitHub`]: a [`GitHubApi`](crate::github::GitHubApi) with programmable answers.
//! - [`FakeAgent`]: a [`CodingAgent`](crate::agent::CodingAgent) with scripted run statuses.
//!
//! ## Layout
//! - `state.rs`: the rows and the changes outside an attempt (ingest, reprocess, manual retry).
//! - `lease.rs`: an attempt's life (claim, lease renewal, finish, lease expiry).
//! - `report.rs`: lists, statistics, queue depth, retention.
//! - `store.rs` / `attempt.rs`: the trait implementations over them.
//! - `browse.rs`: keyset-paged lists ([`BrowseStore`](crate::store::browse::BrowseStore)).
//! - `agent_run.rs`: the agent-run ledger ([`AgentRunStore`](crate::store::agent_run::AgentRunStore)).
//! - `report_store.rs`: the reporter's cursor and records
//!   ([`ReportStore`](crate::store::report::ReportStore)).
//! - `github.rs` / `agent.rs`: the fake outbound clients.

mod agent;
mod agent_run;
mod attempt;
mod browse;
mod github;
mod lease;
mod report;
mod report_store;
mod state;
mod store;
mod submit;

pub use agent::FakeAgent;
pub use github::FakeGitHub;
pub use store::MemoryStore;
