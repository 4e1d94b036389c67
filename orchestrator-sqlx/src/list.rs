//! Event and task lists for both databases: the `WHERE` clause names only the filters that are
//! set, so a filtered list can walk the index that leads with its column.
//!
//! A catch-all form such as `($1 IS NULL OR repository = $1)` is one prepared statement for
//! every combination of filters, but its plan has to work when the parameter is NULL too, so
//! SQLite (and PostgreSQL's generic plans) scan the newest-first index and test every row. One
//! statement per combination of set filters (at most eight) lets each use its own index:
//! `workflow_tasks_status_idx`, `workflow_tasks_repository_idx`, `webhook_events_type_idx`.

use orchestrator_core::store::{EventFilter, Page, TaskFilter};
use orchestrator_core::task::TaskStatus;
use sqlx::{Database, Encode, QueryBuilder, Type};

/// One equality condition on a column.
pub(crate) enum Condition {
    Text(&'static str, String),
    Bool(&'static str, bool),
    Uuid(&'static str, uuid::Uuid),
    /// `column IS NOT NULL` (true) or `column IS NULL` (false).
    Present(&'static str, bool),
}

/// The conditions of the event list (`webhook_events`) for `filter`.
pub(crate) fn events(filter: &EventFilter) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some(event_type) = &filter.event_type {
        conditions.push(Condition::Text("event_type", event_type.clone()));
    }
    if let Some(processed) = filter.processed {
        conditions.push(Condition::Bool("processed", processed));
    }
    conditions
}

/// The conditions of the task list (`workflow_tasks`) for `filter`.
pub(crate) fn tasks(filter: &TaskFilter) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some(status) = filter.status {
        conditions.push(Condition::Text(
            "status",
            TaskStatus::as_str(status).to_owned(),
        ));
    }
    if let Some(task_type) = &filter.task_type {
        conditions.push(Condition::Text("task_type", task_type.as_str().to_owned()));
    }
    if let Some(repository) = &filter.repository {
        conditions.push(Condition::Text("repository", repository.clone()));
    }
    if let Some(by) = filter.superseded_by {
        conditions.push(Condition::Uuid("superseded_by", by));
    }
    if let Some(superseded) = filter.superseded {
        conditions.push(Condition::Present("superseded_by", superseded));
    }
    conditions
}

/// `select_from` (`SELECT ... FROM table`) with `conditions`, newest first, paged.
pub(crate) fn query<DB>(
    select_from: &str,
    conditions: Vec<Condition>,
    page: Page,
) -> QueryBuilder<DB>
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> uuid::Uuid: Encode<'q, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(select_from);
    for (i, condition) in conditions.into_iter().enumerate() {
        query.push(if i == 0 { " WHERE " } else { " AND " });
        match condition {
            Condition::Text(column, value) => query.push(column).push(" = ").push_bind(value),
            Condition::Bool(column, value) => query.push(column).push(" = ").push_bind(value),
            Condition::Uuid(column, value) => query.push(column).push(" = ").push_bind(value),
            Condition::Present(column, true) => query.push(column).push(" IS NOT NULL"),
            Condition::Present(column, false) => query.push(column).push(" IS NULL"),
        };
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(page.limit))
        .push(" OFFSET ")
        .push_bind(i64::try_from(page.offset).unwrap_or(i64::MAX));
    query
}

#[cfg(test)]
mod tests {
    use orchestrator_core::task::TaskType;
    use sqlx::{Postgres, Sqlite};

    use super::*;

    const PAGE: Page = Page {
        limit: 50,
        offset: 0,
    };

    #[test]
    fn only_the_filters_that_are_set_become_conditions() {
        let all = query::<Postgres>(
            "SELECT id FROM workflow_tasks",
            tasks(&TaskFilter::default()),
            PAGE,
        );
        assert_eq!(
            all.sql().as_str(),
            "SELECT id FROM workflow_tasks ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let filter = TaskFilter {
            status: Some(TaskStatus::Failed),
            task_type: None,
            repository: Some("octo/repo".to_owned()),
            ..Default::default()
        };
        let some = query::<Sqlite>("SELECT id FROM workflow_tasks", tasks(&filter), PAGE);
        assert_eq!(
            some.sql().as_str(),
            "SELECT id FROM workflow_tasks WHERE status = ? AND repository = ? \
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        );
        let filter = TaskFilter {
            task_type: Some(TaskType::new("push_analysis").unwrap_or_else(|e| panic!("{e}"))),
            ..TaskFilter::default()
        };
        let typed = query::<Postgres>("SELECT id FROM workflow_tasks", tasks(&filter), PAGE);
        assert!(
            typed
                .sql()
                .as_str()
                .contains("WHERE task_type = $1 ORDER BY")
        );
        let events = query::<Postgres>(
            "SELECT id FROM webhook_events",
            events(&EventFilter {
                event_type: Some("push".to_owned()),
                processed: Some(false),
            }),
            PAGE,
        );
        assert!(
            events
                .sql()
                .as_str()
                .contains("WHERE event_type = $1 AND processed = $2 ORDER BY")
        );
    }

    /// SQLite's plan for each single-filter list walks the index of that filter's column.
    #[tokio::test]
    async fn each_filter_uses_its_index_on_sqlite() {
        use sqlx::Row;

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/plans.db", dir.path().display());
        let store = crate::SqliteStore::connect(&url, &crate::PoolOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = |mut query: QueryBuilder<Sqlite>| {
            let pool = store.reader().clone();
            async move {
                query
                    .build()
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .iter()
                    .map(|row| row.get::<String, _>("detail"))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        let explain_tasks = "EXPLAIN QUERY PLAN SELECT id FROM workflow_tasks";
        let cases = [
            (
                TaskFilter {
                    repository: Some("octo/repo".to_owned()),
                    ..TaskFilter::default()
                },
                "workflow_tasks_repository_idx",
            ),
            (
                TaskFilter {
                    status: Some(TaskStatus::Failed),
                    ..TaskFilter::default()
                },
                "workflow_tasks_status_idx",
            ),
        ];
        for (filter, index) in cases {
            let detail = plan(query(explain_tasks, tasks(&filter), PAGE)).await;
            assert!(detail.contains(index), "{filter:?}: {detail}");
        }
        let by_type = EventFilter {
            event_type: Some("push".to_owned()),
            processed: None,
        };
        let detail = plan(query(
            "EXPLAIN QUERY PLAN SELECT id FROM webhook_events",
            events(&by_type),
            PAGE,
        ))
        .await;
        assert!(detail.contains("webhook_events_type_idx"), "{detail}");
        store.close().await;
    }
}
