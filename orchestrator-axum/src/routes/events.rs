//! `/api/v1/webhooks/events`: list, detail and reprocess of stored deliveries.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use orchestrator_core::engine::{ReprocessError, ReprocessOptions};
use orchestrator_core::store::{EventFilter, ReprocessOutcome};
use uuid::Uuid;

use crate::dto::{
    ErrorBody, EventDetailDto, EventListQuery, EventSummaryDto, ReprocessQuery, ReprocessResponse,
};
use crate::error::ApiError;
use crate::routes::{bad_query, page};
use crate::state::AppState;

fn event_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("event {raw} not found")))
}

/// Lists stored events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/events",
    tag = "events",
    params(EventListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = [EventSummaryDto]),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<EventListQuery>, QueryRejection>,
) -> Result<Json<Vec<EventSummaryDto>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = page(query.limit, query.offset)?;
    let filter = EventFilter {
        event_type: query.event_type,
        processed: query.processed,
    };
    let events = state.events().list_events(&filter, page).await?;
    Ok(Json(events.into_iter().map(Into::into).collect()))
}

/// One event with its payload and headers.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/events/{event_id}",
    tag = "events",
    params(("event_id" = i64, Path, description = "Event id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = EventDetailDto),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<EventDetailDto>, ApiError> {
    let id = event_id(&raw)?;
    match state.events().get_event(id).await? {
        Some(event) => Ok(Json(event.into())),
        None => Err(ApiError::NotFound(format!("event {id} not found"))),
    }
}

/// Routes a stored event again and queues the new tasks. Only a finished event (no open task)
/// is reprocessed; its new tasks never create a second Codegen run for a pull-request head SHA
/// that already has one, unless `force=true`. An event stored unparsed is parsed again.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/events/{event_id}/reprocess",
    tag = "events",
    params(("event_id" = i64, Path, description = "Event id"), ReprocessQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReprocessResponse),
        (status = 400, description = "Invalid parameters", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The event still has open (pending, running or retrying) tasks, named in the error; or its stored payload still does not parse. Nothing was changed", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub(crate) async fn reprocess(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    query: Result<Query<ReprocessQuery>, QueryRejection>,
) -> Result<Json<ReprocessResponse>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let id = event_id(&raw)?;
    let options = ReprocessOptions {
        force: query.force.unwrap_or(false),
    };
    let outcome = match state.ingestor().reprocess(id, options).await {
        Ok(outcome) => outcome,
        Err(err @ ReprocessError::Unparsable { .. }) => {
            return Err(ApiError::Conflict(err.to_string()));
        }
        Err(ReprocessError::Store(err)) => return Err(err.into()),
    };
    match outcome {
        ReprocessOutcome::Reprocessed { event_id, task_ids } => {
            tracing::info!(event_id, tasks = task_ids.len(), "event reprocessed");
            Ok(Json(ReprocessResponse {
                status: "reprocessing".to_owned(),
                task_id: task_ids.first().copied(),
                task_ids,
                event_id,
            }))
        }
        ReprocessOutcome::Busy {
            event_id,
            open_tasks,
        } => Err(ApiError::Conflict(format!(
            "event {event_id} still has open tasks ({}); reprocess it once they have finished, or \
             retry or cancel them instead; nothing was changed",
            name_tasks(&open_tasks)
        ))),
        ReprocessOutcome::NotFound => Err(ApiError::NotFound(format!("event {id} not found"))),
    }
}

/// Task ids for a message: the first 20, then how many more.
fn name_tasks(ids: &[Uuid]) -> String {
    const SHOWN: usize = 20;
    let mut names: Vec<String> = ids.iter().take(SHOWN).map(Uuid::to_string).collect();
    if ids.len() > SHOWN {
        names.push(format!("and {} more", ids.len() - SHOWN));
    }
    names.join(", ")
}
