//! The budget's decision, as a pure function: a sliding-window log per scope.
//!
//! Each scope (the global rate, one repository's hour) keeps the times of the run creations it
//! granted within its window. A creation is granted when every scope it falls under holds fewer
//! than its limit; otherwise it waits until the scope that frees last has a free slot: the
//! `(count - limit + 1)`-th oldest entry leaves the window at `entry + length`. That time is
//! exact (no other taker assumed), which is what the deferral and `/health` show.
//!
//! Why a window log and not GCRA (`governor`): a slot that created no run must be given back
//! (the ledger refused the run after the budget was taken), which GCRA cannot do; the Redis
//! implementation must decide the same way in a Lua script (a sorted set per scope is the
//! same log); and "10 per minute" is Codegen's documented window, which GCRA only approximates
//! (it spreads the tenth request over the minute). A log costs at most `limit` entries per
//! scope, small for limits of this kind.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock;

/// One scope's limit: at most `limit` creations within any `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    /// Creations allowed within the window (at least 1: a limit of 0 means "off" in the
    /// configuration and never becomes a window; 0 here counts as 1).
    pub limit: u32,
    /// The window's length.
    pub length: Duration,
}

/// When a full window frees a slot: `None` while it has one now. `granted` are the times of
/// the creations the scope granted (any order; entries outside the window are ignored).
pub fn free_at(
    granted: &[DateTime<Utc>],
    window: WindowLimit,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let start = clock::sub(now, window.length);
    let mut counted: Vec<DateTime<Utc>> = granted.iter().copied().filter(|t| *t > start).collect();
    let limit = window.limit.max(1) as usize;
    if counted.len() < limit {
        return None;
    }
    counted.sort_unstable();
    // Removing the `len - limit + 1` oldest leaves `limit - 1`: one free slot.
    let freeing = counted[counted.len() - limit];
    // A time ahead of `now` (another instance's clock) never waits more than one window.
    Some(clock::add(freeing, window.length).min(clock::add(now, window.length)))
}

/// Whether the entry at `at` still counts in `window` at `now`.
pub fn inside(at: DateTime<Utc>, window: WindowLimit, now: DateTime<Utc>) -> bool {
    at > clock::sub(now, window.length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_window_with_a_free_slot_grants_and_a_full_one_waits_for_its_oldest() {
        let w = WindowLimit {
            limit: 2,
            length: MINUTE,
        };
        assert_eq!(free_at(&[], w, at(0)), None);
        assert_eq!(free_at(&[at(0)], w, at(1)), None);
        assert_eq!(free_at(&[at(10), at(0)], w, at(20)), Some(at(60)));
        // The oldest left the window (exactly 60 s old no longer counts).
        assert_eq!(free_at(&[at(0), at(10)], w, at(60)), None);
    }

    #[test]
    fn an_over_full_window_waits_until_enough_entries_left() {
        // Three entries against a limit of 1 (the limit was lowered): the second-newest must go.
        let w = WindowLimit {
            limit: 1,
            length: MINUTE,
        };
        assert_eq!(free_at(&[at(0), at(5), at(30)], w, at(40)), Some(at(90)));
    }

    proptest! {
        /// The wait is exact: at `free_at` a slot is free, one second earlier none is.
        #[test]
        fn the_returned_time_is_the_first_with_a_free_slot(
            offsets in proptest::collection::vec(0i64..120, 0..12),
            limit in 1u32..5,
            now in 0i64..180,
        ) {
            let w = WindowLimit { limit, length: MINUTE };
            let granted: Vec<_> = offsets.iter().map(|s| at(*s)).filter(|t| *t <= at(now)).collect();
            match free_at(&granted, w, at(now)) {
                None => {
                    let counted = granted.iter().filter(|t| inside(**t, w, at(now))).count();
                    prop_assert!(counted < limit as usize);
                }
                Some(free) => {
                    prop_assert!(free > at(now));
                    prop_assert!(free <= at(now) + chrono::Duration::seconds(60));
                    prop_assert_eq!(free_at(&granted, w, free), None);
                    let before = free - chrono::Duration::seconds(1);
                    prop_assert!(free_at(&granted, w, before).is_some());
                }
            }
        }
    }
}
