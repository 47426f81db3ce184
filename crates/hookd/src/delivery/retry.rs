//! The retry schedule: what happens to a delivery after an attempt. Pure functions only.

use std::time::Duration;

use crate::store::NextStep;

/// Jitter applied to every scheduled delay: ±20 %.
pub(crate) const JITTER: f64 = 0.2;
/// The longest `Retry-After` hookd honours; a larger one is cut to this.
pub(crate) const RETRY_AFTER_CAP: Duration = Duration::from_secs(6 * 60 * 60);

/// Delays between attempts and the floor for throttled or timed-out endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before retry n+1 after n failed attempts; one entry per retry.
    pub schedule: Vec<Duration>,
    /// The shortest wait after a 429 or a timeout.
    pub throttled_min: Duration,
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// Any other answer, with the endpoint's `Retry-After` if it sent one.
    Rejected {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the request timeout.
    TimedOut,
    /// No answer: refused, reset, blocked or unreachable.
    Unreachable,
}

impl Outcome {
    /// Classifies an HTTP status: only 2xx is success (3xx is not followed, so it fails).
    pub(crate) fn from_status(status: u16, retry_after: Option<Duration>) -> Self {
        if (200..300).contains(&status) {
            Outcome::Delivered
        } else {
            Outcome::Rejected {
                status,
                retry_after,
            }
        }
    }
}

impl RetryPolicy {
    pub fn new(schedule: Vec<Duration>, throttled_min: Duration) -> Self {
        Self {
            schedule,
            throttled_min,
        }
    }

    /// What follows an attempt that was number `attempt_number` (1 for the first) and ended in
    /// `outcome`, at `now_ms`. `jitter` is a sample from [-1, 1]. A 410 Gone ends the delivery
    /// whatever the schedule says.
    pub fn next_step(
        &self,
        attempt_number: u32,
        outcome: Outcome,
        now_ms: i64,
        jitter: f64,
    ) -> NextStep {
        match outcome {
            Outcome::Delivered => return NextStep::Done,
            // The endpoint says it no longer exists: retrying is pointless, and the endpoint
            // is disabled when the result is recorded.
            Outcome::Rejected { status: 410, .. } => return NextStep::Gone,
            _ => {}
        }
        let Some(base) = self.schedule.get(attempt_number.saturating_sub(1) as usize) else {
            return NextStep::Exhausted;
        };
        let mut delay = base.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0));
        match outcome {
            Outcome::Rejected {
                status,
                retry_after,
            } => {
                if let Some(asked) = retry_after {
                    delay = delay.max(asked.min(RETRY_AFTER_CAP));
                }
                if status == 429 {
                    delay = delay.max(self.throttled_min);
                }
            }
            Outcome::TimedOut => delay = delay.max(self.throttled_min),
            Outcome::Delivered | Outcome::Unreachable => {}
        }
        NextStep::RetryAt(now_ms + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(
            vec![Duration::from_secs(5), Duration::from_secs(300)],
            Duration::from_secs(60),
        )
    }

    const FAIL: Outcome = Outcome::Rejected {
        status: 500,
        retry_after: None,
    };

    #[test]
    fn success_is_done() {
        assert_eq!(
            policy().next_step(1, Outcome::Delivered, 0, 0.0),
            NextStep::Done
        );
    }

    #[test]
    fn failures_follow_the_schedule_then_exhaust() {
        let p = policy();
        assert_eq!(p.next_step(1, FAIL, 1_000, 0.0), NextStep::RetryAt(6_000));
        assert_eq!(p.next_step(2, FAIL, 1_000, 0.0), NextStep::RetryAt(301_000));
        assert_eq!(p.next_step(3, FAIL, 1_000, 0.0), NextStep::Exhausted);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = policy();
        assert_eq!(p.next_step(1, FAIL, 0, 1.0), NextStep::RetryAt(6_000));
        assert_eq!(p.next_step(1, FAIL, 0, -1.0), NextStep::RetryAt(4_000));
        assert_eq!(p.next_step(1, FAIL, 0, 7.0), NextStep::RetryAt(6_000));
    }

    #[test]
    fn throttling_and_timeouts_wait_at_least_the_floor() {
        let p = policy();
        let throttled = Outcome::Rejected {
            status: 429,
            retry_after: None,
        };
        assert_eq!(p.next_step(1, throttled, 0, 0.0), NextStep::RetryAt(60_000));
        assert_eq!(
            p.next_step(1, Outcome::TimedOut, 0, 0.0),
            NextStep::RetryAt(60_000)
        );
        assert_eq!(
            p.next_step(1, Outcome::Unreachable, 0, 0.0),
            NextStep::RetryAt(5_000)
        );
    }

    #[test]
    fn retry_after_is_honoured_within_its_cap() {
        let p = policy();
        let asked = |secs| Outcome::Rejected {
            status: 503,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            p.next_step(1, asked(120), 0, 0.0),
            NextStep::RetryAt(120_000)
        );
        assert_eq!(p.next_step(1, asked(1), 0, 0.0), NextStep::RetryAt(5_000));
        let capped = RETRY_AFTER_CAP.as_millis() as i64;
        assert_eq!(
            p.next_step(1, asked(10 * 86_400), 0, 0.0),
            NextStep::RetryAt(capped)
        );
    }

    #[test]
    fn gone_stops_at_once() {
        let gone = Outcome::from_status(410, None);
        assert_eq!(policy().next_step(1, gone, 0, 0.0), NextStep::Gone);
        assert_eq!(policy().next_step(9, gone, 0, 0.0), NextStep::Gone);
    }

    #[test]
    fn redirects_fail() {
        assert!(matches!(
            Outcome::from_status(302, None),
            Outcome::Rejected { .. }
        ));
        assert_eq!(Outcome::from_status(204, None), Outcome::Delivered);
    }
}
