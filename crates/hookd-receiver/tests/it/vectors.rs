//! Known answers: the signature scheme as `hookd-signing`'s crate documentation states it
//! (`v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`) and the test vectors of
//! the Standard Webhooks libraries (the `libraries/*/tests` of the standard-webhooks
//! repository), used here as data.

use hookd_receiver::{Verifier, VerifyError};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BARE_SECRET: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1614265330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// Signatures that are well-formed but belong to nothing here.
const STRANGERS: [&str; 4] = [
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ=",
    "v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=",
    "v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=",
];

fn verifier() -> Verifier {
    Verifier::new([SECRET]).expect("valid secret")
}

/// Verifies the known message with the given signature header, `offset` seconds after it was
/// signed.
fn check(signature: &str, offset: i64) -> Result<(), VerifyError> {
    let headers = [
        ("webhook-id", ID),
        ("webhook-timestamp", &TS.to_string()),
        ("webhook-signature", signature),
    ];
    verifier()
        .verify_at(&headers, BODY, TS + offset)
        .map(|_| ())
}

#[test]
fn the_spec_known_answer_verifies() {
    let webhook = verifier()
        .verify_at(
            &[
                ("webhook-id", ID),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", SIGNATURE),
            ],
            BODY,
            TS,
        )
        .expect("the known answer verifies");
    assert_eq!(webhook.id, ID);
    assert_eq!(webhook.timestamp, TS);
    // And the signing crate produces it.
    let secret = hookd_receiver::Secret::parse(SECRET).expect("valid secret");
    assert_eq!(secret.sign(ID, TS, BODY), SIGNATURE);
}

#[test]
fn the_rust_library_known_answer_verifies() {
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    let ts = 1649367553;
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    let verifier = Verifier::new([secret]).expect("valid secret");
    let headers = |signature: &str| {
        vec![
            ("webhook-id".to_owned(), id.to_owned()),
            ("webhook-timestamp".to_owned(), ts.to_string()),
            ("webhook-signature".to_owned(), signature.to_owned()),
        ]
    };
    assert!(verifier.verify_at(&headers(expected), body, ts).is_ok());
    assert_eq!(
        verifier.verify_at(
            &headers("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU="),
            body,
            ts
        ),
        Err(VerifyError::NoMatchingSignature)
    );
    let with_strangers = format!(
        "{} {} {expected} {}",
        STRANGERS[1], STRANGERS[2], STRANGERS[3]
    );
    assert!(verifier
        .verify_at(&headers(&with_strangers), body, ts)
        .is_ok());
    let only_strangers = STRANGERS[1..].join(" ");
    assert_eq!(
        verifier.verify_at(&headers(&only_strangers), body, ts),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn one_valid_signature_among_others_and_other_versions_suffices() {
    let header = format!(
        "{} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SIGNATURE} {}",
        STRANGERS[0], STRANGERS[0]
    );
    assert_eq!(check(&header, 0), Ok(()));
    // Asymmetric signatures (`v1a`) are skipped, not mistaken for `v1`.
    assert_eq!(check(&format!("v1a,abc {SIGNATURE}"), 0), Ok(()));
}

#[test]
fn invalid_signatures_are_refused() {
    for signature in [
        // One character changed.
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
        // Not base64 of a MAC.
        "v1,dawfeoifkpqwoekfpqoekf",
        // Truncated.
        &SIGNATURE[..8],
        "v1,",
        // Right MAC, wrong version.
        &SIGNATURE.replace("v1,", "v2,"),
        STRANGERS[0],
        "",
    ] {
        assert_eq!(
            check(signature, 0),
            Err(VerifyError::NoMatchingSignature),
            "{signature:?}"
        );
    }
}

#[test]
fn missing_headers_are_named() {
    let ts = TS.to_string();
    let full = [
        ("webhook-id", ID),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", SIGNATURE),
    ];
    for (missing, expected) in [
        (0, "webhook-id"),
        (1, "webhook-timestamp"),
        (2, "webhook-signature"),
    ] {
        let headers: Vec<_> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, pair)| *pair)
            .collect();
        assert_eq!(
            verifier().verify_at(&headers, BODY, TS),
            Err(VerifyError::MissingHeader(expected))
        );
    }
}

#[test]
fn a_timestamp_that_is_not_a_number_is_refused() {
    let headers = [
        ("webhook-id", ID),
        ("webhook-timestamp", "hello"),
        ("webhook-signature", SIGNATURE),
    ];
    assert_eq!(
        verifier().verify_at(&headers, BODY, TS),
        Err(VerifyError::BadTimestamp)
    );
}

#[test]
fn timestamps_beyond_five_minutes_either_way_are_refused() {
    assert_eq!(check(SIGNATURE, 300), Ok(()));
    assert_eq!(check(SIGNATURE, -300), Ok(()));
    assert_eq!(check(SIGNATURE, 301), Err(VerifyError::TooOld));
    assert_eq!(check(SIGNATURE, -301), Err(VerifyError::TooNew));
}

#[test]
fn a_timestamp_outside_the_signature_fails_even_with_a_wide_tolerance() {
    // A signature made now, sent with a timestamp of 2000-01-01: the tolerance is no defence
    // here, the signature is.
    let verifier = verifier().with_tolerance(std::time::Duration::from_secs(u64::MAX));
    let headers = [
        ("webhook-id", ID),
        ("webhook-timestamp", "946684800"),
        ("webhook-signature", SIGNATURE),
    ];
    assert_eq!(
        verifier.verify_at(&headers, BODY, TS),
        Err(VerifyError::NoMatchingSignature)
    );
}

#[test]
fn secrets_verify_with_and_without_prefix() {
    let headers = [
        ("webhook-id", ID),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", SIGNATURE),
    ];
    for secret in [SECRET, BARE_SECRET] {
        let verifier = Verifier::new([secret]).expect("valid secret");
        assert!(verifier.verify_at(&headers, BODY, TS).is_ok(), "{secret}");
    }
}

#[test]
fn svix_headers_verify_too() {
    let headers = [
        ("svix-id", ID),
        ("svix-timestamp", "1614265330"),
        ("svix-signature", SIGNATURE),
    ];
    assert!(verifier().verify_at(&headers, BODY, TS).is_ok());
    // Half a scheme is missing a header, not a mix of both.
    let mixed = [
        ("svix-id", ID),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", SIGNATURE),
    ];
    assert_eq!(
        verifier().verify_at(&mixed, BODY, TS),
        Err(VerifyError::MissingHeader("svix-timestamp"))
    );
}

#[test]
fn any_of_several_secrets_verifies() {
    let old = hookd_receiver::Secret::generate().expose();
    let verifier = Verifier::new([old.as_str(), SECRET]).expect("valid secrets");
    let headers = [
        ("webhook-id", ID),
        ("webhook-timestamp", "1614265330"),
        ("webhook-signature", SIGNATURE),
    ];
    assert!(verifier.verify_at(&headers, BODY, TS).is_ok());
}
