//! Endpoint rate limits (`throttleRate`, messages per second) as GCRA, a pure function.
//!
//! Each throttled endpoint keeps one number in the store, its theoretical arrival time (`tat`,
//! unix ms): the earliest moment the next delivery may start. Claiming runs [`plan`] over the
//! due deliveries of that endpoint inside the claim transaction, so every node of a deployment
//! shares the same schedule. No bursts: deliveries start at least `1000 / rate` ms apart.
//!
//! It lives in the store, not the delivery engine, because it is part of what a claim decides:
//! both backends call it while claiming, and the engine never does.

use std::collections::{BTreeMap, HashMap};

use super::ClaimedDelivery;
use crate::domain::EndpointId;

/// One throttled endpoint's share of a claim: the positions of its deliveries in the claim,
/// in claim order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleGroup<'a> {
    pub endpoint_id: &'a str,
    pub rate: u32,
    pub indexes: Vec<usize>,
}

impl ThrottleGroup<'_> {
    /// Plans the group against the endpoint's stored theoretical arrival time `tat` at `now`:
    /// answers the endpoint's new `tat` and, for each delivery to give back, its position in
    /// the claim and when it is due again.
    pub fn schedule(&self, tat: i64, now: i64) -> (i64, Vec<(usize, i64)>) {
        let plan = plan(tat, self.rate, now, self.indexes.len());
        let deferred = self.indexes[plan.send_now..]
            .iter()
            .copied()
            .zip(plan.defer_to)
            .collect();
        (plan.tat, deferred)
    }
}

/// The throttled endpoints (those with a rate) among the deliveries of a claim, sorted by
/// endpoint id: the order in which backends lock endpoint rows, so that nodes claiming at once
/// never wait on each other in a cycle.
pub fn throttled_groups<'a>(
    claimed: &'a [ClaimedDelivery],
    rates: &HashMap<EndpointId, u32>,
) -> Vec<ThrottleGroup<'a>> {
    let mut groups: BTreeMap<&str, ThrottleGroup<'a>> = BTreeMap::new();
    for (i, delivery) in claimed.iter().enumerate() {
        let Some(&rate) = rates.get(&delivery.endpoint_id) else {
            continue;
        };
        groups
            .entry(&delivery.endpoint_id)
            .or_insert_with(|| ThrottleGroup {
                endpoint_id: &delivery.endpoint_id,
                rate,
                indexes: Vec::new(),
            })
            .indexes
            .push(i);
    }
    groups.into_values().collect()
}

/// `claimed` without the deliveries at the positions in `deferred` (given back for later).
pub fn without_deferred(claimed: Vec<ClaimedDelivery>, deferred: &[usize]) -> Vec<ClaimedDelivery> {
    claimed
        .into_iter()
        .enumerate()
        .filter_map(|(i, delivery)| (!deferred.contains(&i)).then_some(delivery))
        .collect()
}

/// What to do with `n` due deliveries of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThrottlePlan {
    /// How many may be attempted now (the first ones, in due order).
    pub send_now: usize,
    /// When each of the others should be looked at again (unix ms), spread one interval
    /// apart so they do not all wake at once.
    pub defer_to: Vec<i64>,
    /// The endpoint's new theoretical arrival time.
    pub tat: i64,
}

/// Plans `n` due deliveries for an endpoint allowing `rate` per second, whose stored
/// theoretical arrival time is `tat`, at `now`.
pub(crate) fn plan(tat: i64, rate: u32, now: i64, n: usize) -> ThrottlePlan {
    let interval = 1000.0 / f64::from(rate.max(1));
    let mut tat = tat as f64;
    let now_f = now as f64;
    let mut send_now = 0;
    while send_now < n && tat <= now_f {
        tat = tat.max(now_f) + interval;
        send_now += 1;
    }
    let defer_to = (0..n - send_now)
        .map(|k| (tat.max(now_f) + interval * k as f64).ceil() as i64)
        .collect();
    ThrottlePlan {
        send_now,
        defer_to,
        tat: tat.ceil() as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_endpoint_sends_one_now_and_spaces_the_rest() {
        let p = plan(0, 5, 10_000, 4);
        assert_eq!(p.send_now, 1);
        assert_eq!(p.tat, 10_200);
        assert_eq!(p.defer_to, vec![10_200, 10_400, 10_600]);
    }

    #[test]
    fn a_busy_endpoint_sends_nothing_before_its_time() {
        let p = plan(10_150, 5, 10_000, 2);
        assert_eq!(p.send_now, 0);
        assert_eq!(p.defer_to, vec![10_150, 10_350]);
        assert_eq!(p.tat, 10_150);
    }

    #[test]
    fn thirty_messages_at_five_per_second_take_almost_six_seconds() {
        // Simulate claim rounds at each deferred time.
        let (mut tat, mut now, mut left, mut last_start) = (0i64, 0i64, 30usize, 0i64);
        while left > 0 {
            let p = plan(tat, 5, now, left);
            if p.send_now > 0 {
                last_start = now;
            }
            left -= p.send_now;
            tat = p.tat;
            now = p.defer_to.first().copied().unwrap_or(now);
        }
        assert_eq!(last_start, 29 * 200);
    }
}
