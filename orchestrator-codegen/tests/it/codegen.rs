//! The Codegen client against a wiremock server.

use std::time::Duration;

use orchestrator_codegen::{CodegenClient, CodegenConfig};
use orchestrator_core::agent::{AgentRunRequest, CodingAgent, RunOutcome};
use orchestrator_core::error::ClientErrorKind;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Recorder, clock_now, codegen, codegen_config};

fn request() -> AgentRunRequest {
    AgentRunRequest {
        prompt: "fix it".into(),
        metadata: Some(json!({"task_id": "t"})),
        repo_id: None,
        model: None,
        agent_type: None,
    }
}

#[tokio::test]
async fn create_and_read_a_run_with_bearer_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/organizations/42/agent/run"))
        .and(header("authorization", "Bearer cg_testtoken"))
        .and(body_partial_json(json!({"prompt": "fix it", "metadata": {"task_id": "t"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 501, "organization_id": 42, "status": "ACTIVE", "created_at": "2026-11-28T10:00:00Z",
            "web_url": "https://codegen.com/agent/trace/501", "result": null, "summary": null,
            "source_type": "API", "github_pull_requests": null, "metadata": null})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/organizations/42/agent/run/501"))
        .and(header("authorization", "Bearer cg_testtoken"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 501, "organization_id": 42, "status": "completed", "web_url": "https://codegen.com/agent/trace/501",
            "result": "done", "summary": "fixed tests",
            "github_pull_requests": [{"id": 9, "title": "Fix", "url": "https://github.com/octo/repo/pull/9", "head_branch_name": "codegen/fix"}]})))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = codegen(&server);
    assert!(client.is_configured());
    let run = client.create_run(&request()).await.unwrap();
    assert_eq!((run.id, run.outcome()), (501, RunOutcome::InProgress));
    assert!(
        run.github_pull_requests.is_empty(),
        "null pull requests read as none"
    );
    let run = client.get_run(501).await.unwrap();
    assert_eq!(run.outcome(), RunOutcome::Completed);
    assert_eq!(
        run.github_pull_requests[0].head_branch_name.as_deref(),
        Some("codegen/fix")
    );
    // The request omitted the optional fields it did not set.
    let sent: serde_json::Value = server.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert!(sent.get("model").is_none() && sent.get("repo_id").is_none());
}

#[tokio::test]
async fn statuses_map_onto_error_kinds() {
    for (status, expected) in [
        (402, ClientErrorKind::Permanent),
        (403, ClientErrorKind::Permanent),
        (404, ClientErrorKind::Permanent),
        (422, ClientErrorKind::Permanent),
        (
            429,
            ClientErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(6)),
            },
        ),
        (
            500,
            ClientErrorKind::Retryable {
                retry_after: Some(Duration::from_secs(6)),
            },
        ),
        (
            503,
            ClientErrorKind::Retryable {
                retry_after: Some(Duration::from_secs(6)),
            },
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("retry-after", "6")
                    .set_body_json(
                        json!({"message": format!("nope {status}"), "status_code": status}),
                    ),
            )
            .mount(&server)
            .await;
        let (client, _clock, _recorder) = codegen(&server);
        let err = client.create_run(&request()).await.unwrap_err();
        assert_eq!(err.kind(), expected, "status {status}");
        assert_eq!(err.status(), Some(status));
        assert!(err.to_string().contains(&format!("nope {status}")), "{err}");
        assert!(!err.to_string().contains("cg_testtoken"));
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut config = codegen_config(&server);
    config.timeouts.total = Duration::from_millis(200);
    let client = CodegenClient::new(
        config,
        clock_now(),
        std::sync::Arc::new(Recorder::default()),
    )
    .unwrap();
    let err = client.get_run(1).await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Retryable { retry_after: None });
}

#[tokio::test]
async fn without_token_or_org_the_client_is_unconfigured_and_sends_nothing() {
    let server = MockServer::start().await;
    let config = CodegenConfig {
        org_id: None,
        ..codegen_config(&server)
    };
    let client = CodegenClient::new(
        config,
        clock_now(),
        std::sync::Arc::new(Recorder::default()),
    )
    .unwrap();
    assert!(!client.is_configured());
    let err = client.create_run(&request()).await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::NotConfigured);
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(!format!("{client:?}").contains("cg_testtoken"));
}

#[tokio::test]
async fn a_create_that_timed_out_after_sending_is_permanent_but_a_refused_connection_is_retryable()
{
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut config = codegen_config(&server);
    config.timeouts.total = Duration::from_millis(200);
    let client = CodegenClient::new(
        config,
        clock_now(),
        std::sync::Arc::new(Recorder::default()),
    )
    .unwrap();
    let err = client.create_run(&request()).await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Permanent, "{err}");

    // Nothing listens on a port that was just freed: the request never left, so trying again
    // is safe.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = CodegenConfig {
        base_url: format!("http://127.0.0.1:{port}").parse().unwrap(),
        ..codegen_config(&server)
    };
    let client = CodegenClient::new(
        config,
        clock_now(),
        std::sync::Arc::new(Recorder::default()),
    )
    .unwrap();
    let err = client.create_run(&request()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ClientErrorKind::Retryable { retry_after: None },
        "{err}"
    );
}
