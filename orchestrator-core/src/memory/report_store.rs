//! [`ReportStore`] for [`MemoryStore`]: the reporter's cursors, leases and records in the one
//! locked state. Changed tasks are read from the task rows in `(updated_at, id)` order, as the
//! SQL stores read them through their `workflow_tasks_updated_idx` index.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::error::StoreError;
use crate::store::report::{ReportCursor, ReportRecord, ReportStore};
use crate::task::Task;

/// One reporter's row: its cursor and its lease.
#[derive(Debug, Clone)]
struct CursorRow {
    cursor: Option<ReportCursor>,
    holder: String,
    lease_until: DateTime<Utc>,
}

/// The reporter's rows of the in-memory store.
#[derive(Debug, Default)]
pub(super) struct Reporting {
    cursors: HashMap<String, CursorRow>,
    records: BTreeMap<String, ReportRecord>,
}

impl Reporting {
    /// Removes the records last changed before `cutoff` whose task is gone (`exists` says
    /// which tasks are still stored); answers how many (retention, as the SQL stores do it).
    pub(super) fn forget_old(
        &mut self,
        cutoff: DateTime<Utc>,
        exists: impl Fn(Uuid) -> bool,
    ) -> u64 {
        let before = self.records.len();
        self.records
            .retain(|_, r| r.updated_at >= cutoff || r.task_id.is_some_and(&exists));
        (before - self.records.len()) as u64
    }
}

#[async_trait]
impl ReportStore for MemoryStore {
    async fn changed_tasks(
        &self,
        after: &ReportCursor,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        let state = self.lock();
        let mut rows: Vec<&Task> = state
            .tasks
            .values()
            .filter(|t| ReportCursor::of(t) > *after)
            .collect();
        rows.sort_by_key(|t| ReportCursor::of(t));
        Ok(rows.into_iter().take(limit as usize).cloned().collect())
    }

    async fn child_tasks(&self, parent: Uuid) -> Result<Vec<Task>, StoreError> {
        let state = self.lock();
        let mut rows: Vec<Task> = state
            .tasks
            .values()
            .filter(|t| t.parent_task_id == Some(parent))
            .cloned()
            .collect();
        rows.sort_by_key(|t| t.id);
        Ok(rows)
    }

    async fn lease_reporter(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let row = state
            .reporting
            .cursors
            .entry(name.to_owned())
            .or_insert_with(|| CursorRow {
                cursor: None,
                holder: holder.to_owned(),
                lease_until: until,
            });
        if row.holder == holder || row.lease_until < now {
            row.holder = holder.to_owned();
            row.lease_until = until;
            return Ok(true);
        }
        Ok(false)
    }

    async fn report_cursor(&self, name: &str) -> Result<Option<ReportCursor>, StoreError> {
        let state = self.lock();
        Ok(state.reporting.cursors.get(name).and_then(|r| r.cursor))
    }

    async fn save_report_cursor(
        &self,
        name: &str,
        cursor: &ReportCursor,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        let row = state
            .reporting
            .cursors
            .entry(name.to_owned())
            .or_insert_with(|| CursorRow {
                cursor: None,
                holder: String::new(),
                lease_until: now,
            });
        row.cursor = Some(*cursor);
        Ok(())
    }

    async fn report(&self, key: &str) -> Result<Option<ReportRecord>, StoreError> {
        Ok(self.lock().reporting.records.get(key).cloned())
    }

    async fn save_report(&self, record: &ReportRecord) -> Result<(), StoreError> {
        self.lock()
            .reporting
            .records
            .insert(record.key.clone(), record.clone());
        Ok(())
    }

    async fn due_reports(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ReportRecord>, StoreError> {
        let state = self.lock();
        let mut due: Vec<ReportRecord> = state
            .reporting
            .records
            .values()
            .filter(|r| r.retry_at.is_some_and(|at| at <= now))
            .cloned()
            .collect();
        due.sort_by(|a, b| a.retry_at.cmp(&b.retry_at).then(a.key.cmp(&b.key)));
        due.truncate(limit as usize);
        Ok(due)
    }
}
