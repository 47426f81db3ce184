//! What a claim does with the deliveries it has just leased, as pure functions. Each backend
//! leases due rows with its own SQL, loads their endpoints and messages, and asks [`sort`]
//! which to hand to the worker and which to cancel; then [`super::throttle`] says which of the
//! kept ones a throttled endpoint may send now.

use std::collections::HashMap;

use super::{ClaimedDelivery, Endpoint, Lease, Message, TriggerType};
use crate::domain::{DeliveryId, EndpointId, MessageId};

/// A delivery row a claim has just leased, before its endpoint and message are looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedRow {
    pub delivery_id: DeliveryId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    /// Attempts already made.
    pub attempts: u32,
    pub trigger: TriggerType,
}

/// What a claim does with its leased rows.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Deliveries to hand to the worker (before throttling), in claim order.
    pub kept: Vec<ClaimedDelivery>,
    /// Deliveries to cancel under the lease: their endpoint is disabled.
    pub cancel: Vec<DeliveryId>,
    /// The rate of each throttled endpoint among them (messages per second).
    pub rates: HashMap<EndpointId, u32>,
}

/// Sorts the rows a claim leased under `lease`, given the endpoints and messages that still
/// exist (keyed by id):
/// - a row whose endpoint or message was deleted meanwhile is dropped: the deletion removes
///   the row too;
/// - a row of a disabled endpoint is cancelled, never attempted: disabling cancels pending
///   deliveries, but a resend, or a row another transaction held at that moment, may have come
///   due since;
/// - every other row is kept, signed with the secrets valid at the lease's start.
pub fn sort(
    rows: Vec<LeasedRow>,
    lease: &Lease,
    endpoints: &HashMap<EndpointId, Endpoint>,
    messages: &HashMap<MessageId, Message>,
) -> Sorted {
    let mut sorted = Sorted::default();
    for row in rows {
        let (Some(endpoint), Some(message)) =
            (endpoints.get(&row.endpoint_id), messages.get(&row.msg_id))
        else {
            continue;
        };
        if endpoint.disabled {
            sorted.cancel.push(row.delivery_id);
            continue;
        }
        let mut delivery =
            ClaimedDelivery::new(row.delivery_id, lease, message, endpoint, row.attempts);
        delivery.trigger_type = row.trigger;
        sorted.kept.push(delivery);
    }
    sorted.rates = endpoints
        .values()
        .filter_map(|e| Some((e.id.clone(), u32::try_from(e.throttle_rate?).ok()?)))
        .collect();
    sorted
}

/// The distinct ids among `ids`, in first-seen order: what a backend loads once per claim.
pub fn distinct<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for id in ids {
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use hookd_signing::Secret;

    use super::*;
    use crate::domain::EventTypeName;

    fn endpoint(id: &str, disabled: bool, throttle_rate: Option<i64>) -> Endpoint {
        Endpoint {
            id: id.into(),
            app_id: "app_1".into(),
            uid: None,
            url: format!("https://example.com/{id}"),
            description: String::new(),
            disabled,
            event_types: None,
            channels: None,
            throttle_rate,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            secret: Secret::generate().into(),
            retiring_secrets: Vec::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn message(id: &str) -> Message {
        Message {
            id: id.into(),
            app_id: "app_1".into(),
            event_type: EventTypeName::from_stored("invoice.paid".into()),
            event_id: None,
            channels: None,
            payload: Arc::from("{}"),
            ordering_key: None,
            created_at: 0,
            payload_expires_at: i64::MAX,
            payload_expired: false,
        }
    }

    fn row(delivery_id: &str, msg_id: &str, endpoint_id: &str) -> LeasedRow {
        LeasedRow {
            delivery_id: delivery_id.into(),
            msg_id: msg_id.into(),
            endpoint_id: endpoint_id.into(),
            attempts: 2,
            trigger: TriggerType::Manual,
        }
    }

    fn lease() -> Lease {
        Lease::new("worker", "token", 10, 20)
    }

    fn by_id<K: std::hash::Hash + Eq, T>(items: Vec<T>, id: impl Fn(&T) -> K) -> HashMap<K, T> {
        items.into_iter().map(|item| (id(&item), item)).collect()
    }

    #[test]
    fn a_claim_keeps_skips_and_cancels() {
        let endpoints = by_id(
            vec![
                endpoint("ep_live", false, None),
                endpoint("ep_off", true, None),
                endpoint("ep_slow", false, Some(5)),
            ],
            |e| e.id.clone(),
        );
        let messages = by_id(vec![message("msg_1"), message("msg_2")], |m| m.id.clone());
        let rows = vec![
            row("dlv_1", "msg_1", "ep_live"),
            row("dlv_2", "msg_1", "ep_gone"),
            row("dlv_3", "msg_1", "ep_off"),
            row("dlv_4", "msg_deleted", "ep_live"),
            row("dlv_5", "msg_2", "ep_slow"),
        ];
        let sorted = sort(rows, &lease(), &endpoints, &messages);
        let kept: Vec<&str> = sorted.kept.iter().map(|d| d.delivery_id.as_str()).collect();
        assert_eq!(kept, ["dlv_1", "dlv_5"]);
        assert_eq!(sorted.cancel, ["dlv_3"]);
        assert_eq!(
            sorted.rates,
            HashMap::from([(EndpointId::from("ep_slow"), 5)])
        );
        let first = &sorted.kept[0];
        assert_eq!(first.lease_token, "token");
        assert_eq!(first.attempts_made, 2);
        assert_eq!(first.trigger_type, TriggerType::Manual);
    }

    #[test]
    fn ids_are_loaded_once_each() {
        assert_eq!(distinct(["b", "a", "b", "c", "a"]), ["b", "a", "c"]);
    }
}
