//! Row decoding, time conversion and the shared task insert on SQLite.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use orchestrator_core::error::{StoreError, StoreErrorKind};
use orchestrator_core::event::{EventSummary, WebhookEvent};
use orchestrator_core::task::{NewTask, Task, TaskExecution};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Row, Sqlite};
use uuid::Uuid;

use super::payload::{ZSTD, decompress};
use crate::error::{corrupt, store_error};
use crate::plan::{
    count, json_text, parse_execution_status, parse_headers, parse_status, parse_task_type, to_i32,
};

/// The task columns every task query returns.
macro_rules! task_columns {
    () => {
        "id, task_id, webhook_event_id, parent_task_id, task_type, status, priority, repository, \
         pr_number, branch, commit_sha, config, input_data, output_data, started_at, completed_at, \
         error_message, retry_count, max_retries, attempts, codegen_task_id, codegen_task_url, \
         run_at, lease_owner, lease_expires_at, trace_context, created_at, updated_at, superseded_by"
    };
}
pub(super) use task_columns;

const INSERT_TASK: &str = "INSERT INTO workflow_tasks (task_id, webhook_event_id, parent_task_id, \
    task_type, status, priority, repository, pr_number, branch, commit_sha, config, input_data, \
    max_retries, run_at, trace_context, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)";

/// Microseconds since the epoch, as stored.
pub(super) fn us(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored time.
pub(super) fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("time {micros}")))
}

fn opt_time(micros: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(time).transpose()
}

fn json(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("json: {e}")))
}

/// Inserts one pending task; `parent` overrides the task's own parent link.
pub(super) async fn insert_task(
    conn: &mut SqliteConnection,
    task: &NewTask,
    event: Option<i64>,
    parent: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let spec = &task.spec;
    sqlx::query(INSERT_TASK)
        .bind(task.task_id)
        .bind(event)
        .bind(parent.or(task.parent_task_id))
        .bind(spec.task_type.as_str())
        .bind(spec.priority)
        .bind(&spec.repository)
        .bind(spec.pr_number)
        .bind(&spec.branch)
        .bind(&spec.commit_sha)
        .bind(json_text(&spec.config))
        .bind(json_text(&spec.input_data))
        .bind(to_i32(task.max_retries))
        .bind(us(task.run_at))
        .bind(&task.trace_context)
        .bind(us(now))
        .execute(conn)
        .await
        .map_err(store_error)?;
    Ok(())
}

pub(super) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(column).map_err(store_error)
}

/// A task row.
pub(super) fn task(row: &SqliteRow) -> Result<Task, StoreError> {
    let output: Option<String> = get(row, "output_data")?;
    Ok(Task {
        id: get(row, "id")?,
        task_id: get(row, "task_id")?,
        webhook_event_id: get(row, "webhook_event_id")?,
        parent_task_id: get(row, "parent_task_id")?,
        task_type: parse_task_type(get(row, "task_type")?)?,
        status: parse_status(&get::<String>(row, "status")?)?,
        priority: get(row, "priority")?,
        repository: get(row, "repository")?,
        pr_number: get(row, "pr_number")?,
        branch: get(row, "branch")?,
        commit_sha: get(row, "commit_sha")?,
        config: json(&get::<String>(row, "config")?)?,
        input_data: json(&get::<String>(row, "input_data")?)?,
        output_data: output.as_deref().map(json).transpose()?,
        started_at: opt_time(get(row, "started_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
        error_message: get(row, "error_message")?,
        retry_count: count(get(row, "retry_count")?),
        max_retries: count(get(row, "max_retries")?),
        attempts: count(get(row, "attempts")?),
        codegen_task_id: get(row, "codegen_task_id")?,
        codegen_task_url: get(row, "codegen_task_url")?,
        run_at: time(get(row, "run_at")?)?,
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: opt_time(get(row, "lease_expires_at")?)?,
        trace_context: get(row, "trace_context")?,
        created_at: time(get(row, "created_at")?)?,
        updated_at: time(get(row, "updated_at")?)?,
        superseded_by: get(row, "superseded_by")?,
    })
}

/// An execution row.
pub(super) fn execution(row: &SqliteRow) -> Result<TaskExecution, StoreError> {
    Ok(TaskExecution {
        id: get(row, "id")?,
        execution_id: get(row, "execution_id")?,
        task_id: get(row, "task_id")?,
        attempt: count(get(row, "attempt")?),
        worker_id: get(row, "worker_id")?,
        status: parse_execution_status(&get::<String>(row, "status")?)?,
        started_at: time(get(row, "started_at")?)?,
        completed_at: opt_time(get(row, "completed_at")?)?,
        duration_ms: get(row, "duration_ms")?,
        error_message: get(row, "error_message")?,
    })
}

/// An event row.
pub(super) fn event(row: &SqliteRow) -> Result<WebhookEvent, StoreError> {
    Ok(WebhookEvent {
        id: get(row, "id")?,
        delivery_id: get(row, "delivery_id")?,
        event_type: get(row, "event_type")?,
        action: get(row, "action")?,
        source: get(row, "source")?,
        repository: get(row, "repository")?,
        installation_id: get(row, "installation_id")?,
        payload: payload(row)?,
        headers: parse_headers(&get::<String>(row, "headers")?)?,
        processed: get(row, "processed")?,
        processing_started_at: opt_time(get(row, "processing_started_at")?)?,
        processing_completed_at: opt_time(get(row, "processing_completed_at")?)?,
        error_message: get(row, "error_message")?,
        parse_error: get(row, "parse_error")?,
        retry_count: count(get(row, "retry_count")?),
        created_at: time(get(row, "created_at")?)?,
        updated_at: time(get(row, "updated_at")?)?,
    })
}

/// An event list row.
pub(super) fn summary(row: &SqliteRow) -> Result<EventSummary, StoreError> {
    Ok(EventSummary {
        id: get(row, "id")?,
        delivery_id: get(row, "delivery_id")?,
        event_type: get(row, "event_type")?,
        action: get(row, "action")?,
        processed: get(row, "processed")?,
        created_at: time(get(row, "created_at")?)?,
        error_message: get(row, "error_message")?,
    })
}

/// The body of an event row (columns `payload` and `payload_encoding`), byte for byte as
/// received.
fn payload(row: &SqliteRow) -> Result<Bytes, StoreError> {
    let encoding: Option<String> = get(row, "payload_encoding")?;
    match encoding.as_deref() {
        None => Ok(Bytes::from(get::<String>(row, "payload")?)),
        Some(ZSTD) => decompress(&get::<Vec<u8>>(row, "payload")?),
        Some(other) => Err(StoreError::new(
            StoreErrorKind::Internal,
            format!("stored payload has an unknown encoding {other:?}"),
        )),
    }
}
