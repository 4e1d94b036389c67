//! # orchestrator-redis
//!
//! What lets many API and worker processes share the work: a task queue on Redis Streams
//! ([`RedisQueue`], the core's [`TaskQueue`](orchestrator_core::queue::TaskQueue)), a shared
//! replay guard ([`ReplayGuard`]), a shared rate limiter ([`RedisRateLimiter`]), the shared
//! agent budget ([`RedisAgentBudget`]) and a shared lock ([`RedisLock`], the one recovery runner
//! across instances). The database
//! stays the source of truth; Redis carries task ids between processes.
//!
//! ## How it uses Redis Streams
//! - One stream per queue, one consumer group of workers; each entry names one task id.
//!   Ingest commits the task to the database, then `XADD`s it (publish). Workers `XREADGROUP`,
//!   confirm each message with the store's conditional pending -> running update, and on
//!   completion `XACK` + `XDEL` it — so the stream holds exactly the unfinished messages.
//! - A message nobody acknowledged or refreshed for the visibility timeout is taken over by
//!   another worker (`XPENDING IDLE` + `XCLAIM` in one script rather than `XAUTOCLAIM`, because
//!   `XPENDING` also reports each message's delivery count); one delivered `max_deliveries`
//!   times goes to a dead-letter stream instead. A busy worker refreshes its message when it
//!   extends its lease.
//! - Retries and deferred tasks wait in a sorted set scored by due time; a script moves due ones
//!   to the stream in order.
//! - Nothing is lost if the process dies between commit and `XADD`: a sweeper re-publishes
//!   runnable tasks that waited too long. A message delivered twice never runs a task twice,
//!   because the store's update is conditional.
//! - Redis restarts and failovers: connections are re-made with capped, jittered backoff (never
//!   a hot loop), a missing consumer group (`NOGROUP`) is recreated from id 0, and publishing
//!   failures leave the tasks in the store (plus an in-memory backlog) so the API keeps
//!   answering and publishing catches up.
//! - Redis losing its data (restart without persistence, `FLUSHDB`, a lossy failover): the
//!   process that recreates the missing group, or one whose claim finds the stream dry while
//!   the store has old runnable tasks, re-publishes every runnable task from the store at once
//!   (due ones to the stream, later ones to the delayed set), once per interval across
//!   processes; running tasks come back through their lease.
//! - Needs Redis 6.2 or newer (`XPENDING ... IDLE`); keys of one queue share a hash tag.
//! - Not kept: task priority (the stream is first in, first out; the database queue orders by
//!   priority).
//!
//! ## Layout
//! - `config.rs`: [`RedisConfig`] (reaching Redis), [`QueueConfig`] (queue behaviour).
//! - `connection.rs`: [`RedisConnection`], the reconnecting handle with backoff.
//! - [`keys`]: every key name.
//! - `stream.rs`: [`TaskStream`], the Redis side of the queue (publish, read, takeover, ack,
//!   depth); [`delay`] its delayed set and mover; `dead_letter.rs` its dead-letter stream.
//! - `queue.rs`: [`RedisQueue`], the stream paired with a task store; `sweeper.rs` re-publishes;
//!   [`loss`] notices lost queue data and resets.
//! - `replay_guard.rs` and `rate_limit.rs`: the shared guards for the HTTP layer.
//! - `agent_budget.rs`: the agent budget of Codegen run creations, shared by every worker.
//! - `lock.rs`: [`RedisLock`], a renewable lock (`SET NX PX` with a token, renew and release by
//!   script).
//! - `scripts/*.lua`: the atomic steps (mover, takeover, sweep turn, GCRA, agent budget, lock
//!   renew/release).
//! - `error.rs`: the crate's error, mapped onto the core's store error kinds.

mod agent_budget;
mod config;
mod connection;
mod dead_letter;
pub mod delay;
mod error;
pub mod keys;
mod lock;
pub mod loss;
mod queue;
mod rate_limit;
mod replay_guard;
mod stream;
mod sweeper;

pub use agent_budget::RedisAgentBudget;
pub use config::{QueueConfig, RedisConfig};
pub use connection::RedisConnection;
pub use dead_letter::DeadLetter;
pub use error::{Error, Result};
pub use lock::RedisLock;
pub use queue::RedisQueue;
pub use rate_limit::{Decision, Rate, RedisRateLimiter};
pub use replay_guard::ReplayGuard;
pub use stream::{StreamMessage, TaskStream};
pub use sweeper::{Republished, Sweeper};
