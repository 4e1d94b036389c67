//! The receiver and in-process workers inside an existing axum application.
//!
//! The application keeps its own routes; [`Orchestrator::layer`] takes only
//! `POST /api/v1/webhooks/github` (signature, per-client rate limit, durable store), and
//! [`Orchestrator::run_workers`] runs the tasks the deliveries cause, in the same process.
//!
//! ```text
//! GITHUB_WEBHOOK_SECRET=change-me cargo run -p orchestrator-server --example embed_receiver
//! curl localhost:3000/      # the application's own page
//! # point a GitHub webhook (or `gh webhook forward`) at http://HOST:3000/api/v1/webhooks/github
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use orchestrator_axum::RateLimit;
use orchestrator_server::{Orchestrator, ServerError, shutdown};
use tokio_util::sync::CancellationToken;

/// The orchestrator: deliveries in a SQLite file, at most `limit` per client.
async fn orchestrator(
    secret: &str,
    database_url: &str,
    limit: RateLimit,
) -> Result<Orchestrator, ServerError> {
    Orchestrator::builder()
        .webhook_secret(secret)
        .database_url(database_url)
        .configure(|c| c.api.rate_limits.webhook = limit)
        .build()
        .await
}

/// The application, with the receiver mounted as a layer.
fn app(orchestrator: &Orchestrator) -> Router {
    Router::new()
        .route("/", get(|| async { "my application\n" }))
        .layer(orchestrator.layer())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("GITHUB_WEBHOOK_SECRET")?;
    let limit = RateLimit::per_second(10, 20);
    let orchestrator = orchestrator(&secret, "sqlite://embedded.db?mode=rwc", limit).await?;
    let stop = CancellationToken::new();
    let workers = tokio::spawn(orchestrator.run_workers(stop.clone().cancelled_owned()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://127.0.0.1:3000 (receiver at POST /api/v1/webhooks/github)");
    // The client's address is what the per-client rate limit counts by.
    let service = app(&orchestrator).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown::signal())
        .await?;
    stop.cancel();
    workers.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use orchestrator_core::prelude::*;
    use orchestrator_server::send::sign;

    use super::*;

    const SECRET: &str = "embed-example-secret";

    async fn deliver(base: &str, body: &[u8]) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
            .header("x-hub-signature-256", sign(SECRET.as_bytes(), body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_application_receives_runs_the_task_and_limits_each_client() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("e.db").display());
        // Three deliveries per client, then one a minute: the fourth is refused at once.
        let orchestrator = orchestrator(SECRET, &url, RateLimit::per_minute(1, 3))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let workers = tokio::spawn(orchestrator.run_workers(stop.clone().cancelled_owned()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let service = app(&orchestrator).into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            }
        });

        let page = reqwest::get(format!("{base}/")).await.unwrap();
        assert_eq!(page.text().await.unwrap(), "my application\n");
        let push = std::fs::read(
            orchestrator_server::corpus_dir()
                .join("github-payloads/push/with-new-branch.payload.json"),
        )
        .unwrap();
        let accepted = deliver(&base, &push).await;
        assert_eq!(accepted.status(), 200);
        let receipt: serde_json::Value = accepted.json().await.unwrap();
        assert_eq!(receipt["status"], "accepted", "{receipt}");

        // The in-process worker runs the push analysis.
        let tasks = orchestrator.components().tasks().clone();
        let started = Instant::now();
        loop {
            let list = tasks
                .list_tasks(&TaskFilter::default(), Page::default())
                .await
                .unwrap();
            if list.iter().any(|t| {
                t.task_type == TaskType::PUSH_ANALYSIS && t.status == TaskStatus::Completed
            }) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{list:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The same client, two more deliveries, then the limit.
        for _ in 0..2 {
            assert_eq!(deliver(&base, &push).await.status(), 200);
        }
        let limited = deliver(&base, &push).await;
        assert_eq!(limited.status(), 429);
        assert!(limited.headers().contains_key("retry-after"));

        stop.cancel();
        server.await.unwrap().unwrap();
        workers.await.unwrap().unwrap();
        orchestrator.close().await;
    }
}
