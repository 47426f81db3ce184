//! Catch-up: bringing an endpoint back promptly after an outage. Pure functions only; each
//! backend runs them in the transaction that records a batch of results, beside the failure
//! clock ([`super::health`]).
//!
//! While an endpoint is down, its deliveries fail and wait for their next retry, minutes to
//! hours away. When it answers again, waiting for each delivery's own retry time would leave
//! its backlog undelivered for hours. So:
//! - A batch in which a failing endpoint (its clock running) succeeds starts its catch-up: the
//!   endpoint row records when (`catchup_at`), and the same transaction makes a first batch of
//!   its waiting deliveries due now.
//! - Every later batch with a success for it releases more, only enough to keep about
//!   [`RELEASE_BATCH`] of its deliveries due: the dispatcher drains them at the endpoint's
//!   concurrency bound, and a million waiting rows are never rewritten in one transaction.
//!   Batches of only failures release nothing; the catch-up ends when nothing is left to release.
//! - A throttled endpoint is released no faster than its rate: only when its schedule has
//!   less than [`THROTTLE_HORIZON_MS`] of work ahead, and only that much. Claiming still
//!   plans every delivery against the rate ([`super::throttle`]).
//! - Only deliveries waiting since before the recovery are released (those last written before
//!   `catchup_at`); one that fails again afterwards follows the retry schedule, with its
//!   attempt count kept. A failure recorded around the recovery for an attempt sent before it
//!   ([`sent_while_down`]) is released too. Held deliveries of an ordering key are not waiting
//!   for a time, so they stay held.
//! - A new catch-up, which may release a delivery that failed again, starts at most once per
//!   [`RESTART_AFTER_MS`] per endpoint. An endpoint that flaps (fails, succeeds, fails) would
//!   otherwise pull the same deliveries forward at every success and spend their retries in
//!   seconds instead of over the schedule's day.

use super::health::Verdict;
use super::{AttemptResult, NextStep};

/// How many of a recovering endpoint's deliveries are kept due at once.
pub const RELEASE_BATCH: usize = 1000;
/// How far ahead a throttled endpoint's schedule may run before more is released (ms).
pub const THROTTLE_HORIZON_MS: i64 = 1000;
/// The shortest time between the starts of two catch-ups of one endpoint (ms).
pub const RESTART_AFTER_MS: i64 = 60_000;

/// What the recorder reads of an endpoint before judging a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// Its failure clock (see [`super::health`]).
    pub failing_since: Option<i64>,
    /// Whether it is catching up.
    pub catching_up: bool,
    /// When its last catch-up started (unix ms), if one ever did.
    pub last_start: Option<i64>,
}

/// What a batch's verdict does to an endpoint's catch-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It was failing and now succeeds: start catching up, releasing a first batch.
    Start,
    /// It is catching up and succeeds again: release more.
    Continue,
    /// Nothing to do.
    Nothing,
}

/// The step at `now` for an endpoint whose batch verdict is `verdict` and whose state before
/// the batch was `before`.
pub fn step(verdict: Verdict, before: &EndpointState, now: i64) -> Step {
    if verdict != Verdict::Succeeded {
        return Step::Nothing;
    }
    let may_restart = before
        .last_start
        .is_none_or(|start| now.saturating_sub(start) >= RESTART_AFTER_MS);
    if before.failing_since.is_some() && may_restart {
        Step::Start
    } else if before.catching_up {
        Step::Continue
    } else {
        Step::Nothing
    }
}

/// The deliveries among `results` whose attempt to `endpoint_id` started before its catch-up
/// (which began at `catchup_at`) and failed with a retry to come. They were sent while the
/// endpoint was still down, and only recorded around its recovery: they belong to the outage,
/// so they are released with the rest rather than waiting for their retry.
pub fn sent_while_down<'a>(
    results: &[&'a AttemptResult],
    endpoint_id: &str,
    catchup_at: i64,
) -> Vec<&'a str> {
    results
        .iter()
        .filter(|r| r.attempt.endpoint_id.as_str() == endpoint_id)
        .filter(|r| matches!(r.next, NextStep::RetryAt(_)) && r.attempt.created_at < catchup_at)
        .map(|r| r.delivery_id.as_str())
        .collect()
}

/// An endpoint's rate limit and its schedule's theoretical arrival time (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub rate: u32,
    pub tat: i64,
}

/// How many waiting deliveries to release for an endpoint that has `due_now` deliveries due
/// (counted up to [`RELEASE_BATCH`]) at `now`.
pub fn release_size(due_now: usize, throttle: Option<Throttle>, now: i64) -> usize {
    let room = RELEASE_BATCH.saturating_sub(due_now);
    let Some(Throttle { rate, tat }) = throttle else {
        return room;
    };
    if tat > now + THROTTLE_HORIZON_MS {
        return 0;
    }
    let per_horizon = i64::from(rate.max(1)) * THROTTLE_HORIZON_MS / 1000;
    room.min(usize::try_from(per_horizon.max(1)).unwrap_or(1))
}

/// The endpoint's catch-up after releasing `released` of the `asked` deliveries, the last of
/// which was due at `last_due`: the cursor to resume from, or `None` when nothing is left.
pub fn resume_after(asked: usize, released: usize, last_due: Option<i64>) -> Option<i64> {
    if released < asked {
        return None;
    }
    last_due
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(failing_since: Option<i64>, catching_up: bool) -> EndpointState {
        EndpointState {
            failing_since,
            catching_up,
            last_start: None,
        }
    }

    #[test]
    fn a_success_on_a_failing_endpoint_starts_catching_up() {
        assert_eq!(
            step(Verdict::Succeeded, &state(Some(5), false), 9),
            Step::Start
        );
        assert_eq!(
            step(Verdict::Succeeded, &state(Some(5), true), 9),
            Step::Start
        );
    }

    #[test]
    fn a_success_on_a_healthy_endpoint_does_nothing() {
        assert_eq!(
            step(Verdict::Succeeded, &state(None, false), 9),
            Step::Nothing
        );
    }

    #[test]
    fn a_catching_up_endpoint_continues_on_success_only() {
        assert_eq!(
            step(Verdict::Succeeded, &state(None, true), 9),
            Step::Continue
        );
        assert_eq!(
            step(Verdict::Failed, &state(Some(9), true), 9),
            Step::Nothing
        );
        assert_eq!(step(Verdict::Gone, &state(None, true), 9), Step::Nothing);
        assert_eq!(step(Verdict::Failed, &state(None, false), 9), Step::Nothing);
    }

    #[test]
    fn a_new_catch_up_waits_for_the_restart_interval() {
        let flapping = EndpointState {
            last_start: Some(1_000),
            ..state(Some(2_000), true)
        };
        let soon = 1_000 + RESTART_AFTER_MS - 1;
        assert_eq!(step(Verdict::Succeeded, &flapping, soon), Step::Continue);
        let ended = EndpointState {
            catching_up: false,
            ..flapping
        };
        assert_eq!(step(Verdict::Succeeded, &ended, soon), Step::Nothing);
        let later = 1_000 + RESTART_AFTER_MS;
        assert_eq!(step(Verdict::Succeeded, &ended, later), Step::Start);
    }

    #[test]
    fn an_unthrottled_endpoint_is_topped_up_to_the_batch() {
        assert_eq!(release_size(0, None, 0), RELEASE_BATCH);
        assert_eq!(release_size(900, None, 0), RELEASE_BATCH - 900);
        assert_eq!(release_size(RELEASE_BATCH, None, 0), 0);
    }

    #[test]
    fn a_throttled_endpoint_gets_one_horizon_of_work_at_most() {
        let idle = Throttle { rate: 5, tat: 0 };
        assert_eq!(release_size(0, Some(idle), 10_000), 5);
        let slow = Throttle { rate: 1, tat: 0 };
        assert_eq!(release_size(0, Some(slow), 10_000), 1);
        let busy = Throttle {
            rate: 5,
            tat: 10_000 + THROTTLE_HORIZON_MS + 1,
        };
        assert_eq!(release_size(0, Some(busy), 10_000), 0);
        let fast = Throttle {
            rate: 100_000,
            tat: 0,
        };
        assert_eq!(release_size(0, Some(fast), 10_000), RELEASE_BATCH);
    }

    #[test]
    fn a_short_release_ends_the_catch_up() {
        assert_eq!(resume_after(10, 10, Some(7)), Some(7));
        assert_eq!(resume_after(10, 3, Some(7)), None);
        assert_eq!(resume_after(10, 0, None), None);
    }
}
