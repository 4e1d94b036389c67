//! The whole pipeline in one process, without a database or a socket: the in-memory store, a
//! signed delivery sent through the router in memory, the workers, the tasks read back. The
//! shape of an embedder's own tests (swap in your rules and handlers, and a `ManualClock` with
//! `.clock(..)` to drive retries without waiting).
//!
//! ```text
//! cargo run -p orchestrator-server --example memory
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use orchestrator_core::prelude::*;
use orchestrator_server::Orchestrator;
use orchestrator_server::send::sign;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

type Error = Box<dyn std::error::Error + Send + Sync>;

const SECRET: &str = "memory-example-secret";

/// What a delivery led to: the receiver's answer and the tasks once all of them finished.
struct Outcome {
    status: StatusCode,
    answer: serde_json::Value,
    tasks: Vec<Task>,
}

/// Delivers `body` as `event` to an orchestrator on the in-memory store and runs its workers
/// until every task has finished.
async fn pipeline(event: &str, body: Vec<u8>) -> Result<Outcome, Error> {
    let store = Arc::new(MemoryStore::new());
    let orchestrator = Orchestrator::builder()
        .store(store.clone())
        .webhook_secret(SECRET)
        .build()
        .await?;
    let request = Request::post("/api/v1/webhooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", "memory-1")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .body(Body::from(body))?;
    let response = orchestrator.router().oneshot(request).await?;
    let status = response.status();
    let answer =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await?)?;

    let stop = CancellationToken::new();
    let workers = tokio::spawn(orchestrator.run_workers(stop.clone().cancelled_owned()));
    let tasks = finished_tasks(store.as_ref()).await?;
    stop.cancel();
    workers.await??;
    Ok(Outcome {
        status,
        answer,
        tasks,
    })
}

/// The store's tasks, once every one of them has reached a terminal status (at most 30 s).
async fn finished_tasks(store: &MemoryStore) -> Result<Vec<Task>, Error> {
    for _ in 0..300 {
        let tasks = store
            .list_tasks(&TaskFilter::default(), Page::default())
            .await?;
        if tasks.iter().all(|t| t.status.is_terminal()) {
            return Ok(tasks);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("tasks still running after 30 s".into())
}

fn push_to_default_branch() -> std::io::Result<Vec<u8>> {
    std::fs::read(
        orchestrator_server::corpus_dir().join("github-payloads/push/with-new-branch.payload.json"),
    )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let outcome = pipeline("push", push_to_default_branch()?).await?;
    println!("receiver: {} {}", outcome.status, outcome.answer);
    for task in outcome.tasks {
        println!(
            "task {} {}: {}",
            task.task_type,
            task.status,
            task.output_data.unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn a_push_is_accepted_and_its_analysis_completes_in_memory() {
        let outcome = pipeline("push", push_to_default_branch().unwrap())
            .await
            .unwrap();
        assert_eq!(outcome.status, StatusCode::OK);
        assert_eq!(outcome.answer["status"], "accepted", "{}", outcome.answer);
        assert_eq!(outcome.tasks.len(), 1);
        let task = &outcome.tasks[0];
        assert_eq!(task.task_type, TaskType::PUSH_ANALYSIS);
        assert_eq!(task.status, TaskStatus::Completed);
        assert_eq!(
            task.output_data.as_ref().unwrap()["ref"],
            "refs/heads/master"
        );
    }

    #[tokio::test]
    async fn a_delivery_with_a_wrong_signature_is_refused_and_nothing_runs() {
        let body = push_to_default_branch().unwrap();
        let store = Arc::new(MemoryStore::new());
        let orchestrator = Orchestrator::builder()
            .store(store.clone())
            .webhook_secret("another-secret")
            .build()
            .await
            .unwrap();
        let request = Request::post("/api/v1/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "memory-2")
            .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
            .body(Body::from(body))
            .unwrap();
        let response = orchestrator.router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let tasks = store
            .list_tasks(&TaskFilter::default(), Page::default())
            .await
            .unwrap();
        assert!(tasks.is_empty());
    }
}
