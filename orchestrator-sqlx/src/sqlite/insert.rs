//! The event and task `INSERT`s on SQLite: one delivery ([`insert_event`]) or a group of
//! deliveries in one write transaction with multi-row inserts ([`ingest_many`]).
//!
//! A delivery's pull-request updates run in the same transaction right after its tasks
//! ([`ingest_many`] says how a batch keeps them in order).
//!
//! Every statement is a round trip to the connection's worker thread, and the writer is the one
//! serial stage of the receiver, so a batch is written with two multi-row `INSERT`s (events,
//! then the tasks of the accepted ones) instead of one or two statements per delivery. There is
//! one prepared statement per row count (up to [`MAX_ROWS`]); the writer connection's statement
//! cache is sized for them ([`WRITER_STATEMENT_CACHE`]). (Sending `BEGIN`, both inserts and
//! `COMMIT` as one multi-statement query, one round trip per batch, was measured too: within
//! the noise of the load benchmark, so not kept.)

use std::collections::HashMap;
use std::sync::LazyLock;

use orchestrator_core::error::StoreError;
use orchestrator_core::event::NewEvent;
use orchestrator_core::store::supersede::{PrUpdateOutcome, SupersedeOutcome};
use orchestrator_core::store::{BatchDelivery, IngestOutcome};
use orchestrator_core::task::NewTask;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};
use sqlx::{AssertSqlSafe, Row, Sqlite};

use super::payload::{PreparedPayload, StoredPayload};
use super::rows::us;
use super::supersede::{all_settled, apply_pr_updates};
use crate::error::store_error;
use crate::plan::{headers_json, json_text, to_i32};

/// Most rows in one statement (SQLite allows 32,766 bound parameters).
const MAX_ROWS: usize = 64;

/// Statement cache of the writer connection: one entry per row count and table, plus room for
/// every other statement the store and queue use.
pub(super) const WRITER_STATEMENT_CACHE: usize = 2 * MAX_ROWS + 100;

const EVENT_COLUMNS: &str = "INSERT INTO webhook_events (delivery_id, event_type, action, \
    source, repository, installation_id, payload, payload_encoding, headers, processed, \
    processing_started_at, processing_completed_at, open_tasks, created_at, updated_at, \
    parse_error, error_message) VALUES ";
const EVENT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const EVENT_TAIL: &str = " ON CONFLICT (delivery_id) DO NOTHING RETURNING id, delivery_id";

const TASK_COLUMNS: &str = "INSERT INTO workflow_tasks (task_id, webhook_event_id, \
    parent_task_id, task_type, status, priority, repository, pr_number, branch, commit_sha, \
    config, input_data, max_retries, run_at, trace_context, created_at, updated_at) VALUES ";
const TASK_ROW: &str = "(?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

/// A delivery of a batch with its payload as the store prepared it.
pub(super) type Delivery = BatchDelivery<Option<PreparedPayload>>;

/// `head` followed by `rows` copies of `row`, comma-separated, then `tail`.
fn statement(head: &str, row: &str, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + (row.len() + 2) * rows + tail.len());
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sql
}

/// Splits `len` into chunk lengths of at most [`MAX_ROWS`].
fn chunks(mut len: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if len == 0 {
            return None;
        }
        let take = len.min(MAX_ROWS);
        len -= take;
        Some(take)
    })
}

/// Binds the 17 values of one [`EVENT_ROW`] for `event`, which has `tasks` tasks. An event
/// stored unparsed (it has a parse error, and never tasks) stays unprocessed, with its parse
/// error as its error, until a reprocess parses it.
fn bind_event<'q>(
    query: SqliteQuery<'q>,
    event: &NewEvent,
    prepared: Option<&PreparedPayload>,
    tasks: usize,
    compress: bool,
) -> SqliteQuery<'q> {
    let at = us(event.received_at);
    let processed = tasks == 0 && event.parse_error.is_none();
    let settled_at = processed.then_some(at);
    let payload = StoredPayload::of(event, prepared, compress);
    let encoding = payload.encoding();
    query
        .bind(event.delivery_id.clone())
        .bind(event.event_type.clone())
        .bind(event.action.clone())
        .bind(event.source.clone())
        .bind(event.repository.clone())
        .bind(event.installation_id)
        .bind(payload)
        .bind(encoding)
        .bind(headers_json(&event.headers))
        .bind(processed)
        .bind(settled_at)
        .bind(settled_at)
        .bind(i64::try_from(tasks).unwrap_or(i64::MAX))
        .bind(at)
        .bind(at)
        .bind(event.parse_error.clone())
        .bind(event.parse_error.as_deref().map(NewEvent::unparsed_message))
}

/// Binds the values of one task row after its task id and event reference (the first two).
fn bind_task<'q>(query: SqliteQuery<'q>, task: &NewTask, now: i64) -> SqliteQuery<'q> {
    let spec = &task.spec;
    query
        .bind(task.parent_task_id)
        .bind(spec.task_type.as_str())
        .bind(spec.priority)
        .bind(spec.repository.clone())
        .bind(spec.pr_number)
        .bind(spec.branch.clone())
        .bind(spec.commit_sha.clone())
        .bind(json_text(&spec.config))
        .bind(json_text(&spec.input_data))
        .bind(to_i32(task.max_retries))
        .bind(us(task.run_at))
        .bind(task.trace_context.clone())
        .bind(now)
        .bind(now)
}

/// The one-row event insert.
static INSERT_ONE_EVENT: LazyLock<String> =
    LazyLock::new(|| statement(EVENT_COLUMNS, EVENT_ROW, 1, EVENT_TAIL));

/// Inserts `event` (which has `tasks` tasks) unless its delivery id is stored already; the new
/// row's id, or `None` for a duplicate.
pub(super) async fn insert_event(
    conn: &mut SqliteConnection,
    event: &NewEvent,
    prepared: Option<&PreparedPayload>,
    tasks: usize,
    compress: bool,
) -> Result<Option<i64>, StoreError> {
    let query = sqlx::query(AssertSqlSafe(INSERT_ONE_EVENT.as_str()));
    let row = bind_event(query, event, prepared, tasks, compress)
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.map(|row| row.try_get(0).map_err(store_error))
        .transpose()
}

/// Inserts the events of `batch`; returns the id of every row inserted, by delivery id.
async fn insert_events(
    conn: &mut SqliteConnection,
    batch: &[Delivery],
    compress: bool,
) -> Result<HashMap<String, i64>, StoreError> {
    let mut inserted = HashMap::with_capacity(batch.len());
    let mut rest = batch;
    for rows in chunks(batch.len()) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let sql = statement(EVENT_COLUMNS, EVENT_ROW, rows, EVENT_TAIL);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (delivery, prepared) in chunk {
            let tasks = delivery.tasks.len();
            query = bind_event(query, &delivery.event, prepared.as_ref(), tasks, compress);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(store_error)? {
            let id: i64 = row.try_get(0).map_err(store_error)?;
            let delivery: String = row.try_get(1).map_err(store_error)?;
            inserted.insert(delivery, id);
        }
    }
    Ok(inserted)
}

/// Inserts `tasks` (each with its event id) as pending tasks.
async fn insert_tasks(
    conn: &mut SqliteConnection,
    tasks: &[(i64, &NewTask, i64)],
) -> Result<(), StoreError> {
    let mut rest = tasks;
    for rows in chunks(tasks.len()) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let sql = statement(TASK_COLUMNS, TASK_ROW, rows, "");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for &(event_id, task, now) in chunk {
            query = bind_task(query.bind(task.task_id).bind(event_id), task, now);
        }
        query.execute(&mut *conn).await.map_err(store_error)?;
    }
    Ok(())
}

/// Ingests `batch` inside the open write transaction `conn`, with the outcome each delivery
/// would get from ingesting them one after another in order: the first of a delivery id is
/// accepted, a later one (or one already stored) is a duplicate of it. The events go in first
/// (multi-row); the tasks are inserted in runs, each run ending at an accepted delivery whose
/// pull-request updates have something to do, which are then applied: like one by one, they
/// see the tasks of the deliveries before it and its own, never those of a later delivery.
/// Updates with nothing to do ([`all_settled`], e.g. another delivery for the current head)
/// do not end a run.
pub(super) async fn ingest_many(
    conn: &mut SqliteConnection,
    batch: &[Delivery],
    compress: bool,
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut inserted = insert_events(conn, batch, compress).await?;
    let mut seen: HashMap<&str, i64> = HashMap::new();
    let mut tasks = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (delivery, _) in batch {
        let event = &delivery.event;
        let id = event.delivery_id.as_str();
        let Some(event_id) = inserted.remove(id) else {
            let event_id = existing_id(conn, &mut seen, id).await?;
            outcomes.push(IngestOutcome::Duplicate { event_id });
            continue;
        };
        seen.insert(id, event_id);
        let updates = &delivery.pr_updates;
        let unwritten: Vec<&NewTask> = tasks.iter().map(|&(_, t, _)| t).collect();
        let quiet = !updates.is_empty() && all_settled(conn, updates, &unwritten).await;
        let now = us(event.received_at);
        tasks.extend(delivery.tasks.iter().map(|t| (event_id, t, now)));
        let mut pr_updates: Vec<PrUpdateOutcome> = Vec::new();
        if quiet {
            // Nothing to do (the usual case: another delivery for the current head).
            let nothing = PrUpdateOutcome::Superseded(SupersedeOutcome::default());
            pr_updates = vec![nothing; updates.len()];
        } else if !updates.is_empty() {
            insert_tasks(conn, &tasks).await?;
            tasks.clear();
            pr_updates = apply_pr_updates(conn, updates, event.received_at).await?;
        }
        outcomes.push(IngestOutcome::Accepted {
            event_id,
            task_ids: delivery.tasks.iter().map(|t| t.task_id).collect(),
            pr_updates,
        });
    }
    insert_tasks(conn, &tasks).await?;
    Ok(outcomes)
}

/// The event id of `delivery`, which is stored already (before the batch or earlier in it).
async fn existing_id<'a>(
    conn: &mut SqliteConnection,
    seen: &mut HashMap<&'a str, i64>,
    delivery: &'a str,
) -> Result<i64, StoreError> {
    if let Some(&id) = seen.get(delivery) {
        return Ok(id);
    }
    let row = sqlx::query("SELECT id FROM webhook_events WHERE delivery_id = $1")
        .bind(delivery.to_owned())
        .fetch_one(&mut *conn)
        .await
        .map_err(store_error)?;
    let id: i64 = row.try_get(0).map_err(store_error)?;
    seen.insert(delivery, id);
    Ok(id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bytes::Bytes;
    use chrono::Utc;
    use orchestrator_core::store::{BatchStore, EventFilter, EventStore, NewDelivery, Page};
    use orchestrator_core::task::{TaskSpec, TaskType};

    use super::*;
    use crate::config::PoolOptions;
    use crate::sqlite::SqliteStore;

    #[test]
    fn chunks_add_up_and_stay_under_the_limit() {
        for len in 0..300 {
            let parts: Vec<usize> = chunks(len).collect();
            assert_eq!(parts.iter().sum::<usize>(), len);
            assert!(parts.iter().all(|&p| p > 0 && p <= MAX_ROWS));
        }
        assert_eq!(chunks(150).collect::<Vec<_>>(), vec![64, 64, 22]);
    }

    fn delivery(id: &str) -> (NewEvent, Vec<NewTask>) {
        let event = NewEvent {
            delivery_id: id.to_owned(),
            event_type: "push".to_owned(),
            action: None,
            source: "github".to_owned(),
            repository: Some("octo/repo".to_owned()),
            installation_id: Some(1),
            payload: Bytes::from(format!(r#"{{"id":"{id}","s":"\u00e9"}}"#)),
            headers: vec![("x-github-delivery".to_owned(), id.to_owned())],
            received_at: Utc::now(),
            parse_error: None,
        };
        let mut spec = TaskSpec::new(TaskType::new("push_analysis").unwrap());
        spec.branch = Some(id.to_owned());
        (event, vec![NewTask::new(spec, 2, Utc::now())])
    }

    /// `batch` prepared as the group committer prepares it.
    fn prepared(store: &SqliteStore, batch: Vec<(NewEvent, Vec<NewTask>)>) -> Vec<Delivery> {
        batch
            .into_iter()
            .map(|(event, tasks)| {
                let payload = store.prepare(&event);
                (NewDelivery::new(event, tasks), payload)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_larger_than_one_statement_gets_the_outcomes_of_one_by_one_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/batch.db", dir.path().display());
        let store = SqliteStore::connect(&url, &PoolOptions::default())
            .await
            .unwrap();
        let first = store.ingest(delivery("old").0, Vec::new()).await.unwrap();
        assert!(matches!(first, IngestOutcome::Accepted { .. }));
        let old = match store.ingest(delivery("old").0, Vec::new()).await.unwrap() {
            IngestOutcome::Duplicate { event_id } => event_id,
            other => panic!("{other:?}"),
        };
        // 150 deliveries (three statements), one already stored, one twice in the batch.
        let mut batch: Vec<_> = (0..148).map(|i| delivery(&format!("d-{i}"))).collect();
        batch.insert(70, delivery("old"));
        batch.push(delivery("d-3"));
        let outcomes = store.ingest_batch(prepared(&store, batch.clone())).await;
        assert_eq!(outcomes.len(), 150);
        assert_eq!(
            outcomes[70].as_ref().unwrap(),
            &IngestOutcome::Duplicate { event_id: old }
        );
        let Ok(IngestOutcome::Accepted { event_id: d3, .. }) = outcomes[3] else {
            panic!("{:?}", outcomes[3])
        };
        assert_eq!(
            outcomes[149].as_ref().unwrap(),
            &IngestOutcome::Duplicate { event_id: d3 }
        );
        let accepted = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(IngestOutcome::Accepted { .. })))
            .count();
        assert_eq!(accepted, 148);
        // Every accepted delivery is stored with its payload, headers and its one task.
        for (outcome, (sent, tasks)) in outcomes.iter().zip(&batch) {
            if let Ok(IngestOutcome::Accepted {
                event_id, task_ids, ..
            }) = outcome
            {
                let stored = store.get_event(*event_id).await.unwrap().unwrap();
                assert_eq!(stored.delivery_id, sent.delivery_id);
                assert_eq!(stored.payload, sent.payload);
                assert_eq!(stored.headers, sent.headers);
                assert!(!stored.processed, "an event with a task stays open");
                assert_eq!(task_ids, &vec![tasks[0].task_id]);
            }
        }
        let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_tasks")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(tasks, 148);
        let listed = store
            .list_events(
                &EventFilter::default(),
                Page {
                    limit: 500,
                    offset: 0,
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.len(), 149);
    }

    async fn count(store: &SqliteStore, table: &str) -> i64 {
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(store.reader())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_batch_with_a_stored_delivery_accepts_the_rest_and_leaves_the_writer_usable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/small-batch.db", dir.path().display());
        let store = SqliteStore::connect(&url, &PoolOptions::default())
            .await
            .unwrap();
        // All new: every delivery accepted with its task.
        let first: Vec<_> = (0..10).map(|i| delivery(&format!("a-{i}"))).collect();
        let outcomes = store.ingest_batch(prepared(&store, first)).await;
        assert!(outcomes.iter().all(
            |o| matches!(o, Ok(IngestOutcome::Accepted { task_ids, .. }) if task_ids.len() == 1)
        ));
        assert_eq!(count(&store, "webhook_events").await, 10);
        assert_eq!(count(&store, "workflow_tasks").await, 10);
        let Ok(IngestOutcome::Accepted { event_id: a3, .. }) = outcomes[3] else {
            panic!("{:?}", outcomes[3])
        };

        // One delivery already stored: it is a duplicate, the rest are accepted.
        let mut second: Vec<_> = (0..5).map(|i| delivery(&format!("b-{i}"))).collect();
        second.insert(2, delivery("a-3"));
        let outcomes = store.ingest_batch(prepared(&store, second)).await;
        assert_eq!(
            outcomes[2].as_ref().unwrap(),
            &IngestOutcome::Duplicate { event_id: a3 }
        );
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Ok(IngestOutcome::Accepted { .. })))
                .count(),
            5
        );
        assert_eq!(count(&store, "webhook_events").await, 15);
        assert_eq!(count(&store, "workflow_tasks").await, 15);

        // The writer connection is left outside any transaction: single and batch ingests
        // still commit, and a redelivery on its own is a duplicate.
        let single = store
            .ingest(delivery("c-0").0, delivery("c-0").1)
            .await
            .unwrap();
        assert!(matches!(single, IngestOutcome::Accepted { .. }));
        let again = store.ingest(delivery("c-0").0, Vec::new()).await.unwrap();
        assert!(matches!(again, IngestOutcome::Duplicate { .. }));
        let third: Vec<_> = (0..3).map(|i| delivery(&format!("d-{i}"))).collect();
        let outcomes = store.ingest_batch(prepared(&store, third)).await;
        assert!(outcomes.iter().all(|o| o.is_ok()));
        assert_eq!(count(&store, "webhook_events").await, 19);
        assert_eq!(count(&store, "workflow_tasks").await, 19);
        // Each task points at its own event.
        let mismatched: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workflow_tasks t JOIN webhook_events e \
             ON e.id = t.webhook_event_id WHERE t.branch <> e.delivery_id",
        )
        .fetch_one(store.reader())
        .await
        .unwrap();
        let linked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workflow_tasks t JOIN webhook_events e ON e.id = t.webhook_event_id",
        )
        .fetch_one(store.reader())
        .await
        .unwrap();
        assert_eq!((mismatched, linked), (0, 19));
    }
}
