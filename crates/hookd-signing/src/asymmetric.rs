//! Asymmetric Standard Webhooks signatures (`v1a`): Ed25519 over the same
//! `"{id}.{timestamp}.{body}"` as `v1`. The sender keeps a secret key (`whsk_` + base64 of its
//! 32-byte seed); the receiver holds only the public key (`whpk_` + base64 of its 32 bytes),
//! which can verify but never sign, so a leaked receiver configuration lets nobody forge a
//! delivery.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, Verifier};

/// The prefix of a serialized secret (signing) key.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// The prefix of a serialized public (verifying) key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// The prefix of an asymmetric signature in `webhook-signature`.
pub const SIGNATURE_PREFIX: &str = "v1a,";

/// Why a key could not be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the key must start with `{0}`")]
    MissingPrefix(&'static str),
    #[error("the key is not valid base64 after its prefix")]
    NotBase64,
    #[error(
        "an Ed25519 key holds 32 bytes (a secret key may also be given as 64: seed and public key)"
    )]
    BadLength,
    #[error("the bytes are not a valid Ed25519 public key")]
    NotAPoint,
}

/// An endpoint's Ed25519 signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bytes() == other.0.to_bytes()
    }
}

impl Eq for SigningKey {}

impl SigningKey {
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Parses `whsk_<base64>`: the 32-byte seed, or the 64-byte seed-and-public-key form some
    /// libraries write (whose public half must then match the seed's).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = decode(text, SIGNING_KEY_PREFIX)?;
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .ok_or(KeyError::BadLength)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        match bytes.len() {
            32 => Ok(Self(key)),
            64 if bytes[32..] == key.verifying_key().to_bytes() => Ok(Self(key)),
            64 => Err(KeyError::NotAPoint),
            _ => Err(KeyError::BadLength),
        }
    }

    /// The `whsk_…` form (seed only).
    pub fn expose(&self) -> String {
        format!("{SIGNING_KEY_PREFIX}{}", BASE64.encode(self.0.to_bytes()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The `v1a,<base64>` signature of one delivery.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self.0.sign(&signed_content(msg_id, timestamp, body));
        format!("{SIGNATURE_PREFIX}{}", BASE64.encode(signature.to_bytes()))
    }
}

/// A receiver's Ed25519 verifying key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parses `whpk_<base64 of 32 bytes>`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = decode(text, PUBLIC_KEY_PREFIX)?
            .try_into()
            .map_err(|_| KeyError::BadLength)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::NotAPoint)
    }

    /// The `whpk_…` form given to the endpoint's owner.
    pub fn expose(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(self.0.to_bytes()))
    }

    /// Checks one `v1a,<base64>` signature (strictly: no malleable or small-order forms).
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], signature: &str) -> bool {
        let Some(encoded) = signature.strip_prefix(SIGNATURE_PREFIX) else {
            return false;
        };
        let Ok(bytes) = BASE64.decode(encoded) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        let content = signed_content(msg_id, timestamp, body);
        self.0.verify_strict(&content, &signature).is_ok()
            && self.0.verify(&content, &signature).is_ok()
    }

    /// Checks a whole `webhook-signature` header: true when any of its `v1a,` entries verifies.
    /// Other versions (`v1,`) and malformed entries are skipped.
    pub fn verify_header(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header
            .split(' ')
            .filter(|entry| entry.starts_with(SIGNATURE_PREFIX))
            .any(|entry| self.verify(msg_id, timestamp, body, entry))
    }
}

fn decode(text: &str, prefix: &'static str) -> Result<Vec<u8>, KeyError> {
    let encoded = text
        .strip_prefix(prefix)
        .ok_or(KeyError::MissingPrefix(prefix))?;
    BASE64.decode(encoded).map_err(|_| KeyError::NotBase64)
}

fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{msg_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with Python's `cryptography` 51.0.1 (OpenSSL's Ed25519), independently of this
    /// crate: the seed 0x00..0x1f signing the example of the Standard Webhooks specification.
    const KAT_SECRET: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KAT_PUBLIC: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    const KAT_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const KAT_TS: i64 = 1674087231;
    const KAT_BODY: &str = r#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}"#;
    const KAT_SIGNATURE: &str = "v1a,9WMPN5fBW9vm1uGlvFzBO4lpdfFKN4AQCSr2vrWsFuOibXSOTWlcWrPRSWk+YpmD9fAwgYREKtLcYCyZrvXFBw==";

    #[test]
    fn signs_and_verifies_the_known_answer() {
        let key = SigningKey::parse(KAT_SECRET).expect("secret");
        assert_eq!(key.public_key().expose(), KAT_PUBLIC);
        assert_eq!(key.sign(KAT_ID, KAT_TS, KAT_BODY.as_bytes()), KAT_SIGNATURE);
        let public = PublicKey::parse(KAT_PUBLIC).expect("public");
        assert!(public.verify(KAT_ID, KAT_TS, KAT_BODY.as_bytes(), KAT_SIGNATURE));
        assert_eq!(key.expose(), KAT_SECRET);
    }

    #[test]
    fn the_rfc_8032_test_vector_holds() {
        // RFC 8032 §7.1, TEST 1: the empty message. Checks the primitive on its own.
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let signature = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
                .collect()
        };
        let seed: [u8; 32] = hex(seed).try_into().unwrap_or([0; 32]);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(key.verifying_key().to_bytes().to_vec(), hex(public));
        assert_eq!(key.sign(b"").to_bytes().to_vec(), hex(signature));
    }

    #[test]
    fn anything_changed_fails() {
        let public = PublicKey::parse(KAT_PUBLIC).expect("public");
        let body = KAT_BODY.as_bytes();
        assert!(!public.verify("msg_other", KAT_TS, body, KAT_SIGNATURE));
        assert!(!public.verify(KAT_ID, KAT_TS + 1, body, KAT_SIGNATURE));
        assert!(!public.verify(KAT_ID, KAT_TS, b"{}", KAT_SIGNATURE));
        assert!(!public.verify(
            KAT_ID,
            KAT_TS,
            body,
            &KAT_SIGNATURE.replacen("v1a,", "v1,", 1)
        ));
        let other = SigningKey::generate().public_key();
        assert!(!other.verify(KAT_ID, KAT_TS, body, KAT_SIGNATURE));
        // In a header beside symmetric signatures, the valid entry is found.
        let header = format!("v1,bm90IGl0 v1a,AAAA {KAT_SIGNATURE}");
        assert!(public.verify_header(KAT_ID, KAT_TS, body, &header));
        assert!(!public.verify_header(KAT_ID, KAT_TS, body, "v1,bm90IGl0"));
    }

    #[test]
    fn keys_parse_only_in_their_own_form() {
        assert_eq!(
            PublicKey::parse(KAT_SECRET),
            Err(KeyError::MissingPrefix(PUBLIC_KEY_PREFIX))
        );
        assert!(SigningKey::parse(KAT_PUBLIC).is_err());
        assert_eq!(PublicKey::parse("whpk_AAAA"), Err(KeyError::BadLength));
        assert_eq!(PublicKey::parse("whpk_***"), Err(KeyError::NotBase64));
        // The 64-byte form: seed then its own public key.
        let key = SigningKey::parse(KAT_SECRET).expect("secret");
        let mut long = BASE64.decode(&KAT_SECRET[5..]).expect("b64");
        long.extend(BASE64.decode(&KAT_PUBLIC[5..]).expect("b64"));
        let long = format!("whsk_{}", BASE64.encode(&long));
        assert_eq!(SigningKey::parse(&long), Ok(key));
        let mut wrong = BASE64.decode(&KAT_SECRET[5..]).expect("b64");
        wrong.extend([0u8; 32]);
        assert!(SigningKey::parse(&format!("whsk_{}", BASE64.encode(&wrong))).is_err());
        assert!(format!("{:?}", SigningKey::generate()).contains("redacted"));
    }
}
