//! The JSON shapes of bulk operations (`/api/v1/tasks/retry`,
//! `/api/v1/webhooks/events/reprocess`, `/api/v1/operations`). The request bodies are read by
//! the core's strict parser ([`orchestrator_core::store::operation::parse_request`]); the
//! structs here describe them in the OpenAPI document.

use chrono::{DateTime, Utc};
use orchestrator_core::store::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Body of `POST /api/v1/tasks/retry`: which failed or cancelled tasks to retry. Criteria are
/// AND-ed; at least one, or `"all": true` alone. Unknown keys and `null` values are refused
/// (400). The document states the cross-field rules too (`openapi/refine.rs`); the one it
/// cannot state is that `created_after` must be before `created_before`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFilterDto {
    /// `failed` or `cancelled` (default: both).
    #[schema(value_type = Option<String>, nullable = false, pattern = "^(failed|cancelled)$")]
    pub status: Option<String>,
    /// Task type.
    #[schema(nullable = false, pattern = "^[a-z0-9_.-]{1,64}$")]
    pub task_type: Option<String>,
    /// The `X-GitHub-Event` of the task's delivery.
    #[schema(nullable = false, pattern = "^[a-z0-9_]{1,64}$")]
    pub event_type: Option<String>,
    /// The delivery's `action` (needs `event_type`).
    #[schema(nullable = false, min_length = 1)]
    pub action: Option<String>,
    /// `owner/name`.
    #[schema(nullable = false, min_length = 1)]
    pub repository: Option<String>,
    /// Pull request number.
    #[schema(nullable = false)]
    pub pr_number: Option<i64>,
    /// The task's last error contains this text (case-sensitive).
    #[schema(nullable = false, min_length = 1)]
    pub error_contains: Option<String>,
    /// Created at or after (RFC 3339).
    #[schema(nullable = false)]
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (RFC 3339); must be after `created_after`.
    #[schema(nullable = false)]
    pub created_before: Option<DateTime<Utc>>,
    /// `true`: only superseded tasks (a newer head SHA's task replaced them; they carry
    /// `superseded_by`); `false`: only the others (e.g. cancelled by hand).
    #[schema(nullable = false)]
    pub superseded: Option<bool>,
    /// Every retryable task (only without criteria).
    #[schema(nullable = false)]
    pub all: Option<bool>,
    /// Only count and sample the matching tasks; change nothing.
    #[schema(nullable = false)]
    pub dry_run: Option<bool>,
}

/// Body of `POST /api/v1/webhooks/events/reprocess`: which events to reprocess. Criteria are
/// AND-ed; at least one, or `"all": true` alone. Unknown keys and `null` values are refused
/// (400); the cross-field rules are as for [`RetryFilterDto`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReprocessFilterDto {
    /// `X-GitHub-Event`.
    #[schema(nullable = false, pattern = "^[a-z0-9_]{1,64}$")]
    pub event_type: Option<String>,
    /// The delivery's `action` (needs `event_type`).
    #[schema(nullable = false, min_length = 1)]
    pub action: Option<String>,
    /// `owner/name`.
    #[schema(nullable = false, min_length = 1)]
    pub repository: Option<String>,
    /// An event with a task of this pull request.
    #[schema(nullable = false)]
    pub pr_number: Option<i64>,
    /// The event's error contains this text (case-sensitive).
    #[schema(nullable = false, min_length = 1)]
    pub error_contains: Option<String>,
    /// Received at or after (RFC 3339).
    #[schema(nullable = false)]
    pub created_after: Option<DateTime<Utc>>,
    /// Received before (RFC 3339); must be after `created_after`.
    #[schema(nullable = false)]
    pub created_before: Option<DateTime<Utc>>,
    /// Every event (only without criteria).
    #[schema(nullable = false)]
    pub all: Option<bool>,
    /// Only count and sample the matching events; change nothing.
    #[schema(nullable = false)]
    pub dry_run: Option<bool>,
    /// The new tasks may create an agent run for a head SHA that already has one.
    #[schema(nullable = false)]
    pub force: Option<bool>,
}

/// The answer to a dry run: how many rows match now, and the first of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DryRunResponse {
    /// Always `true`.
    pub dry_run: bool,
    /// Matching rows.
    pub matched: u64,
    /// The first matching tasks (retry), oldest first.
    pub task_ids: Vec<Uuid>,
    /// The first matching events (reprocess), oldest first.
    pub event_ids: Vec<i64>,
}

/// A bulk operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationDto {
    /// Its id.
    pub operation_id: Uuid,
    /// `retry_tasks` or `reprocess_events`.
    #[schema(pattern = "^(retry_tasks|reprocess_events)$")]
    pub kind: String,
    /// `pending`, `running`, `completed` or `cancelled`.
    #[schema(pattern = "^(pending|running|completed|cancelled)$")]
    pub status: String,
    /// The filter, as accepted.
    #[schema(value_type = Object)]
    pub filter: Value,
    /// Reprocess with `force`.
    pub force: bool,
    /// Rows that matched when it was created.
    pub matched: u64,
    /// Rows handled (tasks retried, events reprocessed).
    pub done: u64,
    /// Rows that failed (an event whose payload still does not parse).
    pub failed: u64,
    /// Rows left alone: changed since the operation was created, or (events) with open tasks.
    pub skipped: u64,
    /// When it was asked for; it acts on rows as they were then.
    pub created_at: DateTime<Utc>,
    /// When a runner first took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Operation> for OperationDto {
    fn from(op: Operation) -> Self {
        Self {
            operation_id: op.id,
            kind: op.kind.as_str().to_owned(),
            status: op.status.as_str().to_owned(),
            filter: serde_json::to_value(&op.filter).unwrap_or(Value::Null),
            force: op.force,
            matched: op.matched,
            done: op.done,
            failed: op.failed,
            skipped: op.skipped,
            created_at: op.created_at,
            started_at: op.started_at,
            finished_at: op.finished_at,
            updated_at: op.updated_at,
        }
    }
}

/// Query of `GET /api/v1/operations`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OperationListQuery {
    /// 1..=1000, default 50.
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<i64>,
    /// >= 0, default 0.
    #[param(minimum = 0, default = 0)]
    pub offset: Option<i64>,
    /// Only the operations after this one in the list's order (the `operation_id` of the
    /// previous page's last row): keyset paging, stable while operations are added.
    pub before: Option<Uuid>,
}
