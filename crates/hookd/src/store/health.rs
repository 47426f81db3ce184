//! Endpoint health: the failure clock that disables an endpoint which only fails. Pure
//! functions only; each backend reads and writes the clock (`endpoints.first_failure_at`) in
//! the transaction that records a batch of results, and asks these functions what to do.
//!
//! The rules:
//! - A failed attempt starts the clock if it is not running; a successful one stops it.
//! - An endpoint whose clock has run for [`HealthPolicy::disable_after`] when another failure
//!   is recorded is disabled. The check happens only when a failure is recorded: an endpoint
//!   nobody sends to is never disabled.
//! - A 410 Gone disables the endpoint at once.
//! - Within one batch, results are not ordered in time, so an endpoint's results are taken
//!   together: a 410 wins, then any success (the endpoint works), then failures.

use std::collections::{BTreeMap, HashMap};

use super::{AttemptResult, DisabledEndpoint, HealthPolicy, NextStep};

/// What one batch says about one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At least one attempt succeeded.
    Succeeded,
    /// Every attempt failed.
    Failed,
    /// The endpoint answered 410 Gone.
    Gone,
}

/// One endpoint's verdict in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointVerdict<'a> {
    pub app_id: &'a str,
    pub endpoint_id: &'a str,
    pub verdict: Verdict,
}

/// The verdict on each endpoint of `results`, sorted by endpoint id (the order in which
/// backends lock endpoint rows, so that concurrent recorders never deadlock).
pub fn verdicts<'a>(
    results: impl IntoIterator<Item = &'a AttemptResult>,
) -> Vec<EndpointVerdict<'a>> {
    let mut by_endpoint: BTreeMap<&'a str, EndpointVerdict<'a>> = BTreeMap::new();
    for result in results {
        let verdict = if result.next == NextStep::Gone {
            Verdict::Gone
        } else if result.attempt.success {
            Verdict::Succeeded
        } else {
            Verdict::Failed
        };
        let endpoint_id = result.attempt.endpoint_id.as_str();
        by_endpoint
            .entry(endpoint_id)
            .and_modify(|seen| seen.verdict = stronger(seen.verdict, verdict))
            .or_insert(EndpointVerdict {
                app_id: &result.app_id,
                endpoint_id,
                verdict,
            });
    }
    by_endpoint.into_values().collect()
}

fn stronger(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Gone, _) | (_, Verdict::Gone) => Verdict::Gone,
        (Verdict::Succeeded, _) | (_, Verdict::Succeeded) => Verdict::Succeeded,
        _ => Verdict::Failed,
    }
}

/// The new state of an endpoint's failure clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// When its failures began (unix ms), `None` when it works.
    pub failing_since: Option<i64>,
    /// Whether to disable it now.
    pub disable: bool,
}

/// Applies a batch's verdict at `now` to an endpoint whose clock reads `failing_since`.
pub fn judge(
    verdict: Verdict,
    failing_since: Option<i64>,
    now: i64,
    policy: &HealthPolicy,
) -> Judgement {
    let period = i64::try_from(policy.disable_after.as_millis()).unwrap_or(i64::MAX);
    match verdict {
        Verdict::Succeeded => Judgement {
            failing_since: None,
            disable: false,
        },
        Verdict::Failed => {
            let since = failing_since.unwrap_or(now);
            Judgement {
                failing_since: Some(since),
                disable: now.saturating_sub(since) >= period,
            }
        }
        Verdict::Gone => Judgement {
            failing_since: Some(failing_since.unwrap_or(now)),
            disable: true,
        },
    }
}

/// A write to one endpoint's failure clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockChange<'a> {
    pub endpoint_id: &'a str,
    pub failing_since: Option<i64>,
    pub disable: bool,
}

/// What a batch does to endpoint health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judged<'a> {
    /// The clocks to write, in endpoint id order: only those that change, so a batch of
    /// successes to healthy endpoints writes no endpoint row.
    pub changes: Vec<ClockChange<'a>>,
    /// The endpoints to disable now (their pending deliveries are cancelled with them).
    pub disabled: Vec<DisabledEndpoint>,
}

/// Judges a batch's `verdicts` at `now` against the clocks read from the store: `clocks` holds
/// the failing-since time of each endpoint that is still there and enabled. An endpoint not in
/// `clocks` (deleted or disabled meanwhile) has no clock to move.
pub fn judge_batch<'a>(
    verdicts: &[EndpointVerdict<'a>],
    clocks: &HashMap<String, Option<i64>>,
    now: i64,
    policy: &HealthPolicy,
) -> Judged<'a> {
    let mut judged = Judged::default();
    for verdict in verdicts {
        let Some(&since) = clocks.get(verdict.endpoint_id) else {
            continue;
        };
        let judgement = judge(verdict.verdict, since, now, policy);
        if judgement.failing_since == since && !judgement.disable {
            continue;
        }
        judged.changes.push(ClockChange {
            endpoint_id: verdict.endpoint_id,
            failing_since: judgement.failing_since,
            disable: judgement.disable,
        });
        if judgement.disable {
            judged.disabled.push(DisabledEndpoint {
                app_id: verdict.app_id.into(),
                endpoint_id: verdict.endpoint_id.into(),
                fail_since: judgement.failing_since.unwrap_or(now),
            });
        }
    }
    judged
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::{Attempt, TriggerType};

    const POLICY: HealthPolicy = HealthPolicy {
        disable_after: Duration::from_secs(5 * 24 * 3600),
    };
    const DAY: i64 = 24 * 3600 * 1000;

    fn result(endpoint_id: &str, success: bool, next: NextStep) -> AttemptResult {
        AttemptResult {
            delivery_id: "dlv_1".into(),
            lease_token: "lease".into(),
            attempt: Attempt {
                id: "atmpt_1".into(),
                msg_id: "msg_1".into(),
                endpoint_id: endpoint_id.into(),
                url: "https://example.com/".into(),
                success,
                response_status_code: if success { 204 } else { 500 },
                response: String::new(),
                response_duration_ms: 1,
                trigger_type: TriggerType::Scheduled,
                created_at: 0,
            },
            app_id: "app_1".into(),
            next,
            attempt_number: 1,
        }
    }

    #[test]
    fn a_first_failure_starts_the_clock() {
        let j = judge(Verdict::Failed, None, 1_000, &POLICY);
        assert_eq!(j.failing_since, Some(1_000));
        assert!(!j.disable);
    }

    #[test]
    fn failures_for_the_whole_period_disable() {
        let j = judge(Verdict::Failed, Some(0), 5 * DAY - 1, &POLICY);
        assert_eq!(j.failing_since, Some(0));
        assert!(!j.disable, "one millisecond short of the period");
        let j = judge(Verdict::Failed, Some(0), 5 * DAY, &POLICY);
        assert!(j.disable);
    }

    #[test]
    fn a_success_stops_the_clock() {
        let j = judge(Verdict::Succeeded, Some(0), 10 * DAY, &POLICY);
        assert_eq!(j.failing_since, None);
        assert!(!j.disable);
    }

    #[test]
    fn gone_disables_at_once() {
        let j = judge(Verdict::Gone, None, 7, &POLICY);
        assert_eq!(j.failing_since, Some(7));
        assert!(j.disable);
        let j = judge(Verdict::Gone, Some(3), 7, &POLICY);
        assert_eq!(j.failing_since, Some(3));
    }

    #[test]
    fn a_batch_writes_only_the_clocks_that_move() {
        let batch = [
            result("ep_new_failure", false, NextStep::RetryAt(1)),
            result("ep_healthy", true, NextStep::Done),
            result("ep_recovered", true, NextStep::Done),
            result("ep_old_failure", false, NextStep::RetryAt(1)),
            result("ep_still_failing", false, NextStep::RetryAt(1)),
            result("ep_gone_meanwhile", false, NextStep::RetryAt(1)),
        ];
        let clocks = HashMap::from([
            ("ep_new_failure".to_string(), None),
            ("ep_healthy".to_string(), None),
            ("ep_recovered".to_string(), Some(0)),
            ("ep_old_failure".to_string(), Some(0)),
            ("ep_still_failing".to_string(), Some(DAY)),
        ]);
        let judged = judge_batch(&verdicts(&batch), &clocks, 5 * DAY, &POLICY);
        let change = |endpoint_id, failing_since, disable| ClockChange {
            endpoint_id,
            failing_since,
            disable,
        };
        assert_eq!(
            judged.changes,
            [
                change("ep_new_failure", Some(5 * DAY), false),
                change("ep_old_failure", Some(0), true),
                change("ep_recovered", None, false),
            ]
        );
        assert_eq!(
            judged.disabled,
            [DisabledEndpoint {
                app_id: "app_1".into(),
                endpoint_id: "ep_old_failure".into(),
                fail_since: 0,
            }]
        );
    }

    #[test]
    fn a_batch_is_judged_per_endpoint() {
        let batch = [
            result("ep_b", false, NextStep::RetryAt(1)),
            result("ep_a", false, NextStep::RetryAt(1)),
            result("ep_b", true, NextStep::Done),
            result("ep_c", true, NextStep::Done),
            result("ep_c", false, NextStep::Gone),
            result("ep_a", false, NextStep::Exhausted),
        ];
        let got: Vec<(&str, Verdict)> = verdicts(&batch)
            .into_iter()
            .map(|v| (v.endpoint_id, v.verdict))
            .collect();
        assert_eq!(
            got,
            [
                ("ep_a", Verdict::Failed),
                ("ep_b", Verdict::Succeeded),
                ("ep_c", Verdict::Gone),
            ]
        );
    }
}
