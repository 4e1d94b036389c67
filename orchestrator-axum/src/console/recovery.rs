//! The recovery screen: the recovery runs (newest first, paged by cursor: trigger, mode, window,
//! status, listed, missing, recovered, failed) and "Recover now" (with a dry-run option), and the
//! overview's "last recovery run" line (from the shared aggregate). The list reads the
//! reconciler's store as `GET /api/v1/admin/recover` does; "Recover now" goes through the
//! handler of [`crate::routes::recovery`].

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form, Json};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::layout::{Nav, Page, action_form, badge, opt_time, respond, time};
use super::paging::{PageParams, split};
use super::session::{Flash, Session};
use super::{Console, PageError, csrf_refusal, outcome};
use crate::error::ApiError;
use crate::figures::LastRun;
use crate::routes::recovery::{self as api, RecoveryRunDto};

/// The overview's line about the last recovery run, as the shared aggregate saw it (nothing
/// when recovery is not configured).
pub(crate) fn last_run(last: &LastRun) -> Markup {
    match last {
        LastRun::Run(run) => html! {
            p.recovery { "Last recovery run: " (badge(run.status.as_str())) " " (time(run.created_at))
                " — " (run.missing) " missing, " (run.recovered) " recovered, " (run.failed) " failed. "
                a href="/ui/recovery" { "Recovery runs" } }
        },
        LastRun::Never => html! {
            p.recovery { "No recovery run yet. " a href="/ui/recovery" { "Recovery" } }
        },
        LastRun::Unknown => html! {},
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
    Query(params): Query<PageParams>,
) -> Result<Response, PageError> {
    let (after, rows) = params.read::<Uuid>()?;
    let reconciler = console.app.reconciler().ok_or(ApiError::Unavailable)?;
    let fetched = reconciler.store().list_runs(after, rows + 1).await?;
    let (runs, more) = split(fetched, rows);
    let last = runs.last().map(|r| r.run_id.to_string());
    let runs: Vec<RecoveryRunDto> = runs.into_iter().map(Into::into).collect();
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
            (params.pager("/ui/recovery", last, more))
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
    if let Some(refused) = csrf_refusal(&console, &session, &form.csrf) {
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
