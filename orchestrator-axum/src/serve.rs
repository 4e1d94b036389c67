//! Serving a [`Router`] on a TCP listener so that hostile or broken clients cannot hurt honest
//! ones: [`serve`] with a [`ServeConfig`].
//!
//! `axum::serve` has no limits of its own: a client that sends its request headers one byte at
//! a time keeps its connection (and a file descriptor) forever, and a few hundred of them lock
//! everyone else out. [`serve`] adds, for HTTP/1 and HTTP/2 (h2c) alike:
//!
//! - **a header timeout**: a connection must deliver a complete request head within
//!   [`ServeConfig::header_read_timeout`] of its first byte (of being accepted, for a new
//!   connection); otherwise it is closed without an answer. Counted in
//!   `http_connection_timeouts_total{timeout="header"}`.
//! - **a keep-alive idle timeout**: a connection with no request in flight is closed after
//!   [`ServeConfig::keep_alive_timeout`] (gracefully: an HTTP/2 client gets a GOAWAY). It is
//!   separate from the header timeout and longer by default, so a load balancer that keeps
//!   connections open for 60 s (AWS ALB's default) never sends a request on a connection the
//!   server has just closed. (hyper's own `header_read_timeout` also runs while a keep-alive
//!   connection is idle, so it cannot give the two limits separately; the timeouts are kept
//!   here instead, in `serve/connection.rs`.)
//! - **a connection cap**: at most [`ServeConfig::max_connections`] at once. Over it, the
//!   listener stops accepting: new connections wait in the kernel's backlog (or are refused by
//!   the kernel when that is full), and idle keep-alive connections are closed to make room.
//! - **per-connection memory**: a request head (and an HTTP/1 connection's read buffer) of at
//!   most [`ServeConfig::max_header_bytes`]; the request bodies themselves are bounded by the
//!   receiver's [body budget](crate::budget).
//! - **HTTP/2 limits**: concurrent streams per connection, a keep-alive PING whose missing
//!   answer closes a dead peer's connection.
//! - **accept errors never stop or spin the server**: running out of file descriptors
//!   (`EMFILE`) or memory makes the listener back off (50 ms doubling up to 1 s) and try again.
//! - **graceful shutdown**: when `shutdown` resolves, the listener closes, idle connections
//!   close, in-flight requests finish; connections still open after
//!   [`ServeConfig::shutdown_grace`] are cut (a stalled client cannot hold the process).
//!
//! Requests carry axum's `ConnectInfo<SocketAddr>` (the rate limits key on it).

mod connection;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// The connection limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How long a client may take to send a complete request head, from its first byte (from
    /// the connection's start for the first request). Default 10 s.
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open. Default 75 s (longer than
    /// the 60 s idle timeout of common load balancers, which then close first).
    pub keep_alive_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog. Default 1024.
    pub max_connections: usize,
    /// At shutdown, how long in-flight requests may finish before their connections are cut.
    /// Default 20 s.
    pub shutdown_grace: Duration,
    /// HTTP/2: concurrent streams (requests) per connection. Default 100.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the server PINGs a connection this often and closes it when the answer does not
    /// come within the same time. Default 20 s.
    pub http2_keep_alive_interval: Duration,
    /// Largest request head accepted, in bytes (HTTP/1: also the read buffer of a connection,
    /// so what it holds while a body streams in; HTTP/2: the header list). Default 64 KiB.
    pub max_header_bytes: u32,
    /// Where the connection figures go (`http_connections_active`,
    /// `http_connection_timeouts_total`); `None` records nothing.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(20),
            http2_max_concurrent_streams: 100,
            http2_keep_alive_interval: Duration::from_secs(20),
            max_header_bytes: 64 * 1024,
            metrics: None,
        }
    }
}

/// Serves `app` on `listener` with the limits of `config` until `shutdown` resolves and the
/// open connections have finished (or [`ServeConfig::shutdown_grace`] has passed).
///
/// Accept errors are logged and retried, never returned: the function returns only after
/// shutdown, with `Ok(())`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(connection::Shared::new(&config));
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = accept(&listener, &slots, &shared.pressure) => accepted,
        };
        match accepted {
            Ok((stream, peer, permit)) => {
                backoff.reset();
                let _ = stream.set_nodelay(true);
                let conn = connection::serve_one(
                    stream,
                    peer,
                    app.clone(),
                    shared.clone(),
                    stop_rx.clone(),
                );
                connections.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(err) => backoff.wait(&err).await,
        }
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "HTTP server stopped accepting; finishing in-flight requests"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "in-flight requests did not finish within the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Waits for a free connection slot, then accepts one connection. While every slot is taken,
/// idle keep-alive connections are asked (once a second) to close and make room.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    pressure: &Notify,
) -> std::io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = loop {
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            break permit;
        }
        pressure.notify_waiters();
        tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => break permit,
                // The semaphore is never closed.
                Err(_) => std::future::pending().await,
            },
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

/// Sleeps after an accept error that is not about one connection (`EMFILE`, `ENFILE`,
/// `ENOMEM`...): 50 ms, doubling up to 1 s while the errors go on; logged once per episode.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!("accepting connections again");
        }
    }

    async fn wait(&mut self, err: &std::io::Error) {
        use std::io::ErrorKind;
        // The peer gave up between the handshake and accept(): nothing to do about it.
        if matches!(
            err.kind(),
            ErrorKind::ConnectionAborted
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionRefused
        ) {
            return;
        }
        let delay = match self.delay {
            None => {
                tracing::error!(error = %err, "cannot accept connections (out of file descriptors?); backing off");
                Self::FIRST
            }
            Some(d) => (d * 2).min(Self::MAX),
        };
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_up_to_a_second_and_reset_on_success() {
        let mut backoff = AcceptBackoff::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut waits = Vec::new();
        for _ in 0..7 {
            let start = tokio::time::Instant::now();
            backoff.wait(&emfile).await;
            waits.push(start.elapsed().as_millis());
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000]);
        backoff.reset();
        let start = tokio::time::Instant::now();
        backoff.wait(&emfile).await;
        assert_eq!(start.elapsed().as_millis(), 50);
        // A connection the peer aborted is not a reason to wait.
        let start = tokio::time::Instant::now();
        backoff
            .wait(&std::io::Error::from(std::io::ErrorKind::ConnectionAborted))
            .await;
        assert_eq!(start.elapsed().as_millis(), 0);
    }
}
