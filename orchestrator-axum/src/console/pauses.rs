//! The pauses screen: the current pauses (scope and since when, paged by cursor) with a Resume
//! action each, and a Pause form (a repository, a task type, both or neither: everything). The
//! actions call the `/api/v1/admin/pause|resume` handlers of [`crate::routes::pause`].

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form, Json};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::filters::set;
use super::layout::{Nav, Page, action_form, or_dash, respond, time};
use super::paging::{PageParams, split};
use super::session::{Flash, Session};
use super::{Console, PageError, csrf_refusal, outcome};
use crate::error::ApiError;
use crate::routes::pause::{self as api, PauseDto};

/// A pause scope from a form, and the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ScopeForm {
    #[serde(default)]
    csrf: String,
    repository: Option<String>,
    task_type: Option<String>,
}

impl ScopeForm {
    /// The API's body (`PauseRequest`): only the fields that are set.
    fn body(&self) -> axum::body::Bytes {
        let mut body = json!({});
        if let Some(r) = set(&self.repository) {
            body["repository"] = json!(r);
        }
        if let Some(t) = set(&self.task_type) {
            body["task_type"] = json!(t);
        }
        body.to_string().into()
    }

    fn describe(&self) -> String {
        match (set(&self.repository), set(&self.task_type)) {
            (None, None) => "everything".to_owned(),
            (Some(r), None) => r.to_owned(),
            (None, Some(t)) => format!("{t} tasks"),
            (Some(r), Some(t)) => format!("{t} tasks of {r}"),
        }
    }

    fn refused(&self, console: &Console, session: &Session) -> Option<Response> {
        csrf_refusal(console, session, &self.csrf)
    }
}

/// Where a page of pauses ends: its last pause's creation time and scope (a scope has at most
/// one pause), as `<microseconds>:<repository>:<task type>` (blank: every).
fn cursor_of(p: &PauseDto) -> String {
    format!(
        "{}:{}:{}",
        p.created_at.timestamp_micros(),
        p.repository.as_deref().unwrap_or_default(),
        p.task_type.as_deref().unwrap_or_default()
    )
}

/// The pauses (oldest first, the store's order) after the page that ended at `after`: after
/// that pause, or, when it was resumed meanwhile, those created after it.
fn after_cursor(pauses: Vec<PauseDto>, after: Option<&str>) -> Result<Vec<PauseDto>, ApiError> {
    let Some(text) = after else {
        return Ok(pauses);
    };
    let bad = || ApiError::BadRequest(format!("after {text:?} is not a page cursor"));
    let mut parts = text.splitn(3, ':');
    let micros: i64 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
    let (repository, task_type) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    let at = pauses.iter().position(|p| {
        p.repository.as_deref().unwrap_or_default() == repository
            && p.task_type.as_deref().unwrap_or_default() == task_type
    });
    Ok(match at {
        Some(at) => pauses.into_iter().skip(at + 1).collect(),
        None => pauses
            .into_iter()
            .filter(|p| p.created_at.timestamp_micros() > micros)
            .collect(),
    })
}

/// `GET /ui/pauses`: the pauses, oldest first, paged by cursor. There is at most one pause per
/// scope (repository × task type), so the store answers all of them (`PauseStore::pauses`) and
/// the page is cut from that short list.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
    Query(params): Query<PageParams>,
) -> Result<Response, PageError> {
    let (after, rows) = params.read::<String>()?;
    let Json(pauses) = api::list(State(console.app.clone())).await?;
    let (pauses, more) = split(after_cursor(pauses, after.as_deref())?, rows);
    let last = pauses.last().map(cursor_of);
    let page = Page {
        title: "Pauses",
        nav: Nav::Pauses,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: None,
    };
    Ok(respond(
        StatusCode::OK,
        page.render(html! {
            h1 { "Pauses" }
            p.hint { "A paused task waits (pending) until its pause is resumed; running tasks finish." }
            @if pauses.is_empty() {
                p.empty { "Nothing is paused." }
            } @else {
                table.list.pauses {
                    thead { tr {
                        th scope="col" { "Repository" } th scope="col" { "Task type" }
                        th scope="col" { "Since" } th scope="col" { "Action" }
                    } }
                    tbody { @for p in &pauses { tr {
                        td { (p.repository.as_deref().unwrap_or("every repository")) }
                        td { (or_dash(p.task_type.as_deref())) }
                        td { (time(p.created_at)) }
                        td { (action_form(&session, "/ui/pauses/resume", "Resume this pause? Its tasks run again.", "Resume", html! {
                            @if let Some(r) = &p.repository { input type="hidden" name="repository" value=(r); }
                            @if let Some(t) = &p.task_type { input type="hidden" name="task_type" value=(t); }
                        })) }
                    } } }
                }
            }
            (params.pager("/ui/pauses", last, more))
            section {
                h2 { "Pause" }
                (action_form(&session, "/ui/pauses/pause",
                    "Pause this scope? Its waiting tasks do not start until Resume.", "Pause", html! {
                    label { "Repository " input name="repository" placeholder="owner/name (blank: all)"; }
                    " "
                    label { "Task type " input name="task_type" placeholder="blank: all"; }
                    " "
                }))
            }
        }),
    ))
}

/// `POST /ui/pauses/pause`.
pub(crate) async fn pause(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<ScopeForm>,
) -> Response {
    if let Some(refused) = form.refused(&console, &session) {
        return refused;
    }
    let result = api::pause(State(console.app.clone()), form.body()).await;
    outcome(&headers, "/ui/pauses", result, |_| {
        format!("paused: {}", form.describe())
    })
}

/// `POST /ui/pauses/resume`.
pub(crate) async fn resume(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<ScopeForm>,
) -> Response {
    if let Some(refused) = form.refused(&console, &session) {
        return refused;
    }
    let result = api::resume(State(console.app.clone()), form.body()).await;
    outcome(&headers, "/ui/pauses", result, |Json(r)| {
        format!(
            "resumed: {} ({} tasks handed back)",
            form.describe(),
            r.republished
        )
    })
}
