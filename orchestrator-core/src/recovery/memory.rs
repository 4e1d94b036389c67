//! [`FakeDeliveryLog`]: an in-memory [`DeliveryLog`] with programmable attempts, page size and
//! failures, recording every call, for engine tests of the reconciler.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::hook::HookRef;
use super::log::{DeliveryLog, DeliveryPage, DeliveryRequest, DeliverySummary};
use crate::error::ClientError;

/// One attempt with its request (headers, payload).
type Entry = (DeliverySummary, Vec<(String, String)>, Value);

#[derive(Debug, Default)]
struct Inner {
    /// Attempts per hook, newest first, with their request (headers, payload).
    logs: BTreeMap<HookRef, Vec<Entry>>,
    /// Errors answered by the next calls, in order (`None`: answer normally).
    failures: VecDeque<Option<ClientError>>,
    calls: Vec<String>,
}

/// An in-memory delivery log.
#[derive(Debug)]
pub struct FakeDeliveryLog {
    page_size: usize,
    inner: Mutex<Inner>,
}

impl FakeDeliveryLog {
    /// An empty log answering pages of `page_size` attempts.
    pub fn new(page_size: usize) -> Self {
        Self {
            page_size: page_size.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an attempt to `hook`'s log (call oldest first: the newest is listed first).
    pub fn push(
        &self,
        hook: &HookRef,
        summary: DeliverySummary,
        headers: Vec<(String, String)>,
        payload: Value,
    ) {
        self.lock()
            .logs
            .entry(hook.clone())
            .or_default()
            .insert(0, (summary, headers, payload));
    }

    /// The next calls answer these, in order (`None`: normally).
    pub fn fail_next(&self, answers: impl IntoIterator<Item = Option<ClientError>>) {
        self.lock().failures.extend(answers);
    }

    /// Every call so far: `list <hook> <cursor>`, `get <hook> <id>`, `redeliver <hook> <id>`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn call(&self, what: String) -> Result<(), ClientError> {
        let mut inner = self.lock();
        inner.calls.push(what);
        match inner.failures.pop_front() {
            Some(Some(err)) => Err(err),
            _ => Ok(()),
        }
    }
}

fn not_found(what: &str) -> ClientError {
    ClientError::new(
        crate::error::ClientErrorKind::Permanent,
        Some(404),
        format!("{what} not found"),
    )
}

#[async_trait]
impl DeliveryLog for FakeDeliveryLog {
    async fn list_deliveries(
        &self,
        hook: &HookRef,
        cursor: Option<&str>,
    ) -> Result<DeliveryPage, ClientError> {
        self.call(format!("list {hook} {}", cursor.unwrap_or("-")))?;
        let inner = self.lock();
        let log = inner.logs.get(hook).map(Vec::as_slice).unwrap_or_default();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + self.page_size).min(log.len());
        let deliveries = log
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|(s, _, _)| s.clone())
            .collect();
        Ok(DeliveryPage {
            deliveries,
            next_cursor: (end < log.len()).then(|| end.to_string()),
        })
    }

    async fn get_delivery(
        &self,
        hook: &HookRef,
        delivery_id: i64,
    ) -> Result<DeliveryRequest, ClientError> {
        self.call(format!("get {hook} {delivery_id}"))?;
        let inner = self.lock();
        let (summary, headers, payload) = inner
            .logs
            .get(hook)
            .and_then(|log| log.iter().find(|(s, _, _)| s.id == delivery_id))
            .ok_or_else(|| not_found("delivery"))?;
        Ok(DeliveryRequest {
            summary: summary.clone(),
            headers: headers.clone(),
            payload: payload.clone(),
        })
    }

    async fn redeliver(&self, hook: &HookRef, delivery_id: i64) -> Result<(), ClientError> {
        self.call(format!("redeliver {hook} {delivery_id}"))
    }
}
