//! The reqwest implementation of [`GitHubApi`].
//!
//! Every request goes the same way: quota floor check -> breaker permit -> send (bounded time)
//! -> count it (`github_api_requests_total`) and remember `X-RateLimit-Remaining`
//! (`github_api_rate_limit_remaining`) -> map the status onto a [`ClientErrorKind`]. Listings
//! follow the `Link: rel="next"` header, and only to the configured API host, so a token is never
//! sent anywhere else.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator_core::breaker::CircuitBreaker;
use orchestrator_core::clock::Clock;
use orchestrator_core::error::{ClientError, ClientErrorKind};
use orchestrator_core::github::{CheckRun, GitHubApi, PullRequestFile, RateLimitStatus, RepoRef};
use orchestrator_core::observe::Observer;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::app_auth::{AppAuth, InstallationToken};
use super::rate_limit::{QuotaGuard, QuotaKey, rate_limited};
use super::wire::{WireCheckRun, WireRateLimit, WireSuiteRuns};
use crate::config::{GitHubConfig, Secret};
use crate::error::Error;
use crate::http::{self, BreakerPermit};

const API_VERSION: &str = "2022-11-28";
const RATE_LIMIT: &str = "rate_limit";
const TOKEN_EXCHANGE: &str = "apps.installation_token";

/// The GitHub REST client (personal token or GitHub App), behind its own circuit breaker.
pub struct GitHubClient {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
    app: Option<AppAuth>,
    quota: QuotaGuard,
    exchange_lock: tokio::sync::Mutex<()>,
    breaker: Arc<CircuitBreaker>,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    per_page: u32,
    max_pages: u32,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.is_some())
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// A response with a 2xx status.
pub(super) struct Answer {
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

impl GitHubClient {
    /// A client for `config`; fails on an unusable base URL or App key.
    pub fn new(
        config: GitHubConfig,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, Error> {
        let app = config.app.as_ref().map(AppAuth::new).transpose()?;
        let breaker = CircuitBreaker::new("github", config.breaker, clock.clone())
            .with_observer(observer.clone());
        Ok(Self {
            http: http::build_client(&config.user_agent, config.timeouts)?,
            base: http::normalize_base(config.base_url)?,
            token: config.token,
            app,
            quota: QuotaGuard::new(config.rate_limit_floor),
            exchange_lock: tokio::sync::Mutex::new(()),
            breaker: Arc::new(breaker),
            clock,
            observer,
            per_page: config.per_page.clamp(1, 100),
            max_pages: config.max_pages.max(1),
        })
    }

    /// The client's breaker, for the server's `BreakerSet` (health and metrics).
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        self.breaker.clone()
    }

    /// The App's JWT, for App-level calls (`/app/hook/deliveries`); `None` without an App.
    pub(super) fn app_jwt(&self) -> Option<Result<Secret, ClientError>> {
        self.app.as_ref().map(|app| app.jwt(self.clock.now()))
    }

    /// Whether any credential (token or App) is configured.
    pub fn is_authenticated(&self) -> bool {
        self.token.is_some() || self.app.is_some()
    }

    pub(super) fn url(&self, segments: &[&str]) -> Url {
        http::endpoint(&self.base, segments)
    }

    /// The credential for a call on behalf of `installation`, and the quota it draws from.
    pub(super) async fn credential(
        &self,
        installation: Option<i64>,
    ) -> Result<(QuotaKey, Option<Secret>), ClientError> {
        let now = self.clock.now();
        match (&self.app, installation) {
            (Some(app), Some(id)) => {
                if let Some(token) = app.cached(id, now) {
                    return Ok((Some(id), Some(token)));
                }
                // One exchange at a time: tasks that missed the cache together wait for the
                // first one's token instead of each minting their own.
                let _exchanging = self.exchange_lock.lock().await;
                if let Some(token) = app.cached(id, self.clock.now()) {
                    return Ok((Some(id), Some(token)));
                }
                let token = self.exchange(app, id).await?;
                Ok((Some(id), Some(token)))
            }
            _ if self.token.is_some() => Ok((None, self.token.clone())),
            (Some(app), None) => Ok(app
                .any_cached(now)
                .map(|(id, token)| (Some(id), Some(token)))
                .unwrap_or((None, None))),
            (None, _) => Ok((None, None)),
        }
    }

    /// Exchanges the App JWT for the installation's token and caches it.
    async fn exchange(&self, app: &AppAuth, installation: i64) -> Result<Secret, ClientError> {
        let jwt = app.jwt(self.clock.now())?;
        let id = installation.to_string();
        let url = self.url(&["app", "installations", &id, "access_tokens"]);
        let answer = self
            .send(
                TOKEN_EXCHANGE,
                Method::POST,
                url,
                Some(&jwt),
                None,
                None,
                None,
            )
            .await?;
        let token: InstallationToken = decode(TOKEN_EXCHANGE, &answer.body)?;
        Ok(app.store(installation, token))
    }

    /// One request (with a JSON `body`, when given) through quota guard, breaker, metrics and
    /// status mapping.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send(
        &self,
        endpoint: &str,
        method: Method,
        url: Url,
        auth: Option<&Secret>,
        quota_key: QuotaKey,
        installation: Option<i64>,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let now = self.clock.now();
        // `/rate_limit` costs no quota, and the token exchange draws from the App's own quota.
        let free = endpoint == RATE_LIMIT || endpoint == TOKEN_EXCHANGE;
        if !free {
            self.quota.check(quota_key, now)?;
        }
        let permit = BreakerPermit::acquire(&self.breaker)?;
        let mut request = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(secret) = auth {
            request = request.header(AUTHORIZATION, format!("Bearer {}", secret.expose()));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                permit.failure();
                self.observer.github_request(endpoint, 0);
                let err = http::transport_error("GitHub", endpoint, err);
                return Err(http::judged(&self.breaker, err));
            }
        };
        let status = response.status();
        self.observer.github_request(endpoint, status.as_u16());
        let headers = response.headers().clone();
        let quota = if endpoint == TOKEN_EXCHANGE {
            super::rate_limit::Quota::from_headers(&headers)
        } else {
            self.quota.record(quota_key, &headers)
        };
        if let Some(quota) = quota {
            self.observer.github_rate_limit(quota.remaining);
        }
        let body = match response.text().await {
            Ok(body) => body,
            Err(err) => {
                permit.failure();
                let err = http::transport_error("GitHub", endpoint, err);
                return Err(http::judged(&self.breaker, err));
            }
        };
        permit.status(status.as_u16());
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        let err = self.status_error(endpoint, status, &headers, &body, quota, installation, now);
        let err = http::judged(&self.breaker, err);
        if let ClientErrorKind::RateLimited {
            retry_after: Some(wait),
        } = err.kind()
            && !free
        {
            // GitHub wants no request from this credential until then, not only this one again.
            tracing::warn!(
                endpoint,
                wait_secs = wait.as_secs(),
                "GitHub rate limit: pausing calls"
            );
            self.quota.pause(
                quota_key,
                orchestrator_core::clock::add(self.clock.now(), wait),
            );
        }
        Err(err)
    }

    #[allow(clippy::too_many_arguments)]
    fn status_error(
        &self,
        endpoint: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
        quota: Option<super::rate_limit::Quota>,
        installation: Option<i64>,
        now: DateTime<Utc>,
    ) -> ClientError {
        let code = Some(status.as_u16());
        let message = format!(
            "GitHub {endpoint}: {} {}",
            status.as_u16(),
            http::error_message(body)
        );
        if let Some(wait) = rate_limited(status, headers, quota, now) {
            return ClientError::new(
                ClientErrorKind::RateLimited { retry_after: wait },
                code,
                message,
            );
        }
        if status.is_server_error() {
            let retry_after = http::retry_after(headers, now);
            return ClientError::new(ClientErrorKind::Retryable { retry_after }, code, message);
        }
        if status == StatusCode::UNAUTHORIZED {
            // A revoked installation token: forget it so the next attempt exchanges a new one.
            if let (Some(app), Some(id)) = (&self.app, installation) {
                app.invalidate(id);
                return ClientError::new(
                    ClientErrorKind::Retryable { retry_after: None },
                    code,
                    message,
                );
            }
        }
        ClientError::new(ClientErrorKind::Permanent, code, message)
    }

    /// Any REST call that [`GitHubApi`] does not cover, for custom task types (e.g.
    /// `POST repos/{owner}/{repo}/issues/{number}/labels`), with everything the built-in calls
    /// get: the App installation's token (else the personal token), the quota floor, the circuit
    /// breaker, the metrics and the status mapping (so `?` in a handler retries, defers or fails
    /// the task as it should).
    ///
    /// `endpoint` names the call in `github_api_requests_total` (a fixed name such as
    /// `issues.add_labels`, never a value from a payload). `path` is the URL path below the API
    /// base, one item per segment; each is percent-encoded, so a value read from a payload
    /// cannot change the path. `body` is sent as JSON. Answers the response's JSON (`null` for
    /// an empty body).
    pub async fn request(
        &self,
        endpoint: &str,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
        installation_id: Option<i64>,
    ) -> Result<Value, ClientError> {
        let (key, auth) = self.credential(installation_id).await?;
        let url = self.url(path);
        let answer = self
            .send(
                endpoint,
                method,
                url,
                auth.as_ref(),
                key,
                installation_id,
                body,
            )
            .await?;
        if answer.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        decode(endpoint, &answer.body)
    }

    /// [`request`](Self::request) with `POST` and a JSON body (a comment, a label, a check run, a
    /// commit status).
    pub async fn post(
        &self,
        endpoint: &str,
        path: &[&str],
        body: &Value,
        installation_id: Option<i64>,
    ) -> Result<Value, ClientError> {
        self.request(endpoint, Method::POST, path, Some(body), installation_id)
            .await
    }

    /// GET one JSON document.
    async fn get_json<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        url: Url,
        installation: Option<i64>,
    ) -> Result<T, ClientError> {
        let (key, auth) = self.credential(installation).await?;
        let answer = self
            .send(
                endpoint,
                Method::GET,
                url,
                auth.as_ref(),
                key,
                installation,
                None,
            )
            .await?;
        decode(endpoint, &answer.body)
    }

    /// GET every page of a listing, following `Link: rel="next"` on the API host only.
    async fn get_pages<P: DeserializeOwned, T>(
        &self,
        endpoint: &str,
        mut url: Url,
        installation: Option<i64>,
        items: impl Fn(P) -> Vec<T>,
    ) -> Result<Vec<T>, ClientError> {
        url.query_pairs_mut()
            .append_pair("per_page", &self.per_page.to_string());
        let (key, auth) = self.credential(installation).await?;
        let mut all = Vec::new();
        for _ in 0..self.max_pages {
            let answer = self
                .send(
                    endpoint,
                    Method::GET,
                    url.clone(),
                    auth.as_ref(),
                    key,
                    installation,
                    None,
                )
                .await?;
            all.extend(items(decode(endpoint, &answer.body)?));
            match next_link(&answer.headers) {
                Some(next) if same_origin(&next, &self.base) => url = next,
                Some(next) => {
                    return Err(ClientError::new(
                        ClientErrorKind::Permanent,
                        None,
                        format!(
                            "GitHub {endpoint}: next page on another host ({})",
                            next.origin().ascii_serialization()
                        ),
                    ));
                }
                None => return Ok(all),
            }
        }
        tracing::warn!(
            endpoint,
            pages = self.max_pages,
            "GitHub listing truncated at the page limit"
        );
        Ok(all)
    }
}

pub(super) fn decode<T: DeserializeOwned>(endpoint: &str, body: &str) -> Result<T, ClientError> {
    serde_json::from_str(body).map_err(|e| {
        ClientError::new(
            ClientErrorKind::Permanent,
            None,
            format!("GitHub {endpoint}: unexpected response body"),
        )
        .with_source(e)
    })
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<Url> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|v| v.trim_matches('"').split_whitespace().any(|r| r == "next"))
                .unwrap_or(false)
        });
        if !is_next {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        Url::parse(target).ok()
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

#[async_trait]
impl GitHubApi for GitHubClient {
    async fn pull_request_files(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        number: u64,
    ) -> Result<Vec<PullRequestFile>, ClientError> {
        let number = number.to_string();
        let url = self.url(&["repos", &repo.owner, &repo.name, "pulls", &number, "files"]);
        self.get_pages(
            "pulls.files",
            url,
            installation_id,
            |page: Vec<PullRequestFile>| page,
        )
        .await
    }

    async fn check_run(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_run_id: u64,
    ) -> Result<CheckRun, ClientError> {
        let id = check_run_id.to_string();
        let url = self.url(&["repos", &repo.owner, &repo.name, "check-runs", &id]);
        let run: WireCheckRun = self.get_json("checks.run", url, installation_id).await?;
        Ok(run.into())
    }

    async fn check_suite_runs(
        &self,
        installation_id: Option<i64>,
        repo: &RepoRef,
        check_suite_id: u64,
    ) -> Result<Vec<CheckRun>, ClientError> {
        let id = check_suite_id.to_string();
        let url = self.url(&[
            "repos",
            &repo.owner,
            &repo.name,
            "check-suites",
            &id,
            "check-runs",
        ]);
        self.get_pages(
            "checks.suite_runs",
            url,
            installation_id,
            |page: WireSuiteRuns| page.check_runs.into_iter().map(CheckRun::from).collect(),
        )
        .await
    }

    async fn rate_limit(&self) -> Result<RateLimitStatus, ClientError> {
        let url = self.url(&["rate_limit"]);
        let wire: WireRateLimit = self.get_json(RATE_LIMIT, url, None).await?;
        let core = wire.resources.core;
        Ok(RateLimitStatus {
            limit: core.limit,
            remaining: core.remaining,
            reset_at: DateTime::from_timestamp(core.reset, 0).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn next_link_picks_rel_next() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).unwrap().as_str(),
            "https://api.github.com/x?page=3"
        );
        h.insert(
            LINK,
            r#"<https://api.github.com/x?page=1>; rel="first""#.parse().unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }
}
