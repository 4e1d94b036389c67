//! What this process knows for certain about intents it never sent: an attempt whose ledger
//! admission answered an error sent no creation (the request is only sent after the ledger
//! confirmed the intent), yet the intent may have been committed (a connection reset during
//! the COMMIT: committed on the server, an error for the client). The next attempt then finds
//! that intent without a run id; in the same process it is known that no request went out, so
//! the run is created for that intent, exactly once, instead of stopping the task for a person.
//! Another process (or this one after a restart) does not know it and reconciles as before.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use orchestrator_core::store::agent_run::AgentRunRecord;
use uuid::Uuid;

/// How many admissions that failed are remembered (the oldest is forgotten first; forgetting
/// one only means the safe path, a reconciliation, is taken for it).
const REMEMBERED: usize = 1024;

/// The attempts (task id, attempt) whose ledger admission answered an error in this process.
#[derive(Debug, Clone, Default)]
pub(super) struct UnsentIntents {
    attempts: Arc<Mutex<VecDeque<(Uuid, u32)>>>,
}

impl UnsentIntents {
    /// `attempt` of `task_id` asked the ledger for an intent, got an error, and sent nothing.
    pub(super) fn remember(&self, task_id: Uuid, attempt: u32) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.len() == REMEMBERED {
            attempts.pop_front();
        }
        attempts.push_back((task_id, attempt));
    }

    /// Whether `intent` (pending, without a run id) was stored by an attempt that is known to
    /// have sent nothing; forgets it, so that it is used once.
    pub(super) fn take(&self, intent: &AgentRunRecord) -> bool {
        if intent.run_id.is_some() {
            return false;
        }
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let key = (intent.task_id, intent.attempt);
        match attempts.iter().position(|a| *a == key) {
            Some(at) => {
                attempts.remove(at);
                true
            }
            None => false,
        }
    }
}
