//! Per-endpoint concurrency bounds, so one slow or dead endpoint cannot take every slot.
//!
//! The worker counts its attempts in flight per endpoint. An endpoint at its bound is named in
//! every lease the worker takes ([`crate::store::Lease::skip_endpoints`]): claiming passes over
//! its due deliveries and ingest does not hand them over, so other endpoints' deliveries keep
//! flowing while it is busy. When one of its attempts finishes, the worker is woken to claim.

use std::collections::HashMap;
use std::sync::Mutex;

/// Attempts in flight per endpoint on this worker.
pub struct InFlight {
    per_endpoint: usize,
    counts: Mutex<HashMap<String, usize>>,
}

impl InFlight {
    pub fn new(per_endpoint: usize) -> Self {
        Self {
            per_endpoint: per_endpoint.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Counts stay meaningful even if a holder panicked.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The endpoints at their bound.
    pub fn busy(&self) -> Vec<String> {
        self.counts()
            .iter()
            .filter(|(_, &n)| n >= self.per_endpoint)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Counts an attempt starting, unless the endpoint is at its bound; false then.
    pub fn try_start(&self, endpoint_id: &str) -> bool {
        let mut counts = self.counts();
        let n = counts.entry(endpoint_id.to_string()).or_insert(0);
        if *n >= self.per_endpoint {
            return false;
        }
        *n += 1;
        true
    }

    /// Counts an attempt finishing; true when the endpoint was at its bound (its waiting
    /// deliveries may now be claimed).
    pub fn finish(&self, endpoint_id: &str) -> bool {
        let mut counts = self.counts();
        let Some(n) = counts.get_mut(endpoint_id) else {
            return false;
        };
        let was_busy = *n >= self.per_endpoint;
        *n -= 1;
        if *n == 0 {
            counts.remove(endpoint_id);
        }
        was_busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_busy_at_its_bound_only() {
        let in_flight = InFlight::new(2);
        assert!(in_flight.try_start("ep_a"));
        assert!(in_flight.busy().is_empty());
        assert!(in_flight.try_start("ep_a"));
        assert!(
            !in_flight.try_start("ep_a"),
            "a third would exceed the bound"
        );
        assert!(in_flight.try_start("ep_b"));
        assert_eq!(in_flight.busy(), vec!["ep_a".to_string()]);
        assert!(in_flight.finish("ep_a"));
        assert!(in_flight.busy().is_empty());
        assert!(!in_flight.finish("ep_b"));
        assert!(!in_flight.finish("ep_unknown"));
    }
}
