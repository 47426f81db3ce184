//! Parsing secrets and checking signature headers from untrusted input never panics and never
//! accepts what was not signed.

use hookd_signing::Secret;
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_secret_text_parses_or_is_refused(text in "(whsec_)?\\PC{0,100}") {
        if let Ok(secret) = Secret::parse(&text) {
            prop_assert_eq!(Secret::parse(&secret.expose()), Ok(secret));
        }
    }

    #[test]
    fn arbitrary_signatures_never_verify(signature in "(v1,)?\\PC{0,120}", body in any::<Vec<u8>>()) {
        let secret = Secret::generate();
        prop_assert!(!secret.verify("msg_1", 1_700_000_000, &body, &signature));
    }

    #[test]
    fn a_signature_verifies_only_its_own_delivery(body in any::<Vec<u8>>(), flip in any::<usize>(), ts in 0i64..4_000_000_000) {
        let secret = Secret::generate();
        let signature = secret.sign("msg_1", ts, &body);
        prop_assert!(secret.verify("msg_1", ts, &body, &signature));
        prop_assert!(!secret.verify("msg_2", ts, &body, &signature));
        prop_assert!(!secret.verify("msg_1", ts + 1, &body, &signature));
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip % changed.len();
            changed[i] ^= 0x01;
            prop_assert!(!secret.verify("msg_1", ts, &changed, &signature));
        }
    }
}
