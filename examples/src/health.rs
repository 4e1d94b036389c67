//! The server's own health check: can this process reach the GitHub API?
//!
//! Any HTTP answer from the API root counts as reachable (an unauthenticated request may get
//! 401 or 403; the network path and GitHub are still up). No answer within the timeout makes
//! the service `degraded`, never `unhealthy`: deliveries are still stored and tasks wait. The
//! router wraps it in a [`CachedCheck`](orchestrator_axum::CachedCheck) so GitHub is asked at
//! most once a minute however often `/health` is probed.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_axum::{HealthCheck, HealthStatus};
use reqwest::Url;

/// Probes `GITHUB_API_URL`.
#[derive(Debug, Clone)]
pub struct GitHubReachable {
    client: reqwest::Client,
    url: Url,
}

impl GitHubReachable {
    /// A probe of `url` giving up after `timeout`.
    pub fn new(url: Url, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("webhook-orchestrator/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client, url }
    }
}

#[async_trait]
impl HealthCheck for GitHubReachable {
    fn name(&self) -> &str {
        "github_api"
    }

    async fn check(&self) -> HealthStatus {
        match self.client.get(self.url.clone()).send().await {
            Ok(r) if r.status().is_server_error() => HealthStatus::Degraded,
            Ok(_) => HealthStatus::Healthy,
            Err(e) => {
                tracing::warn!(error = %e, "GitHub API unreachable");
                HealthStatus::Degraded
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    #[tokio::test]
    async fn an_answer_is_reachable_and_silence_or_5xx_is_degraded() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(502))
            .mount(&server)
            .await;
        let check = GitHubReachable::new(server.uri().parse().unwrap(), Duration::from_secs(2));
        assert_eq!(check.check().await, HealthStatus::Healthy);
        assert_eq!(check.check().await, HealthStatus::Degraded);
        let dead = GitHubReachable::new(
            "http://127.0.0.1:9/".parse().unwrap(),
            Duration::from_secs(2),
        );
        assert_eq!(dead.check().await, HealthStatus::Degraded);
    }
}
