//! Serving HTTP until shutdown, through [`orchestrator_axum::serve()`]: the header and
//! keep-alive timeouts and the connection cap of the configuration (`HTTP_HEADER_TIMEOUT_SECONDS`,
//! `HTTP_KEEPALIVE_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`); at shutdown it stops accepting, lets
//! in-flight requests finish and cuts them off after the grace period (a stalled client cannot
//! hold the process).

use orchestrator_axum::ServeConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::components::Components;

/// Serves `app` on `listener` until `stop` is cancelled; in-flight requests then get the
/// shutdown grace period (`SHUTDOWN_GRACE_SECONDS`) to finish.
pub(crate) async fn http(
    app: axum::Router,
    listener: TcpListener,
    stop: CancellationToken,
    components: &Components,
) -> std::io::Result<()> {
    let config = &components.config;
    let serve = ServeConfig {
        shutdown_grace: config.shutdown_grace(),
        metrics: config.enable_metrics.then(|| components.metrics.clone()),
        ..config.serve.clone()
    };
    orchestrator_axum::serve(listener, app, serve, async move { stop.cancelled().await }).await
}
