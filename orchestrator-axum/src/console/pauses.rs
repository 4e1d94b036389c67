//! The pauses screen: the current pauses (scope and since when) with a Resume action each, and a
//! Pause form (a repository, a task type, both or neither: everything). The actions call the
//! `/api/v1/admin/pause|resume` handlers of [`crate::routes::pause`].

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form, Json};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::filters::set;
use super::layout::{Nav, Page, action_form, or_dash, respond, time};
use super::session::{Flash, Session};
use super::{ActionForm, Console, PageError, csrf_refusal, outcome};
use crate::routes::pause as api;

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
        let form = ActionForm {
            csrf: self.csrf.clone(),
            force: None,
        };
        csrf_refusal(console, session, &form)
    }
}

/// `GET /ui/pauses`.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
) -> Result<Response, PageError> {
    let Json(pauses) = api::list(State(console.app.clone())).await?;
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
