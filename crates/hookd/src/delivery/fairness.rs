//! Per-endpoint concurrency bounds, so one slow or dead endpoint cannot take every slot.
//!
//! The worker counts its attempts in flight per endpoint, up to a bound. Deliveries it holds
//! leases for beyond the bound wait in a short queue of their endpoint (at most one bound's
//! worth), and the next one starts as soon as one of the endpoint's attempts finishes, without a
//! trip to the store. A queued delivery waits at most about one attempt's duration, which its
//! lease covers (the lease outlasts two request timeouts).
//!
//! An endpoint whose attempts and queue are both full is named in every lease the worker takes
//! ([`crate::store::Lease::skip_endpoints`]): claiming passes over its due deliveries and ingest
//! does not hand them over, so other endpoints' deliveries keep flowing. It stays passed over
//! until its queue is down to half, and then the worker is woken to claim: the claim then
//! fills half a queue at once, where reopening at the first free place would cost a claim per
//! delivery. Every claim takes no more of an endpoint than the worker can still run and queue
//! for it ([`crate::store::EndpointRoom`]), so a recovered endpoint's backlog is not claimed
//! only to be given back; deliveries that arrive for a full endpoint anyway (handed over at
//! ingest) are given back.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::domain::EndpointId;
use crate::store::{ClaimedDelivery, EndpointRoom};

/// Attempts in flight and queued deliveries per endpoint on this worker.
pub struct InFlight {
    per_endpoint: usize,
    endpoints: Mutex<HashMap<EndpointId, EndpointLoad>>,
}

#[derive(Default)]
struct EndpointLoad {
    running: usize,
    queued: VecDeque<ClaimedDelivery>,
    /// Set when the endpoint filled up; cleared when its queue is down to half.
    closed: bool,
}

/// What to do with a delivery offered to the worker.
#[derive(Debug)]
pub enum Admission {
    /// Start it now: it is counted as running.
    Start(ClaimedDelivery),
    /// Kept in its endpoint's queue; it starts when an attempt of the endpoint finishes.
    Queued,
    /// The endpoint is full: give it back to the store.
    Full(ClaimedDelivery),
}

/// What follows an attempt that finished.
#[derive(Debug)]
pub struct Finished {
    /// The endpoint's next queued delivery, to start in the finished one's place.
    pub next: Option<ClaimedDelivery>,
    /// The endpoint was closed and its queue is now down to half: due deliveries of it may
    /// be claimed.
    pub reopened: bool,
}

impl InFlight {
    pub fn new(per_endpoint: usize) -> Self {
        Self {
            per_endpoint: per_endpoint.max(1),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn endpoints(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, EndpointLoad>> {
        // Counts stay meaningful even if a holder panicked.
        self.endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn is_full(&self, load: &EndpointLoad) -> bool {
        load.running >= self.per_endpoint && load.queued.len() >= self.per_endpoint
    }

    /// The endpoints passed over until their queues are down to half.
    pub fn busy(&self) -> Vec<EndpointId> {
        self.endpoints()
            .iter()
            .filter(|(_, load)| load.closed)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many deliveries of each endpoint a claim may take now: an idle endpoint's bound to
    /// run plus its queue, and only the free places of the queue of one running at its bound.
    /// (An endpoint running below its bound is not listed: it has more than a bound's room,
    /// and the rare claim that takes more than it can hold gives the rest back.)
    pub fn room(&self) -> EndpointRoom {
        let limited = self
            .endpoints()
            .iter()
            .filter(|(_, load)| !load.closed && load.running >= self.per_endpoint)
            .map(|(id, load)| {
                let free = self.per_endpoint.saturating_sub(load.queued.len());
                (id.clone(), free)
            })
            .collect();
        EndpointRoom {
            each: self.per_endpoint * 2,
            limited,
        }
    }

    /// Starts, queues or refuses a delivery, by its endpoint's load.
    pub fn admit(&self, delivery: ClaimedDelivery) -> Admission {
        let mut endpoints = self.endpoints();
        let load = endpoints.entry(delivery.endpoint_id.clone()).or_default();
        let admission = if load.running < self.per_endpoint {
            load.running += 1;
            Admission::Start(delivery)
        } else if load.queued.len() < self.per_endpoint {
            load.queued.push_back(delivery);
            Admission::Queued
        } else {
            Admission::Full(delivery)
        };
        if self.is_full(load) {
            load.closed = true;
        }
        admission
    }

    /// Counts an attempt of `endpoint_id` finishing; with `continue_queue`, hands out the
    /// endpoint's next queued delivery to run in its place.
    pub fn finish(&self, endpoint_id: &str, continue_queue: bool) -> Finished {
        let mut endpoints = self.endpoints();
        let Some(load) = endpoints.get_mut(endpoint_id) else {
            return Finished {
                next: None,
                reopened: false,
            };
        };
        let next = if continue_queue {
            load.queued.pop_front()
        } else {
            None
        };
        if next.is_none() {
            load.running = load.running.saturating_sub(1);
        }
        let reopened = load.closed && load.queued.len() <= self.per_endpoint / 2;
        if reopened {
            load.closed = false;
        }
        if load.running == 0 && load.queued.is_empty() {
            endpoints.remove(endpoint_id);
        }
        Finished { next, reopened }
    }

    /// Empties every queue (at shutdown: their leases are given back with the rest).
    pub fn drain_queues(&self) -> usize {
        self.endpoints()
            .values_mut()
            .map(|load| std::mem::take(&mut load.queued).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventTypeName;
    use crate::store::TriggerType;

    fn delivery(endpoint: &str, n: usize) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: format!("dlv_{n}").into(),
            lease_token: "lease".into(),
            msg_id: format!("msg_{n}").into(),
            app_id: "app_1".into(),
            endpoint_id: endpoint.into(),
            event_type: EventTypeName::from_stored("payment.created".into()),
            url: "http://127.0.0.1:1/".into(),
            payload: "{}".into(),
            secrets: Vec::new(),
            headers: Default::default(),
            attempts_made: 0,
            msg_created_at: 0,
            trigger_type: TriggerType::Scheduled,
        }
    }

    fn started(admission: Admission) -> bool {
        matches!(admission, Admission::Start(_))
    }

    #[test]
    fn an_endpoint_runs_its_bound_queues_as_many_and_refuses_the_rest() {
        let in_flight = InFlight::new(2);
        assert!(started(in_flight.admit(delivery("ep_a", 1))));
        assert!(started(in_flight.admit(delivery("ep_a", 2))));
        assert!(matches!(
            in_flight.admit(delivery("ep_a", 3)),
            Admission::Queued
        ));
        assert!(in_flight.busy().is_empty(), "the queue still has room");
        assert!(matches!(
            in_flight.admit(delivery("ep_a", 4)),
            Admission::Queued
        ));
        assert_eq!(in_flight.busy(), vec![EndpointId::from("ep_a")]);
        assert!(matches!(
            in_flight.admit(delivery("ep_a", 5)),
            Admission::Full(_)
        ));
        assert!(started(in_flight.admit(delivery("ep_b", 6))), "others run");
    }

    #[test]
    fn a_finished_attempt_hands_over_to_the_queue_in_order() {
        let in_flight = InFlight::new(1);
        assert!(started(in_flight.admit(delivery("ep_a", 1))));
        in_flight.admit(delivery("ep_a", 2));
        let finished = in_flight.finish("ep_a", true);
        assert_eq!(finished.next.expect("next").delivery_id, "dlv_2");
        assert!(finished.reopened, "the queue had been full");
        let finished = in_flight.finish("ep_a", true);
        assert!(finished.next.is_none());
        assert!(!finished.reopened);
        assert!(started(in_flight.admit(delivery("ep_a", 3))), "it is idle");
    }

    #[test]
    fn a_full_endpoint_stays_passed_over_until_its_queue_is_down_to_half() {
        let in_flight = InFlight::new(4);
        for n in 0..8 {
            in_flight.admit(delivery("ep_a", n));
        }
        assert_eq!(in_flight.busy(), vec![EndpointId::from("ep_a")]);
        assert!(!in_flight.finish("ep_a", true).reopened, "3 queued");
        assert_eq!(in_flight.busy().len(), 1, "one free place is not reopened");
        assert!(in_flight.finish("ep_a", true).reopened, "2 queued: half");
        assert!(in_flight.busy().is_empty());
        let room = in_flight.room();
        assert_eq!(room.each, 8, "an idle endpoint: its bound and its queue");
        assert_eq!(room.limited, vec![(EndpointId::from("ep_a"), 2)]);
    }

    #[test]
    fn an_endpoint_below_its_bound_is_not_limited() {
        let in_flight = InFlight::new(4);
        in_flight.admit(delivery("ep_a", 1));
        assert!(in_flight.room().limited.is_empty());
        for n in 2..=4 {
            in_flight.admit(delivery("ep_a", n));
        }
        assert_eq!(
            in_flight.room().limited,
            vec![(EndpointId::from("ep_a"), 4)]
        );
    }

    #[test]
    fn stopping_leaves_the_queue_for_the_lease_release() {
        let in_flight = InFlight::new(1);
        in_flight.admit(delivery("ep_a", 1));
        in_flight.admit(delivery("ep_a", 2));
        assert!(in_flight.finish("ep_a", false).next.is_none());
        assert_eq!(in_flight.drain_queues(), 1);
        assert!(in_flight.finish("ep_unknown", true).next.is_none());
    }
}
