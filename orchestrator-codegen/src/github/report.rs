//! [`ReportApi`] for [`GitHubClient`]: the check-run, commit-status and comment calls of
//! reporting (issue 17), through [`GitHubClient::request`], so they get the installation token,
//! the quota floor, the breaker, `Retry-After` and `github_api_requests_total` like every other
//! call.

use async_trait::async_trait;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use orchestrator_core::github::RepoRef;
use orchestrator_core::report::ReportApi;
use reqwest::Method;
use serde_json::{Value, json};

use super::GitHubClient;

/// The `id` of a created object.
fn id_of(endpoint: &str, answer: &Value) -> Result<i64, ClientError> {
    answer.get("id").and_then(Value::as_i64).ok_or_else(|| {
        ClientError::new(
            ClientErrorKind::Permanent,
            None,
            format!("GitHub {endpoint}: the answer has no id"),
        )
    })
}

#[async_trait]
impl ReportApi for GitHubClient {
    async fn create_check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        body: &Value,
    ) -> Result<i64, ClientError> {
        const ENDPOINT: &str = "checks.create";
        let path = ["repos", &repo.owner, &repo.name, "check-runs"];
        let answer = self.post(ENDPOINT, &path, body, installation_id).await?;
        id_of(ENDPOINT, &answer)
    }

    async fn update_check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_run_id: i64,
        body: &Value,
    ) -> Result<(), ClientError> {
        let id = check_run_id.to_string();
        let path = ["repos", &repo.owner, &repo.name, "check-runs", &id];
        self.request(
            "checks.update",
            Method::PATCH,
            &path,
            Some(body),
            installation_id,
        )
        .await?;
        Ok(())
    }

    async fn create_status(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        sha: &str,
        body: &Value,
    ) -> Result<(), ClientError> {
        let path = ["repos", &repo.owner, &repo.name, "statuses", sha];
        self.post("statuses.create", &path, body, installation_id)
            .await?;
        Ok(())
    }

    async fn create_comment(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        pr_number: i64,
        body: &str,
    ) -> Result<i64, ClientError> {
        const ENDPOINT: &str = "issues.create_comment";
        let number = pr_number.to_string();
        let path = [
            "repos",
            &repo.owner,
            &repo.name,
            "issues",
            &number,
            "comments",
        ];
        let answer = self
            .post(ENDPOINT, &path, &json!({ "body": body }), installation_id)
            .await?;
        id_of(ENDPOINT, &answer)
    }

    async fn update_comment(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        comment_id: i64,
        body: &str,
    ) -> Result<(), ClientError> {
        let id = comment_id.to_string();
        let path = ["repos", &repo.owner, &repo.name, "issues", "comments", &id];
        self.request(
            "issues.update_comment",
            Method::PATCH,
            &path,
            Some(&json!({ "body": body })),
            installation_id,
        )
        .await?;
        Ok(())
    }
}
