//! The delivery-log client (recovery) against wiremock: App JWT vs token, `Link` cursor paging,
//! one delivery's request, redelivery, a secondary limit with `Retry-After`, a 5xx.

use std::time::Duration;

use orchestrator_codegen::{GitHubAppConfig, GitHubConfig, Secret};
use orchestrator_core::error::ClientErrorKind;
use orchestrator_core::recovery::{DeliveryLog, HookRef};
use serde_json::{Value, json};
use wiremock::matchers::{header, header_regex, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TEST_APP_KEY, github, github_config, github_with};

fn summary(id: i64, guid: &str, status_code: u16) -> Value {
    json!({"id": id, "guid": guid, "delivered_at": "2026-11-30T10:00:00Z", "redelivery": false,
           "duration": 0.2, "status": if status_code == 200 { "OK" } else { "Bad Gateway" },
           "status_code": status_code, "event": "pull_request", "action": "opened",
           "installation_id": 9, "repository_id": 77, "throttled_at": null})
}

fn repo_hook() -> HookRef {
    "repo:octo/repo:42".parse().unwrap()
}

#[tokio::test]
async fn a_repo_hook_listing_pages_by_the_link_cursor_with_the_token() {
    let server = MockServer::start().await;
    let next = format!(
        "<{}/repos/octo/repo/hooks/42/deliveries?per_page=100&cursor=v1_abc>; rel=\"next\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/hooks/42/deliveries"))
        .and(query_param("per_page", "100"))
        .and(query_param_is_missing("cursor"))
        .and(header("authorization", "Bearer ghp_testtoken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([summary(2, "g-2", 200), summary(1, "g-1", 502)]))
                .insert_header("link", next.as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/hooks/42/deliveries"))
        .and(query_param("cursor", "v1_abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([summary(0, "g-0", 200)])))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _clock, recorder) = github(&server);

    let first = client.list_deliveries(&repo_hook(), None).await.unwrap();
    assert_eq!(first.deliveries.len(), 2);
    assert_eq!(first.deliveries[1].guid, "g-1");
    assert!(!first.deliveries[1].succeeded());
    assert_eq!(first.deliveries[0].action.as_deref(), Some("opened"));
    assert_eq!(first.next_cursor.as_deref(), Some("v1_abc"));
    let second = client
        .list_deliveries(&repo_hook(), first.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(second.deliveries[0].guid, "g-0");
    assert_eq!(second.next_cursor, None);
    assert_eq!(
        recorder.requests(),
        [
            ("hooks.deliveries".to_owned(), 200),
            ("hooks.deliveries".to_owned(), 200)
        ]
    );
}

#[tokio::test]
async fn the_app_hook_is_read_with_the_app_jwt_not_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/app/hook/deliveries"))
        // A JWT: three base64url parts, not the personal token.
        .and(header_regex(
            "authorization",
            r"^Bearer [\w-]+\.[\w-]+\.[\w-]+$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([summary(5, "g-5", 200)])))
        .expect(1)
        .mount(&server)
        .await;
    let config = GitHubConfig {
        app: Some(GitHubAppConfig {
            app_id: 123,
            private_key_pem: Secret::new(TEST_APP_KEY),
        }),
        ..github_config(&server)
    };
    let (client, _clock, _recorder) = github_with(config);
    let page = client.list_deliveries(&HookRef::App, None).await.unwrap();
    assert_eq!(page.deliveries[0].guid, "g-5");

    // Without an App, the app hook cannot be read: a permanent error, nothing sent.
    let (plain, _clock, recorder) = github(&server);
    let err = plain
        .list_deliveries(&HookRef::App, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Permanent);
    assert!(recorder.requests().is_empty());
}

#[tokio::test]
async fn one_delivery_carries_its_request_headers_and_payload() {
    let server = MockServer::start().await;
    let mut body = summary(7, "g-7", 502);
    body["request"] = json!({
        "headers": {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "g-7",
                    "X-GitHub-Hook-ID": "42", "Content-Type": "application/json"},
        "payload": {"action": "opened", "number": 3}
    });
    body["response"] = json!({"headers": {}, "payload": "bad gateway"});
    Mock::given(method("GET"))
        .and(path("/orgs/octo/hooks/8/deliveries/7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&body))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github(&server);
    let hook: HookRef = "org:octo:8".parse().unwrap();
    let delivery = client.get_delivery(&hook, 7).await.unwrap();
    assert_eq!(delivery.summary.guid, "g-7");
    assert_eq!(delivery.payload["number"], 3);
    assert!(
        delivery
            .headers
            .contains(&("X-GitHub-Hook-ID".to_owned(), "42".to_owned()))
    );
}

#[tokio::test]
async fn a_redelivery_posts_an_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/octo/repo/hooks/42/deliveries/7/attempts"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _clock, recorder) = github(&server);
    client.redeliver(&repo_hook(), 7).await.unwrap();
    assert_eq!(recorder.requests(), [("hooks.redeliver".to_owned(), 202)]);
}

#[tokio::test]
async fn a_secondary_limit_pauses_the_log_for_its_retry_after_and_a_5xx_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/hooks/42/deliveries"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "60")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/hooks/42/deliveries/3"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let (client, clock, recorder) = github(&server);
    let err = client
        .list_deliveries(&repo_hook(), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ClientErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(60))
        }
    );
    // Paused: the next call is not sent at all.
    let err = client.redeliver(&repo_hook(), 3).await.unwrap_err();
    assert!(matches!(err.kind(), ClientErrorKind::RateLimited { .. }));
    assert_eq!(recorder.requests().len(), 1);

    clock.advance(Duration::from_secs(61));
    let err = client.get_delivery(&repo_hook(), 3).await.unwrap_err();
    assert!(matches!(err.kind(), ClientErrorKind::Retryable { .. }));
    assert_eq!(err.status(), Some(502));
}
