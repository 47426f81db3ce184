//! Reading PostgreSQL rows: the column lists hookd selects, and [`Columns`] for a row, through
//! which the shared mappers of [`crate::store::records`] build the records.

use sqlx::postgres::PgRow;
use sqlx::{Column, Row, TypeInfo};

use crate::store::records::Columns;
pub use crate::store::records::{
    api_token, application, attempt, background_task, delivery_state, endpoint, event_type,
    message, to_json,
};

/// A column that does not hold what hookd wrote there.
fn decode(column: &str, err: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    }
}

/// The width of an integer column: PostgreSQL decodes each only as its own width.
fn int_width(row: &PgRow, column: &str) -> sqlx::Result<u8> {
    Ok(match row.try_column(column)?.type_info().name() {
        "INT2" => 2,
        "INT4" => 4,
        _ => 8,
    })
}

impl Columns for PgRow {
    type Error = sqlx::Error;

    fn text(&self, column: &str) -> sqlx::Result<String> {
        self.try_get(column)
    }

    fn opt_text(&self, column: &str) -> sqlx::Result<Option<String>> {
        self.try_get(column)
    }

    fn int(&self, column: &str) -> sqlx::Result<i64> {
        match int_width(self, column)? {
            2 => self.try_get::<i16, _>(column).map(i64::from),
            4 => self.try_get::<i32, _>(column).map(i64::from),
            _ => self.try_get(column),
        }
    }

    fn opt_int(&self, column: &str) -> sqlx::Result<Option<i64>> {
        match int_width(self, column)? {
            2 => Ok(self.try_get::<Option<i16>, _>(column)?.map(i64::from)),
            4 => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
            _ => self.try_get(column),
        }
    }

    fn flag(&self, column: &str) -> sqlx::Result<bool> {
        self.try_get(column)
    }

    /// Lists are `text[]` columns.
    fn opt_list(&self, column: &str) -> sqlx::Result<Option<Vec<String>>> {
        self.try_get(column)
    }

    fn invalid(
        &self,
        column: &str,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> sqlx::Error {
        decode(column, err)
    }
}

pub const APP_COLUMNS: &str =
    "a.id, a.uid, a.name, a.throttle_rate, a.metadata::text AS metadata, a.created_at, a.updated_at";

pub const ENDPOINT_COLUMNS: &str = "e.id, e.app_id, e.uid, e.url, e.description, e.disabled, \
    e.event_types, e.channels, e.throttle_rate, e.metadata::text AS metadata, \
    e.headers::text AS headers, e.secret, e.retiring_secrets::text AS retiring_secrets, \
    e.created_at, e.updated_at";

pub const EVENT_TYPE_COLUMNS: &str = "t.name, t.description, t.archived, t.deprecated, \
    t.schemas::text AS schemas, t.feature_flag, t.validate_payloads, t.created_at, t.updated_at";

/// A message's columns with its payload; use with `FROM messages m JOIN message_payloads p`.
pub const MESSAGE_COLUMNS: &str = "m.id, m.app_id, m.event_type, m.event_id, m.channels, \
    p.payload, m.created_at, m.payload_expires_at, m.payload_expired, m.ordering_key";

pub const ATTEMPT_COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, a.url, a.success, \
    a.response_status_code, a.response, a.response_duration_ms, a.trigger_type, a.created_at";

/// Ids and names are bound and read as `text` (and `text[]`), so a query binds `&endpoint.id` as it bound
/// the `String` before, and a row's id column decodes straight into its type.
macro_rules! pg_text_id {
    ($($id:ty),*) => {$(
        impl sqlx::Type<sqlx::Postgres> for $id {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $id {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $id {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $id {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                <String as sqlx::Decode<'r, sqlx::Postgres>>::decode(value).map(Self::from_stored)
            }
        }
    )*};
}

pg_text_id!(
    crate::domain::AppId,
    crate::domain::EndpointId,
    crate::domain::MessageId,
    crate::domain::AttemptId,
    crate::domain::DeliveryId,
    crate::domain::TokenId,
    crate::domain::TaskId,
    crate::domain::AuditId,
    crate::domain::Uid,
    crate::domain::EventTypeName,
    crate::domain::Channel
);
