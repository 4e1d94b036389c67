//! The deliveries screens: the list (filters, cursor paging, live tail), one delivery (headers,
//! payload, provenance, derived tasks) and its Reprocess action.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form, Json};
use maud::{Markup, html};
use orchestrator_core::event::WebhookEvent;
use orchestrator_core::store::browse::{BrowseStore, Cursor, EventRow, TaskQuery};
use orchestrator_core::task::Task;
use serde_json::Value;

use super::filters::{DeliveryParams, set};
use super::layout::{Nav, Page, action_form, badge, opt_time, or_dash, respond, time};
use super::paging;
use super::session::{Flash, Session};
use super::{ActionForm, Console, PageError, csrf_refusal, outcome};
use crate::dto::ReprocessQuery;
use crate::error::ApiError;

/// Seconds between refreshes of the live tail.
const LIVE_REFRESH_SECS: u32 = 3;

pub(crate) fn browse(console: &Console) -> Result<&dyn BrowseStore, PageError> {
    console
        .app
        .browse()
        .ok_or_else(|| PageError::from(ApiError::Unavailable))
}

/// `GET /ui/deliveries`.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    params: Result<Query<DeliveryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let (rows, error) = match params.query() {
        Ok(query) => {
            let shown = query.limit as usize - 1;
            let mut rows = browse(&console)?.browse_events(&query).await?;
            let more = rows.len() > shown;
            rows.truncate(shown);
            (Some((rows, more)), None)
        }
        Err(err) => (None, Some(err.to_string())),
    };
    let live = params.live();
    let page = Page {
        title: "Deliveries",
        nav: Nav::Deliveries,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: live.then_some(LIVE_REFRESH_SECS),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(respond(
        status,
        page.render(html! {
            h1 { "Deliveries" }
            (filter_form(&params))
            @if let Some(bulk) = params.bulk_reprocess_link().filter(|_| error.is_none()) {
                p.bulk { a href={ "/ui/operations/reprocess?" (bulk) } { "Bulk reprocess the deliveries of this filter…" } }
            }
            p.tools {
                @if live {
                    a href={ "/ui/deliveries?" (params.link(None, false)) } { "Stop live tail" }
                    " · " span role="status" { "Live: refreshing every " (LIVE_REFRESH_SECS) " s" }
                } @else {
                    a href={ "/ui/deliveries?" (params.link(None, true)) } { "Live tail" }
                }
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

fn filter_form(params: &DeliveryParams) -> Markup {
    let processed = set(&params.processed).unwrap_or("");
    html! {
        form.filters method="get" action="/ui/deliveries" {
            label { "Event " input name="event_type" value=[set(&params.event_type)] placeholder="pull_request"; }
            label { "Action " input name="action" value=[set(&params.action)] placeholder="opened"; }
            label { "Repository " input name="repository" value=[set(&params.repository)] placeholder="owner/name"; }
            label { "Processed "
                select name="processed" {
                    option value="" selected[processed.is_empty()] { "any" }
                    option value="yes" selected[processed == "yes"] { "yes" }
                    option value="no" selected[processed == "no"] { "no" }
                }
            }
            label { "Delivery GUID " input name="delivery" value=[set(&params.delivery)]; }
            label { "From (UTC) " input type="datetime-local" name="since" value=[set(&params.since)]; }
            label { "To (UTC) " input type="datetime-local" name="until" value=[set(&params.until)]; }
            label { "Rows " input type="number" min="1" max="1000" name="limit" value=[set(&params.limit)] placeholder="50"; }
            button type="submit" { "Filter" }
            " " a href="/ui/deliveries" { "Clear" }
        }
    }
}

fn table(rows: &[EventRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { "No deliveries match." }
        } @else {
            table.list.grid.deliveries {
                thead { tr {
                    th scope="col" { "ID" } th scope="col" { "Received" } th scope="col" { "Event" }
                    th scope="col" { "Action" } th scope="col" { "Repository" }
                    th scope="col" { "Processed" } th scope="col" { "Error" } th scope="col" { "Delivery GUID" }
                } }
                tbody {
                    @for row in rows {
                        @let e = &row.summary;
                        tr {
                            td { a href={ "/ui/deliveries/" (e.id) } { (e.id) } }
                            td { (time(e.created_at)) }
                            td { (e.event_type) }
                            td { (or_dash(e.action.as_deref())) }
                            td { (or_dash(row.repository.as_deref())) }
                            td { (badge(if e.processed { "processed" } else { "open" })) }
                            td.error { (or_dash(e.error_message.as_deref())) }
                            td.mono { (e.delivery_id) }
                        }
                    }
                }
            }
        }
    }
}

fn pager(params: &DeliveryParams, rows: &[EventRow], more: bool) -> Markup {
    let newest = set(&params.after).map(|_| format!("/ui/deliveries?{}", params.link(None, false)));
    let older = rows.last().filter(|_| more).map(|r| {
        let last = Cursor::after(r.summary.created_at, r.summary.id);
        format!("/ui/deliveries?{}", params.link(Some(&last), false))
    });
    paging::pager(newest, older)
}

/// `GET /ui/deliveries/{id}`.
pub(crate) async fn detail(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let not_found = || PageError::from(ApiError::NotFound(format!("delivery {raw} not found")));
    let id: i64 = raw.parse().map_err(|_| not_found())?;
    let event = console
        .app
        .events()
        .get_event(id)
        .await?
        .ok_or_else(not_found)?;
    let tasks = browse(&console)?
        .browse_tasks(&TaskQuery {
            webhook_event_id: Some(id),
            limit: 200,
            ..TaskQuery::default()
        })
        .await?;
    let title = format!("Delivery {id}");
    let page = Page {
        title: &title,
        nav: Nav::Deliveries,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: None,
    };
    Ok(respond(
        StatusCode::OK,
        page.render(html! {
            p.crumbs { a href="/ui/deliveries" { "Deliveries" } " / " (id) }
            h1 { (title) ": " (event.event_type) @if let Some(a) = &event.action { " · " (a) } }
            (facts(&event))
            section {
                h2 { "Actions" }
                (action_form(&session, &format!("/ui/deliveries/{id}/reprocess"),
                    &format!("Reprocess delivery {id}? Its routing runs again and new tasks are queued."),
                    "Reprocess",
                    html! {
                        label.inline { input type="checkbox" name="force" value="true";
                            " force (allow a second Codegen run for the same head commit)" }
                    }))
            }
            section {
                h2 { "Derived tasks (" (tasks.len()) ")" }
                (super::tasks::table(&tasks))
            }
            (headers(&event))
            (payload(&event))
        }),
    ))
}

fn facts(event: &WebhookEvent) -> Markup {
    html! {
        dl.facts {
            dt { "Delivery GUID" } dd.mono { (event.delivery_id) }
            dt { "Provenance" } dd { (provenance(event)) }
            dt { "Repository" } dd { (or_dash(event.repository.as_deref())) }
            dt { "Installation" } dd { (event.installation_id.map(|i| i.to_string()).unwrap_or_else(|| "—".into())) }
            dt { "Received" } dd { (time(event.created_at)) }
            dt { "Processed" } dd { (badge(if event.processed { "processed" } else { "open" })) }
            dt { "Processing" } dd { (opt_time(event.processing_started_at)) " → " (opt_time(event.processing_completed_at)) }
            dt { "Reprocessed" } dd { (event.retry_count) " times" }
            @if let Some(error) = &event.error_message {
                dt { "Error" } dd.error { (error) }
            }
            @if let Some(error) = &event.parse_error {
                dt { "Parse error" } dd.error { (error) }
            }
        }
    }
}

/// Where the delivery came from (`source`): GitHub's push to the receiver, or a recovery run
/// that found it in GitHub's delivery log.
fn provenance(event: &WebhookEvent) -> Markup {
    html! {
        @match event.source.as_str() {
            "github" => { "received from GitHub by the webhook receiver" }
            "recovered" => { "recovered from GitHub's delivery log by a " a href="/ui/recovery" { "recovery run" } " (GitHub never reached the receiver)" }
            other => { "source: " (other) }
        }
    }
}

fn headers(event: &WebhookEvent) -> Markup {
    html! {
        details.block open {
            summary { h2 { "Headers (" (event.headers.len()) ")" } }
            table.kv {
                tbody {
                    @for (name, value) in &event.headers {
                        tr { th scope="row" { (name) } td.mono { (value) } }
                    }
                }
            }
        }
    }
}

/// The payload pretty-printed; each top-level field collapsible on its own.
fn payload(event: &WebhookEvent) -> Markup {
    let parsed: Option<Value> = serde_json::from_slice(&event.payload).ok();
    html! {
        details.block open {
            summary { h2 { "Payload (" (event.payload.len()) " bytes)" } }
            @match &parsed {
                Some(Value::Object(fields)) => {
                    @for (key, value) in fields {
                        details.field open[!value.is_object() && !value.is_array()] {
                            summary.mono { (key) ": " span.hint { (shape(value)) } }
                            pre { (serde_json::to_string_pretty(value).unwrap_or_default()) }
                        }
                    }
                }
                Some(other) => { pre { (serde_json::to_string_pretty(other).unwrap_or_default()) } }
                None => { pre { (String::from_utf8_lossy(&event.payload)) } }
            }
        }
    }
}

fn shape(value: &Value) -> String {
    match value {
        Value::Object(map) => format!("{{…}} {} fields", map.len()),
        Value::Array(items) => format!("[…] {} items", items.len()),
        Value::String(s) if s.chars().count() > 80 => {
            format!("{:?}…", s.chars().take(80).collect::<String>())
        }
        other => other.to_string(),
    }
}

/// `POST /ui/deliveries/{id}/reprocess`: the API's reprocess handler.
pub(crate) async fn reprocess(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(refused) = csrf_refusal(&console, &session, &form.csrf) {
        return refused;
    }
    let Ok(id) = raw.parse::<i64>() else {
        return PageError::from(ApiError::NotFound(format!("delivery {raw} not found")))
            .into_response();
    };
    let query = ReprocessQuery {
        force: Some(form.force.as_deref() == Some("true")),
    };
    let result = crate::routes::events::reprocess(
        State(console.app.clone()),
        Path(id.to_string()),
        Ok(axum::extract::Query(query)),
    )
    .await
    .map(|Json(r)| r);
    outcome(&headers, &format!("/ui/deliveries/{id}"), result, |r| {
        format!(
            "delivery {} reprocessed: {} new task(s) queued",
            r.event_id,
            r.task_ids.len()
        )
    })
}

/// A derived task's one-line description for other screens.
pub(crate) fn task_subject(task: &Task) -> Option<&str> {
    task.input_data.get("title").and_then(Value::as_str)
}
