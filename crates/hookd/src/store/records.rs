//! Turning rows into records and records into column values, once for both backends. Each
//! backend implements [`Columns`] for its row type; the record mappers here read every record
//! through it, so a column means the same on both (JSON text, sealed endpoint secrets, status
//! codes, nullable columns with a default).

use hookd_signing::EndpointKey;
use serde::de::DeserializeOwned;

use crate::domain::{AppId, Channel, EndpointId, EventTypeName, Uid};

use super::cipher::{endpoint_row, CipherError, SecretCipher};
use super::tasks::kind_and_status;
use super::{
    ApiToken, Application, Attempt, BackgroundTask, DeliveryState, Endpoint, EventType, Message,
    RetiringSecret, TokenKind, TriggerType,
};

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
    Invalid(#[from] hookd_signing::EndpointKeyError),
    #[error("the retiring secrets are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The sealed forms of an endpoint's current secret and of its retiring ones (as JSON text),
/// for writing. Both backends seal the same way, so a database moved between them keeps its
/// secrets readable.
pub fn seal_secrets(endpoint: &Endpoint, cipher: &SecretCipher) -> (String, String) {
    let aad = endpoint_row(&endpoint.app_id, &endpoint.id);
    let current = cipher.seal(&endpoint.secret.expose_secret(), &aad);
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

/// The sealed forms of secrets a first release stored in clear (`secret`, and the JSON text of
/// `retiring_secrets`), or `None` when both are sealed already. Run once at open, after the
/// migrations, so every later read finds sealed secrets only.
pub fn seal_if_clear(
    cipher: &SecretCipher,
    app_id: &str,
    endpoint_id: &str,
    secret: &str,
    retiring_json: &str,
) -> Result<Option<(String, String)>, SecretsError> {
    let aad = endpoint_row(app_id, endpoint_id);
    let mut retiring: Vec<RetiringSecret> = serde_json::from_str(retiring_json)?;
    let clear = !SecretCipher::is_sealed(secret)
        || retiring
            .iter()
            .any(|old| !SecretCipher::is_sealed(&old.secret));
    if !clear {
        return Ok(None);
    }
    let seal = |text: &str| {
        if SecretCipher::is_sealed(text) {
            text.to_string()
        } else {
            cipher.seal(text, &aad)
        }
    };
    for old in &mut retiring {
        old.secret = seal(&old.secret);
    }
    Ok(Some((seal(secret), to_json(&retiring))))
}

/// Opens the secrets of the endpoint `endpoint_id` of `app_id`: its sealed current secret and
/// the JSON text of its sealed retiring ones.
pub fn open_secrets(
    cipher: &SecretCipher,
    app_id: &str,
    endpoint_id: &str,
    sealed: &str,
    retiring_json: &str,
) -> Result<(EndpointKey, Vec<RetiringSecret>), SecretsError> {
    let aad = endpoint_row(app_id, endpoint_id);
    let secret = EndpointKey::parse(&cipher.open(sealed, &aad)?)?;
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

/// A stored list of names (event types, channels) as its type.
fn stored_list<T>(list: Option<Vec<String>>, name: fn(String) -> T) -> Option<Vec<T>> {
    list.map(|list| list.into_iter().map(name).collect())
}

/// Reads the columns of one row, whatever backend it comes from: the few kinds of value the
/// records hold. Each backend implements it for its own row type, so the mapping from columns
/// to records below is written once.
pub trait Columns {
    type Error;

    fn text(&self, column: &str) -> Result<String, Self::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, Self::Error>;
    /// An integer column of any width.
    fn int(&self, column: &str) -> Result<i64, Self::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, Self::Error>;
    fn flag(&self, column: &str) -> Result<bool, Self::Error>;
    /// A nullable list of strings (event types, channels), however the backend stores it.
    fn opt_list(&self, column: &str) -> Result<Option<Vec<String>>, Self::Error>;
    /// The error for a column whose value hookd cannot have written.
    fn invalid(
        &self,
        column: &str,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> Self::Error;

    /// A JSON column, read as text.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, Self::Error> {
        let text = self.text(column)?;
        serde_json::from_str(&text).map_err(|e| self.invalid(column, e))
    }

    /// A nullable JSON column, read as text.
    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, Self::Error> {
        self.opt_text(column)?
            .map(|text| serde_json::from_str(&text).map_err(|e| self.invalid(column, e)))
            .transpose()
    }
}

pub fn application<R: Columns>(row: &R) -> Result<Application, R::Error> {
    Ok(Application {
        id: row.text("id")?.into(),
        uid: row.opt_text("uid")?.map(Uid::from_stored),
        name: row.text("name")?,
        throttle_rate: row.opt_int("throttle_rate")?,
        metadata: row.json("metadata")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// Reads an endpoint, opening its sealed secrets.
pub fn endpoint<R: Columns>(row: &R, cipher: &SecretCipher) -> Result<Endpoint, R::Error> {
    let id: EndpointId = row.text("id")?.into();
    let app_id: AppId = row.text("app_id")?.into();
    let (secret, retiring_secrets) = open_secrets(
        cipher,
        &app_id,
        &id,
        &row.text("secret")?,
        &row.text("retiring_secrets")?,
    )
    .map_err(|e| row.invalid("secret", e))?;
    Ok(Endpoint {
        id,
        app_id,
        uid: row.opt_text("uid")?.map(Uid::from_stored),
        url: row.text("url")?,
        description: row.text("description")?,
        disabled: row.flag("disabled")?,
        event_types: stored_list(row.opt_list("event_types")?, EventTypeName::from_stored),
        channels: stored_list(row.opt_list("channels")?, Channel::from_stored),
        throttle_rate: row.opt_int("throttle_rate")?,
        metadata: row.json("metadata")?,
        headers: row.json("headers")?,
        secret,
        retiring_secrets,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub fn event_type<R: Columns>(row: &R) -> Result<EventType, R::Error> {
    Ok(EventType {
        name: EventTypeName::from_stored(row.text("name")?),
        description: row.text("description")?,
        archived: row.flag("archived")?,
        deprecated: row.flag("deprecated")?,
        schemas: row.opt_json("schemas")?,
        feature_flag: row.opt_text("feature_flag")?,
        validate_payloads: row.flag("validate_payloads")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub fn message<R: Columns>(row: &R) -> Result<Message, R::Error> {
    Ok(Message {
        id: row.text("id")?.into(),
        app_id: row.text("app_id")?.into(),
        event_type: EventTypeName::from_stored(row.text("event_type")?),
        event_id: row.opt_text("event_id")?.map(Uid::from_stored),
        channels: stored_list(row.opt_list("channels")?, Channel::from_stored),
        payload: row.text("payload")?.into(),
        ordering_key: row.opt_text("ordering_key")?.map(Uid::from_stored),
        created_at: row.int("created_at")?,
        payload_expires_at: payload_expires_at(row.opt_int("payload_expires_at")?),
        payload_expired: row.flag("payload_expired")?,
    })
}

/// A delivery's listed state, from its columns selected as `d_status` and `d_next_attempt_at`.
pub fn delivery_state<R: Columns>(row: &R) -> Result<DeliveryState, R::Error> {
    DeliveryState::from_row(row.int("d_status")?, row.opt_int("d_next_attempt_at")?)
        .map_err(|e| row.invalid("d_status", e))
}

pub fn attempt<R: Columns>(row: &R) -> Result<Attempt, R::Error> {
    Ok(Attempt {
        id: row.text("id")?.into(),
        msg_id: row.text("msg_id")?.into(),
        endpoint_id: row.text("endpoint_id")?.into(),
        url: row.text("url")?,
        success: row.flag("success")?,
        response_status_code: row.int("response_status_code")?,
        response: row.text("response")?,
        response_duration_ms: row.int("response_duration_ms")?,
        trigger_type: TriggerType::from_code(row.int("trigger_type")?),
        created_at: row.int("created_at")?,
    })
}

pub fn api_token<R: Columns>(row: &R) -> Result<ApiToken, R::Error> {
    let kind = row.text("kind")?;
    let kind =
        TokenKind::parse(&kind).ok_or_else(|| row.invalid("kind", UnknownTokenKind(kind)))?;
    Ok(ApiToken {
        id: row.text("id")?.into(),
        hash: row.text("hash")?,
        name: row.text("name")?,
        app_id: row.opt_text("app_id")?.map(Into::into),
        created_at: row.int("created_at")?,
        revoked: row.flag("revoked")?,
        kind,
        expires_at: row.opt_int("expires_at")?,
        capabilities: row.opt_json("capabilities")?,
    })
}

/// A token row whose `kind` this version of hookd does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown token kind {0:?}")]
struct UnknownTokenKind(String);

pub fn background_task<R: Columns>(row: &R) -> Result<BackgroundTask, R::Error> {
    let (kind, status) = kind_and_status(&row.text("kind")?, &row.text("status")?)
        .map_err(|e| row.invalid("status", e))?;
    Ok(BackgroundTask {
        id: row.text("id")?.into(),
        app_id: row.text("app_id")?.into(),
        kind,
        status,
        endpoint_id: row.text("endpoint_id")?.into(),
        since: row.int("window_start")?,
        until: row.int("window_end")?,
        done: u64::try_from(row.int("done")?).unwrap_or(0),
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn sealed_secrets_open_for_their_own_row_only() -> Result<(), Box<dyn std::error::Error>> {
        let cipher = SecretCipher::from_main_secret("a-main-secret-of-at-least-32-characters!")?;
        // An endpoint switched to Ed25519 whose old symmetric secret is still in grace.
        let old = EndpointKey::generate(hookd_signing::Scheme::V1).expose_secret();
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
            secret: EndpointKey::generate(hookd_signing::Scheme::V1a),
            retiring_secrets: vec![RetiringSecret {
                secret: old.clone(),
                expires_at: 7,
            }],
            created_at: 0,
            updated_at: 0,
        };
        let (sealed, retiring) = seal_secrets(&endpoint, &cipher);
        let (secret, opened) = open_secrets(&cipher, "app_1", "ep_1", &sealed, &retiring)?;
        assert_eq!(secret, endpoint.secret);
        assert!(!sealed.contains(&endpoint.secret.expose_secret()));
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
