//! Keyset-paged event and task lists ([`BrowseStore`](orchestrator_core::store::browse::BrowseStore))
//! for both databases: the conditions that are set, then `(created_at, id) < (cursor)`, newest
//! first. As in `crate::list`, only the filters that are set are named, so a filtered page walks
//! the index that leads with its column (`..._status_idx`, `..._repository_idx`,
//! `webhook_events_type_idx`, `workflow_tasks_event_idx`) and an unfiltered one the
//! `(created_at DESC, id DESC)` index from the cursor on: no page costs more than its rows.

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::store::browse::{BrowseStore, Cursor, EventQuery, EventRow, TaskQuery};
use orchestrator_core::task::Task;
use sqlx::{Database, Encode, QueryBuilder, Type};
use uuid::Uuid;

use crate::SqlStore;
use crate::sql_store::both;

/// One condition's value; `T` is how the database stores an instant.
enum Bound<T> {
    Text(String),
    Bool(bool),
    Int(i64),
    Uuid(Uuid),
    Time(T),
}

/// `column op value` conditions and the cursor of a page.
struct Conditions<T> {
    list: Vec<(&'static str, &'static str, Bound<T>)>,
    /// `column IS NOT NULL` (true) or `IS NULL` (false) conditions (no value to bind).
    null: Vec<(&'static str, bool)>,
    after: Option<Cursor>,
}

impl<T> Conditions<T> {
    fn eq(&mut self, column: &'static str, value: Option<Bound<T>>) {
        if let Some(value) = value {
            self.list.push((column, " = ", value));
        }
    }
}

/// The conditions of an event page (`webhook_events`).
fn events<T>(q: &EventQuery, time: fn(DateTime<Utc>) -> T) -> Conditions<T> {
    let mut c = Conditions {
        list: Vec::new(),
        null: Vec::new(),
        after: q.after,
    };
    c.eq("event_type", q.event_type.clone().map(Bound::Text));
    c.eq("action", q.action.clone().map(Bound::Text));
    c.eq("repository", q.repository.clone().map(Bound::Text));
    c.eq("processed", q.processed.map(Bound::Bool));
    c.eq("delivery_id", q.delivery_id.clone().map(Bound::Text));
    if let Some(since) = q.since {
        c.list
            .push(("created_at", " >= ", Bound::Time(time(since))));
    }
    if let Some(until) = q.until {
        c.list.push(("created_at", " < ", Bound::Time(time(until))));
    }
    c
}

/// The conditions of a task page (`workflow_tasks`).
fn tasks<T>(q: &TaskQuery) -> Conditions<T> {
    let mut c = Conditions {
        list: Vec::new(),
        null: Vec::new(),
        after: q.after,
    };
    c.eq(
        "status",
        q.status.map(|s| Bound::Text(s.as_str().to_owned())),
    );
    c.eq(
        "task_type",
        q.task_type
            .as_ref()
            .map(|t| Bound::Text(t.as_str().to_owned())),
    );
    c.eq("repository", q.repository.clone().map(Bound::Text));
    c.eq("pr_number", q.pr_number.map(Bound::Int));
    c.eq("webhook_event_id", q.webhook_event_id.map(Bound::Int));
    c.eq("parent_task_id", q.parent_task_id.map(Bound::Uuid));
    if let Some(superseded) = q.superseded {
        c.null.push(("superseded_by", superseded));
    }
    c
}

/// `select_from` with `conditions`, newest first, at most `limit` rows.
fn query<DB, T>(
    select_from: &str,
    conditions: Conditions<T>,
    limit: u32,
    time: fn(DateTime<Utc>) -> T,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> T: Encode<'q, DB> + Type<DB> + Send + 'q,
{
    let mut query = QueryBuilder::new(select_from);
    let mut first = true;
    let mut next = |query: &mut QueryBuilder<DB>| {
        query.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    for (column, op, value) in conditions.list {
        next(&mut query);
        query.push(column).push(op);
        match value {
            Bound::Text(v) => query.push_bind(v),
            Bound::Bool(v) => query.push_bind(v),
            Bound::Int(v) => query.push_bind(v),
            Bound::Uuid(v) => query.push_bind(v),
            Bound::Time(v) => query.push_bind(v),
        };
    }
    for (column, set) in conditions.null {
        next(&mut query);
        query
            .push(column)
            .push(if set { " IS NOT NULL" } else { " IS NULL" });
    }
    if let Some(cursor) = conditions.after {
        next(&mut query);
        query
            .push("(created_at, id) < (")
            .push_bind(time(cursor.created_at))
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(limit));
    query
}

/// The event page of `q` over `select_from` (`SELECT ... FROM webhook_events`).
pub(crate) fn event_query<DB, T>(
    select_from: &str,
    q: &EventQuery,
    time: fn(DateTime<Utc>) -> T,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> T: Encode<'q, DB> + Type<DB> + Send + 'q,
{
    query(select_from, events(q, time), q.limit, time)
}

/// The task page of `q` over `select_from` (`SELECT ... FROM workflow_tasks`).
pub(crate) fn task_query<DB, T>(
    select_from: &str,
    q: &TaskQuery,
    time: fn(DateTime<Utc>) -> T,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> T: Encode<'q, DB> + Type<DB> + Send + 'q,
{
    query(select_from, tasks(q), q.limit, time)
}

#[async_trait::async_trait]
impl BrowseStore for SqlStore {
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRow>, StoreError> {
        both!(self, s => s.browse_events(query).await)
    }

    async fn browse_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        both!(self, s => s.browse_tasks(query).await)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    use super::*;

    #[test]
    fn only_set_filters_and_the_cursor_become_conditions() {
        let all = task_query::<Postgres, DateTime<Utc>>(
            "SELECT id FROM workflow_tasks",
            &TaskQuery {
                limit: 50,
                ..TaskQuery::default()
            },
            |t| t,
        );
        assert_eq!(
            all.sql().as_str(),
            "SELECT id FROM workflow_tasks ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        let superseded = task_query::<Postgres, DateTime<Utc>>(
            "SELECT id FROM workflow_tasks",
            &TaskQuery {
                pr_number: Some(7),
                superseded: Some(true),
                limit: 50,
                ..TaskQuery::default()
            },
            |t| t,
        );
        assert_eq!(
            superseded.sql().as_str(),
            "SELECT id FROM workflow_tasks WHERE pr_number = $1 AND superseded_by IS NOT NULL \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let q = EventQuery {
            repository: Some("octo/repo".to_owned()),
            since: Some(DateTime::UNIX_EPOCH),
            after: Some(Cursor::after(DateTime::UNIX_EPOCH, 7)),
            limit: 10,
            ..EventQuery::default()
        };
        let page = event_query::<Sqlite, i64>("SELECT id FROM webhook_events", &q, |t| {
            t.timestamp_micros()
        });
        assert_eq!(
            page.sql().as_str(),
            "SELECT id FROM webhook_events WHERE repository = ? AND created_at >= ? \
             AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?"
        );
    }
}
