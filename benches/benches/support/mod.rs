//! A criterion measurement of the benchmark thread's CPU time, shared by the bench targets.
//!
//! `openssl speed` reports user CPU time by default; on a machine shared with other work, wall
//! time mixes in time the benchmark spent waiting for a core. CPU time does not.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// Criterion measurement of the benchmark thread's CPU time.
pub(crate) struct ThreadCpuTime;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> cpu_time::ThreadTime {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, start: cpu_time::ThreadTime) -> Duration {
        start.elapsed()
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}
