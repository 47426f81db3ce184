//! Properties of verification over generated secrets, ids, timestamps and bodies: what is
//! signed verifies, and any change to what was signed, or a timestamp out of tolerance, fails.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hookd_receiver::{Secret, Verifier, VerifyError};
use proptest::prelude::*;

/// Five minutes: the default tolerance.
const TOLERANCE: i64 = 300;

/// A message signed with a generated key (kept in clear so that a failing case shows it).
#[derive(Debug)]
struct Signed {
    #[expect(dead_code, reason = "read only by Debug, when a case fails")]
    key: Vec<u8>,
    verifier: Verifier,
    secret: Secret,
    id: String,
    timestamp: i64,
    body: Vec<u8>,
}

impl Signed {
    fn signature(&self) -> String {
        self.secret.sign(&self.id, self.timestamp, &self.body)
    }

    /// Verifies with the given parts (the signature is always that of the original), at `now`.
    fn verify(&self, id: &str, timestamp: i64, body: &[u8], now: i64) -> Result<(), VerifyError> {
        let headers = [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", self.signature()),
        ];
        self.verifier.verify_at(&headers, body, now).map(|_| ())
    }
}

fn signed() -> impl Strategy<Value = Signed> {
    (
        prop::collection::vec(any::<u8>(), 24..=64),
        "[A-Za-z0-9_]{1,40}",
        0i64..4_000_000_000,
        prop::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(|(key, id, timestamp, body)| {
            let secret =
                Secret::parse(&format!("whsec_{}", BASE64.encode(&key))).expect("24 to 64 bytes");
            Signed {
                key,
                verifier: Verifier::from_secrets([secret.clone()]).expect("one secret"),
                secret,
                id,
                timestamp,
                body,
            }
        })
}

proptest! {
    #[test]
    fn what_is_signed_verifies(s in signed(), skew in -TOLERANCE..=TOLERANCE) {
        let now = s.timestamp + skew;
        let headers = [
            ("webhook-id", s.id.clone()),
            ("webhook-timestamp", s.timestamp.to_string()),
            ("webhook-signature", s.signature()),
        ];
        let webhook = s.verifier.verify_at(&headers, &s.body, now).expect("verifies");
        prop_assert_eq!(webhook.id, s.id.clone());
        prop_assert_eq!(webhook.timestamp, s.timestamp);
    }

    #[test]
    fn any_changed_body_byte_fails(s in signed(), index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        prop_assume!(!s.body.is_empty());
        let mut body = s.body.clone();
        let at = index.index(body.len());
        body[at] ^= flip;
        prop_assert_eq!(
            s.verify(&s.id, s.timestamp, &body, s.timestamp),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn an_added_or_removed_body_byte_fails(s in signed(), extra in any::<u8>()) {
        let mut longer = s.body.clone();
        longer.push(extra);
        prop_assert_eq!(
            s.verify(&s.id, s.timestamp, &longer, s.timestamp),
            Err(VerifyError::NoMatchingSignature)
        );
        if let Some((_, shorter)) = s.body.split_last() {
            prop_assert_eq!(
                s.verify(&s.id, s.timestamp, shorter, s.timestamp),
                Err(VerifyError::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn any_changed_id_fails(s in signed(), other in "[A-Za-z0-9_]{1,40}") {
        prop_assume!(other != s.id);
        prop_assert_eq!(
            s.verify(&other, s.timestamp, &s.body, s.timestamp),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn any_changed_timestamp_fails(s in signed(), delta in -TOLERANCE..=TOLERANCE) {
        prop_assume!(delta != 0);
        // The clock is set so that the changed timestamp is fresh: only the signature can fail.
        let changed = s.timestamp + delta;
        prop_assert_eq!(
            s.verify(&s.id, changed, &s.body, changed),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn another_secret_fails(s in signed()) {
        let stranger = Verifier::from_secrets([Secret::generate()]).expect("one secret");
        let headers = [
            ("webhook-id", s.id.clone()),
            ("webhook-timestamp", s.timestamp.to_string()),
            ("webhook-signature", s.signature()),
        ];
        prop_assert_eq!(
            stranger.verify_at(&headers, &s.body, s.timestamp).map(|_| ()),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn stale_timestamps_fail(s in signed(), late in (TOLERANCE + 1)..1_000_000_000) {
        prop_assert_eq!(
            s.verify(&s.id, s.timestamp, &s.body, s.timestamp + late),
            Err(VerifyError::TooOld)
        );
    }

    #[test]
    fn future_timestamps_fail(s in signed(), early in (TOLERANCE + 1)..1_000_000_000) {
        prop_assert_eq!(
            s.verify(&s.id, s.timestamp, &s.body, s.timestamp - early),
            Err(VerifyError::TooNew)
        );
    }
}
