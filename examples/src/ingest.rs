//! The receive side: the signature verifier of the configured secrets, the routing rules and
//! the ingest service, with the shared replay guard when Redis is configured.

use std::sync::Arc;

use orchestrator_core::clock::Clock;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::observe::Observer;
use orchestrator_core::queue::TaskQueue;
use orchestrator_core::routing::Router;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};
use orchestrator_core::store::EventStore;
use orchestrator_redis::{RedisConnection, ReplayGuard};

use crate::config::Config;

/// The ingest service over `events` (the store, or the group commit in front of it).
pub(crate) fn ingestor(
    config: &Config,
    rules: Router,
    events: Arc<dyn EventStore>,
    queue: Arc<dyn TaskQueue>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    redis: Option<&RedisConnection>,
) -> Ingestor {
    let verifier = SignatureVerifier::new(
        config
            .webhook_secrets
            .iter()
            .map(|s| WebhookSecret::new(s.expose().as_bytes().to_vec())),
    );
    let ingestor = Ingestor::new(verifier, rules, events, queue, clock)
        .with_limits(config.delivery_limits)
        .with_retry_policy(config.retry)
        .with_observer(observer);
    // With Redis, every API instance shares one replay guard (in front of the database's unique
    // constraint); without it, the database's constraint does the job alone.
    match redis {
        Some(conn) => ingestor.with_delivery_guard(Arc::new(ReplayGuard::new(conn.clone()))),
        None => ingestor,
    }
}
