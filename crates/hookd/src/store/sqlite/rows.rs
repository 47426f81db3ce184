//! Reading SQLite rows: the column lists hookd selects, and [`Columns`] for a row, through
//! which the shared mappers of [`crate::store::records`] build the records.

use rusqlite::types::Type;
use rusqlite::Row;

use crate::store::cipher::SecretCipher;
pub use crate::store::records::to_json;
use crate::store::records::{self, Columns};
use crate::store::{
    ApiToken, Application, Attempt, BackgroundTask, DeliveryState, Endpoint, EventType, Message,
};

/// The shared mappers, for a SQLite row. rusqlite wants a mapper that takes a row of any
/// lifetime, which a generic function cannot be passed as; these are those mappers.
macro_rules! mappers {
    ($($name:ident -> $record:ty),* $(,)?) => {
        $(
            pub fn $name(row: &Row<'_>) -> rusqlite::Result<$record> {
                records::$name(row)
            }
        )*
    };
}

mappers! {
    application -> Application,
    event_type -> EventType,
    message -> Message,
    delivery_state -> DeliveryState,
    attempt -> Attempt,
    api_token -> ApiToken,
    background_task -> BackgroundTask,
}

/// Reads an endpoint, opening its sealed secrets.
pub fn endpoint(row: &Row<'_>, cipher: &SecretCipher) -> rusqlite::Result<Endpoint> {
    records::endpoint(row, cipher)
}

fn conversion(err: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(err))
}

impl Columns for Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, column: &str) -> rusqlite::Result<String> {
        self.get(column)
    }

    fn opt_text(&self, column: &str) -> rusqlite::Result<Option<String>> {
        self.get(column)
    }

    fn int(&self, column: &str) -> rusqlite::Result<i64> {
        self.get(column)
    }

    fn opt_int(&self, column: &str) -> rusqlite::Result<Option<i64>> {
        self.get(column)
    }

    fn flag(&self, column: &str) -> rusqlite::Result<bool> {
        self.get(column)
    }

    /// SQLite has no arrays: lists are stored as JSON text.
    fn opt_list(&self, column: &str) -> rusqlite::Result<Option<Vec<String>>> {
        self.opt_json(column)
    }

    fn invalid(
        &self,
        _column: &str,
        err: impl std::error::Error + Send + Sync + 'static,
    ) -> rusqlite::Error {
        conversion(err)
    }
}

pub const ENDPOINT_COLUMNS: &str = "e.id, e.app_id, e.uid, e.url, e.description, e.disabled, \
    e.event_types, e.channels, e.throttle_rate, e.metadata, e.headers, e.secret, \
    e.retiring_secrets, e.created_at, e.updated_at";

pub const MESSAGE_COLUMNS: &str = "m.id, m.app_id, m.event_type, m.event_id, m.channels, \
    m.payload, m.created_at, m.payload_expires_at, m.payload_expired, m.ordering_key";

/// Ids and names are bound and read as their text, so a statement takes `&endpoint.id` as it took the
/// `String` before, and a row's id column reads straight into its type.
macro_rules! sql_text_id {
    ($($id:ty),*) => {$(
        impl rusqlite::ToSql for $id {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $id {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                String::column_result(value).map(Self::from_stored)
            }
        }
    )*};
}

sql_text_id!(
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
