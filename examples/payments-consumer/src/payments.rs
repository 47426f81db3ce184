//! The payment domain, free of I/O: what an event says, the status machine, and the decision
//! that keeps late and out-of-order events from undoing newer news.
//!
//! # The status machine
//!
//! ```text
//!   created ──► authorized ──► captured ──► refunded
//!      │            │
//!      └────────────┴──► failed
//! ```
//!
//! - **authorized**: the customer's bank reserved the money. Nothing is earned yet: an
//!   authorization can still be voided or expire.
//! - **captured**: the money moved to the merchant. This is the *completed* payment, the moment
//!   a membership is paid for, so it is the one that activates the membership.
//! - **refunded**: the money went back; the membership ends.
//! - **failed**: the payment will not complete; the app raises an alert (someone should contact
//!   the customer). A new attempt by the customer is a new payment id.
//!
//! Moves go forward only and may skip states: an app may not subscribe to every event type, and
//! an immediate charge goes `created → captured`. `refunded` and `failed` are final.
//!
//! # Ordering
//!
//! Webhooks arrive late, twice, or out of order (a retry of an old event after a newer one got
//! through). Each event carries its own `timestamp`, when it happened at the gateway, and the
//! app keeps, per payment, the timestamp of the event that set the stored state. An update is
//! applied only if it is newer and the move is allowed (see [`decide`]); equal timestamps, common
//! at one-second precision, are ordered by the machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The statuses of a payment (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Authorized,
    Captured,
    Refunded,
    Failed,
}

impl Status {
    /// Every status, in the machine's order.
    pub const ALL: [Status; 5] = [
        Status::Created,
        Status::Authorized,
        Status::Captured,
        Status::Refunded,
        Status::Failed,
    ];

    /// The name stored in the database and sent in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Authorized => "authorized",
            Status::Captured => "captured",
            Status::Refunded => "refunded",
            Status::Failed => "failed",
        }
    }

    /// The status of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Whether the machine allows moving from `self` to `next`, directly or by skipping states.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        match self {
            Created => next != Created,
            Authorized => matches!(next, Captured | Refunded | Failed),
            Captured => next == Refunded,
            Refunded | Failed => false,
        }
    }
}

/// An event as the platform sends it: `{"event": "payment.captured", "timestamp":
/// "2026-11-29T10:00:00Z", "data": {…}}`. The data is kept as JSON until the type is known, so
/// that events this app does not handle are acknowledged rather than refused.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// The event type, such as `payment.captured`.
    pub event: String,
    /// When the event happened at the gateway (RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The event type's data.
    pub data: serde_json::Value,
}

/// The data of every `payment.*` event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentData {
    payment_id: String,
    #[serde(default)]
    status: Option<Status>,
    amount: i64,
    currency: String,
    order_id: String,
}

/// What one payment event says: payment `payment_id` was in `status` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentUpdate {
    pub payment_id: String,
    pub status: Status,
    /// In the currency's minor unit (cents).
    pub amount: i64,
    pub currency: String,
    pub order_id: String,
    pub at: DateTime<Utc>,
}

/// Why an authentic payment event cannot be used. The sender gets a 400 with this reason.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("invalid payment data: {0}")]
    Data(#[from] serde_json::Error),
    #[error("payment.updated must carry data.status")]
    MissingStatus,
    #[error("data.status {status} contradicts the event type {event}")]
    Contradiction { event: String, status: &'static str },
}

impl Event {
    /// The payment update this event carries, or `None` for an event type this app does not
    /// handle. `payment.updated` takes its status from `data.status`; the other payment events
    /// are named after theirs.
    pub fn payment_update(&self) -> Result<Option<PaymentUpdate>, EventError> {
        let named = match self.event.as_str() {
            "payment.updated" => None,
            "payment.created" => Some(Status::Created),
            "payment.authorized" => Some(Status::Authorized),
            "payment.captured" => Some(Status::Captured),
            "payment.refunded" => Some(Status::Refunded),
            "payment.failed" => Some(Status::Failed),
            _ => return Ok(None),
        };
        let data = PaymentData::deserialize(&self.data)?;
        let status = match (named, data.status) {
            (Some(named), Some(given)) if named != given => {
                return Err(EventError::Contradiction {
                    event: self.event.clone(),
                    status: given.as_str(),
                })
            }
            (Some(status), _) | (None, Some(status)) => status,
            (None, None) => return Err(EventError::MissingStatus),
        };
        Ok(Some(PaymentUpdate {
            payment_id: data.payment_id,
            status,
            amount: data.amount,
            currency: data.currency,
            order_id: data.order_id,
            at: self.timestamp,
        }))
    }
}

/// What the app knows of a payment: its status and the timestamp of the event that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub status: Status,
    pub at: DateTime<Utc>,
}

/// What to do with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The first news of this payment, or newer news: store it.
    Apply,
    /// Older than what is stored, or as old and not ahead of it: ignore it. This is how a late
    /// retry of an old event is kept from overwriting newer state.
    Stale,
    /// Newer, but a move the machine forbids (out of a final state, or backwards): ignore it
    /// and log it for a person, since the gateway should never send it.
    Refused,
}

/// Decides whether `update` may replace what is `known` (see the module's "Ordering").
pub fn decide(known: Option<Known>, update: &PaymentUpdate) -> Decision {
    let Some(known) = known else {
        return Decision::Apply;
    };
    if update.at < known.at {
        return Decision::Stale;
    }
    if update.status == known.status {
        // Newer details of the same status (a `payment.updated` with a new amount).
        return if update.at > known.at {
            Decision::Apply
        } else {
            Decision::Stale
        };
    }
    if known.status.can_become(update.status) {
        Decision::Apply
    } else if update.at == known.at {
        Decision::Stale
    } else {
        Decision::Refused
    }
}

/// The side effect of an applied update, beyond storing the payment's new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The payment completed: the order's membership starts.
    ActivateMembership,
    /// The payment was refunded: the order's membership ends.
    EndMembership,
    /// The payment failed: record an alert for a person to follow up.
    RaiseAlert,
    None,
}

/// The effect of moving from `before` (nothing, for a payment first seen) to `after`. Effects
/// run on entering a status, never twice for the same one.
pub fn effect(before: Option<Status>, after: Status) -> Effect {
    if before == Some(after) {
        return Effect::None;
    }
    match after {
        Status::Captured => Effect::ActivateMembership,
        Status::Refunded => Effect::EndMembership,
        Status::Failed => Effect::RaiseAlert,
        Status::Created | Status::Authorized => Effect::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).expect("valid time")
    }

    fn update(status: Status, second: i64) -> PaymentUpdate {
        PaymentUpdate {
            payment_id: "pay_1".into(),
            status,
            amount: 4999,
            currency: "EUR".into(),
            order_id: "ord_1".into(),
            at: at(second),
        }
    }

    fn known(status: Status, second: i64) -> Option<Known> {
        Some(Known {
            status,
            at: at(second),
        })
    }

    #[test]
    fn the_machine_moves_forward_only() {
        use Status::*;
        assert!(Created.can_become(Captured));
        assert!(Authorized.can_become(Failed));
        assert!(Captured.can_become(Refunded));
        assert!(!Captured.can_become(Authorized));
        assert!(!Captured.can_become(Failed));
        assert!(!Refunded.can_become(Captured));
        assert!(!Failed.can_become(Captured));
        for status in Status::ALL {
            assert!(!status.can_become(status));
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
    }

    #[test]
    fn decisions() {
        use Status::*;
        assert_eq!(decide(None, &update(Authorized, 0)), Decision::Apply);
        assert_eq!(
            decide(known(Created, 0), &update(Captured, 5)),
            Decision::Apply
        );
        // Same second, ahead in the machine: the later step.
        assert_eq!(
            decide(known(Created, 0), &update(Authorized, 0)),
            Decision::Apply
        );
        // An older event, whatever it says, is stale.
        assert_eq!(
            decide(known(Captured, 5), &update(Authorized, 3)),
            Decision::Stale
        );
        assert_eq!(
            decide(known(Created, 5), &update(Captured, 3)),
            Decision::Stale
        );
        // Same second, behind in the machine, or the very same news: stale.
        assert_eq!(
            decide(known(Captured, 5), &update(Authorized, 5)),
            Decision::Stale
        );
        assert_eq!(
            decide(known(Captured, 5), &update(Captured, 5)),
            Decision::Stale
        );
        // Newer details of the same status apply.
        assert_eq!(
            decide(known(Captured, 5), &update(Captured, 6)),
            Decision::Apply
        );
        // Newer but impossible: refused.
        assert_eq!(
            decide(known(Refunded, 5), &update(Captured, 9)),
            Decision::Refused
        );
    }

    #[test]
    fn effects_run_on_entering_a_status() {
        use Status::*;
        assert_eq!(
            effect(Some(Authorized), Captured),
            Effect::ActivateMembership
        );
        assert_eq!(effect(None, Captured), Effect::ActivateMembership);
        assert_eq!(effect(Some(Captured), Captured), Effect::None);
        assert_eq!(effect(Some(Captured), Refunded), Effect::EndMembership);
        assert_eq!(effect(Some(Created), Failed), Effect::RaiseAlert);
        assert_eq!(effect(None, Authorized), Effect::None);
    }

    #[test]
    fn events_name_their_status() {
        let event: Event = serde_json::from_str(
            r#"{"event": "payment.captured", "timestamp": "2026-11-29T10:00:00Z",
                "data": {"paymentId": "pay_1", "status": "captured", "amount": 4999,
                         "currency": "EUR", "orderId": "ord_1"}}"#,
        )
        .expect("the seed's shape");
        let update = event
            .payment_update()
            .expect("valid")
            .expect("a payment event");
        assert_eq!(update.status, Status::Captured);
        assert_eq!(update.at.to_rfc3339(), "2026-11-29T10:00:00+00:00");

        let with = |event: &str, status: Option<&str>| Event {
            event: event.into(),
            timestamp: at(0),
            data: serde_json::json!({
                "paymentId": "pay_1", "status": status, "amount": 1,
                "currency": "EUR", "orderId": "ord_1",
            }),
        };
        let status = |e: Event| e.payment_update().map(|u| u.map(|u| u.status));
        assert_eq!(
            status(with("payment.updated", Some("refunded"))).ok(),
            Some(Some(Status::Refunded))
        );
        assert!(matches!(
            status(with("payment.updated", None)),
            Err(EventError::MissingStatus)
        ));
        assert!(matches!(
            status(with("payment.failed", Some("captured"))),
            Err(EventError::Contradiction { .. })
        ));
        assert!(matches!(status(with("invoice.paid", None)), Ok(None)));
        assert!(matches!(
            status(Event {
                data: serde_json::json!({"paymentId": "pay_1"}),
                ..with("payment.created", None)
            }),
            Err(EventError::Data(_))
        ));
    }

    /// A history the gateway could send: a walk along the machine, each step later than the
    /// last or in the same second, with repeated statuses only at later seconds.
    fn history() -> impl Strategy<Value = Vec<PaymentUpdate>> {
        prop::collection::vec((0usize..5, 0i64..3), 1..8).prop_map(|steps| {
            let mut history = vec![update(Status::Created, 0)];
            for (pick, gap) in steps {
                let last = history.last().expect("not empty").clone();
                let next = Status::ALL[pick];
                let allowed = last.status.can_become(next) || (next == last.status && gap > 0);
                if allowed {
                    let mut next = update(next, last.at.timestamp() - 1_800_000_000 + gap);
                    // A new amount at each step, so that stale details would show.
                    next.amount = last.amount + 1;
                    history.push(next);
                }
            }
            history
        })
    }

    proptest! {
        /// Whatever the order of arrival and however many duplicates, the final state is the
        /// gateway's last word, the membership is active exactly when that is `captured`, a
        /// failed payment raises one alert, and nothing the gateway really sent is taken for an
        /// impossible move. (The inbox removes duplicates before `decide`; this shows `decide`
        /// alone would not double an effect either.)
        #[test]
        fn any_arrival_order_ends_in_the_gateway_state(
            (history, arrivals) in history().prop_flat_map(|history| {
                // Every event arrives at least once, some twice or more, in any order.
                let n = history.len();
                let arrivals = prop::collection::vec(0..n, 0..2 * n).prop_flat_map(move |extra| {
                    let mut all: Vec<usize> = (0..n).collect();
                    all.extend(extra);
                    Just(all).prop_shuffle()
                });
                (Just(history), arrivals)
            })
        ) {
            let mut state: Option<Known> = None;
            let mut amount = None;
            let mut membership = None;
            let mut alerts = 0;
            for i in arrivals {
                let update = &history[i];
                let decision = decide(state, update);
                prop_assert_ne!(decision, Decision::Refused);
                if decision == Decision::Apply {
                    match effect(state.map(|k| k.status), update.status) {
                        Effect::ActivateMembership => membership = Some(true),
                        Effect::EndMembership => membership = Some(false),
                        Effect::RaiseAlert => alerts += 1,
                        Effect::None => {}
                    }
                    state = Some(Known { status: update.status, at: update.at });
                    amount = Some(update.amount);
                }
            }
            let last = history.last().expect("not empty");
            prop_assert_eq!(state, Some(Known { status: last.status, at: last.at }));
            prop_assert_eq!(amount, Some(last.amount));
            prop_assert_eq!(membership == Some(true), last.status == Status::Captured);
            prop_assert_eq!(alerts, usize::from(last.status == Status::Failed));
        }
    }
}
