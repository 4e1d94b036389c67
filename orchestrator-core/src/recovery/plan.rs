//! What a page of delivery summaries asks for, decided without I/O: the attempts grouped by
//! GUID, those outside the run's window or irrelevant left out, and for each remaining GUID the
//! attempt to act on (the newest). Whether a GUID is missing is the store's answer, asked once
//! for the whole page ([`RecoveryStore::known_deliveries`]).
//!
//! A GUID stored here needs nothing, however its attempts went at GitHub (a failed attempt
//! followed by an OK redelivery is stored). A GUID not stored here is recovered, whether every
//! attempt failed or one succeeded at GitHub and our database lost it.
//!
//! [`RecoveryStore::known_deliveries`]: crate::store::recovery::RecoveryStore::known_deliveries

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::log::DeliverySummary;

/// One GUID of a page and the attempt to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `X-GitHub-Delivery`.
    pub guid: String,
    /// The newest attempt of it on the page.
    pub attempt: DeliverySummary,
    /// Whether any attempt of it on the page was answered 2xx by our receiver.
    pub delivered: bool,
}

/// The page, grouped: the candidates (in first-seen order, newest first) and how many attempts
/// were inside the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagePlan {
    /// Relevant GUIDs in the window.
    pub candidates: Vec<Candidate>,
    /// Attempts inside the window (relevant or not).
    pub listed: u64,
    /// Whether the page reached past the window's start (older pages need not be read).
    pub reached_cutoff: bool,
}

/// Groups `deliveries` (newest first) by GUID, keeping those delivered in `[since, until]`
/// that `relevant` accepts.
pub fn plan_page(
    deliveries: &[DeliverySummary],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    relevant: impl Fn(&DeliverySummary) -> bool,
) -> PagePlan {
    let mut plan = PagePlan::default();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for attempt in deliveries {
        if attempt.delivered_at < since {
            plan.reached_cutoff = true;
            continue;
        }
        if attempt.delivered_at > until {
            continue;
        }
        plan.listed += 1;
        if !relevant(attempt) {
            continue;
        }
        match index.get(attempt.guid.as_str()) {
            Some(&i) => plan.candidates[i].delivered |= attempt.succeeded(),
            None => {
                index.insert(&attempt.guid, plan.candidates.len());
                plan.candidates.push(Candidate {
                    guid: attempt.guid.clone(),
                    attempt: attempt.clone(),
                    delivered: attempt.succeeded(),
                });
            }
        }
    }
    plan
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn attempt(id: i64, guid: &str, minute: i64, code: u16, event: &str) -> DeliverySummary {
        DeliverySummary {
            id,
            guid: guid.into(),
            delivered_at: at(minute),
            redelivery: false,
            status: if code == 200 {
                "OK".into()
            } else {
                "failed".into()
            },
            status_code: code,
            event: event.into(),
            action: None,
            installation_id: None,
            repository_id: None,
            throttled_at: None,
        }
    }

    #[test]
    fn attempts_group_by_guid_newest_first_inside_the_window() {
        let page = [
            attempt(6, "a", 50, 200, "push"), // OK redelivery of a
            attempt(5, "b", 40, 502, "push"),
            attempt(4, "a", 30, 502, "push"), // a's failed first attempt
            attempt(3, "c", 20, 200, "ping"), // irrelevant
            attempt(2, "d", 5, 502, "push"),  // before the window
        ];
        let plan = plan_page(&page, at(10), at(60), |d| d.event == "push");
        assert_eq!(plan.listed, 4);
        assert!(plan.reached_cutoff);
        let guids: Vec<_> = plan.candidates.iter().map(|c| c.guid.as_str()).collect();
        assert_eq!(guids, ["a", "b"]);
        assert!(plan.candidates[0].delivered);
        assert_eq!(plan.candidates[0].attempt.id, 6);
        assert!(!plan.candidates[1].delivered);
    }

    #[test]
    fn attempts_after_the_window_are_left_out() {
        let page = [attempt(9, "z", 90, 502, "push")];
        let plan = plan_page(&page, at(10), at(60), |_| true);
        assert_eq!(plan.listed, 0);
        assert!(plan.candidates.is_empty());
        assert!(!plan.reached_cutoff);
    }
}
