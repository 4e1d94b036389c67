//! `POST /api/v1/admin/pause`, `POST /api/v1/admin/resume`, `GET /api/v1/admin/pauses`: pause
//! work without stopping the receiver (issue 13; see `orchestrator_core::store::pause`).
//!
//! A body names what to pause: none or `{}` everything, `{"repository": "owner/name"}`,
//! `{"task_type": "..."}` or both. A body that is not a JSON object (`null` included), a key set
//! to `null`, unknown keys, a repository that is not `owner/name` and a task type no handler
//! serves are a 400 with the error body, and nothing changes. A resume
//! removes the pause of exactly that scope (404 when there is none) and publishes the tasks it
//! freed again (a broker queue may have dropped them while they were paused).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use orchestrator_core::queue::TaskRef;
use orchestrator_core::store::pause::{Pause, PauseScope, is_paused};
use orchestrator_core::task::{Task, TaskType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::dto::ErrorBody;
use crate::error::ApiError;
use crate::state::AppState;

/// The body of pause and resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseRequest {
    /// Only the tasks of this `owner/name`.
    #[schema(nullable = false, pattern = "^[^/]+/[^/]+$")]
    pub(crate) repository: Option<String>,
    /// Only the tasks of this type: one a handler serves (the document served by a running
    /// server lists them).
    #[schema(nullable = false, pattern = "^[a-z0-9_.-]{1,64}$")]
    pub(crate) task_type: Option<String>,
}

/// A pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct PauseDto {
    /// `null`: every repository.
    pub(crate) repository: Option<String>,
    /// `null`: every task type.
    pub(crate) task_type: Option<String>,
    /// Since when.
    pub(crate) created_at: DateTime<Utc>,
}

impl From<Pause> for PauseDto {
    fn from(p: Pause) -> Self {
        Self {
            repository: p.scope.repository,
            task_type: p.scope.task_type.map(|t| t.to_string()),
            created_at: p.created_at,
        }
    }
}

/// The answer of a resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct ResumeResponse {
    /// `resumed`.
    pub(crate) status: String,
    /// The scope resumed (`null`: every).
    pub(crate) repository: Option<String>,
    /// The scope resumed (`null`: every).
    pub(crate) task_type: Option<String>,
    /// Runnable tasks it freed, published again to the queue.
    pub(crate) republished: usize,
}

/// The pauses now (none without a pause store), for marking tasks `paused`.
pub(crate) async fn current(state: &AppState) -> Result<Vec<Pause>, ApiError> {
    match state.pauses() {
        Some((store, _)) => Ok(store.pauses().await?),
        None => Ok(Vec::new()),
    }
}

/// Whether `task` waits because of one of `pauses` (only runnable tasks wait).
pub(crate) fn covers(pauses: &[Pause], task: &Task) -> bool {
    task.status.is_runnable() && is_paused(pauses, task.repository.as_deref(), &task.task_type)
}

/// Parses and checks a body: 400 with the reason, nothing changed.
fn scope(body: &Bytes, known: &[TaskType]) -> Result<PauseScope, ApiError> {
    let request: PauseRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PauseRequest::default()
    } else {
        let bad = |e: serde_json::Error| ApiError::BadRequest(format!("body: {e}"));
        // A JSON object only, and `null` is not "every": a key is given a value or left out.
        let serde_json::Value::Object(object) = serde_json::from_slice(body).map_err(bad)? else {
            return Err(ApiError::BadRequest(
                "body: expected a JSON object (or no body: everything)".to_owned(),
            ));
        };
        if let Some((key, _)) = object.iter().find(|(_, v)| v.is_null()) {
            return Err(ApiError::BadRequest(format!(
                "{key} must not be null; leave the key out instead"
            )));
        }
        serde_json::from_value(serde_json::Value::Object(object)).map_err(bad)?
    };
    if let Some(repository) = &request.repository {
        let valid = repository.split_once('/').is_some_and(|(owner, name)| {
            !owner.is_empty() && !name.is_empty() && !name.contains('/')
        });
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "repository {repository:?} is not owner/name"
            )));
        }
    }
    let task_type = match request.task_type {
        None => None,
        Some(name) => {
            let task_type =
                TaskType::new(name.clone()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            if !known.contains(&task_type) {
                return Err(ApiError::BadRequest(format!(
                    "unknown task_type {name:?}; known: {}",
                    known
                        .iter()
                        .map(TaskType::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Some(task_type)
        }
    };
    Ok(PauseScope {
        repository: request.repository,
        task_type,
    })
}

/// Pauses the tasks of a scope (`{}`: everything). Idempotent: the same scope twice is one pause.
#[utoipa::path(
    post,
    path = "/api/v1/admin/pause",
    operation_id = "pause",
    tag = "admin",
    request_body(content = Option<PauseRequest>, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PauseDto),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn pause(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<PauseDto>, ApiError> {
    let (store, known) = state.pauses().ok_or(ApiError::Unavailable)?;
    let scope = scope(&body, known)?;
    let pause = store.pause(&scope, state.clock().now()).await?;
    tracing::info!(repository = ?scope.repository, task_type = ?scope.task_type, "paused");
    Ok(Json(pause.into()))
}

/// Removes the pause of exactly a scope; the tasks it freed run in priority order.
#[utoipa::path(
    post,
    path = "/api/v1/admin/resume",
    operation_id = "resume",
    tag = "admin",
    request_body(content = Option<PauseRequest>, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ResumeResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ResumeResponse>, ApiError> {
    let (store, known) = state.pauses().ok_or(ApiError::Unavailable)?;
    let scope = scope(&body, known)?;
    let Some(freed) = store.resume(&scope).await? else {
        return Err(ApiError::NotFound("no pause of that scope".into()));
    };
    let now = state.clock().now();
    let refs: Vec<TaskRef> = freed
        .iter()
        .map(|&task_id| TaskRef {
            task_id,
            run_at: now,
        })
        .collect();
    // A failed publish loses nothing: the queue's sweeper publishes runnable tasks it lacks.
    if let Err(err) = state.queue().publish(&refs).await {
        tracing::warn!(error = %err, tasks = refs.len(), "resumed tasks not published yet");
    }
    tracing::info!(repository = ?scope.repository, task_type = ?scope.task_type, tasks = refs.len(), "resumed");
    Ok(Json(ResumeResponse {
        status: "resumed".to_owned(),
        repository: scope.repository,
        task_type: scope.task_type.map(|t| t.to_string()),
        republished: refs.len(),
    }))
}

/// The pauses, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/pauses",
    operation_id = "list_pauses",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = [PauseDto]),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<PauseDto>>, ApiError> {
    let (store, _) = state.pauses().ok_or(ApiError::Unavailable)?;
    Ok(Json(
        store.pauses().await?.into_iter().map(Into::into).collect(),
    ))
}
