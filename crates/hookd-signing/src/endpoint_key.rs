//! The key an endpoint's deliveries are signed with: a symmetric `whsec_` secret (`v1`
//! signatures, the default) or an Ed25519 `whsk_` key (`v1a` signatures). The stored form of
//! either is the key itself; what its owner is shown differs: the symmetric secret (the receiver
//! needs it to verify), or only the public key (`whpk_`), which can verify but never sign.

use crate::asymmetric::{KeyError, SigningKey, SIGNING_KEY_PREFIX};
use crate::{Secret, SecretError, Sign, SECRET_PREFIX};

/// Which Standard Webhooks signature a key makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HMAC-SHA256 with a shared secret: `v1,…`.
    V1,
    /// Ed25519 with a key pair: `v1a,…`.
    V1a,
}

impl Scheme {
    /// The signature version as it appears in `webhook-signature` (`v1`, `v1a`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::V1 => "v1",
            Scheme::V1a => "v1a",
        }
    }

    /// Parses `v1` or `v1a`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "v1" => Some(Scheme::V1),
            "v1a" => Some(Scheme::V1a),
            _ => None,
        }
    }
}

/// Why an endpoint key could not be parsed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EndpointKeyError {
    #[error("the secret must start with `whsec_` (or `whsk_` for an Ed25519 signing key)")]
    UnknownPrefix,
    #[error(transparent)]
    Symmetric(SecretError),
    #[error(transparent)]
    Asymmetric(KeyError),
}

/// An endpoint's signing key. Its `Debug` never shows the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointKey {
    Symmetric(Secret),
    Asymmetric(SigningKey),
}

impl From<Secret> for EndpointKey {
    fn from(secret: Secret) -> Self {
        EndpointKey::Symmetric(secret)
    }
}

impl From<SigningKey> for EndpointKey {
    fn from(key: SigningKey) -> Self {
        EndpointKey::Asymmetric(key)
    }
}

impl EndpointKey {
    /// A fresh random key of the given scheme.
    pub fn generate(scheme: Scheme) -> Self {
        match scheme {
            Scheme::V1 => Secret::generate().into(),
            Scheme::V1a => SigningKey::generate().into(),
        }
    }

    /// Parses `whsec_…` or `whsk_…`.
    pub fn parse(text: &str) -> Result<Self, EndpointKeyError> {
        if text.starts_with(SECRET_PREFIX) {
            Secret::parse(text)
                .map(Self::from)
                .map_err(EndpointKeyError::Symmetric)
        } else if text.starts_with(SIGNING_KEY_PREFIX) {
            SigningKey::parse(text)
                .map(Self::from)
                .map_err(EndpointKeyError::Asymmetric)
        } else {
            Err(EndpointKeyError::UnknownPrefix)
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            EndpointKey::Symmetric(_) => Scheme::V1,
            EndpointKey::Asymmetric(_) => Scheme::V1a,
        }
    }

    /// The key itself (`whsec_…`, `whsk_…`): what is sealed and stored, never shown.
    pub fn expose_secret(&self) -> String {
        match self {
            EndpointKey::Symmetric(secret) => secret.expose(),
            EndpointKey::Asymmetric(key) => key.expose(),
        }
    }

    /// What the endpoint's owner is given to verify with: the shared secret for `v1`, only the
    /// public key (`whpk_…`) for `v1a`.
    pub fn verification_key(&self) -> String {
        match self {
            EndpointKey::Symmetric(secret) => secret.expose(),
            EndpointKey::Asymmetric(key) => key.public_key().expose(),
        }
    }
}

impl Sign for EndpointKey {
    fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        match self {
            EndpointKey::Symmetric(secret) => secret.sign(msg_id, timestamp, body),
            EndpointKey::Asymmetric(key) => key.sign(msg_id, timestamp, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature_header;

    #[test]
    fn each_key_signs_in_its_own_scheme_and_parses_back() {
        for scheme in [Scheme::V1, Scheme::V1a] {
            let key = EndpointKey::generate(scheme);
            assert_eq!(key.scheme(), scheme);
            assert_eq!(EndpointKey::parse(&key.expose_secret()), Ok(key.clone()));
            let signature = key.sign("msg_1", 1, b"{}");
            assert!(signature.starts_with(&format!("{},", scheme.as_str())));
            assert_eq!(Scheme::parse(scheme.as_str()), Some(scheme));
        }
    }

    #[test]
    fn an_asymmetric_key_shows_only_its_public_half() {
        let key = EndpointKey::generate(Scheme::V1a);
        let shown = key.verification_key();
        assert!(shown.starts_with("whpk_"));
        assert_ne!(shown, key.expose_secret());
        let public = crate::asymmetric::PublicKey::parse(&shown).expect("public key");
        assert!(public.verify("msg_1", 7, b"{}", &key.sign("msg_1", 7, b"{}")));
        let symmetric = EndpointKey::generate(Scheme::V1);
        assert_eq!(symmetric.verification_key(), symmetric.expose_secret());
    }

    #[test]
    fn a_rotation_header_mixes_schemes() {
        let old = EndpointKey::generate(Scheme::V1);
        let new = EndpointKey::generate(Scheme::V1a);
        let header = signature_header([&new, &old], "msg_1", 7, b"{}");
        let EndpointKey::Symmetric(secret) = &old else {
            unreachable!("generated as v1")
        };
        assert!(secret.verify_header("msg_1", 7, b"{}", &header));
        let public = crate::asymmetric::PublicKey::parse(&new.verification_key()).expect("pk");
        assert!(public.verify_header("msg_1", 7, b"{}", &header));
    }

    #[test]
    fn unknown_and_malformed_keys_are_refused() {
        assert_eq!(
            EndpointKey::parse("whpk_AAAA"),
            Err(EndpointKeyError::UnknownPrefix)
        );
        assert!(matches!(
            EndpointKey::parse("whsec_YWJj"),
            Err(EndpointKeyError::Symmetric(SecretError::BadLength))
        ));
        assert!(matches!(
            EndpointKey::parse("whsk_AAAA"),
            Err(EndpointKeyError::Asymmetric(KeyError::BadLength))
        ));
        assert!(format!("{:?}", EndpointKey::generate(Scheme::V1a)).contains("redacted"));
    }
}
