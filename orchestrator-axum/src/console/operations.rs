//! Bulk operations in the console: retry the tasks of the tasks list's current filter, or
//! reprocess the deliveries of the deliveries list's (a dry-run preview with the count and a
//! sample, then a confirmed start), the operations list, and one
//! operation's progress (refreshing itself while it runs) with its Cancel action. Every action
//! calls the `/api/v1` handlers of [`crate::routes::operations`].

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use maud::{Markup, html};
use orchestrator_core::store::Page as StorePage;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::filters::{DeliveryParams, set};
use super::layout::{Nav, Page, action_form, badge, opt_time, respond, time};
use super::paging::{PageParams, split};
use super::session::{Flash, Session};
use super::{ActionForm, Console, PageError, csrf_refusal, outcome};
use crate::dto::OperationDto;
use crate::error::ApiError;
use crate::routes::operations as api;

/// Seconds between refreshes of a running operation's page.
const REFRESH_SECS: u32 = 3;
/// The largest answer read back from a handler.
const MAX_BODY: usize = 1 << 20;

/// The tasks filter a bulk retry applies (the tasks list's own fields) and the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RetryFilter {
    #[serde(default)]
    csrf: String,
    status: Option<String>,
    task_type: Option<String>,
    repository: Option<String>,
    pr: Option<String>,
    /// `yes` / `no`, as in the tasks list.
    superseded: Option<String>,
}

impl RetryFilter {
    /// The API's request body (`RetryFilterDto`).
    fn body(&self, dry_run: bool) -> Result<Vec<u8>, ApiError> {
        let mut body = json!({ "dry_run": dry_run });
        for (name, value) in [
            ("status", &self.status),
            ("task_type", &self.task_type),
            ("repository", &self.repository),
        ] {
            if let Some(v) = set(value) {
                body[name] = json!(v);
            }
        }
        if let Some(n) = set(&self.pr) {
            let n: i64 = n
                .trim_start_matches('#')
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("pull request {n:?} is not a number")))?;
            body["pr_number"] = json!(n);
        }
        match set(&self.superseded) {
            None => {}
            Some("yes") => body["superseded"] = json!(true),
            Some("no") => body["superseded"] = json!(false),
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "superseded must be yes or no, got {other:?}"
                )));
            }
        }
        serde_json::to_vec(&body).map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    fn hidden(&self) -> Markup {
        html! {
            @for (name, value) in [("status", &self.status), ("task_type", &self.task_type),
                ("repository", &self.repository), ("pr", &self.pr), ("superseded", &self.superseded)] {
                @if let Some(v) = set(value) { input type="hidden" name=(name) value=(v); }
            }
        }
    }
}

/// The deliveries filter a bulk reprocess applies (the deliveries list's own fields), `force`
/// and the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReprocessFilter {
    #[serde(default)]
    csrf: String,
    event_type: Option<String>,
    action: Option<String>,
    repository: Option<String>,
    since: Option<String>,
    until: Option<String>,
    force: Option<String>,
}

impl ReprocessFilter {
    /// The API's request body (`ReprocessFilterDto`); times as the deliveries list reads them.
    fn body(&self, dry_run: bool) -> Result<Vec<u8>, ApiError> {
        let query = DeliveryParams {
            event_type: self.event_type.clone(),
            action: self.action.clone(),
            repository: self.repository.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            ..DeliveryParams::default()
        }
        .query()?;
        let mut body = json!({
            "dry_run": dry_run,
            "force": set(&self.force).is_some(),
        });
        for (name, value) in [
            ("event_type", query.event_type),
            ("action", query.action),
            ("repository", query.repository),
        ] {
            if let Some(v) = value {
                body[name] = json!(v);
            }
        }
        if let Some(t) = query.since {
            body["created_after"] = json!(t);
        }
        if let Some(t) = query.until {
            body["created_before"] = json!(t);
        }
        serde_json::to_vec(&body).map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    fn hidden(&self) -> Markup {
        html! {
            @for (name, value) in [("event_type", &self.event_type), ("action", &self.action),
                ("repository", &self.repository), ("since", &self.since), ("until", &self.until)] {
                @if let Some(v) = set(value) { input type="hidden" name=(name) value=(v); }
            }
        }
    }
}

/// Runs the API's bulk reprocess with this filter; its JSON answer.
async fn run_reprocess(
    console: &Console,
    filter: &ReprocessFilter,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let body = filter.body(dry_run)?;
    let resp = api::reprocess(State(console.app.clone()), body.into()).await?;
    json_of(resp).await
}

async fn json_of(resp: Response) -> Result<Value, ApiError> {
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    serde_json::from_slice(&bytes).map_err(|_| ApiError::Unavailable)
}

/// `GET /ui/operations/reprocess?<deliveries filter>`: the dry run, then the confirmed start.
pub(crate) async fn reprocess_preview(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Query(filter): Query<ReprocessFilter>,
) -> Result<Response, PageError> {
    let preview = run_reprocess(&console, &filter, true).await?;
    let matched = preview["matched"].as_u64().unwrap_or(0);
    let sample: Vec<i64> = preview["event_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    Ok(respond(
        StatusCode::OK,
        page("Bulk reprocess", &session, flash.as_ref(), None).render(html! {
            p.crumbs { a href="/ui/deliveries" { "Deliveries" } " / bulk reprocess" }
            h1 { "Bulk reprocess: preview" }
            p.preview { strong { (matched) } " deliveries match this filter." }
            @if !sample.is_empty() {
                p { "A sample:" }
                ul.sample { @for id in &sample { li { a href={ "/ui/deliveries/" (id) } { "delivery " (id) } } } }
            }
            @if matched > 0 {
                (action_form(&session, "/ui/operations/reprocess",
                    &format!("Reprocess {matched} deliveries? Their tasks are derived again in the background."),
                    "Reprocess them", html! {
                        (filter.hidden())
                        label { input type="checkbox" name="force" value="1"; " force (also when a Codegen run exists for the head SHA)" }
                        " "
                    }))
            }
        }),
    ))
}

/// `POST /ui/operations/reprocess`: starts the bulk reprocess, then shows the operation.
pub(crate) async fn reprocess_start(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(filter): Form<ReprocessFilter>,
) -> Response {
    if let Some(refused) = csrf_refusal(&console, &session, &filter.csrf) {
        return refused;
    }
    started(
        &headers,
        run_reprocess(&console, &filter, false).await,
        "/ui/deliveries",
        "deliveries to reprocess",
    )
}

/// The redirect after starting an operation: to its page, or back with the API's error.
fn started(
    headers: &HeaderMap,
    result: Result<Value, ApiError>,
    back: &str,
    what: &str,
) -> Response {
    match result {
        Ok(op) => {
            let id = op["operation_id"].as_str().unwrap_or_default().to_owned();
            let matched = op["matched"].as_u64().unwrap_or(0);
            outcome(headers, &format!("/ui/operations/{id}"), Ok(()), |()| {
                format!("operation {id} started: {matched} {what}")
            })
        }
        Err(err) => outcome::<()>(headers, back, Err(err), |()| String::new()),
    }
}

/// Runs the API's bulk retry with this filter; its JSON answer.
async fn run_retry(
    console: &Console,
    filter: &RetryFilter,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let body = filter.body(dry_run)?;
    let resp = api::retry(State(console.app.clone()), body.into()).await?;
    json_of(resp).await
}

fn page<'a>(
    title: &'a str,
    session: &'a Session,
    flash: Option<&'a Flash>,
    refresh: Option<u32>,
) -> Page<'a> {
    Page {
        title,
        nav: Nav::Operations,
        session: Some(session),
        flash,
        refresh,
    }
}

/// `GET /ui/operations/retry?<tasks filter>`: the dry run, then the confirmed start.
pub(crate) async fn retry_preview(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Query(filter): Query<RetryFilter>,
) -> Result<Response, PageError> {
    let preview = run_retry(&console, &filter, true).await?;
    let matched = preview["matched"].as_u64().unwrap_or(0);
    let sample: Vec<&str> = preview["task_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Ok(respond(
        StatusCode::OK,
        page("Bulk retry", &session, flash.as_ref(), None).render(html! {
            p.crumbs { a href="/ui/tasks" { "Tasks" } " / bulk retry" }
            h1 { "Bulk retry: preview" }
            p.preview { strong { (matched) } " failed or cancelled tasks match this filter." }
            @if !sample.is_empty() {
                p { "A sample:" }
                ul.sample { @for id in &sample { li.mono { a href={ "/ui/tasks/" (id) } { (id) } } } }
            }
            @if matched > 0 {
                (action_form(&session, "/ui/operations/retry",
                    &format!("Retry {matched} tasks? They run again in the background."),
                    "Retry them", filter.hidden()))
            }
        }),
    ))
}

/// `POST /ui/operations/retry`: starts the bulk retry, then shows the operation.
pub(crate) async fn retry_start(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(filter): Form<RetryFilter>,
) -> Response {
    if let Some(refused) = csrf_refusal(&console, &session, &filter.csrf) {
        return refused;
    }
    started(
        &headers,
        run_retry(&console, &filter, false).await,
        "/ui/tasks",
        "tasks to retry",
    )
}

/// `GET /ui/operations`: the operations, newest first, paged by cursor (the last row's id).
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Query(params): Query<PageParams>,
) -> Result<Response, PageError> {
    let (after, rows) = params.read::<Uuid>()?;
    let store = console.app.operations().ok_or(ApiError::Unavailable)?;
    let fetched = store
        .list_operations(
            after,
            StorePage {
                limit: rows + 1,
                offset: 0,
            },
        )
        .await?;
    let (ops, more) = split(fetched, rows);
    let last = ops.last().map(|op| op.id.to_string());
    Ok(respond(
        StatusCode::OK,
        page("Operations", &session, flash.as_ref(), None).render(html! {
            h1 { "Operations" }
            @if ops.is_empty() {
                p.empty { "No operations yet. Start one from a filtered tasks list (Bulk retry)." }
            } @else {
                table.list {
                    thead { tr {
                        th scope="col" { "Operation" } th scope="col" { "Kind" } th scope="col" { "Status" }
                        th scope="col" { "Matched" } th scope="col" { "Done" } th scope="col" { "Failed" }
                        th scope="col" { "Created" }
                    } }
                    tbody { @for op in &ops { tr {
                        td.mono { a href={ "/ui/operations/" (op.id) } { (op.id) } }
                        td { (op.kind.as_str()) } td { (badge(op.status.as_str())) }
                        td { (op.matched) } td { (op.done) } td { (op.failed) }
                        td { (time(op.created_at)) }
                    } } }
                }
            }
            (params.pager("/ui/operations", last, more))
        }),
    ))
}

/// `GET /ui/operations/{id}`: progress, refreshing itself until the operation ends.
pub(crate) async fn detail(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let Json(op) = api::get(State(console.app.clone()), Path(raw)).await?;
    let running = op.finished_at.is_none();
    let title = format!("Operation {}", op.operation_id);
    let refresh = running.then_some(REFRESH_SECS);
    Ok(respond(
        StatusCode::OK,
        page(&title, &session, flash.as_ref(), refresh).render(html! {
            p.crumbs { a href="/ui/operations" { "Operations" } " / " (op.operation_id) }
            h1 { (op.kind) " " (badge(&op.status)) }
            (facts(&op))
            section {
                h2 { "Actions" }
                @if running {
                    (action_form(&session, &format!("/ui/operations/{}/cancel", op.operation_id),
                        "Cancel this operation? Items already done stay done.", "Cancel operation", html! {}))
                    p.hint { "This page refreshes every " (REFRESH_SECS) " s while the operation runs." }
                } @else {
                    p.hint { "The operation has ended." }
                }
            }
        }),
    ))
}

fn facts(op: &OperationDto) -> Markup {
    html! {
        dl.facts {
            dt { "Matched" } dd.matched { (op.matched) }
            dt { "Done" } dd.done { (op.done) }
            dt { "Failed" } dd { (op.failed) }
            dt { "Skipped" } dd { (op.skipped) }
            dt { "Filter" } dd.mono { (op.filter) }
            dt { "Created / started / finished" } dd {
                (time(op.created_at)) " / " (opt_time(op.started_at)) " / " (opt_time(op.finished_at))
            }
        }
    }
}

/// `POST /ui/operations/{id}/cancel`: the API's operation cancel.
pub(crate) async fn cancel(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&console, &session, &form.csrf) {
        return refused;
    }
    let to = format!("/ui/operations/{raw}");
    let result = api::cancel(State(console.app.clone()), Path(raw))
        .await
        .map(|Json(op)| op);
    let resp = outcome(&headers, &to, result, |op| {
        format!(
            "operation {} is {} ({} done)",
            op.operation_id, op.status, op.done
        )
    });
    resp.into_response()
}
