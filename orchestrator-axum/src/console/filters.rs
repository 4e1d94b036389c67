//! The list screens' filters: the query string of a GET form (empty fields mean "any"), turned
//! into a store query, and back into links (the next page, live tail) that keep them.

use chrono::{DateTime, NaiveDateTime, Utc};
use orchestrator_core::delivery::is_event_name;
use orchestrator_core::store::browse::{Cursor, EventQuery, TaskQuery};
use orchestrator_core::task::{TaskStatus, TaskType};
use serde::Deserialize;

use crate::error::ApiError;

/// Rows per page unless the filter says otherwise.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// The most rows a page shows.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// The deliveries screen's query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DeliveryParams {
    pub(crate) event_type: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) repository: Option<String>,
    /// `yes`, `no` or empty.
    pub(crate) processed: Option<String>,
    pub(crate) delivery: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` field, read as UTC) or RFC 3339.
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<String>,
    /// `1`: the page refreshes itself (only without a cursor).
    pub(crate) live: Option<String>,
}

/// The tasks screen's query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct TaskParams {
    pub(crate) status: Option<String>,
    pub(crate) task_type: Option<String>,
    pub(crate) repository: Option<String>,
    pub(crate) pr: Option<String>,
    /// `yes`: only superseded tasks; `no`: only the others.
    pub(crate) superseded: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<String>,
}

/// A field's value, `None` when absent or blank.
pub(crate) fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

fn instant(name: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = set(value) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| Some(naive.and_utc()))
        .ok_or_else(|| {
            bad(format!(
                "{name} {text:?} is not a date and time (YYYY-MM-DDTHH:MM, UTC)"
            ))
        })
}

/// Rows per page from a form field (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
pub(crate) fn limit(value: &Option<String>) -> Result<u32, ApiError> {
    match set(value) {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "limit must be between 1 and {MAX_LIMIT}, got {text:?}"
                ))
            }),
    }
}

fn cursor(value: &Option<String>) -> Result<Option<Cursor>, ApiError> {
    set(value)
        .map(|text| {
            Cursor::parse(text).ok_or_else(|| bad(format!("after {text:?} is not a page cursor")))
        })
        .transpose()
}

impl DeliveryParams {
    /// The store query of these filters (one row more than shown, to know if a next page exists).
    pub(crate) fn query(&self) -> Result<EventQuery, ApiError> {
        let event_type = set(&self.event_type).map(str::to_owned);
        if let Some(name) = event_type.as_deref().filter(|n| !is_event_name(n)) {
            return Err(bad(format!(
                "event type {name:?} is not an event name (1-64 characters of a-z, 0-9, _)"
            )));
        }
        let processed = match set(&self.processed) {
            None => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(other) => return Err(bad(format!("processed must be yes or no, got {other:?}"))),
        };
        Ok(EventQuery {
            event_type,
            action: set(&self.action).map(str::to_owned),
            repository: set(&self.repository).map(str::to_owned),
            processed,
            delivery_id: set(&self.delivery).map(str::to_owned),
            since: instant("since", &self.since)?,
            until: instant("until", &self.until)?,
            after: cursor(&self.after)?,
            limit: limit(&self.limit)? + 1,
        })
    }

    /// The query string of these filters with `after` (and no live flag) for a next-page link.
    pub(crate) fn link(&self, after: Option<&Cursor>, live: bool) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let fields = [
            ("event_type", &self.event_type),
            ("action", &self.action),
            ("repository", &self.repository),
            ("processed", &self.processed),
            ("delivery", &self.delivery),
            ("since", &self.since),
            ("until", &self.until),
            ("limit", &self.limit),
        ];
        for (name, value) in fields {
            if let Some(v) = set(value) {
                pairs.push((name, v));
            }
        }
        let encoded_after = after.map(Cursor::encode);
        if let Some(after) = &encoded_after {
            pairs.push(("after", after));
        }
        if live {
            pairs.push(("live", "1"));
        }
        encode(&pairs)
    }

    /// Whether the live tail is on (never on an older page).
    pub(crate) fn live(&self) -> bool {
        set(&self.live) == Some("1") && set(&self.after).is_none()
    }
}

impl DeliveryParams {
    /// The query string of a bulk reprocess of these filters (`None`: none it applies is set,
    /// or one it cannot apply, `processed` or the GUID, is).
    pub(crate) fn bulk_reprocess_link(&self) -> Option<String> {
        if set(&self.processed).is_some() || set(&self.delivery).is_some() {
            return None;
        }
        let pairs: Vec<(&str, &str)> = [
            ("event_type", &self.event_type),
            ("action", &self.action),
            ("repository", &self.repository),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(name, value)| set(value).map(|v| (name, v)))
        .collect();
        (!pairs.is_empty()).then(|| encode(&pairs))
    }
}

impl TaskParams {
    /// The store query of these filters (one row more than shown).
    pub(crate) fn query(&self) -> Result<TaskQuery, ApiError> {
        let status = set(&self.status)
            .map(|s| s.parse::<TaskStatus>())
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        let task_type = set(&self.task_type)
            .map(|t| TaskType::new(t.to_owned()))
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        let pr_number = set(&self.pr)
            .map(|n| {
                n.trim_start_matches('#')
                    .parse::<i64>()
                    .map_err(|_| bad(format!("pull request {n:?} is not a number")))
            })
            .transpose()?;
        let superseded = match set(&self.superseded) {
            None => None,
            Some("yes" | "true") => Some(true),
            Some("no" | "false") => Some(false),
            Some(other) => {
                return Err(bad(format!("superseded must be yes or no, got {other:?}")));
            }
        };
        Ok(TaskQuery {
            status,
            superseded,
            task_type,
            repository: set(&self.repository).map(str::to_owned),
            pr_number,
            after: cursor(&self.after)?,
            limit: limit(&self.limit)? + 1,
            ..TaskQuery::default()
        })
    }

    /// The query string of these filters with `after`.
    pub(crate) fn link(&self, after: Option<&Cursor>) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        let fields = [
            ("status", &self.status),
            ("task_type", &self.task_type),
            ("repository", &self.repository),
            ("pr", &self.pr),
            ("superseded", &self.superseded),
            ("limit", &self.limit),
        ];
        for (name, value) in fields {
            if let Some(v) = set(value) {
                pairs.push((name, v));
            }
        }
        let encoded_after = after.map(Cursor::encode);
        if let Some(after) = &encoded_after {
            pairs.push(("after", after));
        }
        encode(&pairs)
    }

    /// The query string of a bulk retry of these filters (`None`: no filter a bulk retry
    /// applies is set).
    pub(crate) fn bulk_retry_link(&self) -> Option<String> {
        let pairs: Vec<(&str, &str)> = [
            ("status", &self.status),
            ("task_type", &self.task_type),
            ("repository", &self.repository),
            ("pr", &self.pr),
            ("superseded", &self.superseded),
        ]
        .into_iter()
        .filter_map(|(name, value)| set(value).map(|v| (name, v)))
        .collect();
        (!pairs.is_empty()).then(|| encode(&pairs))
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_fields_mean_any_and_bad_ones_are_named() {
        let params = DeliveryParams {
            event_type: Some(" ".into()),
            processed: Some("no".into()),
            since: Some("2026-11-30T10:00".into()),
            ..DeliveryParams::default()
        };
        let query = params.query().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(query.event_type, None);
        assert_eq!(query.processed, Some(false));
        assert_eq!(query.limit, DEFAULT_LIMIT + 1);
        assert_eq!(
            query.since.map(|t| t.to_rfc3339()),
            Some("2026-11-30T10:00:00+00:00".to_owned())
        );
        let bad = DeliveryParams {
            limit: Some("5000".into()),
            ..DeliveryParams::default()
        };
        assert!(bad.query().is_err());
        let bad = TaskParams {
            status: Some("sleeping".into()),
            ..TaskParams::default()
        };
        assert!(bad.query().is_err());
        let pr = TaskParams {
            pr: Some("#12".into()),
            ..TaskParams::default()
        };
        assert_eq!(pr.query().map(|q| q.pr_number).ok().flatten(), Some(12));
    }

    #[test]
    fn links_keep_the_filters_and_add_the_cursor() {
        let params = DeliveryParams {
            repository: Some("octo/a b".into()),
            ..DeliveryParams::default()
        };
        let cursor = Cursor::after(DateTime::UNIX_EPOCH, 3);
        assert_eq!(
            params.link(Some(&cursor), false),
            "repository=octo%2Fa+b&after=0.3"
        );
        assert_eq!(params.link(None, true), "repository=octo%2Fa+b&live=1");
    }
}
