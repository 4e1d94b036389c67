//! [`BatchStore`]: an event store that commits many deliveries at once, for group commit
//! ([`GroupCommit`](crate::engine::GroupCommit)), with the per-delivery work it can do ahead of
//! its serial section. What that work yields is the store's own business: an associated type,
//! never a field of the domain's [`NewEvent`].

use async_trait::async_trait;

use super::{EventStore, IngestOutcome, NewDelivery};
use crate::error::StoreError;
use crate::event::NewEvent;

/// One delivery of a batch (the event, its tasks and its pull-request updates) and what the
/// store prepared from it ([`BatchStore::prepare`]).
pub type BatchDelivery<P> = (NewDelivery, P);

/// An [`EventStore`] that commits a batch of deliveries with as few commits as it can.
#[async_trait]
pub trait BatchStore: EventStore {
    /// What the store works out from a delivery before its serial section, such as the payload
    /// in the store's own encoding (SQLite compresses it); `()` when there is nothing to do.
    type Prepared: Send + 'static;

    /// Per-delivery work that does not need the store's serial section. A batching front end
    /// ([`GroupCommit`](crate::engine::GroupCommit)) calls it in the caller's task before the
    /// delivery waits for a commit, so the work runs in parallel across requests instead of
    /// inside the one writer.
    fn prepare(&self, event: &NewEvent) -> Self::Prepared;

    /// Commits `batch`. Each delivery stays atomic on its own and gets exactly the outcome
    /// [`EventStore::ingest_delivery`] would have given it, in the order given (its
    /// pull-request updates included: they see the deliveries before it in the batch, never
    /// those after it); one delivery's failure never loses another's.
    async fn ingest_batch(
        &self,
        batch: Vec<BatchDelivery<Self::Prepared>>,
    ) -> Vec<Result<IngestOutcome, StoreError>>;
}
