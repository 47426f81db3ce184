//! The ~300-byte payment payload that every scenario publishes.

use serde::Serialize;

pub const EVENT_TYPE: &str = "payment.captured";

/// Fixed filler chosen so that a typical serialized payload is ~300 bytes;
/// the exact size moves by a few bytes with the number of digits in the stamps.
const DESCRIPTION: &str = "Card checkout, web shop order (bench)";

/// Body of `POST /api/v1/app/{app_id}/msg`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn<'a> {
    pub event_type: &'a str,
    pub payload: Payload,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    event: &'static str,
    timestamp: &'static str,
    /// Microseconds on the bench `Clock`, stamped right before the POST.
    pub bench_sent_us: u64,
    /// Unique per published message; the receiver groups arrivals by it.
    pub bench_seq: u64,
    data: PaymentData,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentData {
    payment_id: String,
    status: &'static str,
    amount: u64,
    currency: &'static str,
    order_id: String,
    customer: String,
    description: &'static str,
}

impl Payload {
    pub fn new(seq: u64, sent_us: u64) -> Self {
        Self {
            event: EVENT_TYPE,
            timestamp: "2026-11-29T10:00:00Z",
            bench_sent_us: sent_us,
            bench_seq: seq,
            data: PaymentData {
                payment_id: format!("pay_{seq:012}"),
                status: "captured",
                amount: 4999,
                currency: "EUR",
                order_id: format!("ord_{seq:012}"),
                customer: format!("cus_{:06}", seq % 1000),
                description: DESCRIPTION,
            },
        }
    }
}

/// Serialized request body for publishing message `seq` stamped at `sent_us`.
pub fn message_body(seq: u64, sent_us: u64) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&MessageIn {
        event_type: EVENT_TYPE,
        payload: Payload::new(seq, sent_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_about_300_bytes() {
        for (seq, sent_us) in [(0, 0), (12_345, 3_000_000), (999_999, 60_000_000)] {
            let len = serde_json::to_vec(&Payload::new(seq, sent_us))
                .expect("payload serializes")
                .len();
            assert!((285..=315).contains(&len), "payload is {len} bytes");
        }
    }

    #[test]
    fn payload_carries_bench_fields() {
        let body = message_body(7, 42).expect("body serializes");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("valid json");
        assert_eq!(v["eventType"], EVENT_TYPE);
        assert_eq!(v["payload"]["benchSentUs"], 42);
        assert_eq!(v["payload"]["benchSeq"], 7);
    }
}
