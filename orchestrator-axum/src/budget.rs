//! The process-wide budget of request-body bytes held in memory: [`BodyBudget`].
//!
//! The receiver must hold a whole body before it can check the signature, so every upload in
//! progress costs memory, authenticated or not: 400 uploads of 1 MiB held 421 MB. The budget
//! caps that sum. A body reserves its bytes before they are read (its `Content-Length`, or a
//! first chunk and then more as a chunked body grows); a reservation the budget cannot give
//! refuses the request with 503 and `Retry-After` before it is read. The receiver holds the
//! reservation until its answer is ready (or the client goes away) and then gives it back; the
//! body is dropped then too, except where a store keeps the bytes it stored (the in-memory
//! store), which is the store's memory, not an upload's.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A shared budget of buffered body bytes. Cheap to clone (clones share the budget).
#[derive(Debug, Clone)]
pub struct BodyBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes`, or `None` when that would exceed the budget.
    pub(crate) fn reserve(&self, bytes: usize) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    fn take(&self, bytes: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .is_ok()
    }
}

/// Bytes reserved in a [`BodyBudget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: BodyBudget,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to `total` bytes (a no-op when it is that large already); `false`
    /// when the budget cannot give the difference (the reservation is unchanged then).
    pub(crate) fn grow_to(&mut self, total: usize) -> bool {
        let more = total.saturating_sub(self.bytes);
        if more == 0 {
            return true;
        }
        if !self.budget.take(more) {
            return false;
        }
        self.bytes = total;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .inner
            .used
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reservations_are_refused_past_the_limit_and_given_back_on_drop() {
        let budget = BodyBudget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(budget.reserve(41).is_none());
        let mut b = budget.reserve(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        assert!(!b.grow_to(41));
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert!(b.grow_to(90));
        assert!(b.grow_to(10), "shrinking is a no-op");
        assert_eq!(budget.in_use(), 90);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let budget = BodyBudget::new(1000);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut held = Vec::new();
                    for _ in 0..100 {
                        if let Some(r) = budget.reserve(7) {
                            held.push(r);
                        }
                        assert!(budget.in_use() <= 1000);
                    }
                });
            }
        });
        assert_eq!(budget.in_use(), 0);
    }
}
