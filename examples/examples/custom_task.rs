//! A task type of your own: every newly opened issue gets the `triage` label, through the
//! orchestrator's GitHub client (its token or App installation, quota floor and breaker).
//!
//! A rule routes `issues.opened` to a `label_issue` task; the handler reads the issue number
//! from the stored delivery and calls GitHub. Runs on the embedded SQLite default.
//!
//! ```text
//! GITHUB_WEBHOOK_SECRET=change-me GITHUB_TOKEN=ghp_... \
//!     cargo run -p orchestrator-server --example custom_task
//! ```

use std::sync::Arc;

use orchestrator_codegen::GitHubClient;
use orchestrator_core::prelude::*;
use orchestrator_server::{Orchestrator, OrchestratorBuilder, shutdown};
use serde::Deserialize;
use serde_json::json;

const LABEL_ISSUE: TaskType = TaskType::from_static("label_issue");

/// The part of the `issues` payload the handler reads.
#[derive(Deserialize)]
struct Opened {
    issue: Issue,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
}

/// Labels the task's issue; its output is the labels added.
struct LabelIssue(Arc<GitHubClient>);

#[async_trait]
impl TaskHandler for LabelIssue {
    async fn handle(&self, ctx: &TaskContext) -> Result<HandlerOutcome, TaskError> {
        let (repo, opened) = (ctx.repo()?, ctx.payload::<Opened>().await?);
        let n = opened.issue.number.to_string();
        let path = ["repos", &repo.owner, &repo.name, "issues", &n, "labels"];
        let labels = json!({ "labels": ["triage"] });
        self.0
            .post("issues.add_labels", &path, &labels, ctx.installation_id())
            .await?;
        Ok(HandlerOutcome::done(labels))
    }
}

/// The rule and the handler, on top of any builder.
fn with_label_task(builder: OrchestratorBuilder) -> OrchestratorBuilder {
    let rule = EventRule::new("label_opened_issues", "issues", LABEL_ISSUE);
    builder
        .rule(rule.with_actions(["opened"]))
        .handler_with(LABEL_ISSUE, |c| LabelIssue(c.github().clone()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orchestrator = with_label_task(Orchestrator::builder().from_env()?)
        .build()
        .await?;
    let addr = orchestrator.components().config().bind_addr;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{addr} (receiver at POST /api/v1/webhooks/github)");
    orchestrator.serve(listener, shutdown::signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use orchestrator_server::send::sign;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const SECRET: &str = "custom-task-secret";

    #[tokio::test]
    async fn an_opened_issue_is_labelled_through_the_github_client() {
        let github = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/issues/1/labels"))
            .and(header("authorization", "Bearer ghp_example"))
            .and(body_json(json!({"labels": ["triage"]})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"name": "triage"}])))
            .expect(1)
            .mount(&github)
            .await;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
        let builder = Orchestrator::builder()
            .webhook_secret(SECRET)
            .database_url(url)
            .configure(|c| {
                c.github.base_url = github.uri().parse().unwrap();
                c.github.token = Some(Secret::new("ghp_example"));
            });
        let orchestrator = with_label_task(builder).build().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(orchestrator.serve(listener, stop.clone().cancelled_owned()));

        let body = std::fs::read(
            orchestrator_server::corpus_dir().join("github-payloads/issues/opened.payload.json"),
        )
        .unwrap();
        let response = reqwest::Client::new()
            .post(format!("{base}/api/v1/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "custom-task-1")
            .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let receipt: serde_json::Value = response.json().await.unwrap();
        assert_eq!(receipt["status"], "accepted", "{receipt}");
        assert_eq!(receipt["result"]["task_ids"].as_array().unwrap().len(), 1);

        let tasks = orchestrator.components().tasks().clone();
        let started = Instant::now();
        let task = loop {
            let list = tasks
                .list_tasks(&TaskFilter::default(), Page::default())
                .await
                .unwrap();
            if let Some(done) = list.iter().find(|t| t.status.is_terminal()) {
                break done.clone();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{list:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(task.task_type, LABEL_ISSUE);
        assert_eq!(task.status, TaskStatus::Completed, "{task:#?}");
        assert_eq!(task.output_data, Some(json!({"labels": ["triage"]})));

        stop.cancel();
        server.await.unwrap().unwrap();
        github.verify().await;
    }
}
