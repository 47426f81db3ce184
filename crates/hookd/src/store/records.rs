//! Turning column values into records and back, where both backends store the same forms:
//! JSON text, sealed endpoint secrets, nullable columns with a default. Each backend reads its
//! own rows and calls these, so a value means the same on both.

use hookd_signing::Secret;

use super::cipher::{endpoint_row, CipherError, SecretCipher};
use super::{Endpoint, RetiringSecret};

/// Serializes a value for a JSON column.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Plain maps, vectors and JSON values always serialize.
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Why an endpoint's stored secrets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Sealed(#[from] CipherError),
    #[error("the opened secret is not a valid signing secret: {0}")]
    Invalid(#[from] hookd_signing::SecretError),
    #[error("the retiring secrets are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The sealed forms of an endpoint's current secret and of its retiring ones (as JSON text),
/// for writing. Both backends seal the same way, so a database moved between them keeps its
/// secrets readable.
pub fn seal_secrets(endpoint: &Endpoint, cipher: &SecretCipher) -> (String, String) {
    let aad = endpoint_row(&endpoint.app_id, &endpoint.id);
    let current = cipher.seal(&endpoint.secret.expose(), &aad);
    let retiring: Vec<RetiringSecret> = endpoint
        .retiring_secrets
        .iter()
        .map(|old| RetiringSecret {
            secret: cipher.seal(&old.secret, &aad),
            expires_at: old.expires_at,
        })
        .collect();
    (current, to_json(&retiring))
}

/// Opens the secrets of the endpoint `endpoint_id` of `app_id`: its sealed current secret and
/// the JSON text of its sealed retiring ones.
pub fn open_secrets(
    cipher: &SecretCipher,
    app_id: &str,
    endpoint_id: &str,
    sealed: &str,
    retiring_json: &str,
) -> Result<(Secret, Vec<RetiringSecret>), SecretsError> {
    let aad = endpoint_row(app_id, endpoint_id);
    let secret = Secret::parse(&cipher.open(sealed, &aad)?)?;
    let retiring: Vec<RetiringSecret> = serde_json::from_str(retiring_json)?;
    let retiring = retiring
        .into_iter()
        .map(|old| {
            Ok(RetiringSecret {
                secret: cipher.open(&old.secret, &aad)?,
                expires_at: old.expires_at,
            })
        })
        .collect::<Result<Vec<_>, CipherError>>()?;
    Ok((secret, retiring))
}

/// A message's payload expiry as stored: set on every message, NULL only in a row written
/// before the column existed, which keeps its payload.
pub fn payload_expires_at(stored: Option<i64>) -> i64 {
    stored.unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn sealed_secrets_open_for_their_own_row_only() -> Result<(), Box<dyn std::error::Error>> {
        let cipher = SecretCipher::from_main_secret("a-main-secret-of-at-least-32-characters!")?;
        let old = Secret::generate().expose();
        let endpoint = Endpoint {
            id: "ep_1".into(),
            app_id: "app_1".into(),
            uid: None,
            url: "https://example.com/".into(),
            description: String::new(),
            disabled: false,
            event_types: None,
            channels: None,
            throttle_rate: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            secret: Secret::generate(),
            retiring_secrets: vec![RetiringSecret {
                secret: old.clone(),
                expires_at: 7,
            }],
            created_at: 0,
            updated_at: 0,
        };
        let (sealed, retiring) = seal_secrets(&endpoint, &cipher);
        let (secret, opened) = open_secrets(&cipher, "app_1", "ep_1", &sealed, &retiring)?;
        assert_eq!(secret.expose(), endpoint.secret.expose());
        assert_eq!(opened.len(), 1);
        assert_eq!(opened[0].secret, old);
        assert_eq!(opened[0].expires_at, 7);
        assert!(open_secrets(&cipher, "app_2", "ep_1", &sealed, &retiring).is_err());
        Ok(())
    }

    #[test]
    fn a_payload_without_expiry_never_expires() {
        assert_eq!(payload_expires_at(None), i64::MAX);
        assert_eq!(payload_expires_at(Some(5)), 5);
    }
}
