//! The database-independent half of the figures: turning the rows of the totals, by-status and
//! by-type queries into [`Stats`]. Each database's `stats.rs` only runs its own SQL.

use std::collections::BTreeMap;

use orchestrator_core::error::StoreError;
use orchestrator_core::store::Stats;
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::store_error;
use crate::plan::fill_statuses;

/// Column `i` of `row` as a count (a negative or missing count reads as 0).
pub(crate) fn count<R>(row: &R, i: usize) -> Result<u64, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let v: i64 = row.try_get(i).map_err(store_error)?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Builds [`Stats`] from the totals row (events, tasks, executions, average duration, then the
/// 24-hour events, failed events, tasks, failed tasks) and the `(name, count)` rows of tasks by
/// status and events by type. Every status is present, zero included.
pub(crate) fn assemble<R>(totals: &R, statuses: &[R], types: &[R]) -> Result<Stats, StoreError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let by_name = |rows: &[R], mut map: BTreeMap<String, u64>| {
        for r in rows {
            map.insert(r.try_get(0).map_err(store_error)?, count(r, 1)?);
        }
        Ok::<_, StoreError>(map)
    };
    Ok(Stats {
        webhook_events_total: count(totals, 0)?,
        workflow_tasks_total: count(totals, 1)?,
        task_executions_total: count(totals, 2)?,
        avg_processing_time_ms: totals.try_get::<Option<f64>, _>(3).map_err(store_error)?,
        webhooks_24h: count(totals, 4)?,
        failed_webhooks_24h: count(totals, 5)?,
        tasks_24h: count(totals, 6)?,
        failed_tasks_24h: count(totals, 7)?,
        tasks_by_status: by_name(statuses, fill_statuses())?,
        events_by_type: by_name(types, BTreeMap::new())?,
    })
}
