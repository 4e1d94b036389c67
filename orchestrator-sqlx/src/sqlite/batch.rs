//! Batch ingest on SQLite: a group of deliveries in one write transaction with multi-row inserts.
//!
//! Every statement is a round trip to the connection's worker thread, and the writer is the one
//! serial stage of the receiver, so a batch is written with a few multi-row `INSERT`s (events,
//! then the tasks of the accepted ones) instead of one or two statements per delivery. Row
//! counts per statement are powers of two, so at most a handful of distinct statements are
//! prepared and they stay in the connection's statement cache.

use std::collections::HashMap;

use orchestrator_core::error::StoreError;
use orchestrator_core::event::NewEvent;
use orchestrator_core::store::IngestOutcome;
use orchestrator_core::task::NewTask;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};

use super::rows::us;
use crate::error::store_error;
use crate::plan::{headers_json, json_text, to_i32};

/// Most rows in one statement (SQLite allows 32,766 bound parameters).
const MAX_ROWS: usize = 64;

const EVENT_COLUMNS: &str = "INSERT INTO webhook_events (delivery_id, event_type, action, \
    source, repository, installation_id, payload, headers, processed, processing_started_at, \
    processing_completed_at, open_tasks, created_at, updated_at) VALUES ";
const EVENT_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const EVENT_TAIL: &str = " ON CONFLICT (delivery_id) DO NOTHING RETURNING id, delivery_id";

const TASK_COLUMNS: &str = "INSERT INTO workflow_tasks (task_id, webhook_event_id, \
    parent_task_id, task_type, status, priority, repository, pr_number, branch, commit_sha, \
    config, input_data, max_retries, run_at, trace_context, created_at, updated_at) VALUES ";
const TASK_ROW: &str = "(?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

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

/// Splits `len` into chunk lengths that are powers of two no larger than [`MAX_ROWS`].
fn chunks(mut len: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if len == 0 {
            return None;
        }
        let take = if len >= MAX_ROWS {
            MAX_ROWS
        } else {
            1 << (usize::BITS - 1 - len.leading_zeros())
        };
        len -= take;
        Some(take)
    })
}

/// The payload as stored (TEXT); a body that is not UTF-8 is stored lossily, as `ingest` does.
fn payload_text(event: &NewEvent) -> String {
    match std::str::from_utf8(&event.payload) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(&event.payload).into_owned(),
    }
}

/// Inserts the events of `batch`; returns the id of every row inserted, by delivery id.
async fn insert_events(
    conn: &mut SqliteConnection,
    batch: &[(NewEvent, Vec<NewTask>)],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut inserted = HashMap::with_capacity(batch.len());
    let mut rest = batch;
    for rows in chunks(batch.len()) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let sql = statement(EVENT_COLUMNS, EVENT_ROW, rows, EVENT_TAIL);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (event, tasks) in chunk {
            let at = us(event.received_at);
            let settled_at = tasks.is_empty().then_some(at);
            query = query
                .bind(event.delivery_id.clone())
                .bind(event.event_type.clone())
                .bind(event.action.clone())
                .bind(event.source.clone())
                .bind(event.repository.clone())
                .bind(event.installation_id)
                .bind(payload_text(event))
                .bind(headers_json(&event.headers))
                .bind(tasks.is_empty())
                .bind(settled_at)
                .bind(settled_at)
                .bind(i64::try_from(tasks.len()).unwrap_or(i64::MAX))
                .bind(at)
                .bind(at);
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
            let spec = &task.spec;
            query = query
                .bind(task.task_id)
                .bind(event_id)
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
                .bind(now);
        }
        query.execute(&mut *conn).await.map_err(store_error)?;
    }
    Ok(())
}

/// Ingests `batch` inside the open write transaction `conn`, with the outcome each delivery
/// would get from ingesting them one after another in order: the first of a delivery id is
/// accepted, a later one (or one already stored) is a duplicate of it.
pub(super) async fn ingest_many(
    conn: &mut SqliteConnection,
    batch: &[(NewEvent, Vec<NewTask>)],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut inserted = insert_events(conn, batch).await?;
    let mut seen: HashMap<&str, i64> = HashMap::new();
    let mut tasks = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for (event, event_tasks) in batch {
        let delivery = event.delivery_id.as_str();
        if let Some(event_id) = inserted.remove(delivery) {
            seen.insert(delivery, event_id);
            let now = us(event.received_at);
            tasks.extend(event_tasks.iter().map(|t| (event_id, t, now)));
            outcomes.push(IngestOutcome::Accepted {
                event_id,
                task_ids: event_tasks.iter().map(|t| t.task_id).collect(),
            });
            continue;
        }
        let event_id = match seen.get(delivery) {
            Some(&id) => id,
            None => {
                let row = sqlx::query("SELECT id FROM webhook_events WHERE delivery_id = $1")
                    .bind(delivery.to_owned())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(store_error)?;
                let id: i64 = row.try_get(0).map_err(store_error)?;
                seen.insert(delivery, id);
                id
            }
        };
        outcomes.push(IngestOutcome::Duplicate { event_id });
    }
    insert_tasks(conn, &tasks).await?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_that_add_up() {
        for len in 0..300 {
            let parts: Vec<usize> = chunks(len).collect();
            assert_eq!(parts.iter().sum::<usize>(), len);
            assert!(
                parts
                    .iter()
                    .all(|&p| p.is_power_of_two() && p <= MAX_ROWS)
            );
        }
        assert_eq!(chunks(100).collect::<Vec<_>>(), vec![64, 32, 4]);
    }
}
