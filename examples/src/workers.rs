//! The task side: the handler registry (the five built-in handlers unless turned off, the
//! `cleanup` task's, then the embedder's, which replace a built-in of the same type) and the
//! worker that runs them.

use std::sync::Arc;

use orchestrator_core::cleanup::{CLEANUP, CleanupHandler};
use orchestrator_core::engine::{SpanFactory, Worker};
use orchestrator_core::handler::{HandlerRegistry, TaskHandler};
use orchestrator_core::task::TaskType;

use crate::components::Components;

/// Makes a handler once the components are built (so it can hold the GitHub client, ...).
pub(crate) type HandlerFactory = Box<dyn FnOnce(&Components) -> Arc<dyn TaskHandler> + Send>;

/// The handlers by task type.
pub(crate) fn registry(
    components: &Components,
    builtin: bool,
    handlers: Vec<(TaskType, HandlerFactory)>,
) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    if builtin {
        let config = &components.config;
        orchestrator_codegen::handlers::register_handlers_with_budget(
            &mut registry,
            components.github.clone(),
            components.codegen.clone(),
            components.stores.agent_runs.clone(),
            components.agent_budget.clone(),
            config.handlers.clone(),
            components.observer.clone(),
        );
    }
    // The retention cleanup is a task too (`POST /api/v1/admin/cleanup`, the schedule).
    registry.register(
        CLEANUP,
        CleanupHandler::new(
            components.stores.tasks.clone(),
            components.config.api.retention,
        ),
    );
    for (task_type, factory) in handlers {
        registry.register_arc(task_type, factory(components));
    }
    registry
}

/// A worker over the components' queue and stores, running `registry`'s handlers.
pub(crate) fn worker(
    components: &Components,
    registry: HandlerRegistry,
    span_factory: SpanFactory,
) -> Worker {
    let config = components.config.worker.clone();
    tracing::info!(
        worker_id = %config.worker_id,
        concurrency = config.concurrency,
        queue = components.queue.backend(),
        "starting workers"
    );
    Worker::new(
        components.queue.clone(),
        components.stores.attempts.clone(),
        registry,
        components.clock.clone(),
        config,
    )
    .with_events(components.stores.events.clone())
    .with_retry_policy(components.config.retry)
    .with_observer(components.observer.clone())
    .with_span_factory(span_factory)
}
