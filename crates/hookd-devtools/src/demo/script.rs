//! The gateway's side of the story: eight payments and the events it posts about them, kept as
//! data so that what the gateway finally said about each payment is a pure function of what it
//! sent.

use payments_consumer::payments::Status;

/// A payment the simulated gateway processes.
pub struct Payment {
    pub id: &'static str,
    pub order_id: &'static str,
    /// In the currency's minor unit (cents).
    pub amount: u64,
    pub currency: &'static str,
}

impl Payment {
    /// `49.00 EUR`.
    pub fn amount_text(&self) -> String {
        format!(
            "{}.{:02} {}",
            self.amount / 100,
            self.amount % 100,
            self.currency
        )
    }
}

/// Indexes into [`PAYMENTS`], named after the customers.
pub const ADA: usize = 0;
pub const GRACE: usize = 1;
pub const LINUS: usize = 2;
pub const MARGARET: usize = 3;
pub const ALAN: usize = 4;
pub const BARBARA: usize = 5;
pub const KEN: usize = 6;
pub const RADIA: usize = 7;

pub const PAYMENTS: [Payment; 8] = [
    payment("pay_ada", "ord_1001", 4900, "EUR"),
    payment("pay_grace", "ord_1002", 12000, "USD"),
    payment("pay_linus", "ord_1003", 1500, "GBP"),
    payment("pay_margaret", "ord_1004", 9900, "EUR"),
    payment("pay_alan", "ord_1005", 2999, "USD"),
    payment("pay_barbara", "ord_1006", 4500, "EUR"),
    payment("pay_ken", "ord_1007", 7500, "USD"),
    payment("pay_radia", "ord_1008", 1999, "GBP"),
];

const fn payment(
    id: &'static str,
    order_id: &'static str,
    amount: u64,
    currency: &'static str,
) -> Payment {
    Payment {
        id,
        order_id,
        amount,
        currency,
    }
}

/// When an event says it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Now, as the gateway posts it.
    Now,
    /// At the moment the payment entered this status: news that was held up on the gateway's
    /// side and is posted late.
    When(Status),
}

/// One step of the story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new act begins: a heading for the person watching.
    Act(&'static str),
    /// The gateway posts a payment event to hookd.
    Post {
        payment: usize,
        event: &'static str,
        status: Status,
        stamp: Stamp,
        /// Shown beside the event, e.g. why a payment failed.
        note: &'static str,
    },
    /// The platform's operator resends the message that reported `status` for `payment`.
    Resend { payment: usize, status: Status },
    /// Someone without the secret posts a fake event straight to the merchant.
    Forge { payment: usize, status: Status },
    /// The merchant's server stops: its port refuses connections.
    MerchantDown,
    /// The merchant's server comes back on the same port.
    MerchantUp,
    /// Nothing happens for this long (milliseconds at the show's pace).
    Pause(u64),
}

fn post(payment: usize, status: Status, note: &'static str) -> Step {
    Step::Post {
        payment,
        event: event_type(status),
        status,
        stamp: Stamp::Now,
        note,
    }
}

fn pause(millis: u64) -> Step {
    Step::Pause(millis)
}

/// The event type that reports entering `status`.
pub fn event_type(status: Status) -> &'static str {
    match status {
        Status::Created => "payment.created",
        Status::Authorized => "payment.authorized",
        Status::Captured => "payment.captured",
        Status::Refunded => "payment.refunded",
        Status::Failed => "payment.failed",
    }
}

/// The story, about 25 seconds of it at the show's pace.
pub fn script() -> Vec<Step> {
    use Status::*;
    vec![
        Step::Act("Act 1 · business as usual"),
        post(ADA, Created, "checkout started"),
        pause(800),
        post(ADA, Authorized, "card authorized"),
        pause(800),
        post(GRACE, Created, "checkout started"),
        pause(800),
        post(ADA, Captured, "money moved"),
        pause(1000),
        post(LINUS, Created, "checkout started"),
        pause(700),
        post(GRACE, Authorized, "card authorized"),
        pause(800),
        post(LINUS, Failed, "card declined"),
        pause(900),
        post(MARGARET, Created, "one-click checkout"),
        pause(600),
        post(MARGARET, Captured, "immediate charge"),
        pause(1000),
        post(GRACE, Captured, "money moved"),
        pause(1000),
        Step::Resend {
            payment: MARGARET,
            status: Captured,
        },
        pause(1100),
        Step::Forge {
            payment: LINUS,
            status: Captured,
        },
        pause(1000),
        post(BARBARA, Created, "checkout started"),
        pause(900),
        Step::Act("Act 2 · the merchant's server goes down"),
        Step::MerchantDown,
        pause(700),
        post(ALAN, Created, "checkout started"),
        pause(1100),
        post(GRACE, Refunded, "customer asked for a refund"),
        pause(1100),
        post(ALAN, Authorized, "card authorized"),
        pause(1100),
        post(BARBARA, Authorized, "card authorized"),
        pause(1100),
        post(ALAN, Captured, "money moved"),
        pause(1300),
        Step::MerchantUp,
        pause(4000),
        Step::Act("Act 3 · late news"),
        post(KEN, Created, "checkout started"),
        pause(800),
        post(BARBARA, Failed, "authorization expired"),
        pause(900),
        post(KEN, Authorized, "awaiting capture"),
        pause(900),
        post(RADIA, Created, "customer left the checkout"),
        pause(900),
        Step::Post {
            payment: ADA,
            event: "payment.updated",
            status: Authorized,
            stamp: Stamp::When(Authorized),
            note: "held up at the gateway, sent late",
        },
        pause(1500),
    ]
}

/// One event the gateway sent, as it sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub payment: usize,
    pub status: Status,
    /// The event's own `timestamp`, unix milliseconds.
    pub at: i64,
    pub msg_id: String,
}

/// The gateway's memory of what it sent, and its clock.
#[derive(Debug, Default)]
pub struct Gateway {
    sent: Vec<Sent>,
    last_stamp: i64,
}

impl Gateway {
    /// The timestamp for a new event. Fresh stamps never repeat (a millisecond apart at
    /// least), so that "the newest event" is never a tie.
    pub fn stamp(&mut self, payment: usize, stamp: Stamp, now: i64) -> i64 {
        match stamp {
            Stamp::Now => {
                self.last_stamp = now.max(self.last_stamp + 1);
                self.last_stamp
            }
            Stamp::When(status) => self
                .sent
                .iter()
                .find(|s| s.payment == payment && s.status == status)
                .map_or(now, |s| s.at),
        }
    }

    pub fn record(&mut self, sent: Sent) {
        self.sent.push(sent);
    }

    /// The message that reported `status` for `payment`, if the gateway sent one.
    pub fn msg_id(&self, payment: usize, status: Status) -> Option<&str> {
        self.sent
            .iter()
            .find(|s| s.payment == payment && s.status == status)
            .map(|s| s.msg_id.as_str())
    }

    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }
}

/// Each payment's state as the gateway last gave it: the status of its newest event by the
/// event's own timestamp (a late event stamped in the past is old news), or `None` if the
/// gateway never mentioned it.
pub fn final_states(sent: &[Sent], payments: usize) -> Vec<Option<Status>> {
    (0..payments)
        .map(|payment| {
            sent.iter()
                .enumerate()
                .filter(|(_, s)| s.payment == payment)
                .max_by_key(|(order, s)| (s.at, *order))
                .map(|(_, s)| s.status)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_story_gives_every_payment_a_fate_the_machine_allows() {
        let mut gateway = Gateway::default();
        let mut fresh: Vec<Vec<Status>> = vec![Vec::new(); PAYMENTS.len()];
        for (n, step) in script().into_iter().enumerate() {
            if let Step::Post {
                payment,
                status,
                stamp,
                ..
            } = step
            {
                match stamp {
                    Stamp::Now => fresh[payment].push(status),
                    Stamp::When(earlier) => {
                        assert!(gateway.msg_id(payment, earlier).is_some(), "step {n}")
                    }
                }
                let at = gateway.stamp(payment, stamp, 1_000);
                gateway.record(Sent {
                    payment,
                    status,
                    at,
                    msg_id: format!("msg_{n}"),
                });
            }
        }
        let states = final_states(gateway.sent(), PAYMENTS.len());
        use Status::*;
        assert_eq!(
            states,
            [Captured, Refunded, Failed, Captured, Captured, Failed, Authorized, Created].map(Some)
        );
        // Each payment's fresh events walk forward along the machine.
        for walk in fresh {
            assert!(walk.windows(2).all(|w| w[0].can_become(w[1])), "{walk:?}");
        }
    }

    #[test]
    fn fresh_stamps_never_repeat_and_late_ones_reuse_the_past() {
        let mut gateway = Gateway::default();
        let first = gateway.stamp(ADA, Stamp::Now, 5_000);
        gateway.record(Sent {
            payment: ADA,
            status: Status::Authorized,
            at: first,
            msg_id: "msg_1".into(),
        });
        let second = gateway.stamp(ADA, Stamp::Now, 5_000);
        assert_eq!((first, second), (5_000, 5_001));
        gateway.record(Sent {
            payment: ADA,
            status: Status::Captured,
            at: second,
            msg_id: "msg_2".into(),
        });
        let late = gateway.stamp(ADA, Stamp::When(Status::Authorized), 9_000);
        assert_eq!(late, first);
        gateway.record(Sent {
            payment: ADA,
            status: Status::Authorized,
            at: late,
            msg_id: "msg_3".into(),
        });
        // The late news was sent last but happened earlier: the capture stands.
        assert_eq!(
            final_states(gateway.sent(), 2),
            vec![Some(Status::Captured), None]
        );
    }

    #[test]
    fn amounts_read_like_money() {
        assert_eq!(PAYMENTS[ADA].amount_text(), "49.00 EUR");
        assert_eq!(PAYMENTS[ALAN].amount_text(), "29.99 USD");
    }
}
