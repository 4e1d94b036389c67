//! Read-side queries of the in-memory store: lists, statistics, depth, retention.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::state::State;
use crate::event::EventSummary;
use crate::store::pause::is_paused;
use crate::store::{
    CleanupReport, EventFilter, Page, QueueDepth, RetentionPolicy, Stats, TaskFilter,
};
use crate::task::{Task, TaskStatus};

/// `now - d`, saturating at the earliest instant.
fn before(now: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn paginate<T>(rows: impl Iterator<Item = T>, page: Page) -> Vec<T> {
    rows.skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .collect()
}

impl State {
    /// Newest first: `created_at` desc, then id desc.
    pub(super) fn list_events(&self, filter: &EventFilter, page: Page) -> Vec<EventSummary> {
        let mut rows: Vec<_> = self
            .events
            .values()
            .filter(|e| {
                filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| *t == e.event_type)
            })
            .filter(|e| filter.processed.is_none_or(|p| p == e.processed))
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        paginate(
            rows.into_iter().map(|e| EventSummary {
                id: e.id,
                delivery_id: e.delivery_id.clone(),
                event_type: e.event_type.clone(),
                action: e.action.clone(),
                processed: e.processed,
                created_at: e.created_at,
                error_message: e.error_message.clone(),
            }),
            page,
        )
    }

    /// Newest first: `created_at` desc, then row id desc.
    pub(super) fn list_tasks(&self, filter: &TaskFilter, page: Page) -> Vec<Task> {
        let mut rows: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| filter.status.is_none_or(|s| s == t.status))
            .filter(|t| filter.task_type.as_ref().is_none_or(|k| *k == t.task_type))
            .filter(|t| {
                filter
                    .repository
                    .as_ref()
                    .is_none_or(|r| t.repository.as_ref() == Some(r))
            })
            .filter(|t| {
                filter
                    .superseded_by
                    .is_none_or(|by| t.superseded_by == Some(by))
            })
            .filter(|t| {
                filter
                    .superseded
                    .is_none_or(|s| t.superseded_by.is_some() == s)
            })
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        paginate(rows.into_iter().cloned(), page)
    }

    pub(super) fn stats(&self, now: DateTime<Utc>) -> Stats {
        let since = before(now, std::time::Duration::from_secs(24 * 3600));
        let mut stats = Stats {
            webhook_events_total: self.events.len() as u64,
            workflow_tasks_total: self.tasks.len() as u64,
            task_executions_total: self.executions.values().map(|l| l.len() as u64).sum(),
            ..Stats::default()
        };
        for status in TaskStatus::ALL {
            stats.tasks_by_status.insert(status.as_str().to_owned(), 0);
        }
        for task in self.tasks.values() {
            *stats
                .tasks_by_status
                .entry(task.status.as_str().to_owned())
                .or_default() += 1;
            if task.created_at >= since {
                stats.tasks_24h += 1;
                if task.status == TaskStatus::Failed {
                    stats.failed_tasks_24h += 1;
                }
            }
        }
        for event in self.events.values() {
            *stats
                .events_by_type
                .entry(event.event_type.clone())
                .or_default() += 1;
            if event.created_at >= since {
                stats.webhooks_24h += 1;
                if event.error_message.is_some() {
                    stats.failed_webhooks_24h += 1;
                }
            }
        }
        let durations: Vec<i64> = self
            .executions
            .values()
            .flatten()
            .filter_map(|e| e.duration_ms)
            .collect();
        if !durations.is_empty() {
            stats.avg_processing_time_ms =
                Some(durations.iter().sum::<i64>() as f64 / durations.len() as f64);
        }
        stats
    }

    pub(super) fn depth(&self, now: DateTime<Utc>) -> QueueDepth {
        let mut depth = QueueDepth::default();
        for task in self.tasks.values() {
            match task.status {
                s if s.is_runnable() && task.run_at <= now => depth.ready += 1,
                s if s.is_runnable() => depth.scheduled += 1,
                TaskStatus::Running => depth.running += 1,
                _ => {}
            }
        }
        depth
    }

    /// Due runnable tasks last changed before `stale_before`: `updated_at` asc, row id asc.
    pub(super) fn stale_runnable(
        &self,
        stale_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Vec<Uuid> {
        let mut rows: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| {
                t.status.is_runnable()
                    && t.run_at <= now
                    && t.updated_at < stale_before
                    && !is_paused(&self.pauses, t.repository.as_deref(), &t.task_type)
            })
            .collect();
        rows.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.id.cmp(&b.id)));
        rows.into_iter()
            .take(limit as usize)
            .map(|t| t.task_id)
            .collect()
    }

    pub(super) fn cleanup(
        &mut self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) -> CleanupReport {
        let mut report = CleanupReport::default();
        let event_cutoff = before(now, policy.processed_events);
        let old_events: Vec<i64> = self
            .events
            .values()
            .filter(|e| {
                e.processed && e.processing_completed_at.unwrap_or(e.created_at) < event_cutoff
            })
            .map(|e| e.id)
            .filter(|id| {
                self.event_tasks.get(id).is_none_or(|ids| {
                    ids.iter()
                        .filter_map(|t| self.tasks.get(t))
                        .all(|t| t.status.is_terminal())
                })
            })
            .collect();
        for event_id in old_events {
            let task_ids = self.event_tasks.get(&event_id).cloned().unwrap_or_default();
            for task_id in task_ids {
                report.executions_deleted += self.delete_task(task_id);
                report.tasks_deleted += 1;
            }
            self.delete_event(event_id);
            report.events_deleted += 1;
        }
        let task_cutoff = before(now, policy.finished_tasks);
        let old_tasks: Vec<Uuid> = self
            .tasks
            .values()
            .filter(|t| {
                t.status.is_terminal() && t.completed_at.unwrap_or(t.updated_at) < task_cutoff
            })
            .map(|t| t.task_id)
            .collect();
        for task_id in old_tasks {
            report.executions_deleted += self.delete_task(task_id);
            report.tasks_deleted += 1;
        }
        let tasks = &self.tasks;
        report.reports_deleted = self
            .reporting
            .forget_old(task_cutoff, |id| tasks.contains_key(&id));
        report
    }
}
