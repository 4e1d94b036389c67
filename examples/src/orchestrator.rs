//! [`Orchestrator`]: a built orchestrator, mounted in an application ([`router`], [`layer`],
//! [`run_workers`]) or run as the whole service ([`serve`]).
//!
//! [`router`]: Orchestrator::router
//! [`layer`]: Orchestrator::layer
//! [`run_workers`]: Orchestrator::run_workers
//! [`serve`]: Orchestrator::serve
//!
//! Shutdown is one cancellation token per run: the HTTP server stops accepting and finishes
//! in-flight requests (cut off after `SHUTDOWN_GRACE_SECONDS`), the worker stops claiming, lets
//! running tasks finish for `SHUTDOWN_GRACE_SECONDS` and releases the rest (pending, due now)
//! so another worker takes them at once, and the background services are told at the same
//! moment and given the same grace.

use std::future::Future;
use std::sync::Arc;

use orchestrator_axum::{AppState, WebhookLayer};
use orchestrator_core::engine::SpanFactory;
use orchestrator_core::handler::HandlerRegistry;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::background::{self, BackgroundService};
use crate::builder::OrchestratorBuilder;
use crate::components::Components;
use crate::error::ServerError;
use crate::role::Role;
use crate::{api, serve, workers};

/// A built orchestrator. Cheap to clone.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    components: Components,
    state: AppState,
    registry: HandlerRegistry,
    services: Vec<Arc<dyn BackgroundService>>,
    span_factory: SpanFactory,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("components", &self.inner.components)
            .field("handlers", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

impl Orchestrator {
    /// A builder with the defaults: the embedded SQLite file, the database queue, the built-in
    /// rules and handlers, role `all`.
    pub fn builder() -> OrchestratorBuilder {
        OrchestratorBuilder::new()
    }

    pub(crate) fn new(
        components: Components,
        state: AppState,
        registry: HandlerRegistry,
        services: Vec<Arc<dyn BackgroundService>>,
        span_factory: SpanFactory,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                components,
                state,
                registry,
                services,
                span_factory,
            }),
        }
    }

    /// The built parts: stores, queue, clients, metrics, configuration.
    pub fn components(&self) -> &Components {
        &self.inner.components
    }

    /// The state of the HTTP routes, for `orchestrator_axum`'s own functions.
    pub fn state(&self) -> &AppState {
        &self.inner.state
    }

    /// The whole HTTP API (receiver, events, tasks, admin, `/health`, `/health/live`,
    /// `/metrics`), as a process of the `all` or `api` role serves it. Per-client rate limits
    /// need the client's address: serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    pub fn router(&self) -> axum::Router {
        let exporting = self.inner.components.config.telemetry.exporting();
        api::full(self.inner.state.clone(), exporting)
    }

    /// The receiver alone as a tower layer for an existing application: it takes
    /// `POST /api/v1/webhooks/github` and passes every other request through. Serve the
    /// application with `into_make_service_with_connect_info::<SocketAddr>()` for per-client
    /// rate limits.
    pub fn layer(&self) -> WebhookLayer {
        WebhookLayer::new(self.inner.state.clone())
    }

    /// Runs the workers and the worker-role background services until `shutdown` resolves,
    /// then stops them as described in the module documentation. The store stays open (the
    /// application may still be receiving).
    pub fn run_workers(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), ServerError>> + Send + 'static {
        let this = self.clone();
        async move {
            let cancel = cancel_on(shutdown);
            let running = this.start_services(Role::Worker, &cancel);
            let result = this.worker().run(cancel.clone().cancelled_owned()).await;
            cancel.cancel();
            running.stop(Instant::now() + this.grace()).await;
            result.map_err(ServerError::Store)
        }
    }

    /// Runs the service in its role on `listener` until `shutdown` resolves: the full API
    /// (`all`, `api`) or the probes (`worker`), the workers (`all`, `worker`) and the
    /// background services; then shuts down as described in the module documentation and
    /// closes the store.
    pub fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = Result<(), ServerError>> + Send + 'static {
        let this = self.clone();
        async move {
            let role = this.inner.components.role;
            let addr = listener.local_addr()?;
            let cancel = cancel_on(shutdown);
            let running = this.start_services(role, &cancel);
            let workers = role.runs_workers().then(|| {
                let (worker, stop) = (this.worker(), cancel.clone());
                tokio::spawn(async move { worker.run(stop.cancelled_owned()).await })
            });
            let app = if role.serves_api() {
                this.router()
            } else {
                api::probes(this.inner.state.clone())
            };
            tracing::info!(%addr, role = role.as_str(), "listening");
            if role.serves_api() {
                crate::api::log_console(addr, &this.inner.components.config.api);
            }
            let served = serve::http(app, listener, cancel.clone(), &this.inner.components).await;
            // The HTTP server only ends on shutdown: stop everything else too.
            cancel.cancel();
            let deadline = Instant::now() + this.grace();
            if let Some(workers) = workers {
                log_worker_end(workers.await);
            }
            running.stop(deadline).await;
            this.close().await;
            tracing::info!("shutdown complete");
            served.map_err(ServerError::Io)
        }
    }

    /// Closes the store's connections (waiting at most the shutdown grace period).
    pub async fn close(&self) {
        self.inner.components.stores.close(self.grace()).await;
    }

    fn grace(&self) -> std::time::Duration {
        self.inner.components.config.shutdown_grace()
    }

    fn worker(&self) -> orchestrator_core::engine::Worker {
        workers::worker(
            &self.inner.components,
            self.inner.registry.clone(),
            self.inner.span_factory.clone(),
        )
    }

    fn start_services(&self, role: Role, cancel: &CancellationToken) -> background::Running {
        background::spawn(&self.inner.services, role, &self.inner.components, cancel)
    }
}

/// A token cancelled when `shutdown` resolves.
fn cancel_on(shutdown: impl Future<Output = ()> + Send + 'static) -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    // Dropped with the runtime if shutdown never comes; nothing else waits for it.
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => token.cancel(),
            () = token.cancelled() => {}
        }
    });
    cancel
}

fn log_worker_end(
    joined: Result<Result<(), orchestrator_core::error::StoreError>, tokio::task::JoinError>,
) {
    match joined {
        Ok(Err(e)) => tracing::error!(error = %e, "worker stopped with an error"),
        Err(e) => tracing::error!(error = %e, "worker panicked"),
        Ok(Ok(())) => {}
    }
}
