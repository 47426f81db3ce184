//! Turning SQLite rows into store records.

use rusqlite::types::Type;
use rusqlite::Row;
use serde::de::DeserializeOwned;

use crate::store::cipher::SecretCipher;
use crate::store::records;
pub use crate::store::records::to_json;
use crate::store::{
    ApiToken, Application, Attempt, DeliveryState, Endpoint, EventType, Message, TriggerType,
};

fn conversion(err: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(err))
}

/// Reads a JSON text column.
pub fn json<T: DeserializeOwned>(row: &Row<'_>, column: &str) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
}

/// Reads a nullable JSON text column.
pub fn json_opt<T: DeserializeOwned>(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| {
        serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
    })
    .transpose()
}

pub fn application(row: &Row<'_>) -> rusqlite::Result<Application> {
    Ok(Application {
        id: row.get("id")?,
        uid: row.get("uid")?,
        name: row.get("name")?,
        throttle_rate: row.get("throttle_rate")?,
        metadata: json(row, "metadata")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

pub const ENDPOINT_COLUMNS: &str = "e.id, e.app_id, e.uid, e.url, e.description, e.disabled, \
    e.event_types, e.channels, e.throttle_rate, e.metadata, e.headers, e.secret, \
    e.retiring_secrets, e.created_at, e.updated_at";

/// Reads an endpoint, opening its sealed secrets.
pub fn endpoint(row: &Row<'_>, cipher: &SecretCipher) -> rusqlite::Result<Endpoint> {
    let id: String = row.get("id")?;
    let app_id: String = row.get("app_id")?;
    let (secret, retiring_secrets) = records::open_secrets(
        cipher,
        &app_id,
        &id,
        &row.get::<_, String>("secret")?,
        &row.get::<_, String>("retiring_secrets")?,
    )
    .map_err(conversion)?;
    Ok(Endpoint {
        id,
        app_id,
        uid: row.get("uid")?,
        url: row.get("url")?,
        description: row.get("description")?,
        disabled: row.get("disabled")?,
        event_types: json_opt(row, "event_types")?,
        channels: json_opt(row, "channels")?,
        throttle_rate: row.get("throttle_rate")?,
        metadata: json(row, "metadata")?,
        headers: json(row, "headers")?,
        secret,
        retiring_secrets,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

pub fn event_type(row: &Row<'_>) -> rusqlite::Result<EventType> {
    Ok(EventType {
        name: row.get("name")?,
        description: row.get("description")?,
        archived: row.get("archived")?,
        deprecated: row.get("deprecated")?,
        schemas: json_opt(row, "schemas")?,
        feature_flag: row.get("feature_flag")?,
        validate_payloads: row.get("validate_payloads")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

pub const MESSAGE_COLUMNS: &str = "m.id, m.app_id, m.event_type, m.event_id, m.channels, \
    m.payload, m.created_at, m.payload_expires_at, m.payload_expired, m.ordering_key";

pub fn message(row: &Row<'_>) -> rusqlite::Result<Message> {
    let payload: String = row.get("payload")?;
    Ok(Message {
        id: row.get("id")?,
        app_id: row.get("app_id")?,
        event_type: row.get("event_type")?,
        event_id: row.get("event_id")?,
        channels: json_opt(row, "channels")?,
        payload: payload.into(),
        ordering_key: row.get("ordering_key")?,
        created_at: row.get("created_at")?,
        payload_expires_at: records::payload_expires_at(row.get("payload_expires_at")?),
        payload_expired: row.get("payload_expired")?,
    })
}

pub fn delivery_state(row: &Row<'_>) -> rusqlite::Result<DeliveryState> {
    DeliveryState::from_row(row.get("d_status")?, row.get("d_next_attempt_at")?).map_err(conversion)
}

pub fn attempt(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: row.get("id")?,
        msg_id: row.get("msg_id")?,
        endpoint_id: row.get("endpoint_id")?,
        url: row.get("url")?,
        success: row.get("success")?,
        response_status_code: row.get("response_status_code")?,
        response: row.get("response")?,
        response_duration_ms: row.get("response_duration_ms")?,
        trigger_type: TriggerType::from_code(row.get("trigger_type")?),
        created_at: row.get("created_at")?,
    })
}

pub fn api_token(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: row.get("id")?,
        hash: row.get("hash")?,
        name: row.get("name")?,
        app_id: row.get("app_id")?,
        created_at: row.get("created_at")?,
        revoked: row.get("revoked")?,
    })
}
