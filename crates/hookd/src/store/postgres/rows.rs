//! Turning PostgreSQL rows into store records, and records into column values.

use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::store::cipher::SecretCipher;
use crate::store::records;
pub use crate::store::records::to_json;
use crate::store::{
    ApiToken, Application, Attempt, DeliveryState, Endpoint, EventType, Message, TriggerType,
};

/// A column that does not hold what hookd wrote there.
fn decode(column: &str, err: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    }
}

/// Reads a JSON column selected as text (`column::text`).
fn json<T: DeserializeOwned>(row: &PgRow, column: &str) -> sqlx::Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| decode(column, e))
}

fn json_opt<T: DeserializeOwned>(row: &PgRow, column: &str) -> sqlx::Result<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| serde_json::from_str(&text).map_err(|e| decode(column, e)))
        .transpose()
}

pub const APP_COLUMNS: &str =
    "a.id, a.uid, a.name, a.throttle_rate, a.metadata::text AS metadata, a.created_at, a.updated_at";

pub fn application(row: &PgRow) -> sqlx::Result<Application> {
    Ok(Application {
        id: row.try_get("id")?,
        uid: row.try_get("uid")?,
        name: row.try_get("name")?,
        throttle_rate: row.try_get("throttle_rate")?,
        metadata: json(row, "metadata")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub const ENDPOINT_COLUMNS: &str = "e.id, e.app_id, e.uid, e.url, e.description, e.disabled, \
    e.event_types, e.channels, e.throttle_rate, e.metadata::text AS metadata, \
    e.headers::text AS headers, e.secret, e.retiring_secrets::text AS retiring_secrets, \
    e.created_at, e.updated_at";

/// Reads an endpoint, opening its sealed secrets.
pub fn endpoint(row: &PgRow, cipher: &SecretCipher) -> sqlx::Result<Endpoint> {
    let id: String = row.try_get("id")?;
    let app_id: String = row.try_get("app_id")?;
    let (secret, retiring_secrets) = records::open_secrets(
        cipher,
        &app_id,
        &id,
        &row.try_get::<String, _>("secret")?,
        &row.try_get::<String, _>("retiring_secrets")?,
    )
    .map_err(|e| decode("secret", e))?;
    Ok(Endpoint {
        id,
        app_id,
        uid: row.try_get("uid")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        disabled: row.try_get("disabled")?,
        event_types: row.try_get("event_types")?,
        channels: row.try_get("channels")?,
        throttle_rate: row.try_get("throttle_rate")?,
        metadata: json(row, "metadata")?,
        headers: json(row, "headers")?,
        secret,
        retiring_secrets,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub const EVENT_TYPE_COLUMNS: &str = "t.name, t.description, t.archived, t.deprecated, \
    t.schemas::text AS schemas, t.feature_flag, t.validate_payloads, t.created_at, t.updated_at";

pub fn event_type(row: &PgRow) -> sqlx::Result<EventType> {
    Ok(EventType {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        archived: row.try_get("archived")?,
        deprecated: row.try_get("deprecated")?,
        schemas: json_opt(row, "schemas")?,
        feature_flag: row.try_get("feature_flag")?,
        validate_payloads: row.try_get("validate_payloads")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A message's columns with its payload; use with `FROM messages m JOIN message_payloads p`.
pub const MESSAGE_COLUMNS: &str = "m.id, m.app_id, m.event_type, m.event_id, m.channels, \
    p.payload, m.created_at, m.payload_expires_at, m.payload_expired, m.ordering_key";

pub fn message(row: &PgRow) -> sqlx::Result<Message> {
    let payload: String = row.try_get("payload")?;
    Ok(Message {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        event_type: row.try_get("event_type")?,
        event_id: row.try_get("event_id")?,
        channels: row.try_get("channels")?,
        payload: payload.into(),
        ordering_key: row.try_get("ordering_key")?,
        created_at: row.try_get("created_at")?,
        payload_expires_at: records::payload_expires_at(row.try_get("payload_expires_at")?),
        payload_expired: row.try_get("payload_expired")?,
    })
}

pub fn delivery_state(row: &PgRow) -> sqlx::Result<DeliveryState> {
    let status = i64::from(row.try_get::<i16, _>("d_status")?);
    DeliveryState::from_row(status, row.try_get("d_next_attempt_at")?)
        .map_err(|e| decode("d_status", e))
}

pub const ATTEMPT_COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, a.url, a.success, \
    a.response_status_code, a.response, a.response_duration_ms, a.trigger_type, a.created_at";

pub fn attempt(row: &PgRow) -> sqlx::Result<Attempt> {
    Ok(Attempt {
        id: row.try_get("id")?,
        msg_id: row.try_get("msg_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        url: row.try_get("url")?,
        success: row.try_get("success")?,
        response_status_code: i64::from(row.try_get::<i32, _>("response_status_code")?),
        response: row.try_get("response")?,
        response_duration_ms: row.try_get("response_duration_ms")?,
        trigger_type: TriggerType::from_code(i64::from(row.try_get::<i16, _>("trigger_type")?)),
        created_at: row.try_get("created_at")?,
    })
}

pub fn api_token(row: &PgRow) -> sqlx::Result<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        hash: row.try_get("hash")?,
        name: row.try_get("name")?,
        app_id: row.try_get("app_id")?,
        created_at: row.try_get("created_at")?,
        revoked: row.try_get("revoked")?,
    })
}
