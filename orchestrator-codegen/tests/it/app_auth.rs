//! GitHub App authentication: the JWT, the installation-token exchange and its cache.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use orchestrator_codegen::{Error, GitHubAppConfig, GitHubClient, GitHubConfig, Secret};
use orchestrator_core::error::ClientErrorKind;
use orchestrator_core::github::{GitHubApi, RepoRef};
use serde::Deserialize;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{TEST_APP_KEY, TEST_APP_PUBLIC_KEY, clock_now, github_config, github_with};

#[derive(Debug, Deserialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: String,
}

fn app_config(server: &MockServer, token: Option<&str>) -> GitHubConfig {
    GitHubConfig {
        token: token.map(Secret::new),
        app: Some(GitHubAppConfig {
            app_id: 123,
            private_key_pem: Secret::new(TEST_APP_KEY),
        }),
        ..github_config(server)
    }
}

async fn mount_exchange(server: &MockServer, installation: i64, token: &str, expect: u64) {
    let expires_at = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    Mock::given(method("POST"))
        .and(path(format!(
            "/app/installations/{installation}/access_tokens"
        )))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"token": token, "expires_at": expires_at})),
        )
        .expect(expect)
        .mount(server)
        .await;
}

fn repo() -> RepoRef {
    RepoRef::parse("octo/repo").unwrap()
}

#[tokio::test]
async fn the_app_jwt_is_exchanged_for_an_installation_token_that_is_cached() {
    let server = MockServer::start().await;
    mount_exchange(&server, 99, "ghs_installation", 2).await;
    Mock::given(method("GET"))
        .and(path("/repos/octo/repo/pulls/1/files"))
        .and(header("authorization", "Bearer ghs_installation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(3)
        .mount(&server)
        .await;
    let (client, clock, recorder) = github_with(app_config(&server, None));

    client
        .pull_request_files(Some(99), &repo(), 1)
        .await
        .unwrap();
    client
        .pull_request_files(Some(99), &repo(), 1)
        .await
        .unwrap();

    let received = server.received_requests().await.unwrap();
    let exchanges: Vec<_> = received
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(exchanges.len(), 1, "the second call used the cached token");
    let auth = exchanges[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    let key = DecodingKey::from_rsa_pem(TEST_APP_PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&["123"]);
    let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims.iss, "123");
    assert_eq!(
        claims.exp - claims.iat,
        600,
        "iat 60 s back, exp 9 min ahead"
    );
    assert!(claims.iat <= Utc::now().timestamp() - 59);
    assert_eq!(
        recorder.requests()[0],
        ("apps.installation_token".to_owned(), 201)
    );

    // Close to its expiry (5 min margin) the token is renewed.
    clock.advance(Duration::from_secs(56 * 60));
    client
        .pull_request_files(Some(99), &repo(), 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_calls_share_one_token_exchange() {
    let server = MockServer::start().await;
    mount_exchange(&server, 8, "ghs_shared", 1).await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer ghs_shared"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(4)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github_with(app_config(&server, None));
    let repo = repo();
    let (a, b, c, d) = tokio::join!(
        client.pull_request_files(Some(8), &repo, 1),
        client.pull_request_files(Some(8), &repo, 2),
        client.pull_request_files(Some(8), &repo, 3),
        client.pull_request_files(Some(8), &repo, 4),
    );
    for result in [a, b, c, d] {
        result.unwrap();
    }
}

#[tokio::test]
async fn a_refused_installation_token_is_dropped_and_exchanged_again() {
    let server = MockServer::start().await;
    mount_exchange(&server, 5, "ghs_revoked", 2).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github_with(app_config(&server, None));
    let err = client.check_run(Some(5), &repo(), 1).await.unwrap_err();
    assert_eq!(err.kind(), ClientErrorKind::Retryable { retry_after: None });
    client.check_run(Some(5), &repo(), 1).await.unwrap_err();
}

#[tokio::test]
async fn an_unknown_installation_is_a_permanent_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/app/installations/404/access_tokens"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github_with(app_config(&server, None));
    let err = client.check_run(Some(404), &repo(), 1).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.status()),
        (ClientErrorKind::Permanent, Some(404))
    );
    assert!(err.to_string().contains("apps.installation_token"), "{err}");
}

#[tokio::test]
async fn without_an_installation_id_the_personal_token_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer ghp_fallback"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;
    let (client, _clock, _recorder) = github_with(app_config(&server, Some("ghp_fallback")));
    client.pull_request_files(None, &repo(), 1).await.unwrap();
}

#[test]
fn an_invalid_private_key_is_refused_at_construction() {
    let config = GitHubConfig {
        app: Some(GitHubAppConfig {
            app_id: 1,
            private_key_pem: Secret::new("not a key"),
        }),
        ..GitHubConfig::default()
    };
    let err = GitHubClient::new(
        config,
        clock_now(),
        std::sync::Arc::new(crate::support::Recorder::default()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidAppKey(_)));
}
