//! The engine: the ingest path of a delivery and the worker loop of a task, generic over the
//! store, queue, handler and clock traits.

mod attempt;
pub mod group_commit;
pub mod ingest;
pub mod worker;

pub use group_commit::GroupCommit;
pub use ingest::{
    IngestError, Ingestor, RECEIVED_SOURCE, RECOVERED_SOURCE, Receipt, ReprocessError,
    ReprocessOptions,
};
pub use worker::{SpanFactory, Worker, WorkerConfig};
