//! Serving HTTP until shutdown: stop accepting, let in-flight requests finish, and cut them
//! off after the grace period (a stalled client cannot hold the process).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves `app` on `listener` (with the client address for per-client rate limits) until
/// `stop` is cancelled; in-flight requests then get `grace` to finish.
pub(crate) async fn http(
    app: axum::Router,
    listener: TcpListener,
    stop: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let stop = stop.clone();
        async move { stop.cancelled().await }
    });
    // In-flight requests get `SHUTDOWN_GRACE_SECONDS` to finish; a client that never completes
    // its request (a stalled upload) must not keep the process from stopping.
    let drain = async move {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = std::future::IntoFuture::into_future(server) => served,
        () = drain => {
            tracing::warn!("in-flight requests did not finish within the shutdown grace period; closing them");
            Ok(())
        }
    }
}
