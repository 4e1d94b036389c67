//! The reqwest implementation of [`CodingAgent`] over the Codegen API.
//!
//! `POST /v1/organizations/{org_id}/agent/run` starts a run, `GET .../agent/run/{id}` reads it,
//! `GET .../agent/runs` lists the organisation's runs (newest first; see `search.rs`), all with
//! `Authorization: Bearer <CODEGEN_TOKEN>`. Status mapping: 5xx and transport failures are
//! retryable (honouring `Retry-After`), 429 is rate limiting (the task waits without using an
//! attempt), 400/401/402/403/404/422 are permanent. A run creation that may have reached the
//! server but got no usable answer (a timeout or broken body after sending, a 504 from a gateway,
//! a success whose body does not decode) is permanent and marked
//! [outcome unknown](ClientError::is_outcome_unknown): the run may exist, so it must be looked
//! up, never asked for again. Only 5xx, 429 and transport failures count against the breaker: a
//! 404 says nothing about the service's health.
//! A retryable failure that leaves the breaker open (it opened it, or it was the probe) waits
//! for the breaker instead, like the calls the breaker refuses: the dependency is down, the task
//! is not at fault.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::agent::RunSearch;
use orchestrator_core::agent::{AgentPullRequest, AgentRun, AgentRunRequest, CodingAgent};
use orchestrator_core::breaker::CircuitBreaker;
use orchestrator_core::clock::Clock;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use super::search::{PAGE_SIZE, Search, Step, WirePage};
use crate::config::{CodegenConfig, Secret};
use crate::error::Error;
use crate::http::{self, BreakerPermit};

/// The Codegen API client, behind its own circuit breaker.
pub struct CodegenClient {
    http: reqwest::Client,
    base: Url,
    credentials: Option<(Secret, i64)>,
    breaker: Arc<CircuitBreaker>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CodegenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodegenClient")
            .field("base", &self.base.as_str())
            .field("configured", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

/// The run as sent: every field but `id` may be null, `github_pull_requests` included.
#[derive(Deserialize)]
pub(super) struct WireRun {
    id: i64,
    organization_id: Option<i64>,
    status: Option<String>,
    pub(super) created_at: Option<String>,
    web_url: Option<String>,
    result: Option<String>,
    summary: Option<String>,
    github_pull_requests: Option<Vec<AgentPullRequest>>,
    /// What the run was created with (read only to find a run again).
    #[serde(default)]
    pub(super) metadata: Option<Value>,
}

/// One request to the agent API.
struct Call<'a> {
    /// What it does, for messages (`create run`).
    what: &'a str,
    method: Method,
    /// Path segments after `v1/organizations/{org_id}`.
    path: &'a [&'a str],
    query: &'a [(&'a str, String)],
    /// The body of a run creation (the one request that is not idempotent).
    create: Option<&'a AgentRunRequest>,
}

impl From<WireRun> for AgentRun {
    fn from(w: WireRun) -> Self {
        AgentRun {
            id: w.id,
            organization_id: w.organization_id,
            status: w.status,
            created_at: w.created_at,
            web_url: w.web_url,
            result: w.result,
            summary: w.summary,
            github_pull_requests: w.github_pull_requests.unwrap_or_default(),
        }
    }
}

impl CodegenClient {
    /// A client for `config`. Without a token or an org id it is built anyway and reports
    /// [`is_configured`](CodingAgent::is_configured) false; calls then fail `NotConfigured`.
    pub fn new(
        config: CodegenConfig,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn orchestrator_core::observe::Observer>,
    ) -> Result<Self, Error> {
        let breaker =
            CircuitBreaker::new("codegen", config.breaker, clock.clone()).with_observer(observer);
        Ok(Self {
            http: http::build_client(&config.user_agent, config.timeouts)?,
            base: http::normalize_base(config.base_url)?,
            credentials: config.token.zip(config.org_id),
            breaker: Arc::new(breaker),
            clock,
        })
    }

    /// The client's breaker, for the server's `BreakerSet` (health and metrics).
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        self.breaker.clone()
    }

    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, ClientError> {
        let Some((token, org_id)) = &self.credentials else {
            return Err(ClientError::new(
                ClientErrorKind::NotConfigured,
                None,
                "Codegen is not configured: CODEGEN_TOKEN and CODEGEN_ORG_ID are not set",
            ));
        };
        let what = call.what;
        let org = org_id.to_string();
        let mut segments = vec!["v1", "organizations", org.as_str()];
        segments.extend_from_slice(call.path);
        let mut url = http::endpoint(&self.base, &segments);
        if !call.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let permit = BreakerPermit::acquire(&self.breaker)?;
        let mut request = self
            .http
            .request(call.method, url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        if let Some(body) = call.create {
            request = request.json(body);
        }
        // Creating a run is not idempotent: once the request may have reached the server, a
        // lost answer must not be retried, or a retried task would start a second run.
        let creates = call.create.is_some();
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                permit.failure();
                let maybe_sent = !(err.is_connect() || err.is_builder());
                let err = lost_answer(creates && maybe_sent, what, err);
                return Err(http::judged(&self.breaker, err));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = match response.text().await {
            Ok(text) => text,
            Err(err) => {
                permit.failure();
                return Err(http::judged(&self.breaker, lost_answer(creates, what, err)));
            }
        };
        permit.status(status.as_u16());
        if !status.is_success() {
            let code = Some(status.as_u16());
            let message = format!(
                "Codegen {what}: {} {}",
                status.as_u16(),
                http::error_message(&text)
            );
            let retry_after = http::retry_after(&headers, self.clock.now());
            // A gateway that timed out waiting for the service says nothing about whether the
            // service went on to create the run.
            if creates && status == StatusCode::GATEWAY_TIMEOUT {
                return Err(ClientError::new(ClientErrorKind::Permanent, code, message)
                    .with_outcome_unknown());
            }
            let kind = if status == StatusCode::TOO_MANY_REQUESTS {
                ClientErrorKind::RateLimited { retry_after }
            } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
                ClientErrorKind::Retryable { retry_after }
            } else {
                ClientErrorKind::Permanent
            };
            return Err(http::judged(
                &self.breaker,
                ClientError::new(kind, code, message),
            ));
        }
        serde_json::from_str::<T>(&text).map_err(|e| {
            let err = ClientError::new(
                ClientErrorKind::Permanent,
                Some(status.as_u16()),
                format!("Codegen {what}: unexpected response body"),
            )
            .with_source(e);
            // The run was created; only its answer is unreadable.
            if creates {
                err.with_outcome_unknown()
            } else {
                err
            }
        })
    }
}

/// A request that got no (complete) answer. Retryable, unless it was a run creation that may
/// have reached the server (`ambiguous`): then it is permanent, because trying again could start
/// a second run for the same task.
fn lost_answer(ambiguous: bool, what: &str, err: reqwest::Error) -> ClientError {
    if !ambiguous {
        return http::transport_error("Codegen", what, err);
    }
    let cause = if err.is_timeout() {
        "timed out"
    } else {
        "failed"
    };
    ClientError::new(
        ClientErrorKind::Permanent,
        None,
        format!(
            "Codegen {what}: request {cause} after it was sent; the run may have been created, so \
             it is not asked for again (it is looked up by its metadata instead)"
        ),
    )
    .with_outcome_unknown()
    .with_source(err)
}

#[async_trait]
impl CodingAgent for CodegenClient {
    async fn create_run(&self, request: &AgentRunRequest) -> Result<AgentRun, ClientError> {
        let call = Call {
            what: "create run",
            method: Method::POST,
            path: &["agent", "run"],
            query: &[],
            create: Some(request),
        };
        self.call::<WireRun>(call).await.map(AgentRun::from)
    }

    async fn get_run(&self, run_id: i64) -> Result<AgentRun, ClientError> {
        let id = run_id.to_string();
        let call = Call {
            what: "get run",
            method: Method::GET,
            path: &["agent", "run", &id],
            query: &[],
            create: None,
        };
        self.call::<WireRun>(call).await.map(AgentRun::from)
    }

    /// Pages through `GET .../agent/runs` (newest first) until every run created since
    /// `created_since` was seen; see `search.rs`.
    async fn find_run_by_metadata(
        &self,
        metadata: &Map<String, Value>,
        created_since: DateTime<Utc>,
    ) -> Result<RunSearch, ClientError> {
        let mut search = Search::new(metadata, created_since);
        loop {
            let query = [
                ("skip", search.skip().to_string()),
                ("limit", PAGE_SIZE.to_string()),
            ];
            let call = Call {
                what: "list runs",
                method: Method::GET,
                path: &["agent", "runs"],
                query: &query,
                create: None,
            };
            let page: WirePage = self.call(call).await?;
            if let Step::Done(found) = search.page(page) {
                return Ok(found);
            }
        }
    }

    fn is_configured(&self) -> bool {
        self.credentials.is_some()
    }
}
