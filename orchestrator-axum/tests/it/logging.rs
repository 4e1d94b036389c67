//! Every log line of a request carries its correlation id.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use axum::body::Body;
use http::{Request, StatusCode, header};

use crate::utils::*;

thread_local! {
    /// The log output of the current thread, while a test captures it.
    static CAPTURE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Writes into the current thread's capture buffer, if any.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(out) = c.borrow_mut().as_mut() {
                out.extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One global subscriber for the test binary: a thread-local (scoped) subscriber is not
/// reliable while other tests register the same callsites concurrently.
fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

#[tokio::test(flavor = "current_thread")]
async fn log_lines_carry_the_correlation_id() {
    install();
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));

    let app = TestApp::new();
    let req = Request::get("/api/v1/tasks")
        .header("x-request-id", "corr-77")
        .header(header::AUTHORIZATION, "Bearer wrong")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status(), StatusCode::UNAUTHORIZED);
    let req = webhook_builder("pull_request", "logged")
        .header("x-request-id", "corr-78")
        .header("x-hub-signature-256", sign(&pr_opened()))
        .body(Body::from(pr_opened()))
        .unwrap();
    assert_eq!(app.send(req).await.status(), StatusCode::OK);

    let captured = CAPTURE.with(|c| c.borrow_mut().take()).unwrap();
    let text = String::from_utf8(captured).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        assert!(
            line.contains("correlation_id=corr-77") || line.contains("correlation_id=corr-78"),
            "line without a correlation id: {line}"
        );
    }
    assert!(text.contains("bearer token"), "{text}");
    // The delivery's own line (logged once, by the ingestor) carries the correlation id too.
    assert!(text.contains("delivery stored"), "{text}");
    assert!(
        !text.contains(TOKEN) && !text.contains("Bearer wrong"),
        "a token leaked into the logs"
    );
}
