//! Recovery: reconcile with GitHub's delivery log and recover deliveries that never arrived.
//!
//! GitHub does not retry a failed delivery. The reconciler pages each configured hook's delivery
//! log back to a cutoff, groups the attempts by delivery GUID, asks the store which GUIDs it
//! already has (one query per page), and recovers the rest that some rule routes: `fetch` reads
//! the request from the API and ingests it through the normal [`Ingestor`](crate::engine::Ingestor)
//! path (no HMAC: it came from GitHub's authenticated API), `redeliver` asks GitHub to send it
//! again. Runs are stored (see [`crate::store::recovery`]) with their cursor, so a run stopped by
//! a crash or a rate limit resumes where it stopped. One runner works at a time across
//! instances (the store's runner lease, or a Redis lock), renewing its lease as it goes.
//!
//! ## Layout
//! - [`hook`]: [`HookRef`] (`app`, `repo:OWNER/NAME:ID`, `org:ORG:ID`) and [`HookSelection`].
//! - [`log`]: the [`DeliveryLog`] contract (list a page, get one, redeliver).
//! - [`lock`]: the [`RunnerLock`] contract and the store's lease behind it ([`StoreLock`]).
//! - [`plan`]: a page's summaries grouped by GUID, without I/O.
//! - [`config`]: [`RecoveryConfig`] and a manual run's [`RunRequest`].
//! - [`reconciler`]: the [`Reconciler`] that executes runs.
//! - [`memory`]: an in-memory [`DeliveryLog`] for tests.

pub mod config;
pub mod hook;
pub mod lock;
pub mod log;
pub mod memory;
pub mod plan;
pub mod reconciler;

pub use config::{RecoveryConfig, RequestError, RunRequest};
pub use hook::{HookParseError, HookRef, HookSelection};
pub use lock::{RunnerLock, StoreLock};
pub use log::{DeliveryLog, DeliveryPage, DeliveryRequest, DeliverySummary};
pub use reconciler::{Reconciler, RecoveryError, RunRequestError};
