//! The connection pool, migrations and the mapping of PostgreSQL errors.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::store::{PoolOptions, StoreError, StoreResult, Taken};

/// hookd's schema, applied by `sqlx::migrate!`. The migrator holds a PostgreSQL advisory lock
/// while it runs, so nodes starting at the same time apply each migration exactly once.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/postgres/migrations");

/// Connections idle longer than this are checked before use.
const IDLE_CHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens a pool on `database_url` with the given sizes and timeouts.
pub async fn connect(database_url: &str, options: &PoolOptions) -> StoreResult<PgPool> {
    let statement_timeout = options.statement_timeout.as_millis().to_string();
    let connect = PgConnectOptions::from_str(database_url)
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?
        .application_name("hookd")
        // A statement stuck behind a lock or a slow disk fails instead of holding a connection;
        // `synchronous_commit` stays at the server's default (on): a 2xx means committed.
        .options([("statement_timeout", statement_timeout.as_str())]);
    PgPoolOptions::new()
        .max_connections(options.max_connections)
        .min_connections(1)
        .acquire_timeout(options.acquire_timeout)
        // Checking every connection before each use would double the round trips of every
        // query; only one that sat idle (perhaps across a PostgreSQL restart) is pinged. A
        // connection that breaks in use fails that query and is dropped from the pool.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_CHECK_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(connect)
        .await
        .map_err(db_error)
}

/// Brings the schema up to date.
pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(version) => {
            StoreError::Database(crate::store::newer_schema(&format!("{version:04}")))
        }
        other => StoreError::Database(format!("migrating the PostgreSQL schema failed: {other}")),
    })
}

/// Maps PostgreSQL errors onto the store's: a unique violation is a conflict, the rest
/// (including a lost connection or an exhausted pool) is a database error.
pub fn db_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let constraint = db.constraint().unwrap_or("");
            return Taken::find(UNIQUE_INDEXES, |prefix| constraint.starts_with(prefix)).conflict();
        }
    }
    StoreError::Database(err.to_string())
}

/// The prefixes of the unique constraints' names, each with what it holds; the first that
/// matches wins.
const UNIQUE_INDEXES: &[(&str, Taken)] = &[
    ("applications_", Taken::AppUid),
    ("endpoints_", Taken::EndpointUid),
    ("event_types_", Taken::EventTypeName),
    ("messages_app_event_id", Taken::EventId),
    ("messages_", Taken::MessageId),
    ("message_payloads_", Taken::MessageId),
];
