//! Recovery from GitHub's delivery log: `POST /api/v1/admin/recover` starts a run (202 with its
//! id), `GET /api/v1/admin/recover` lists runs, `GET /api/v1/admin/recover/{run_id}` shows one.
//! A bad request (unparseable times, `since` after `until`, unknown hooks or modes, unknown
//! fields) is a 400 with the error body and starts nothing. Without a reconciler configured
//! the routes answer 503.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orchestrator_core::recovery::{HookRef, Reconciler, RunRequest, RunRequestError};
use orchestrator_core::store::recovery::{RecoveryMode, RecoveryRun};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::dto::ErrorBody;
use crate::error::ApiError;
use crate::state::AppState;

/// The body of `POST /api/v1/admin/recover` (every field optional; an empty body is `{}`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoverRequest {
    /// Start of the window (RFC 3339); default: the maximum look-back.
    #[schema(nullable = false, format = DateTime)]
    pub(crate) since: Option<String>,
    /// End of the window (RFC 3339); default: now.
    #[schema(nullable = false, format = DateTime)]
    pub(crate) until: Option<String>,
    /// Hooks: `app`, `repo:OWNER/NAME:HOOK_ID`, `org:ORG:HOOK_ID`; default: the configured ones.
    #[schema(nullable = false)]
    pub(crate) hooks: Option<Vec<String>>,
    /// `fetch` (default) or `redeliver`.
    #[schema(nullable = false, pattern = "^(fetch|redeliver)$")]
    pub(crate) mode: Option<String>,
    /// List the missing deliveries, change nothing.
    #[schema(nullable = false)]
    pub(crate) dry_run: Option<bool>,
}

/// The answer of `POST /api/v1/admin/recover`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct RecoverStarted {
    /// `recovery_started`.
    pub(crate) status: String,
    /// The run's id.
    pub(crate) run_id: Uuid,
}

/// One recovery run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct RecoveryRunDto {
    /// The run's id.
    pub(crate) run_id: Uuid,
    /// `scheduled` or `manual`.
    pub(crate) trigger: String,
    /// `fetch` or `redeliver`.
    pub(crate) mode: String,
    /// Whether it only lists what is missing.
    pub(crate) dry_run: bool,
    /// The hooks it pages, in order.
    pub(crate) hooks: Vec<String>,
    /// Window start.
    pub(crate) since: DateTime<Utc>,
    /// Window end.
    pub(crate) until: DateTime<Utc>,
    /// `pending`, `running`, `interrupted`, `succeeded` or `failed`.
    pub(crate) status: String,
    /// The hook being paged.
    pub(crate) hook: Option<String>,
    /// That hook's next page cursor.
    pub(crate) cursor: Option<String>,
    /// Delivery attempts listed in the window.
    pub(crate) listed: u64,
    /// Relevant GUIDs GitHub has and this store had not.
    pub(crate) missing: u64,
    /// Missing GUIDs recovered.
    pub(crate) recovered: u64,
    /// Missing GUIDs that could not be recovered.
    pub(crate) failed: u64,
    /// Errors met.
    pub(crate) errors: u64,
    /// The last error.
    pub(crate) last_error: Option<String>,
    /// The missing GUIDs (at most 1,000).
    pub(crate) missing_guids: Vec<String>,
    /// When it was stored.
    pub(crate) created_at: DateTime<Utc>,
    /// When a runner started it.
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

impl From<RecoveryRun> for RecoveryRunDto {
    fn from(r: RecoveryRun) -> Self {
        Self {
            run_id: r.run_id,
            trigger: r.trigger,
            mode: r.mode.as_str().to_owned(),
            dry_run: r.dry_run,
            hooks: r.hooks,
            since: r.since,
            until: r.until,
            status: r.status.as_str().to_owned(),
            hook: r.hook,
            cursor: r.cursor,
            listed: r.listed,
            missing: r.missing,
            recovered: r.recovered,
            failed: r.failed,
            errors: r.errors,
            last_error: r.last_error,
            missing_guids: r.missing_guids,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// `limit` of the run list.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ListQuery {
    /// At most this many runs, newest first (1-1000, default 50).
    limit: Option<i64>,
    /// Only the runs stored before this one (the `run_id` of the previous page's last run):
    /// keyset paging, stable while runs are added.
    before: Option<Uuid>,
}

fn reconciler(state: &AppState) -> Result<&Arc<Reconciler>, ApiError> {
    state.reconciler().ok_or(ApiError::Unavailable)
}

fn time(field: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::BadRequest(format!("`{field}` is not an RFC 3339 time: {v:?}"))
                })
        })
        .transpose()
}

/// The run request of a body, or the 400 it deserves.
fn run_request(body: &[u8]) -> Result<RunRequest, ApiError> {
    let body: RecoverRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RecoverRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid recover request: {e}")))?
    };
    let hooks = body
        .hooks
        .map(|hooks| {
            hooks
                .iter()
                .map(|h| h.parse::<HookRef>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mode = body
        .mode
        .map(|m| m.parse::<RecoveryMode>())
        .transpose()
        .map_err(ApiError::BadRequest)?;
    Ok(RunRequest {
        since: time("since", body.since)?,
        until: time("until", body.until)?,
        hooks,
        mode,
        dry_run: body.dry_run.unwrap_or(false),
    })
}

/// Starts a recovery run now (the reconciler runs it in the background, one runner at a time).
#[utoipa::path(
    post,
    path = "/api/v1/admin/recover",
    operation_id = "recover",
    tag = "admin",
    security(("bearer" = [])),
    request_body(content = Option<RecoverRequest>, content_type = "application/json"),
    responses(
        (status = 202, body = RecoverStarted),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<RecoverStarted>), ApiError> {
    let reconciler = reconciler(&state)?.clone();
    let request = run_request(&body)?;
    let run = reconciler.request_run(request).await.map_err(|e| match e {
        RunRequestError::Invalid(e) => ApiError::BadRequest(e.to_string()),
        RunRequestError::Store(e) => e.into(),
    })?;
    tokio::spawn(async move {
        if let Err(e) = reconciler.tick(false).await {
            tracing::warn!(error = %e, "recovery run could not be stored");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(RecoverStarted {
            status: "recovery_started".into(),
            run_id: run.run_id,
        }),
    ))
}

/// Recovery runs, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/recover",
    operation_id = "list_recovery_runs",
    tag = "admin",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = Vec<RecoveryRunDto>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RecoveryRunDto>>, ApiError> {
    let Query(query) = query.map_err(super::bad_query)?;
    let page = super::page(query.limit, None)?;
    let runs = reconciler(&state)?
        .store()
        .list_runs(query.before, page.limit)
        .await?;
    Ok(Json(runs.into_iter().map(Into::into).collect()))
}

/// One recovery run.
#[utoipa::path(
    get,
    path = "/api/v1/admin/recover/{run_id}",
    operation_id = "get_recovery_run",
    tag = "admin",
    security(("bearer" = [])),
    params(("run_id" = Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, body = RecoveryRunDto),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<RecoveryRunDto>, ApiError> {
    let run_id = Uuid::parse_str(&raw)
        .map_err(|_| ApiError::BadRequest(format!("run id {raw:?} is not a UUID")))?;
    let run = reconciler(&state)?
        .store()
        .get_run(run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no recovery run {run_id}")))?;
    Ok(Json(run.into()))
}
