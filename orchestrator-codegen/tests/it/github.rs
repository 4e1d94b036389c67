//! The GitHub client against a wiremock server: headers, paging, decoding, error mapping,
//! rate-limit accounting.

use std::time::Duration;

use chrono::Utc;
use orchestrator_codegen::{GitHubConfig, Secret};
use orchestrator_core::error::ClientErrorKind;
use orchestrator_core::github::{GitHubApi, RepoRef};
use serde_json::json;
use wiremock::matchers::{
    header, header_exists, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{github, github_config, github_with};

fn repo() -> RepoRef {
    RepoRef::parse("octo/repo").unwrap()
}

fn file(name: &str, additions: u64) -> serde_json::Value {
    json!({"sha": "x", "filename": name, "status": "modified", "additions": additions,
           "deletions": 1, "changes": additions + 1, "patch": "@@"})
}

fn quota(remaining: u64, reset: i64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("x-ratelimit-limit", "5000")
        .insert_header("x-ratelimit-remaining", remaining.to_string().as_str())
        .insert_header("x-ratelimit-reset", reset.to_string().as_str())
}

#[tokio::test]
async fn pull_request_files_sends_auth_and_api_headers_and_follows_every_page() {
    let server = MockServer::start().await;
    let reset = Utc::now().timestamp() + 3600;
    let next = format!(
        "<{}/repos/octo/repo/pulls/7/files?per_page=100&page=2>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/pulls/7/files"))
        .and(query_param("per_page", "100"))
        .and(query_param_is_missing("page"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header_exists("user-agent"))
        .respond_with(
            quota(4999, reset)
                .set_body_json(json!([file("src/a.rs", 10), file("b.py", 5)]))
                .insert_header("link", next.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/pulls/7/files"))
        .and(query_param("page", "2"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .respond_with(quota(4998, reset).set_body_json(json!([file("README.md", 1)])))
        .expect(1)
        .mount(&server)
        .await;

    let (client, _clock, recorder) = github(&server);
    let files = client.pull_request_files(None, &repo(), 7).await.unwrap();

    let names: Vec<_> = files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(names, ["src/a.rs", "b.py", "README.md"]);
    assert_eq!(files[0].additions, 10);
    assert_eq!(
        recorder.requests(),
        [
            ("pulls.files".to_owned(), 200),
            ("pulls.files".to_owned(), 200)
        ]
    );
    assert_eq!(recorder.remaining(), [4999, 4998]);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/pulls/7/files"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([file("a.rs", 1)]))
                .insert_header("link", "<https://evil.example/steal?page=2>; rel=\"next\""),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let err = client
        .pull_request_files(None, &repo(), 7)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Permanent);
}

#[tokio::test]
async fn check_run_and_suite_runs_decode_the_output() {
    let server = MockServer::start().await;
    let run = json!({"id": 11, "name": "unit-tests", "status": "completed", "conclusion": "failure",
        "head_sha": "abc", "html_url": "https://github.com/octo/repo/runs/11",
        "output": {"title": "2 failed", "summary": "test_a failed", "text": null}});
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-runs/11"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&run))
        .mount(&server)
        .await;
    let next = format!(
        "<{}/repos/octo/repo/check-suites/5/check-runs?per_page=100&page=2>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-suites/5/check-runs"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 2, "check_runs": [run]}))
                .insert_header("link", next.as_str()),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-suites/5/check-runs"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total_count": 2, "check_runs": [
            {"id": 12, "name": "lint", "status": "completed", "conclusion": "success", "output": null}]})))
        .mount(&server)
        .await;

    let (client, _clock, recorder) = github(&server);
    let got = client.check_run(None, &repo(), 11).await.unwrap();
    assert_eq!(got.name, "unit-tests");
    assert_eq!(got.conclusion.as_deref(), Some("failure"));
    assert_eq!(got.output_title.as_deref(), Some("2 failed"));
    assert_eq!(got.output_summary.as_deref(), Some("test_a failed"));

    let runs = client.check_suite_runs(None, &repo(), 5).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [11, 12]);
    assert_eq!(runs[1].output_summary, None);
    let endpoints: Vec<_> = recorder.requests().into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        endpoints,
        ["checks.run", "checks.suite_runs", "checks.suite_runs"]
    );
}

#[tokio::test]
async fn rate_limit_reads_the_core_quota() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rate_limit"))
        .respond_with(quota(4321, 1_900_000_000).set_body_json(json!({
            "resources": {"core": {"limit": 5000, "remaining": 4321, "reset": 1_900_000_000, "used": 679}},
            "rate": {"limit": 5000, "remaining": 4321, "reset": 1_900_000_000}})))
        .mount(&server)
        .await;
    let (client, _clock, recorder) = github(&server);
    let status = client.rate_limit().await.unwrap();
    assert_eq!(
        (status.limit, status.remaining, status.reset_at.timestamp()),
        (5000, 4321, 1_900_000_000)
    );
    assert_eq!(recorder.remaining(), [4321]);
}

async fn error_kind(response: ResponseTemplate) -> (ClientErrorKind, Option<u16>) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(response)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let err = client.check_run(None, &repo(), 1).await.unwrap_err();
    (err.kind(), err.status())
}

#[tokio::test]
async fn statuses_map_onto_error_kinds() {
    let reset = Utc::now().timestamp() + 120;
    let (kind, status) =
        error_kind(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}))).await;
    assert_eq!((kind, status), (ClientErrorKind::Permanent, Some(404)));
    let (kind, _) = error_kind(ResponseTemplate::new(422)).await;
    assert_eq!(kind, ClientErrorKind::Permanent);
    let (kind, _) = error_kind(ResponseTemplate::new(502).insert_header("retry-after", "7")).await;
    assert_eq!(
        kind,
        ClientErrorKind::Retryable {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    let (kind, _) = error_kind(ResponseTemplate::new(503)).await;
    assert_eq!(kind, ClientErrorKind::Retryable { retry_after: None });
    // Primary rate limit: 403 with nothing remaining waits until the reset.
    let (kind, status) = error_kind(
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
    )
    .await;
    assert_eq!(status, Some(403));
    match kind {
        ClientErrorKind::RateLimited {
            retry_after: Some(wait),
        } => {
            assert!(
                wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
                "{wait:?}"
            )
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // Secondary rate limit: 403 with Retry-After.
    let (kind, _) = error_kind(ResponseTemplate::new(403).insert_header("retry-after", "60")).await;
    assert_eq!(
        kind,
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    let (kind, _) = error_kind(ResponseTemplate::new(429).insert_header("retry-after", "3")).await;
    assert_eq!(
        kind,
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    // A plain 403 (no permission) is permanent.
    let (kind, _) =
        error_kind(ResponseTemplate::new(403).insert_header("x-ratelimit-remaining", "4000")).await;
    assert_eq!(kind, ClientErrorKind::Permanent);
    // A body that is not the expected JSON is permanent.
    let (kind, _) = error_kind(ResponseTemplate::new(200).set_body_string("<html>")).await;
    assert_eq!(kind, ClientErrorKind::Permanent);
}

#[tokio::test]
async fn a_secondary_rate_limit_pauses_every_call_for_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-runs/1"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "30")
                .insert_header("x-ratelimit-remaining", "4000"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-runs/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 2, "name": "ci", "status": "completed", "conclusion": "success"})))
        .expect(1)
        .mount(&server)
        .await;
    let (client, clock, _recorder) = github(&server);
    let err = client.check_run(None, &repo(), 1).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    // Another call, for something else, is not sent while the pause lasts.
    clock.advance(Duration::from_secs(20));
    let err = client.check_run(None, &repo(), 2).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(10))
        }
    );
    // Once it is over, calls go out again (the mock expects exactly one call each).
    clock.advance(Duration::from_secs(10));
    client.check_run(None, &repo(), 2).await.unwrap();
}

#[tokio::test]
async fn a_slow_response_times_out_as_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let mut config = github_config(&server);
    config.timeouts.total = Duration::from_millis(200);
    let (client, _clock, recorder) = github_with(config);
    let err = client.check_run(None, &repo(), 1).await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Retryable { retry_after: None });
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(recorder.requests(), [("checks.run".to_owned(), 0)]);
}

#[tokio::test]
async fn a_quota_below_the_floor_defers_further_calls_without_sending_them() {
    let server = MockServer::start().await;
    let reset = Utc::now().timestamp() + 600;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/check-runs/1"))
        .respond_with(
            quota(10, reset).set_body_json(json!({"id": 1, "name": "t", "status": "completed"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let (client, clock, recorder) = github(&server);
    client.check_run(None, &repo(), 1).await.unwrap();
    let err = client.check_run(None, &repo(), 1).await.unwrap_err();
    match err.kind() {
        ClientErrorKind::RateLimited {
            retry_after: Some(wait),
        } => assert!(wait > Duration::from_secs(590)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(recorder.remaining(), [10]);
    // Once the window has reset, calls go out again (this one fails the mock's expect(1) count
    // if sent, so move the clock and check that the guard lets it through to a 404 instead).
    server.reset().await;
    clock.advance(Duration::from_secs(601));
    let err = client.check_run(None, &repo(), 1).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn without_credentials_requests_go_out_unauthenticated() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let config = GitHubConfig {
        token: None,
        ..github_config(&server)
    };
    let (client, _clock, _recorder) = github_with(config);
    assert!(!client.is_authenticated());
    client.pull_request_files(None, &repo(), 1).await.unwrap();
    let received = server.received_requests().await.unwrap();
    assert!(received[0].headers.get("authorization").is_none());
    // Debug output of the client never shows a token.
    let with_token = github_with(GitHubConfig {
        token: Some(Secret::new("ghp_hidden")),
        ..github_config(&server)
    })
    .0;
    assert!(!format!("{with_token:?}").contains("ghp_hidden"));
}

#[tokio::test]
async fn request_sends_any_call_with_the_clients_credentials_and_maps_its_status() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/octo/repo/issues/12/labels"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(wiremock::matchers::body_json(json!({"labels": ["triage"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"name": "triage"}])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/repos/octo/repo/issues/12/labels/needs%20info"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/octo/gone/issues/1/labels"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;

    let (client, _clock, recorder) = github(&server);
    let labels = ["repos", "octo", "repo", "issues", "12", "labels"];
    let answer = client
        .request(
            "issues.add_labels",
            reqwest::Method::POST,
            &labels,
            Some(&json!({"labels": ["triage"]})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(answer, json!([{"name": "triage"}]));
    // A segment is one segment: its space and slash are encoded, never a new path.
    let one = [
        "repos",
        "octo",
        "repo",
        "issues",
        "12",
        "labels",
        "needs info",
    ];
    let empty = client
        .request(
            "issues.remove_label",
            reqwest::Method::DELETE,
            &one,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(empty, serde_json::Value::Null);
    let gone = ["repos", "octo", "gone", "issues", "1", "labels"];
    let err = client
        .request(
            "issues.add_labels",
            reqwest::Method::POST,
            &gone,
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Permanent);
    assert_eq!(
        recorder.requests(),
        [
            ("issues.add_labels".to_owned(), 200),
            ("issues.remove_label".to_owned(), 204),
            ("issues.add_labels".to_owned(), 404)
        ]
    );
}
