//! Embedding the GitHub receiver in an existing axum application with [`WebhookLayer`].
//!
//! The application keeps its own routes; the layer takes only `POST /api/v1/webhooks/github`.
//! Deliveries are verified, routed and stored in the in-memory store (swap in the SQL store
//! for durability) and a worker would then run the tasks.
//!
//! ```text
//! GITHUB_WEBHOOK_SECRET=s3cret cargo run -p orchestrator-axum --example embed_layer
//! curl localhost:3000/            # the application's own page
//! # then point a GitHub webhook (or `gh webhook forward`) at http://<host>:3000/api/v1/webhooks/github
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use orchestrator_axum::{ApiConfig, AppState, Metrics, WebhookLayer};
use orchestrator_core::clock::SystemClock;
use orchestrator_core::engine::Ingestor;
use orchestrator_core::memory::MemoryStore;
use orchestrator_core::queue::StoreQueue;
use orchestrator_core::routing::Router as Rules;
use orchestrator_core::signature::{SignatureVerifier, WebhookSecret};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("GITHUB_WEBHOOK_SECRET").unwrap_or_default();
    if secret.is_empty() {
        eprintln!("GITHUB_WEBHOOK_SECRET is not set: every delivery will be refused with 401");
    }
    let bind: SocketAddr = std::env::var("BIND_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;

    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let metrics = Arc::new(Metrics::new()?);
    let verifier = SignatureVerifier::new([WebhookSecret::new(secret)]);
    let ingestor = Ingestor::new(
        verifier,
        Rules::with_default_rules(),
        store.clone(),
        Arc::new(StoreQueue::new(store.clone())),
        clock.clone(),
    )
    .with_observer(metrics.clone());
    let state = AppState::builder_for(Arc::new(ingestor), store, clock)
        .config(ApiConfig::default())
        .metrics(metrics)
        .build();

    // The host application: its own routes, plus the receiver as a layer.
    let app = Router::new()
        .route("/", get(|| async { "my application\n" }))
        .layer(WebhookLayer::new(state));

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on http://{bind} (receiver at POST /api/v1/webhooks/github)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
