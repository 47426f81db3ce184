//! Standard Webhooks signing, shared by the hookd server and its receiver kit.
//!
//! A signature is `v1,` followed by the base64 of HMAC-SHA256 over `"{id}.{timestamp}.{body}"`,
//! keyed with the bytes that follow `whsec_` in the secret; [`asymmetric`] has the `v1a`
//! (Ed25519) form. The functions here are pure so that
//! they can be tested against known answers and used anywhere without a runtime.

pub mod asymmetric;
mod endpoint_key;

pub use endpoint_key::{EndpointKey, EndpointKeyError, Scheme};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix every symmetric endpoint secret carries.
pub const SECRET_PREFIX: &str = "whsec_";
/// Smallest and largest accepted key sizes in bytes (Svix accepts 24 to 64).
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;
/// Size of the keys hookd generates.
pub const GENERATED_KEY_BYTES: usize = 32;

/// Why a secret could not be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret must start with `whsec_`")]
    MissingPrefix,
    #[error("the secret is not valid base64 after `whsec_`")]
    NotBase64,
    #[error("the secret must hold between 24 and 64 bytes")]
    BadLength,
}

/// An endpoint's symmetric signing key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Secret {
    /// A fresh random secret of [`GENERATED_KEY_BYTES`] bytes.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self { key }
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Self { key })
    }

    /// The `whsec_…` form shown to the endpoint's owner.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    /// The `v1,<base64>` signature of one delivery.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", BASE64.encode(self.mac(msg_id, timestamp, body)))
    }

    /// Checks one `v1,<base64>` signature in constant time.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
        let Some(encoded) = signature.strip_prefix("v1,") else {
            return false;
        };
        let Ok(expected) = BASE64.decode(encoded) else {
            return false;
        };
        let mut mac = self.keyed();
        feed(&mut mac, msg_id, timestamp, body);
        mac.verify_slice(&expected).is_ok()
    }

    /// Checks a whole `webhook-signature` header: true when any of its space-separated `v1,`
    /// entries is this secret's signature. Entries of other versions (such as the asymmetric
    /// `v1a,`) and malformed entries are skipped, as Standard Webhooks asks. The MAC is
    /// computed once and compared with each candidate in constant time, so a header stuffed
    /// with entries costs one hash of the body, not one per entry.
    pub fn verify_header(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let mut mac = self.keyed();
        feed(&mut mac, msg_id, timestamp, body);
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .any(|candidate| mac.clone().verify_slice(&candidate).is_ok())
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = self.keyed();
        feed(&mut mac, msg_id, timestamp, body);
        mac.finalize().into_bytes().to_vec()
    }

    fn keyed(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes keys of any size")
    }
}

fn feed(mac: &mut Hmac<Sha256>, msg_id: &str, timestamp: i64, body: &[u8]) {
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
}

/// Anything that signs a delivery: a symmetric secret, an Ed25519 key, an endpoint's key.
pub trait Sign {
    /// The `webhook-signature` entry (`v1,…` or `v1a,…`) of one delivery.
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String;
}

impl Sign for Secret {
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        Secret::sign(self, msg_id, timestamp, body)
    }
}

impl Sign for asymmetric::SigningKey {
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        asymmetric::SigningKey::sign(self, msg_id, timestamp, body)
    }
}

/// The `webhook-signature` header value: one signature per key, space-separated.
pub fn signature_header<'a, K: Sign + 'a>(
    secrets: impl IntoIterator<Item = &'a K>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|secret| secret.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const KNOWN_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const KNOWN_TS: i64 = 1614265330;
    const KNOWN_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const KNOWN_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn known_answer() {
        let secret = Secret::parse(KNOWN_SECRET).expect("valid secret");
        assert_eq!(secret.sign(KNOWN_ID, KNOWN_TS, KNOWN_BODY), KNOWN_SIGNATURE);
        assert!(secret.verify(KNOWN_ID, KNOWN_TS, KNOWN_BODY, KNOWN_SIGNATURE));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let secret = Secret::parse(KNOWN_SECRET).expect("valid secret");
        assert!(!secret.verify(KNOWN_ID, KNOWN_TS + 1, KNOWN_BODY, KNOWN_SIGNATURE));
        assert!(!secret.verify("msg_other", KNOWN_TS, KNOWN_BODY, KNOWN_SIGNATURE));
        assert!(!secret.verify(
            KNOWN_ID,
            KNOWN_TS,
            br#"{"test": 2432232315}"#,
            KNOWN_SIGNATURE
        ));
        assert!(!secret.verify(KNOWN_ID, KNOWN_TS, KNOWN_BODY, "v2,abc"));
    }

    #[test]
    fn generated_secrets_round_trip() {
        let secret = Secret::generate();
        let text = secret.expose();
        assert!(text.starts_with(SECRET_PREFIX));
        assert_eq!(Secret::parse(&text), Ok(secret));
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert_eq!(
            Secret::parse("MfKQ9r8GKYqrTwjU"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_YWJj"), Err(SecretError::BadLength));
    }

    #[test]
    fn header_verification_finds_the_matching_entry() {
        let secret = Secret::parse(KNOWN_SECRET).expect("valid secret");
        let other = Secret::generate().sign(KNOWN_ID, KNOWN_TS, KNOWN_BODY);
        let check = |header: &str| secret.verify_header(KNOWN_ID, KNOWN_TS, KNOWN_BODY, header);
        assert!(check(KNOWN_SIGNATURE));
        assert!(check(&format!("{other} v1a,abc v2,xyz {KNOWN_SIGNATURE}")));
        // Unknown versions, bad base64, empty entries and truncated signatures never match.
        assert!(!check(&other));
        assert!(!check(""));
        assert!(!check("v1,"));
        assert!(!check("v1,!!!"));
        assert!(!check(&KNOWN_SIGNATURE.replace("v1,", "v1a,")));
        assert!(!check(&KNOWN_SIGNATURE[..20]));
        assert!(!secret.verify_header(KNOWN_ID, KNOWN_TS + 1, KNOWN_BODY, KNOWN_SIGNATURE));
    }

    #[test]
    fn header_carries_one_signature_per_secret() {
        let a = Secret::generate();
        let b = Secret::generate();
        let header = signature_header([&a, &b], KNOWN_ID, KNOWN_TS, KNOWN_BODY);
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(a.verify(KNOWN_ID, KNOWN_TS, KNOWN_BODY, parts[0]));
        assert!(b.verify(KNOWN_ID, KNOWN_TS, KNOWN_BODY, parts[1]));
    }
}
