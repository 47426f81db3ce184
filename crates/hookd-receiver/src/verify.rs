//! Standard Webhooks verification: headers in, a verified id and timestamp or a precise error out.
//!
//! The order of checks is fixed and cheap first: the three headers are present, the timestamp is
//! a number within the tolerance of now, then one HMAC of the body per secret, compared in
//! constant time with every `v1,` signature of the header, and, for Ed25519 public keys
//! (`whpk_…`), each `v1a,` signature checked against each key. Only then may the body be
//! trusted.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookd_signing::asymmetric::{KeyError, PublicKey, PUBLIC_KEY_PREFIX};
use hookd_signing::{Secret, SecretError, SECRET_PREFIX};

use crate::Headers;

/// How far a request's timestamp may be from now, either way, unless set otherwise: the
/// Standard Webhooks default. It bounds how long a captured request can be replayed; the inbox
/// covers duplicates beyond it.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The three header names of one naming scheme.
struct Names {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK: Names = Names {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

/// The names Svix used before Standard Webhooks; hookd sends them with
/// `HOOKD_SIGNATURE_HEADERS=svix` or `both`.
const SVIX: Names = Names {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// Why a webhook was not accepted. Each kind maps to an HTTP status through
/// [`VerifyError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent (named with the `webhook-` prefix when neither naming
    /// scheme was found).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but unusable: not text, or an empty id.
    #[error("invalid header {0}")]
    InvalidHeader(&'static str),
    /// The timestamp header is not a whole number of seconds since the Unix epoch.
    #[error("the timestamp is not a number of seconds")]
    BadTimestamp,
    /// The timestamp is older than the tolerance: a replay, or a badly wrong clock.
    #[error("the timestamp is too old")]
    TooOld,
    /// The timestamp is further in the future than the tolerance.
    #[error("the timestamp is too far in the future")]
    TooNew,
    /// No signature of the header matches any of the keys.
    #[error("no signature matches")]
    NoMatchingSignature,
    /// A public key given to [`Verifier::new`] is not `whpk_` followed by base64 of an Ed25519
    /// public key.
    #[error("malformed public key: {0}")]
    MalformedPublicKey(#[from] KeyError),
    /// A secret given to [`Verifier::new`] is not `whsec_` followed by base64 of 24 to 64 bytes.
    #[error("malformed secret: {0}")]
    MalformedSecret(#[from] SecretError),
    /// [`Verifier::new`] was given no secret at all.
    #[error("no secret was given")]
    NoSecret,
}

impl VerifyError {
    /// The HTTP status to answer with: 400 for a malformed request, 401 for one that is
    /// well-formed but not authentic or not fresh, 500 for a verifier built from bad settings
    /// (which [`Verifier::new`] already refuses, so a request never sees it).
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingHeader(_) | Self::InvalidHeader(_) | Self::BadTimestamp => 400,
            Self::TooOld | Self::TooNew | Self::NoMatchingSignature => 401,
            Self::MalformedSecret(_) | Self::MalformedPublicKey(_) | Self::NoSecret => 500,
        }
    }
}

/// A request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    /// The `webhook-id`: the same for every retry of one message, hence the dedupe key.
    pub id: String,
    /// The `webhook-timestamp`: when this attempt was signed, in seconds since the Unix epoch.
    /// It changes with every retry, so it says nothing about when the event happened.
    pub timestamp: i64,
}

/// A key a request may be signed for: a shared secret (`v1`) or an Ed25519 public key (`v1a`).
#[derive(Debug, Clone)]
pub enum VerifyKey {
    Secret(Secret),
    Public(PublicKey),
}

impl VerifyKey {
    fn verifies(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        match self {
            VerifyKey::Secret(secret) => secret.verify_header(id, timestamp, body, header),
            VerifyKey::Public(key) => key.verify_header(id, timestamp, body, header),
        }
    }
}

/// Verifies Standard Webhooks requests against one or more keys.
///
/// Several keys serve a rotation: configure the new secret (or public key) beside the old one,
/// and requests signed with either are accepted. Cloning is cheap (the keys are shared).
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Arc<[VerifyKey]>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for secrets in their `whsec_…` form and Ed25519 public keys in their
    /// `whpk_…` form. The bare base64 form of a secret that other Standard Webhooks libraries
    /// accept is taken too, and surrounding whitespace (a pasted newline) is ignored.
    pub fn new<I, S>(keys: I) -> Result<Self, VerifyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = keys
            .into_iter()
            .map(|text| parse_key(text.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_keys(keys)
    }

    /// A verifier for secrets already parsed.
    pub fn from_secrets(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, VerifyError> {
        Self::from_keys(secrets.into_iter().map(VerifyKey::Secret))
    }

    /// A verifier for keys already parsed.
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyKey>) -> Result<Self, VerifyError> {
        let keys: Arc<[VerifyKey]> = keys.into_iter().collect();
        if keys.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        Ok(Self {
            keys,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// Sets how far a timestamp may be from now, either way (whole seconds count).
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The tolerance in force.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Verifies a request against the system clock. Takes the `webhook-*` headers, or the
    /// `svix-*` ones when there is no `webhook-id`; `body` must be the bytes as received,
    /// before any parsing.
    pub fn verify<H>(&self, headers: &H, body: &[u8]) -> Result<VerifiedWebhook, VerifyError>
    where
        H: Headers + ?Sized,
    {
        self.verify_at(headers, body, unix_now())
    }

    /// Like [`Verifier::verify`], with `now` (seconds since the Unix epoch) given: for tests
    /// and known answers.
    pub fn verify_at<H>(
        &self,
        headers: &H,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedWebhook, VerifyError>
    where
        H: Headers + ?Sized,
    {
        let names = if headers.header(WEBHOOK.id).is_some() {
            &WEBHOOK
        } else if headers.header(SVIX.id).is_some() {
            &SVIX
        } else {
            return Err(VerifyError::MissingHeader(WEBHOOK.id));
        };
        let id = read(headers, names.id)?;
        let timestamp = read(headers, names.timestamp)?;
        let signature = read(headers, names.signature)?;
        self.check(names, id, timestamp, signature, body, now)
    }

    /// Verifies the three values of a request taken out of its headers by the caller, for
    /// frameworks whose header type does not implement [`Headers`].
    pub fn verify_parts(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedWebhook, VerifyError> {
        self.check(&WEBHOOK, id, timestamp, signature, body, now)
    }

    fn check(
        &self,
        names: &Names,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<VerifiedWebhook, VerifyError> {
        if id.is_empty() {
            return Err(VerifyError::InvalidHeader(names.id));
        }
        let timestamp = parse_timestamp(timestamp)?;
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(timestamp) > tolerance {
            return Err(VerifyError::TooOld);
        }
        if timestamp.saturating_sub(now) > tolerance {
            return Err(VerifyError::TooNew);
        }
        let authentic = self
            .keys
            .iter()
            .any(|key| key.verifies(id, timestamp, body, signature));
        if !authentic {
            return Err(VerifyError::NoMatchingSignature);
        }
        Ok(VerifiedWebhook {
            id: id.to_owned(),
            timestamp,
        })
    }
}

fn parse_key(text: &str) -> Result<VerifyKey, VerifyError> {
    let text = text.trim();
    if text.starts_with(PUBLIC_KEY_PREFIX) {
        return Ok(VerifyKey::Public(PublicKey::parse(text)?));
    }
    Ok(VerifyKey::Secret(parse_secret(text)?))
}

fn parse_secret(text: &str) -> Result<Secret, SecretError> {
    let text = text.trim();
    if text.starts_with(SECRET_PREFIX) {
        Secret::parse(text)
    } else {
        Secret::parse(&format!("{SECRET_PREFIX}{text}"))
    }
}

fn read<'h, H>(headers: &'h H, name: &'static str) -> Result<&'h str, VerifyError>
where
    H: Headers + ?Sized,
{
    let raw = headers
        .header(name)
        .ok_or(VerifyError::MissingHeader(name))?;
    std::str::from_utf8(raw).map_err(|_| VerifyError::InvalidHeader(name))
}

/// Digits only: `i64::from_str` would also take a sign, which no sender writes.
fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    text.parse().map_err(|_| VerifyError::BadTimestamp)
}

fn unix_now() -> i64 {
    // A clock before 1970 is treated as 1970: every timestamp then reads as too new.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn timestamps_are_digits_only() {
        assert_eq!(parse_timestamp("1614265330"), Ok(1614265330));
        for bad in [
            "",
            "+1614265330",
            "-1",
            "16142653.30",
            " 1",
            "hello",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_timestamp(bad),
                Err(VerifyError::BadTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secrets_are_taken_with_or_without_prefix() {
        let with = parse_secret(SECRET).expect("prefixed");
        let without = parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").expect("bare");
        assert_eq!(with, without);
        assert!(matches!(
            Verifier::new(["whsec_short"]),
            Err(VerifyError::MalformedSecret(_))
        ));
        assert!(matches!(
            Verifier::new(Vec::<String>::new()),
            Err(VerifyError::NoSecret)
        ));
    }

    #[test]
    fn statuses_separate_malformed_from_unauthentic() {
        assert_eq!(VerifyError::MissingHeader("webhook-id").status(), 400);
        assert_eq!(VerifyError::BadTimestamp.status(), 400);
        assert_eq!(VerifyError::TooOld.status(), 401);
        assert_eq!(VerifyError::NoMatchingSignature.status(), 401);
    }
}

#[cfg(test)]
mod asymmetric_tests {
    use hookd_signing::asymmetric::SigningKey;

    use super::*;

    #[test]
    fn a_public_key_verifies_v1a_and_nothing_else() {
        let key = SigningKey::generate();
        let verifier = Verifier::new([key.public_key().expose()]).expect("verifier");
        let now = 1_700_000_000;
        let body = br#"{"event":"payment.captured"}"#;
        let signed = |signature: String| {
            vec![
                ("webhook-id", "msg_1".to_string()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", signature),
            ]
        };
        let good = signed(key.sign("msg_1", now, body));
        assert!(verifier.verify_at(&good, body, now).is_ok());
        // Another key's signature, a tampered body, a symmetric signature: all refused.
        let other = signed(SigningKey::generate().sign("msg_1", now, body));
        assert_eq!(
            verifier.verify_at(&other, body, now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verifier.verify_at(&good, b"{}", now),
            Err(VerifyError::NoMatchingSignature)
        );
        let secret = Secret::generate();
        let symmetric = signed(secret.sign("msg_1", now, body));
        assert!(verifier.verify_at(&symmetric, body, now).is_err());
        // Both kinds of key in one verifier, as during a switch from v1 to v1a.
        let both = Verifier::new([secret.expose(), key.public_key().expose()]).expect("both");
        assert!(both.verify_at(&symmetric, body, now).is_ok());
        assert!(both.verify_at(&good, body, now).is_ok());
        assert!(matches!(
            Verifier::new(["whpk_AAAA"]),
            Err(VerifyError::MalformedPublicKey(_))
        ));
    }
}
