//! Row decoding and the column lists shared by the PostgreSQL statements.

use chrono::{DateTime, Utc};
use orchestrator_core::error::StoreError;
use orchestrator_core::event::{EventSummary, WebhookEvent};
use orchestrator_core::task::{NewTask, Task, TaskExecution};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use uuid::Uuid;

use crate::error::store_error;
use crate::plan::{
    count, json_text, parse_execution_status, parse_headers, parse_status, parse_task_type, to_i32,
};

/// The task columns every task query returns (prefix with a table alias where needed).
macro_rules! task_columns {
    () => {
        "id, task_id, webhook_event_id, parent_task_id, task_type, status, priority, repository, \
         pr_number, branch, commit_sha, config, input_data, output_data, started_at, completed_at, \
         error_message, retry_count, max_retries, attempts, codegen_task_id, codegen_task_url, \
         run_at, lease_owner, lease_expires_at, trace_context, created_at, updated_at, superseded_by"
    };
}
pub(super) use task_columns;

/// `INSERT ... SELECT ... FROM <from>, UNNEST($1..$13)`: new pending tasks from the arrays bound
/// by [`bind_tasks`] as parameters 1 to 13. `event` and `parent` are SQL expressions for the
/// event link and the parent override; `now` the creation time.
macro_rules! insert_tasks {
    ($event:literal, $parent:literal, $now:literal, $from:literal) => {
        concat!(
            "INSERT INTO workflow_tasks (task_id, webhook_event_id, parent_task_id, task_type, status, \
             priority, repository, pr_number, branch, commit_sha, config, input_data, max_retries, \
             run_at, trace_context, created_at, updated_at) \
             SELECT u.task_id, ", $event, ", COALESCE(", $parent, ", u.parent_task_id), u.task_type, \
             'pending', u.priority, u.repository, u.pr_number, u.branch, u.commit_sha, \
             u.config::jsonb, u.input_data::jsonb, u.max_retries, u.run_at, u.trace_context, ",
            $now, ", ", $now, " FROM ", $from,
            ", UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::text[], $6::int8[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::int4[], $12::timestamptz[], \
             $13::text[]) WITH ORDINALITY AS u(task_id, parent_task_id, task_type, priority, \
             repository, pr_number, branch, commit_sha, config, input_data, max_retries, run_at, \
             trace_context, ord) ORDER BY u.ord"
        )
    };
}
pub(super) use insert_tasks;

/// Like [`insert_tasks`] for exactly one task bound as scalars by [`bind_one_task`] (the
/// common case; it saves the array encoding and `UNNEST`).
macro_rules! insert_one_task {
    ($event:literal, $now:literal, $from:literal) => {
        concat!(
            "INSERT INTO workflow_tasks (task_id, webhook_event_id, parent_task_id, task_type, status, \
             priority, repository, pr_number, branch, commit_sha, config, input_data, max_retries, \
             run_at, trace_context, created_at, updated_at) \
             SELECT $1::uuid, ", $event, ", $2::uuid, $3::text, 'pending', $4::int4, $5::text, \
             $6::int8, $7::text, $8::text, $9::jsonb, $10::jsonb, $11::int4, $12::timestamptz, \
             $13::text, ", $now, ", ", $now, " FROM ", $from
        )
    };
}
pub(super) use insert_one_task;

/// Binds `task` as parameters 1 to 13 for [`insert_one_task`].
pub(super) fn bind_one_task<'q>(
    query: Query<'q, sqlx::Postgres, PgArguments>,
    task: &NewTask,
) -> Query<'q, sqlx::Postgres, PgArguments> {
    let spec = &task.spec;
    query
        .bind(task.task_id)
        .bind(task.parent_task_id)
        .bind(spec.task_type.as_str().to_owned())
        .bind(spec.priority)
        .bind(spec.repository.clone())
        .bind(spec.pr_number)
        .bind(spec.branch.clone())
        .bind(spec.commit_sha.clone())
        .bind(json_text(&spec.config))
        .bind(json_text(&spec.input_data))
        .bind(to_i32(task.max_retries))
        .bind(task.run_at)
        .bind(task.trace_context.clone())
}

/// Binds `tasks` as the 13 column arrays that [`insert_tasks`] reads.
pub(super) fn bind_tasks<'q>(
    query: Query<'q, sqlx::Postgres, PgArguments>,
    tasks: &[NewTask],
) -> Query<'q, sqlx::Postgres, PgArguments> {
    let col = |f: &dyn Fn(&NewTask) -> Option<String>| tasks.iter().map(f).collect::<Vec<_>>();
    query
        .bind(tasks.iter().map(|t| t.task_id).collect::<Vec<Uuid>>())
        .bind(
            tasks
                .iter()
                .map(|t| t.parent_task_id)
                .collect::<Vec<Option<Uuid>>>(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| t.spec.task_type.as_str().to_owned())
                .collect::<Vec<String>>(),
        )
        .bind(tasks.iter().map(|t| t.spec.priority).collect::<Vec<i32>>())
        .bind(col(&|t| t.spec.repository.clone()))
        .bind(
            tasks
                .iter()
                .map(|t| t.spec.pr_number)
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(col(&|t| t.spec.branch.clone()))
        .bind(col(&|t| t.spec.commit_sha.clone()))
        .bind(
            tasks
                .iter()
                .map(|t| json_text(&t.spec.config))
                .collect::<Vec<String>>(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| json_text(&t.spec.input_data))
                .collect::<Vec<String>>(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| to_i32(t.max_retries))
                .collect::<Vec<i32>>(),
        )
        .bind(
            tasks
                .iter()
                .map(|t| t.run_at)
                .collect::<Vec<DateTime<Utc>>>(),
        )
        .bind(col(&|t| t.trace_context.clone()))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(store_error)
}

/// A task row.
pub(super) fn task(row: &PgRow) -> Result<Task, StoreError> {
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
        config: get::<Value>(row, "config")?,
        input_data: get::<Value>(row, "input_data")?,
        output_data: get::<Option<Value>>(row, "output_data")?,
        started_at: get(row, "started_at")?,
        completed_at: get(row, "completed_at")?,
        error_message: get(row, "error_message")?,
        retry_count: count(get::<i32>(row, "retry_count")?.into()),
        max_retries: count(get::<i32>(row, "max_retries")?.into()),
        attempts: count(get::<i32>(row, "attempts")?.into()),
        codegen_task_id: get(row, "codegen_task_id")?,
        codegen_task_url: get(row, "codegen_task_url")?,
        run_at: get(row, "run_at")?,
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: get(row, "lease_expires_at")?,
        trace_context: get(row, "trace_context")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        superseded_by: get(row, "superseded_by")?,
    })
}

/// An execution row.
pub(super) fn execution(row: &PgRow) -> Result<TaskExecution, StoreError> {
    Ok(TaskExecution {
        id: get(row, "id")?,
        execution_id: get(row, "execution_id")?,
        task_id: get(row, "task_id")?,
        attempt: count(get::<i32>(row, "attempt")?.into()),
        worker_id: get(row, "worker_id")?,
        status: parse_execution_status(&get::<String>(row, "status")?)?,
        started_at: get(row, "started_at")?,
        completed_at: get(row, "completed_at")?,
        duration_ms: get(row, "duration_ms")?,
        error_message: get(row, "error_message")?,
    })
}

/// An event row with `payload::text AS payload` and `headers::text AS headers`.
pub(super) fn event(row: &PgRow) -> Result<WebhookEvent, StoreError> {
    let payload: String = get(row, "payload")?;
    let headers: String = get(row, "headers")?;
    Ok(WebhookEvent {
        id: get(row, "id")?,
        delivery_id: get(row, "delivery_id")?,
        event_type: get(row, "event_type")?,
        action: get(row, "action")?,
        source: get(row, "source")?,
        repository: get(row, "repository")?,
        installation_id: get(row, "installation_id")?,
        payload: bytes::Bytes::from(payload),
        headers: parse_headers(&headers)?,
        processed: get(row, "processed")?,
        processing_started_at: get(row, "processing_started_at")?,
        processing_completed_at: get(row, "processing_completed_at")?,
        error_message: get(row, "error_message")?,
        parse_error: get(row, "parse_error")?,
        retry_count: count(get::<i32>(row, "retry_count")?.into()),
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// An event list row.
pub(super) fn summary(row: &PgRow) -> Result<EventSummary, StoreError> {
    Ok(EventSummary {
        id: get(row, "id")?,
        delivery_id: get(row, "delivery_id")?,
        event_type: get(row, "event_type")?,
        action: get(row, "action")?,
        processed: get(row, "processed")?,
        created_at: get(row, "created_at")?,
        error_message: get(row, "error_message")?,
    })
}
