//! `serve` on a real socket: header and keep-alive timeouts, the connection cap, HTTP/2 (h2c)
//! and graceful shutdown. Timeouts are short here (1-2 s) and every bound is wide (seconds),
//! so a busy machine cannot make a test fail.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use orchestrator_axum::{ServeConfig, router, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::utils::*;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// The HTTP/2 connection preface a client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub async fn start(app: axum::Router, config: ServeConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve(listener, app, config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            handle,
        }
    }

    /// Asks for shutdown; the time until `serve` returned.
    pub async fn shutdown(mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        (&mut self.handle).await.unwrap().unwrap();
        started.elapsed()
    }
}

/// The app served with the test header timeout, its connection figures in `app.metrics`.
async fn start_measured(app: &TestApp) -> Running {
    let config = ServeConfig {
        metrics: Some(app.metrics.clone()),
        ..serve_config()
    };
    Running::start(router(app.state.clone()), config).await
}

/// Waits for every slow client; each must have been cut off, not before the header timeout.
async fn assert_all_cut_off(slow: Vec<JoinHandle<Option<Duration>>>) {
    for client in slow {
        let closed = client.await.unwrap();
        let closed = closed.expect("a slow client was never cut off");
        assert!(
            closed >= HEADER_TIMEOUT - Duration::from_millis(50),
            "cut off before the header timeout: {closed:?}"
        );
    }
}

fn serve_config() -> ServeConfig {
    ServeConfig {
        header_read_timeout: HEADER_TIMEOUT,
        ..ServeConfig::default()
    }
}

/// A signed ping delivery as raw HTTP/1.1 bytes (`Connection: close` unless `keep_alive`).
fn signed_ping(delivery_id: &str, keep_alive: bool) -> Vec<u8> {
    let body = payload("ping/payload.json");
    let mut request = format!(
        "POST /api/v1/webhooks/github HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: ping\r\nX-GitHub-Delivery: {delivery_id}\r\nX-Hub-Signature-256: {}\r\n\
         Content-Length: {}\r\n{}\r\n",
        sign(&body),
        body.len(),
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        },
    )
    .into_bytes();
    request.extend_from_slice(&body);
    request
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; its status (0 when the
/// connection closed first).
async fn read_response(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + length {
                return head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return 0,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends a signed delivery on a fresh connection; its status and the time to the answer.
async fn timed_delivery(addr: SocketAddr, delivery_id: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&signed_ping(delivery_id, false))
        .await
        .unwrap();
    let status = read_response(&mut stream).await;
    (status, started.elapsed())
}

/// How long until the server closes `stream` (reads until EOF or an error), up to `limit`.
async fn closed_after(
    mut stream: TcpStream,
    started: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut sink = [0u8; 1024];
    let read_to_close = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_close).await.ok()
}

/// A client that sends `bytes` one at a time, every 250 ms, until the server closes the
/// connection; how long that took from connecting (None: not closed within `limit`).
async fn slow_client(addr: SocketAddr, bytes: Vec<u8>, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let trickle = async move {
        for b in bytes {
            if write.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = async {
        let mut sink = [0u8; 256];
        loop {
            match read.read(&mut sink).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, async {
        tokio::select! {
            closed = closed => closed,
            () = trickle => unreachable!(),
        }
    })
    .await
    .ok()
}

/// The median of `times`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The request head a slow HTTP/1 client never finishes (far longer than 2 s at 4 bytes/s).
fn endless_head() -> Vec<u8> {
    let mut head = b"POST /api/v1/webhooks/github HTTP/1.1\r\nHost: t\r\nX-Padding: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 200));
    head
}

#[tokio::test]
async fn slow_header_clients_are_cut_off_and_never_delay_a_signed_delivery() {
    let app = TestApp::new();
    let server = start_measured(&app).await;
    let limit = HEADER_TIMEOUT + Duration::from_secs(10);
    let slow: Vec<_> = (0..500)
        .map(|_| tokio::spawn(slow_client(server.addr, endless_head(), limit)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Honest deliveries while the 500 slow clients hold their connections.
    let mut times = Vec::new();
    for i in 0..10 {
        let (status, took) = timed_delivery(server.addr, &format!("honest-{i}")).await;
        assert_eq!(status, 200);
        times.push(took);
    }
    let typical = median(times.clone());
    eprintln!("signed delivery under 500 slow-header clients: median {typical:?}, all {times:?}");
    assert!(typical < Duration::from_millis(100), "{times:?}");
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(2)),
        "{times:?}"
    );

    assert_all_cut_off(slow).await;
    let metrics = app.metrics.render();
    let cut = metric_value(
        &metrics,
        r#"http_connection_timeouts_total{timeout="header"}"#,
    );
    assert!(cut >= 500.0, "{metrics}");
    server.shutdown().await;
}

/// The value of the metric line starting with `name`.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_until_its_own() {
    let app = TestApp::new();
    let config = ServeConfig {
        header_read_timeout: Duration::from_secs(1),
        keep_alive_timeout: Duration::from_secs(4),
        ..ServeConfig::default()
    };
    let server = Running::start(router(app.state.clone()), config).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&signed_ping("ka-1", true)).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);
    // Twice the header timeout later, the idle connection still serves a request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stream.write_all(&signed_ping("ka-2", true)).await.unwrap();
    assert_eq!(read_response(&mut stream).await, 200);
    let idle_from = Instant::now();
    let closed = closed_after(stream, idle_from, Duration::from_secs(15))
        .await
        .expect("the idle connection was never closed");
    assert!(
        closed >= Duration::from_secs(4) - Duration::from_millis(50),
        "{closed:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn over_the_connection_cap_new_connections_wait_and_idle_ones_make_room() {
    let app = TestApp::new();
    let config = ServeConfig {
        header_read_timeout: Duration::from_secs(30),
        keep_alive_timeout: Duration::from_secs(30),
        max_connections: 4,
        ..ServeConfig::default()
    };
    let server = Running::start(router(app.state.clone()), config).await;
    // Four connections that have not finished a request head take every slot.
    let mut pending = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        pending.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = tokio::spawn(timed_delivery(server.addr, "over-cap"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!waiting.is_finished(), "served over the cap");
    // One slot frees: the waiting connection is accepted and answered.
    drop(pending.pop());
    let (status, _) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("not served after a slot freed")
        .unwrap();
    assert_eq!(status, 200);

    // Idle keep-alive connections are closed to make room for a new one.
    drop(pending);
    let mut idle = Vec::new();
    for i in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&signed_ping(&format!("idle-{i}"), true))
            .await
            .unwrap();
        assert_eq!(read_response(&mut s).await, 200);
        idle.push(s);
    }
    let (status, took) = tokio::time::timeout(
        Duration::from_secs(10),
        timed_delivery(server.addr, "makes-room"),
    )
    .await
    .expect("idle connections did not make room");
    assert_eq!(status, 200, "{took:?}");
    server.shutdown().await;
}

/// One h2c (prior knowledge) client connection; its request sender.
async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    // HEADERS and DATA go out in separate writes: without this, Nagle's algorithm holds the
    // DATA frame for the server's delayed ACK (40 ms).
    stream.set_nodelay(true).unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2_delivery(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    delivery_id: &str,
) -> (u16, Duration) {
    let body = payload("ping/payload.json");
    let req = http::Request::post(format!("http://t{}", orchestrator_axum::WEBHOOK_PATH))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", delivery_id)
        .header("x-hub-signature-256", sign(&body))
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let started = Instant::now();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    (status, started.elapsed())
}

/// An HTTP/2 HEADERS frame on stream 1 without END_HEADERS, then CONTINUATION frames of one
/// byte each: a request head that never completes.
fn endless_h2_headers() -> Vec<u8> {
    let mut bytes = H2_PREFACE.to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // empty SETTINGS
    // HEADERS, length 1, flags END_STREAM (no END_HEADERS), stream 1, HPACK ":method: GET".
    bytes.extend_from_slice(&[0, 0, 1, 0x1, 0x1, 0, 0, 0, 1, 0x82]);
    for _ in 0..200 {
        // CONTINUATION, length 1, no flags, stream 1: a literal byte of a header block.
        bytes.extend_from_slice(&[0, 0, 1, 0x9, 0, 0, 0, 0, 1, 0x00]);
    }
    bytes
}

#[tokio::test]
async fn http2_gets_the_same_header_timeout_and_honest_streams_stay_fast() {
    let app = TestApp::new();
    let server = start_measured(&app).await;
    let limit = HEADER_TIMEOUT + Duration::from_secs(10);
    // Half send the connection preface one byte at a time, half a never-ending request head.
    let slow: Vec<_> = (0..200)
        .map(|i| {
            let bytes = if i % 2 == 0 {
                H2_PREFACE.to_vec()
            } else {
                endless_h2_headers()
            };
            tokio::spawn(slow_client(server.addr, bytes, limit))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut sender = h2_client(server.addr).await;
    let mut times = Vec::new();
    for i in 0..10 {
        let (status, took) = h2_delivery(&mut sender, &format!("h2-{i}")).await;
        assert_eq!(status, 200);
        times.push(took);
    }
    let typical = median(times.clone());
    eprintln!("h2 signed delivery under 200 slow h2 clients: median {typical:?}, all {times:?}");
    assert!(typical < Duration::from_millis(100), "{times:?}");

    assert_all_cut_off(slow).await;
    // The honest connection (idle since its last answer, PINGed) is still open.
    let (status, _) = h2_delivery(&mut sender, "h2-after").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn http2_limits_concurrent_streams_per_connection() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A handler that records how many of its requests run at once.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let hold = {
        let (running, most) = (running.clone(), most.clone());
        axum::Router::new().route(
            "/hold",
            axum::routing::get(move || async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                "ok"
            }),
        )
    };
    let config = ServeConfig {
        http2_max_concurrent_streams: 3,
        ..serve_config()
    };
    let server = Running::start(hold, config).await;
    let sender = h2_client(server.addr).await;
    // Twenty streams at once: the server runs at most three; the others wait in the client
    // (once it has read the server's SETTINGS) or are refused with REFUSED_STREAM (before).
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                let req = http::Request::get("http://t/hold")
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match sender.send_request(req).await {
                    Ok(resp) => Ok(resp.status().as_u16()),
                    Err(err) => Err(format!("{err:?}")),
                }
            })
        })
        .collect();
    let mut served = 0;
    for r in requests {
        match r.await.unwrap() {
            Ok(status) => {
                assert_eq!(status, 200);
                served += 1;
            }
            Err(err) => assert!(err.contains("REFUSED_STREAM"), "{err}"),
        }
    }
    assert!(served >= 3, "{served}");
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "{most:?} streams ran at once"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_cuts_stalled_ones_after_the_grace() {
    let slow = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "done"
            }),
        )
        .route(
            "/upload",
            axum::routing::post(|body: Bytes| async move { body.len().to_string() }),
        );
    let config = ServeConfig {
        shutdown_grace: Duration::from_secs(3),
        header_read_timeout: Duration::from_secs(60),
        ..ServeConfig::default()
    };
    let server = Running::start(slow, config).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut s).await
    });
    // A request whose body never completes: only the grace period ends it.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = server.shutdown().await;
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request was cut"
    );
    assert!(
        took >= Duration::from_secs(3) - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
