//! Running tasks: `RETRY_MAX_RETRIES`, `RETRY_BASE_DELAY_SECONDS`, `RETRY_MAX_DELAY_SECONDS`,
//! `WORKER_CONCURRENCY`, `WORKER_LEASE_SECONDS`, `SHUTDOWN_GRACE_SECONDS`,
//! `CLEANUP_INTERVAL_SECONDS`, `RETENTION_EVENTS_DAYS`, `RETENTION_TASKS_DAYS`.

use std::time::Duration;

use super::read::Reader;
use super::{Config, Purpose};
use crate::role::Role;

const DAY: u64 = 24 * 3600;

pub(super) fn read(r: &mut Reader<'_>, purpose: Purpose, c: &mut Config) {
    let retry = &mut c.retry;
    retry.max_retries = r.parse("RETRY_MAX_RETRIES", retry.max_retries, "a whole number");
    retry.backoff.base = r.secs("RETRY_BASE_DELAY_SECONDS", retry.backoff.base);
    retry.backoff.max = r.secs("RETRY_MAX_DELAY_SECONDS", retry.backoff.max);
    if retry.backoff.max < retry.backoff.base {
        r.problem(
            "RETRY_MAX_DELAY_SECONDS",
            "must not be less than RETRY_BASE_DELAY_SECONDS",
        );
    }
    let worker = &mut c.worker;
    worker.concurrency = r.parse("WORKER_CONCURRENCY", worker.concurrency, "a whole number");
    if worker.concurrency == 0 && matches!(purpose, Purpose::Serve(Role::All | Role::Worker)) {
        r.problem(
            "WORKER_CONCURRENCY",
            "must be at least 1 for a process that runs workers",
        );
    }
    worker.shutdown_grace = r.secs("SHUTDOWN_GRACE_SECONDS", worker.shutdown_grace);
    worker.lease = r.secs("WORKER_LEASE_SECONDS", worker.lease);
    if worker.lease < Duration::from_secs(1) {
        r.problem("WORKER_LEASE_SECONDS", "must be at least 1");
    }
    c.cleanup_interval = r.secs("CLEANUP_INTERVAL_SECONDS", c.cleanup_interval);
    let retention = &mut c.api.retention;
    let days = "a whole number of days";
    retention.processed_events = r.duration(
        "RETENTION_EVENTS_DAYS",
        retention.processed_events,
        DAY,
        days,
    );
    retention.finished_tasks =
        r.duration("RETENTION_TASKS_DAYS", retention.finished_tasks, DAY, days);
}
