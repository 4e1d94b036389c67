//! One connection: hyper's HTTP/1 + HTTP/2 server on the socket, plus a watchdog that keeps
//! the header and keep-alive deadlines.
//!
//! Three pieces share a [`ConnState`]:
//! - [`Watched`], the socket: bytes arriving while no request is in flight start the header
//!   deadline (HTTP/1: the next request has begun);
//! - [`ConnService`], the request handler: a request reaching it ends the header deadline and
//!   counts as in flight until its response is produced; when the last one ends, the
//!   keep-alive deadline starts;
//! - [`watch`], the watchdog: sleeps until the earliest deadline and says which one passed.
//!
//! A new connection starts with the header deadline running (a client that connects and says
//! nothing is cut too). HTTP/2 clients send frames (SETTINGS, PING answers) while idle, so
//! after its first request an HTTP/2 connection is bound by the keep-alive deadline and
//! hyper's PING timeout instead.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::ServeConfig;
use crate::metrics::Metrics;

/// What every connection of one [`serve`](super::serve) call shares.
pub(super) struct Shared {
    builder: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Notified (to every waiter) while all connection slots are taken: idle connections close.
    pub(super) pressure: Notify,
    metrics: Option<Arc<Metrics>>,
}

impl Shared {
    pub(super) fn new(config: &ServeConfig) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The header deadline is kept by the watchdog (hyper's also runs while idle).
        // The read buffer bounds the request head, and what a connection buffers while it
        // reads a body (hyper's default, ~400 KB, made 400 uploads cost 160 MB more).
        builder
            .http1()
            .header_read_timeout(None)
            .max_buf_size(config.max_header_bytes.max(8192) as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.http2_max_concurrent_streams)
            .keep_alive_interval(Some(config.http2_keep_alive_interval))
            .keep_alive_timeout(config.http2_keep_alive_interval)
            .max_header_list_size(config.max_header_bytes);
        Self {
            builder,
            header_timeout: config.header_read_timeout,
            idle_timeout: config.keep_alive_timeout,
            pressure: Notify::new(),
            metrics: config.metrics.clone(),
        }
    }
}

/// Milliseconds since the connection started; 0 in `head_since` means "no head pending", so
/// stored values are shifted by one.
struct ConnState {
    started: Instant,
    in_flight: AtomicUsize,
    head_since: AtomicU64,
    idle_since: AtomicU64,
    http2: AtomicBool,
    wake: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            // The first request's deadline runs from the start.
            head_since: AtomicU64::new(1),
            idle_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Bytes arrived: on an idle HTTP/1 connection, the next request head has begun.
    fn on_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
            && !self.http2.load(Ordering::Relaxed)
        {
            self.head_since.store(self.now() + 1, Ordering::Release);
            self.wake.notify_one();
        }
    }

    fn request_started(&self, http2: bool) {
        if http2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now(), Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// No request in flight and no request head pending.
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == 0
    }
}

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// No complete request head in time: close at once.
    Header,
    /// Idle too long, or idle while the server is full: close gracefully.
    Idle,
}

impl Expired {
    fn label(self) -> &'static str {
        match self {
            Expired::Header => "header",
            Expired::Idle => "idle",
        }
    }
}

/// Resolves when a deadline of `state` has passed (or, for an idle connection, when `pressure`
/// is notified).
async fn watch(state: &ConnState, shared: &Shared) -> Expired {
    loop {
        let deadline = if state.in_flight.load(Ordering::Acquire) > 0 {
            None
        } else {
            match state.head_since.load(Ordering::Acquire) {
                0 => Some((
                    state.at(state.idle_since.load(Ordering::Acquire)) + shared.idle_timeout,
                    Expired::Idle,
                )),
                since => Some((state.at(since - 1) + shared.header_timeout, Expired::Header)),
            }
        };
        if let Some((at, expired)) = deadline
            && Instant::now() >= at
        {
            return expired;
        }
        let sleep = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = state.wake.notified() => {}
            () = shared.pressure.notified() => {
                if state.is_idle() {
                    return Expired::Idle;
                }
            }
        }
    }
}

/// Serves one accepted connection until it closes, a deadline passes or (after `stop`)
/// its requests are done.
pub(super) async fn serve_one(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        state: state.clone(),
    });
    let service = ConnService {
        app,
        peer,
        state: state.clone(),
    };
    let _active = shared.metrics.as_ref().map(|m| m.connection_opened());
    let conn = shared.builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let mut stopping = *stop.borrow();
    loop {
        if stopping && !closing {
            conn.as_mut().graceful_shutdown();
            closing = true;
        }
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            expired = watch(&state, &shared) => {
                if let Some(metrics) = &shared.metrics {
                    metrics.connection_timed_out(expired.label());
                }
                tracing::debug!(%peer, timeout = expired.label(), "closing connection");
                if expired == Expired::Header {
                    return;
                }
                if closing {
                    // Already closing and idle again: the client keeps it open; cut it.
                    return;
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
                // A graceful close that does not end is cut by the next deadline.
                state.idle_since.store(state.now(), Ordering::Release);
            }
            changed = stop.changed(), if !stopping => {
                stopping = changed.is_err() || *stop.borrow();
            }
        }
    }
}

/// The request handler of one connection: the app, with the peer address and in-flight count.
#[derive(Clone)]
struct ConnService {
    app: Router,
    peer: SocketAddr,
    state: Arc<ConnState>,
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl hyper::service::Service<http::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        self.state
            .request_started(req.version() == http::Version::HTTP_2);
        let guard = InFlight(self.state.clone());
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(req).await;
            drop(guard);
            response
        })
    }
}

/// The socket, reporting arriving bytes to the connection state.
struct Watched {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.on_bytes();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn shared() -> Shared {
        Shared::new(&ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            ..ServeConfig::default()
        })
    }

    async fn expires_after(state: &ConnState, shared: &Shared) -> (Expired, u64) {
        let start = Instant::now();
        let expired = watch(state, shared).await;
        (expired, start.elapsed().as_secs())
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_must_send_its_head_within_the_header_timeout() {
        let (state, shared) = (ConnState::new(), shared());
        assert_eq!(expires_after(&state, &shared).await, (Expired::Header, 10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_the_keep_alive_timeout_then_a_new_head_the_header_timeout() {
        let (state, shared) = (ConnState::new(), shared());
        state.request_started(false);
        tokio::time::advance(Duration::from_secs(30)).await;
        state.request_ended();
        assert_eq!(expires_after(&state, &shared).await, (Expired::Idle, 75));

        // Bytes of a next request arrive after 5 s of idling: 10 s from then.
        state.idle_since.store(state.now(), Ordering::Release);
        tokio::time::advance(Duration::from_secs(5)).await;
        state.on_bytes();
        assert_eq!(expires_after(&state, &shared).await, (Expired::Header, 10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_timed_out_and_http2_frames_do_not_start_a_head() {
        let (state, shared) = (Arc::new(ConnState::new()), Arc::new(shared()));
        state.request_started(true);
        state.on_bytes();
        let watcher = {
            let (state, shared) = (state.clone(), shared.clone());
            tokio::spawn(async move { expires_after(&state, &shared).await })
        };
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!watcher.is_finished());
        state.request_ended();
        // Frames of an idle HTTP/2 connection (PING answers) keep the keep-alive deadline.
        tokio::time::sleep(Duration::from_secs(1)).await;
        state.on_bytes();
        assert_eq!(watcher.await.unwrap(), (Expired::Idle, 3675));
    }

    #[tokio::test(start_paused = true)]
    async fn pressure_closes_idle_connections_only() {
        let (state, shared) = (Arc::new(ConnState::new()), Arc::new(shared()));
        let watcher = {
            let (state, shared) = (state.clone(), shared.clone());
            tokio::spawn(async move { expires_after(&state, &shared).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Still waiting for its first head: pressure changes nothing.
        shared.pressure.notify_waiters();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!watcher.is_finished());
        state.request_started(false);
        state.request_ended();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shared.pressure.notify_waiters();
        assert_eq!(watcher.await.unwrap(), (Expired::Idle, 3));
    }
}
