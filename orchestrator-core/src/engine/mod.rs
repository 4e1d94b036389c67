//! The engine: the ingest path of a delivery and the worker loop of a task, generic over the
//! store, queue, handler and clock traits.
//!
//! ## Layout
//! - `ingest.rs`: [`Ingestor`], a delivery from headers and body to committed rows.
//! - `group_commit.rs`: [`GroupCommit`], concurrent deliveries sharing one commit.
//! - `worker.rs`: [`Worker`], the claim loop, leases and shutdown.
//! - `attempt.rs`: one attempt of one claimed task (handler, lease renewal, outcome), and the
//!   [`SpanFactory`] it runs in.
//! - `operation.rs`: [`OperationRunner`], bulk retry / reprocess operations run in batches.
//! - `supersede.rs`: the pull-request updates a delivery carries into its ingest transaction, so
//!   stale pull-request work is cancelled in the same commit ([`SupersedeConfig`]).

mod attempt;
mod group_commit;
mod ingest;
mod operation;
mod supersede;
mod worker;

pub use attempt::SpanFactory;
pub use group_commit::GroupCommit;
pub use ingest::{
    IngestError, Ingestor, RECEIVED_SOURCE, RECOVERED_SOURCE, Receipt, ReprocessError,
    ReprocessOptions,
};
pub use operation::{OperationRunner, OperationRunnerConfig};
pub use supersede::SupersedeConfig;
pub use worker::{Worker, WorkerConfig};
