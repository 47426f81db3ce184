//! One monotonic time base shared by the publishers and the receiver.
//!
//! Both sides live in this process, so a timestamp taken by a publisher and
//! one taken by the receiver are directly comparable without any clock sync.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Microseconds since the clock was created.
    pub fn now_us(&self) -> u64 {
        duration_us(self.start.elapsed())
    }
}

/// Saturating conversion, for durations far beyond any bench run.
pub fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
