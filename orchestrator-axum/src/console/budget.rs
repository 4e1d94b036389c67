//! The overview's "Agent budget" tile: the state `/health` shows under `agent_budget` (the
//! same read), live at each refresh (one small read, in memory or one Redis round trip).

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout::time;
use crate::state::AppState;

/// The tile, or nothing when the server shows no agent budget.
pub(crate) async fn tile(app: &AppState, now: DateTime<Utc>) -> Markup {
    let read = crate::routes::system::agent_budget(app, now).await;
    if matches!(read, Ok(None)) {
        return html! {};
    }
    let limit = |n: Option<u32>, unit: &str| match n {
        Some(n) => format!("{n} {unit}"),
        None => "no limit".to_owned(),
    };
    html! {
        section.card aria-labelledby="h-agent-budget" {
            h2 #h-agent-budget { "Agent budget" }
            @match read {
                Ok(Some(b)) => {
                    dl.figures {
                        dt { "Codegen runs per minute" } dd { (limit(b.per_minute, "(all repositories)")) }
                        @if b.per_minute.is_some() {
                            dt { "Free now" } dd { (b.remaining.unwrap_or_default()) }
                        }
                        @if let Some(at) = b.next_free_at {
                            dt { "Next free slot" } dd { (time(at)) }
                        }
                        dt { "Per repository per hour" } dd { (limit(b.per_repo_per_hour, "runs")) }
                        dt { "Per pull-request head" } dd { (limit(b.max_runs_per_head, "run(s)")) }
                        dt { "Shared" } dd { @if b.backend == "redis" { "by every instance (Redis)" } @else { "this process only" } }
                    }
                }
                Ok(None) => {}
                Err(why) => { p.error { (why) } }
            }
        }
    }
}
