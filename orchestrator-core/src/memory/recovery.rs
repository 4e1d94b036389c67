//! [`RecoveryStore`] for [`MemoryStore`]: runs in a list, GUID look-ups against the delivery
//! index, hooks learned from the stored headers, redelivery intents by GUID, and a renewable
//! runner lease with an expiry.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MemoryStore;
use crate::delivery::headers;
use crate::error::StoreError;
use crate::store::recovery::{
    LearnedHook, RecoveryRun, RecoveryStore, RedeliveryIntent, RenewLease, RunStatus, RunnerLease,
};

/// The lease holder and until when it holds.
type Lease = Option<(String, DateTime<Utc>)>;

/// Recovery rows of the memory store.
#[derive(Debug, Default)]
pub(super) struct RecoveryState {
    runs: Vec<RecoveryRun>,
    lease: Arc<Mutex<Lease>>,
    redeliveries: BTreeMap<String, RedeliveryIntent>,
}

/// Renews the memory lease while `holder` still holds it.
struct MemoryRenewal {
    lease: Arc<Mutex<Lease>>,
    holder: String,
}

#[async_trait]
impl RenewLease for MemoryRenewal {
    async fn renew(&self, ttl: Duration, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut held = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        match held.as_mut() {
            Some((owner, until)) if *owner == self.holder => {
                *until = crate::clock::add(now, ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

fn header<'a>(stored: &'a [(String, String)], name: &str) -> Option<&'a str> {
    stored
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[async_trait]
impl RecoveryStore for MemoryStore {
    async fn create_run(&self, run: &RecoveryRun) -> Result<(), StoreError> {
        self.lock().recovery.runs.push(run.clone());
        Ok(())
    }

    async fn save_run(&self, run: &RecoveryRun) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(stored) = state
            .recovery
            .runs
            .iter_mut()
            .find(|r| r.run_id == run.run_id)
        {
            *stored = run.clone();
        }
        Ok(())
    }

    async fn get_run(&self, run_id: Uuid) -> Result<Option<RecoveryRun>, StoreError> {
        let state = self.lock();
        Ok(state
            .recovery
            .runs
            .iter()
            .find(|r| r.run_id == run_id)
            .cloned())
    }

    async fn list_runs(
        &self,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecoveryRun>, StoreError> {
        let state = self.lock();
        let runs = &state.recovery.runs;
        // Runs are kept in insertion order, the order of the SQL stores' row ids.
        let end = match before {
            None => runs.len(),
            Some(id) => runs.iter().position(|r| r.run_id == id).unwrap_or(0),
        };
        Ok(runs[..end]
            .iter()
            .rev()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn open_run(&self) -> Result<Option<RecoveryRun>, StoreError> {
        let state = self.lock();
        Ok(state
            .recovery
            .runs
            .iter()
            .find(|r| r.status.is_open())
            .cloned())
    }

    async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let state = self.lock();
        Ok(state
            .recovery
            .runs
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded && !r.dry_run && r.trigger == "scheduled")
            .filter_map(|r| r.started_at)
            .max())
    }

    async fn known_deliveries(&self, guids: &[String]) -> Result<HashSet<String>, StoreError> {
        let state = self.lock();
        Ok(guids
            .iter()
            .filter(|g| state.deliveries.contains_key(g.as_str()))
            .cloned()
            .collect())
    }

    async fn learned_hooks(&self, since: DateTime<Utc>) -> Result<Vec<LearnedHook>, StoreError> {
        let state = self.lock();
        let mut hooks: BTreeMap<i64, LearnedHook> = BTreeMap::new();
        for event in state.events.values().filter(|e| e.created_at >= since) {
            let Some(hook_id) =
                header(&event.headers, headers::HOOK_ID).and_then(|v| v.parse().ok())
            else {
                continue;
            };
            hooks.insert(
                hook_id,
                LearnedHook {
                    hook_id,
                    target_type: header(&event.headers, headers::TARGET_TYPE).map(str::to_owned),
                    target_id: header(&event.headers, headers::TARGET_ID)
                        .and_then(|v| v.parse().ok()),
                    repository: event.repository.clone(),
                },
            );
        }
        Ok(hooks.into_values().collect())
    }

    async fn try_lock_runner(
        &self,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<RunnerLease>, StoreError> {
        let lease = self.lock().recovery.lease.clone();
        let mut held = lease.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, until)) = held.as_ref()
            && owner != holder
            && *until > now
        {
            return Ok(None);
        }
        *held = Some((holder.to_owned(), crate::clock::add(now, ttl)));
        drop(held);
        let renewal = MemoryRenewal {
            lease: lease.clone(),
            holder: holder.to_owned(),
        };
        let holder = holder.to_owned();
        let lease = RunnerLease::new(move || {
            let mut held = lease.lock().unwrap_or_else(|e| e.into_inner());
            if held.as_ref().is_some_and(|(owner, _)| *owner == holder) {
                *held = None;
            }
        });
        Ok(Some(lease.with_renewal(renewal)))
    }

    async fn claim_redelivery(
        &self,
        intent: &RedeliveryIntent,
        not_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let asked = &mut state.recovery.redeliveries;
        if let Some(earlier) = asked.get(&intent.guid)
            && earlier.attempt_id == intent.attempt_id
            && earlier.requested_at >= not_before
        {
            return Ok(false);
        }
        asked.insert(intent.guid.clone(), intent.clone());
        Ok(true)
    }

    async fn release_redelivery(&self, guid: &str, run_id: Uuid) -> Result<(), StoreError> {
        let mut state = self.lock();
        let asked = &mut state.recovery.redeliveries;
        if asked.get(guid).is_some_and(|i| i.run_id == run_id) {
            asked.remove(guid);
        }
        Ok(())
    }
}
