//! The router on a real socket (port 0): peer addresses key the rate limit, and the size limit
//! holds for a chunked body sent over the wire.

use std::net::SocketAddr;

use orchestrator_axum::{RateLimit, RateLimits, router};
use orchestrator_core::delivery::DeliveryLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::utils::*;

async fn serve(app: &TestApp) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = router(app.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let handle = tokio::spawn(async move {
        axum::serve(listener, service).await.unwrap();
    });
    (addr, handle)
}

/// Sends raw request bytes on a fresh connection; the status code and the whole answer.
async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before the whole body is written.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn chunked(total: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..total / 256 {
        out.extend_from_slice(b"100\r\n");
        out.extend_from_slice(&[b' '; 256]);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn over_the_wire_limits_hold() {
    let app = TestApp::build(
        config().with_rate_limits(RateLimits {
            webhook: RateLimit::OFF,
            api: RateLimit::per_minute(1, 1),
        }),
        DeliveryLimits {
            max_body_bytes: 1024,
        },
    );
    let (addr, server) = serve(&app).await;

    let head = "POST /api/v1/webhooks/github HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                X-GitHub-Event: push\r\nX-GitHub-Delivery: wire-1\r\nX-Hub-Signature-256: sha256=00\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (status, text) = raw(addr, head, &chunked(64 * 1024)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"correlation_id\""), "{text}");

    let get = format!(
        "GET /api/v1/tasks HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    assert_eq!(raw(addr, &get, b"").await.0, 200);
    let (status, text) = raw(addr, &get, b"").await;
    assert_eq!(status, 429, "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    server.abort();
}
