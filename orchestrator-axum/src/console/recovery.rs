//! The recovery screen: the recovery runs (newest first: trigger, mode, window, status, listed,
//! missing, recovered, failed) and "Recover now" (with a dry-run option), and the overview's
//! "last recovery run" line. Everything goes through the `/api/v1/admin/recover` handlers of
//! [`crate::routes::recovery`].

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Form, Json};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::layout::{Nav, Page, action_form, badge, opt_time, respond, time};
use super::session::{Flash, Session};
use super::{ActionForm, Console, PageError, csrf_refusal, outcome};
use crate::error::ApiError;
use crate::routes::recovery::{self as api, RecoveryRunDto};

/// The newest `limit` runs, through the API's list handler.
pub(crate) async fn runs(console: &Console, limit: u32) -> Result<Vec<RecoveryRunDto>, ApiError> {
    let uri: Uri = format!("/?limit={limit}")
        .parse()
        .map_err(|_| ApiError::BadRequest("limit".into()))?;
    let query = Query::try_from_uri(&uri);
    let Json(runs) = api::list(State(console.app.clone()), query).await?;
    Ok(runs)
}

/// The overview's line about the last recovery run (nothing when recovery is not configured).
pub(crate) async fn last_run(console: &Console) -> Markup {
    match runs(console, 1).await {
        Ok(runs) => html! {
            @if let Some(run) = runs.first() {
                p.recovery { "Last recovery run: " (badge(&run.status)) " " (time(run.created_at))
                    " — " (run.missing) " missing, " (run.recovered) " recovered, " (run.failed) " failed. "
                    a href="/ui/recovery" { "Recovery runs" } }
            } @else {
                p.recovery { "No recovery run yet. " a href="/ui/recovery" { "Recovery" } }
            }
        },
        Err(_) => html! {},
    }
}

/// "Recover now": its dry-run option and the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RecoverForm {
    #[serde(default)]
    csrf: String,
    dry_run: Option<String>,
}

/// `GET /ui/recovery`.
pub(crate) async fn list(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
) -> Result<Response, PageError> {
    let runs = runs(&console, 50).await?;
    let page = Page {
        title: "Recovery",
        nav: Nav::Recovery,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: None,
    };
    Ok(respond(
        StatusCode::OK,
        page.render(html! {
            h1 { "Recovery runs" }
            p.hint { "A run pages GitHub's delivery log and ingests the deliveries this store missed." }
            (action_form(&session, "/ui/recovery", "Start a recovery run now?", "Recover now", html! {
                label { input type="checkbox" name="dry_run" value="1"; " dry run (only list what is missing)" }
                " "
            }))
            @if runs.is_empty() {
                p.empty { "No recovery run yet." }
            } @else {
                table.list.runs {
                    thead { tr {
                        th scope="col" { "Run" } th scope="col" { "Trigger" } th scope="col" { "Mode" }
                        th scope="col" { "Status" } th scope="col" { "Window" } th scope="col" { "Listed" }
                        th scope="col" { "Missing" } th scope="col" { "Recovered" } th scope="col" { "Failed" }
                        th scope="col" { "Finished" }
                    } }
                    tbody { @for r in &runs { tr {
                        td.mono { (r.run_id) }
                        td { (r.trigger) }
                        td { (r.mode) @if r.dry_run { " (dry run)" } }
                        td { (badge(&r.status)) }
                        td { (time(r.since)) " – " (time(r.until)) }
                        td { (r.listed) } td { (r.missing) } td { (r.recovered) } td { (r.failed) }
                        td { (opt_time(r.finished_at)) }
                    } } }
                }
            }
        }),
    ))
}

/// `POST /ui/recovery`: "Recover now".
pub(crate) async fn start(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<RecoverForm>,
) -> Response {
    let action = ActionForm {
        csrf: form.csrf.clone(),
        force: None,
    };
    if let Some(refused) = csrf_refusal(&console, &session, &action) {
        return refused;
    }
    let dry_run = form.dry_run.as_deref().is_some_and(|v| !v.is_empty());
    let body = json!({ "dry_run": dry_run }).to_string();
    let result = api::start(State(console.app.clone()), body.into()).await;
    outcome(&headers, "/ui/recovery", result, |(_, Json(started))| {
        format!(
            "recovery run {} started{}",
            started.run_id,
            if dry_run { " (dry run)" } else { "" }
        )
    })
}
