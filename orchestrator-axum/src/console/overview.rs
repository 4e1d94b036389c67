//! The overview screen, served from the shared aggregate (`figures.rs`).
//!
//! The store's figures (`TaskStore::stats`: full counts, 0.76 s on a million rows of
//! PostgreSQL), the queue depth and the last recovery run are computed at most once per
//! [`OVERVIEW_MAX_AGE`] per process, whatever the number of open browsers and however often
//! they refresh, and by a background computation, not by a page: the first request after the
//! figures went stale is answered with them (their age is on the page) and starts one
//! recomputation that the next refresh shows (`Figures::maintained`); every request reads the
//! snapshot (also one that `/api/v1/metrics` or `/api/v1/admin/stats` just computed). Breaker
//! states and the agent budget are read live (they are in memory or one Redis round trip).

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use orchestrator_core::store::{QueueDepth, Stats};

use super::layout::{Nav, Page, badge, respond, time};
use super::session::{Flash, Session};
use super::{Console, PageError};
use crate::state::AppState;

/// How old the overview's figures may be before a request has them recomputed (in the
/// background; the request is answered with the ones it has).
pub const OVERVIEW_MAX_AGE: Duration = Duration::from_secs(10);

/// Seconds between the overview page's refreshes.
const REFRESH_SECS: u32 = 5;

/// `part` of `whole` in percent, one decimal; 0 when `whole` is 0.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0 %".to_owned();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

/// `GET /ui`.
pub(crate) async fn page(
    State(console): State<Console>,
    Extension(session): Extension<Session>,
    Extension(flash): Extension<Option<Flash>>,
) -> Result<Response, PageError> {
    let snapshot = console
        .app
        .figures()
        .maintained(&console.app, console.overview_max_age)
        .await?;
    let now = console.app.clock().now();
    let last_run = super::recovery::last_run(&snapshot.last_run);
    let agent_budget = super::budget::tile(&console.app, now).await;
    let page = Page {
        title: "Overview",
        nav: Nav::Overview,
        session: Some(&session),
        flash: flash.as_ref(),
        refresh: Some(REFRESH_SECS),
    };
    Ok(respond(
        StatusCode::OK,
        page.render(html! {
            h1 { "Overview" }
            p.hint role="status" {
                "Figures of " (time(snapshot.computed_at)) " ("
                (now.signed_duration_since(snapshot.computed_at).num_seconds().max(0)) " s ago; recomputed in the background once they are "
                (console.overview_max_age.as_secs()) " s old). This page refreshes every " (REFRESH_SECS) " s."
            }
            (last_run)
            div.cards {
                (activity(&snapshot.stats))
                (queue(snapshot.depth.as_ref()))
                (breakers(&console.app))
                (agent_budget)
            }
            (by_status(&snapshot.stats))
        }),
    ))
}

fn activity(s: &Stats) -> Markup {
    html! {
        section.card aria-labelledby="h-activity" {
            h2 #h-activity { "Last 24 hours" }
            dl.figures {
                dt { "Deliveries" } dd { a href="/ui/deliveries" { (s.webhooks_24h) } }
                dt { "Deliveries with an error" } dd { (s.failed_webhooks_24h) " (" (percent(s.failed_webhooks_24h, s.webhooks_24h)) ")" }
                dt { "Tasks" } dd { a href="/ui/tasks" { (s.tasks_24h) } }
                dt { "Failed tasks" } dd { a href="/ui/tasks?status=failed" { (s.failed_tasks_24h) } " (" (percent(s.failed_tasks_24h, s.tasks_24h)) ")" }
            }
        }
    }
}

fn queue(depth: Option<&QueueDepth>) -> Markup {
    html! {
        section.card aria-labelledby="h-queue" {
            h2 #h-queue { "Queue depth" }
            @if let Some(d) = depth {
                dl.figures {
                    dt { "Ready" } dd { (d.ready) }
                    dt { "Scheduled (later)" } dd { (d.scheduled) }
                    dt { "Running" } dd { (d.running) }
                    dt { "Dead letter" } dd { (d.dead_letter) }
                }
            } @else {
                p.error { "The queue did not answer." }
            }
        }
    }
}

fn breakers(app: &AppState) -> Markup {
    let snapshot = app.breakers().snapshot();
    html! {
        section.card aria-labelledby="h-breakers" {
            h2 #h-breakers { "Circuit breakers" }
            @if snapshot.is_empty() {
                p.empty { "None configured." }
            } @else {
                dl.figures {
                    @for b in &snapshot {
                        dt { (b.name) }
                        dd { (badge(b.state.as_str())) " " (b.consecutive_failures) " consecutive failures" }
                    }
                }
            }
        }
    }
}

fn by_status(s: &Stats) -> Markup {
    html! {
        section aria-labelledby="h-status" {
            h2 #h-status { "All tasks by status" }
            table.list.compact {
                thead { tr { th scope="col" { "Status" } th scope="col" { "Tasks" } } }
                tbody {
                    @for (status, count) in &s.tasks_by_status {
                        tr {
                            td { a href={ "/ui/tasks?status=" (status) } { (badge(status)) } }
                            td.num { (count) }
                        }
                    }
                }
            }
            p.hint { (s.webhook_events_total) " deliveries and " (s.workflow_tasks_total) " tasks stored." }
        }
    }
}
