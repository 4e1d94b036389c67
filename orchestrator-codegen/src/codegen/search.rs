//! Finding a run by its metadata in `GET /v1/organizations/{org_id}/agent/runs`.
//!
//! The list is paginated (`skip`, `limit` up to 100; `{items, total, page, size, pages}`) and
//! ordered newest first, and each run carries the `metadata` it was created with. A search reads
//! pages until it has seen every run created since the cut-off (a page whose oldest run is older,
//! or the last page), or gives up after [`MAX_PAGES`] pages: then it is inconclusive, never a
//! guess. The metadata the orchestrator sends holds the creation attempt's own id, so at most one
//! run can match; two matches are reported as inconclusive too.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use orchestrator_core::agent::{AgentRun, RunSearch};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::WireRun;

/// Runs asked for per page (the API's maximum).
pub(super) const PAGE_SIZE: u32 = 100;

/// Pages read at most (the API allows 60 reads per 30 s; a search spends at most this many).
pub(super) const MAX_PAGES: u32 = 10;

/// Runs a little older than the cut-off are still looked at: the agent's clock and ours differ.
const CLOCK_SLACK: TimeDelta = TimeDelta::minutes(5);

/// One page of the list as sent.
#[derive(Deserialize)]
pub(super) struct WirePage {
    #[serde(default)]
    pub(super) items: Vec<WireRun>,
    #[serde(default)]
    pub(super) pages: Option<u32>,
}

/// A search in progress over successive pages.
pub(super) struct Search<'a> {
    metadata: &'a Map<String, Value>,
    cutoff: DateTime<Utc>,
    found: Vec<AgentRun>,
    pages: u32,
}

/// After a page: the answer, or read the next page.
pub(super) enum Step {
    Done(RunSearch),
    Next,
}

impl<'a> Search<'a> {
    pub(super) fn new(metadata: &'a Map<String, Value>, created_since: DateTime<Utc>) -> Self {
        Self {
            metadata,
            cutoff: created_since - CLOCK_SLACK,
            found: Vec::new(),
            pages: 0,
        }
    }

    /// `skip` of the next page.
    pub(super) fn skip(&self) -> u32 {
        self.pages * PAGE_SIZE
    }

    /// Takes one page in.
    pub(super) fn page(&mut self, page: WirePage) -> Step {
        self.pages += 1;
        let count = page.items.len();
        let oldest = page
            .items
            .last()
            .and_then(|r| created_at(r.created_at.as_deref()));
        for run in page.items {
            if matches(run.metadata.as_ref(), self.metadata) {
                self.found.push(run.into());
            }
        }
        let last_page = count < PAGE_SIZE as usize || page.pages.is_some_and(|p| self.pages >= p);
        let passed_cutoff = oldest.is_some_and(|at| at < self.cutoff);
        match self.found.len() {
            0 if last_page || passed_cutoff => Step::Done(RunSearch::NotFound),
            0 if self.pages >= MAX_PAGES => Step::Done(RunSearch::Inconclusive(format!(
                "no matching run among the newest {} runs, and older ones were not read",
                self.skip()
            ))),
            0 => Step::Next,
            1 => Step::Done(RunSearch::Found(self.found.remove(0))),
            n => Step::Done(RunSearch::Inconclusive(format!(
                "{n} runs carry the same metadata"
            ))),
        }
    }
}

/// Whether a run's metadata holds every key of `wanted` with the same value.
fn matches(metadata: Option<&Value>, wanted: &Map<String, Value>) -> bool {
    let Some(Value::Object(metadata)) = metadata else {
        return false;
    };
    wanted.iter().all(|(k, v)| metadata.get(k) == Some(v))
}

/// A run's `created_at`: RFC 3339, or an ISO time without offset (read as UTC).
fn created_at(text: Option<&str>) -> Option<DateTime<Utc>> {
    let text = text?.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|at| at.and_utc())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn run(id: i64, created: &str, metadata: Value) -> Value {
        json!({"id": id, "organization_id": 1, "status": "ACTIVE", "created_at": created,
               "metadata": metadata})
    }

    fn page(items: Vec<Value>, pages: u32) -> WirePage {
        serde_json::from_value(json!({"items": items, "total": 0, "page": 1, "size": 100,
                                      "pages": pages}))
        .unwrap()
    }

    fn wanted() -> Map<String, Value> {
        json!({"task_id": "t-1", "agent_run_intent": "i-1"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn since() -> DateTime<Utc> {
        "2026-11-28T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_run_carrying_the_metadata_is_found() {
        let wanted = wanted();
        let mut search = Search::new(&wanted, since());
        let items = vec![
            run(3, "2026-11-28T10:02:00Z", json!({"task_id": "t-2"})),
            run(
                2,
                "2026-11-28T10:01:00",
                json!({"task_id": "t-1", "agent_run_intent": "i-1", "x": 1}),
            ),
            run(1, "2026-11-28T09:00:00Z", json!(null)),
        ];
        let Step::Done(RunSearch::Found(found)) = search.page(page(items, 1)) else {
            panic!("not found")
        };
        assert_eq!(found.id, 2);
    }

    #[test]
    fn a_run_of_an_earlier_attempt_of_the_same_task_does_not_match() {
        let wanted = wanted();
        let mut search = Search::new(&wanted, since());
        let items = vec![run(
            5,
            "2026-11-28T10:02:00Z",
            json!({"task_id": "t-1", "agent_run_intent": "i-0"}),
        )];
        assert!(matches!(
            search.page(page(items, 1)),
            Step::Done(RunSearch::NotFound)
        ));
    }

    #[test]
    fn reading_stops_once_runs_are_older_than_the_intent_and_gives_up_after_the_page_limit() {
        let wanted = wanted();
        let full = |start: i64, created: &str| -> Vec<Value> {
            (0..i64::from(PAGE_SIZE))
                .map(|i| run(start - i, created, json!({})))
                .collect()
        };
        // A full page of recent runs: read on; then a page reaching before the cut-off: done.
        let mut search = Search::new(&wanted, since());
        assert!(matches!(
            search.page(page(full(1000, "2026-11-28T10:30:00Z"), 50)),
            Step::Next
        ));
        assert_eq!(search.skip(), PAGE_SIZE);
        assert!(matches!(
            search.page(page(full(900, "2026-11-28T09:00:00Z"), 50)),
            Step::Done(RunSearch::NotFound)
        ));
        // Only recent runs, page after page: inconclusive after MAX_PAGES.
        let mut search = Search::new(&wanted, since());
        for _ in 1..MAX_PAGES {
            assert!(matches!(
                search.page(page(full(1000, "2026-11-28T11:00:00Z"), 50)),
                Step::Next
            ));
        }
        assert!(matches!(
            search.page(page(full(1000, "2026-11-28T11:00:00Z"), 50)),
            Step::Done(RunSearch::Inconclusive(_))
        ));
    }

    #[test]
    fn two_matching_runs_are_inconclusive_and_runs_within_the_clock_slack_count() {
        let wanted = wanted();
        let mut search = Search::new(&wanted, since());
        let meta = json!({"task_id": "t-1", "agent_run_intent": "i-1"});
        let items = vec![
            run(2, "2026-11-28T10:01:00Z", meta.clone()),
            run(1, "2026-11-28T09:58:00Z", meta),
        ];
        assert!(matches!(
            search.page(page(items, 1)),
            Step::Done(RunSearch::Inconclusive(_))
        ));
        assert_eq!(created_at(Some("garbage")), None);
    }
}
