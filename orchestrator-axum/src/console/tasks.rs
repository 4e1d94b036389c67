//! The tasks screens: the list (status, type, repository, pull request; attempts, next run),
//! one task (execution timeline, Codegen run, parent and child tasks, whether a pause holds it,
//! the task that superseded it) and its Retry and Cancel actions.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use maud::{Markup, html};
use orchestrator_core::store::browse::{Cursor, TaskQuery};
use orchestrator_core::task::{Task, TaskDetail, TaskExecution, TaskStatus};
use uuid::Uuid;

use super::deliveries::{browse, task_subject};
use super::filters::{TaskParams, set};
use super::layout::{Nav, Page, action_form, badge, opt_time, or_dash, respond, time};
use super::paging;
use super::session::{Flash, Session};
use super::{ActionForm, Console, PageError, csrf_refusal, outcome};
use crate::error::ApiError;

/// `GET /ui/tasks`.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    params: Result<Query<TaskParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let (rows, error) = match params.query() {
        Ok(query) => {
            let shown = query.limit as usize - 1;
            let mut rows = browse(&console)?.browse_tasks(&query).await?;
            let more = rows.len() > shown;
            rows.truncate(shown);
            (Some((rows, more)), None)
        }
        Err(err) => (None, Some(err.to_string())),
    };
    let page = Page {
        title: "Tasks",
        nav: Nav::Tasks,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: None,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(respond(
        status,
        page.render(html! {
            h1 { "Tasks" }
            (filter_form(&params))
            @if let Some(bulk) = params.bulk_retry_link().filter(|_| error.is_none()) {
                p.bulk { a href={ "/ui/operations/retry?" (bulk) } { "Bulk retry the failed or cancelled tasks of this filter…" } }
            }
            @if let Some(error) = &error {
                p.flash.error role="alert" { (error) }
            }
            @if let Some((rows, more)) = &rows {
                (table(rows))
                (pager(&params, rows, *more))
            }
        }),
    ))
}

fn filter_form(params: &TaskParams) -> Markup {
    let status = set(&params.status).unwrap_or("");
    let superseded = set(&params.superseded).unwrap_or("");
    html! {
        form.filters method="get" action="/ui/tasks" {
            label { "Status "
                select name="status" {
                    option value="" selected[status.is_empty()] { "any" }
                    @for s in TaskStatus::ALL {
                        option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Type " input name="task_type" value=[set(&params.task_type)] placeholder="pull_request_analysis"; }
            label { "Repository " input name="repository" value=[set(&params.repository)] placeholder="owner/name"; }
            label { "PR " input name="pr" value=[set(&params.pr)] placeholder="42" size="6"; }
            label { "Superseded "
                select name="superseded" {
                    option value="" selected[superseded.is_empty()] { "any" }
                    option value="yes" selected[superseded == "yes"] { "yes" }
                    option value="no" selected[superseded == "no"] { "no" }
                }
            }
            label { "Rows " input type="number" min="1" max="1000" name="limit" value=[set(&params.limit)] placeholder="50"; }
            button type="submit" { "Filter" }
            " " a href="/ui/tasks" { "Clear" }
        }
    }
}

/// A table of tasks (the list, a delivery's derived tasks, a task's children).
pub(crate) fn table(rows: &[Task]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "No tasks." }
        } @else {
            table.list.grid.tasks {
                thead { tr {
                    th scope="col" { "Task" } th scope="col" { "Type" } th scope="col" { "Status" }
                    th scope="col" { "Repository" } th scope="col" { "PR" } th scope="col" { "Subject" }
                    th scope="col" { "Attempts" } th scope="col" { "Next run" } th scope="col" { "Created" }
                } }
                tbody {
                    @for t in rows {
                        tr {
                            td.mono { a href={ "/ui/tasks/" (t.task_id) } { (short(t.task_id)) } }
                            td { (t.task_type.as_str()) }
                            td { (badge(t.status.as_str())) }
                            td { (or_dash(t.repository.as_deref())) }
                            td { @if let Some(n) = t.pr_number { "#" (n) } @else { "—" } }
                            td { (or_dash(task_subject(t))) }
                            td.num { (t.attempts) }
                            td { (next_run(t)) }
                            td { (time(t.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

fn pager(params: &TaskParams, rows: &[Task], more: bool) -> Markup {
    let newest = set(&params.after).map(|_| format!("/ui/tasks?{}", params.link(None)));
    let older = rows.last().filter(|_| more).map(|t| {
        let last = Cursor::after(t.created_at, t.id);
        format!("/ui/tasks?{}", params.link(Some(&last)))
    });
    paging::pager(newest, older)
}

/// The last 8 hex digits of a task id: its random part (a UUID v7 starts with its creation
/// time, shared by tasks made together), enough to tell tasks apart; the link has it all.
fn short(id: Uuid) -> String {
    let hex = id.simple().to_string();
    hex[hex.len() - 8..].to_owned()
}

fn next_run(t: &Task) -> String {
    match t.status {
        TaskStatus::Pending | TaskStatus::Retrying => time(t.run_at),
        TaskStatus::Running => format!("running, lease until {}", opt_time(t.lease_expires_at)),
        _ => "—".to_owned(),
    }
}

/// `GET /ui/tasks/{id}`.
pub(crate) async fn detail(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let not_found = || PageError::from(ApiError::NotFound(format!("task {raw} not found")));
    let id = Uuid::parse_str(&raw).map_err(|_| not_found())?;
    let TaskDetail { task, executions } = console
        .app
        .tasks()
        .get_task(id)
        .await?
        .ok_or_else(not_found)?;
    let pauses = crate::routes::pause::current(&console.app).await?;
    let paused = crate::routes::pause::covers(&pauses, &task);
    let children = browse(&console)?
        .browse_tasks(&TaskQuery {
            parent_task_id: Some(id),
            limit: 200,
            ..TaskQuery::default()
        })
        .await?;
    let title = format!("Task {}", short(id));
    let page = Page {
        title: &title,
        nav: Nav::Tasks,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: None,
    };
    Ok(respond(
        StatusCode::OK,
        page.render(html! {
            p.crumbs { a href="/ui/tasks" { "Tasks" } " / " (short(id)) }
            h1 { (task.task_type.as_str()) " " (badge(task.status.as_str())) }
            (facts(&task, paused))
            section {
                h2 { "Actions" }
                (actions(&session, &task))
            }
            section {
                h2 { "Execution timeline (" (executions.len()) ")" }
                (timeline(&executions))
            }
            section {
                h2 { "Child tasks (" (children.len()) ")" }
                (table(&children))
            }
            details.block {
                summary { h2 { "Input" } }
                pre { (serde_json::to_string_pretty(&task.input_data).unwrap_or_default()) }
            }
            @if let Some(output) = &task.output_data {
                details.block {
                    summary { h2 { "Output" } }
                    pre { (serde_json::to_string_pretty(output).unwrap_or_default()) }
                }
            }
        }),
    ))
}

fn facts(task: &Task, paused: bool) -> Markup {
    html! {
        dl.facts {
            dt { "Task id" } dd.mono { (task.task_id) }
            dt { "Status" } dd { (badge(task.status.as_str())) }
            @if let Some(subject) = task_subject(task) {
                dt { "Subject" } dd { (subject) }
            }
            dt { "Repository" } dd { (or_dash(task.repository.as_deref())) }
            dt { "Pull request" } dd { @if let Some(n) = task.pr_number { "#" (n) } @else { "—" } }
            dt { "Branch / commit" } dd.mono { (or_dash(task.branch.as_deref())) " " (or_dash(task.commit_sha.as_deref())) }
            dt { "Delivery" } dd {
                @if let Some(e) = task.webhook_event_id { a href={ "/ui/deliveries/" (e) } { "delivery " (e) } } @else { "—" }
            }
            dt { "Parent task" } dd.mono {
                @if let Some(p) = task.parent_task_id { a href={ "/ui/tasks/" (p) } { (p) } } @else { "—" }
            }
            dt { "Codegen run" } dd {
                @match (&task.codegen_task_id, &task.codegen_task_url) {
                    (Some(id), Some(url)) if url.starts_with("https://") || url.starts_with("http://") => {
                        a href=(url) rel="noopener noreferrer" { "run " (id) } " — outcome: " (task.status.as_str())
                    }
                    (Some(id), _) => { "run " (id) " — outcome: " (task.status.as_str()) }
                    _ => { "none" }
                }
            }
            @if paused {
                dt { "Paused" } dd.paused { "yes — a pause holds this task; it runs after Resume" }
            }
            @if let Some(newer) = task.superseded_by {
                dt { "Superseded by" } dd.mono { a href={ "/ui/tasks/" (newer) } { (newer) } }
            }
            dt { "Attempts" } dd { (task.attempts) " (retries " (task.retry_count) " of " (task.max_retries) ")" }
            dt { "Next run" } dd { (next_run(task)) }
            dt { "Created / started / finished" } dd {
                (time(task.created_at)) " / " (opt_time(task.started_at)) " / " (opt_time(task.completed_at))
            }
            @if let Some(error) = &task.error_message {
                dt { "Last error" } dd.error { (error) }
            }
        }
    }
}

fn actions(session: &Session, task: &Task) -> Markup {
    let id = task.task_id;
    let retryable = matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled);
    let cancellable = matches!(
        task.status,
        TaskStatus::Pending | TaskStatus::Retrying | TaskStatus::Running
    );
    html! {
        @if cancellable {
            (action_form(session, &format!("/ui/tasks/{id}/cancel"),
                &format!("Cancel task {id}? A waiting task never starts; a running one is stopped."),
                "Cancel task", html! {}))
        } @else {
            p.hint { "Cancel: only pending, retrying or running tasks can be cancelled." }
        }
        @if retryable {
            (action_form(session, &format!("/ui/tasks/{id}/retry"),
                &format!("Retry task {id}? It runs again with a fresh retry budget."),
                "Retry", html! {}))
        } @else {
            p.hint { "Retry: only failed or cancelled tasks can be retried." }
        }
    }
}

fn timeline(executions: &[TaskExecution]) -> Markup {
    html! {
        @if executions.is_empty() {
            p.empty { "Not attempted yet." }
        } @else {
            ol.timeline {
                @for x in executions {
                    li {
                        strong { "Attempt " (x.attempt) } " " (badge(x.status.as_str()))
                        " on " span.mono { (x.worker_id) }
                        " — " (time(x.started_at))
                        @if let Some(ms) = x.duration_ms { ", " (ms) " ms" }
                        @if let Some(error) = &x.error_message { div.error { (error) } }
                    }
                }
            }
        }
    }
}

/// `POST /ui/tasks/{id}/retry`: the API's retry handler.
pub(crate) async fn retry(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&console, &session, &form.csrf) {
        return refused;
    }
    let Ok(id) = Uuid::parse_str(&raw) else {
        return PageError::from(ApiError::NotFound(format!("task {raw} not found")))
            .into_response();
    };
    let result = crate::routes::tasks::retry(State(console.app.clone()), Path(id.to_string()))
        .await
        .map(|Json(r)| r);
    outcome(&headers, &format!("/ui/tasks/{id}"), result, |r| {
        format!("task {} is pending again", r.task_id)
    })
}

/// `POST /ui/tasks/{id}/cancel`: the API's cancel handler.
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
    let Ok(id) = Uuid::parse_str(&raw) else {
        return PageError::from(ApiError::NotFound(format!("task {raw} not found")))
            .into_response();
    };
    let result = crate::routes::cancel::cancel(State(console.app.clone()), Path(id.to_string()))
        .await
        .map(|Json(r)| r);
    outcome(&headers, &format!("/ui/tasks/{id}"), result, |r| {
        format!("task {} is {}", r.task_id, r.status)
    })
}
