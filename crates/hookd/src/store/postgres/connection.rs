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
    let connect = session_options(database_url, options)?;
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

/// How each of hookd's sessions is opened.
fn session_options(database_url: &str, options: &PoolOptions) -> StoreResult<PgConnectOptions> {
    let statement_timeout = options.statement_timeout.as_millis().to_string();
    Ok(PgConnectOptions::from_str(database_url)
        .map_err(|e| StoreError::Database(format!("invalid PostgreSQL URL: {e}")))?
        .application_name("hookd")
        .options([
            // A statement stuck behind a lock or a slow disk fails instead of holding a
            // connection; `synchronous_commit` stays at the server's default (on): a 2xx means
            // committed.
            ("statement_timeout", statement_timeout.as_str()),
            // No JIT compilation. hookd's statements run in milliseconds, but with a large
            // backlog PostgreSQL estimates the claim's walk in millions, past `jit_above_cost`,
            // and then compiled it for about 200 ms at every call (BENCHMARKS.md, "third
            // round"). Compiling never pays for itself on statements this short.
            ("jit", "off"),
        ]))
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

/// Errors that say PostgreSQL cannot serve now but will again: the connection was cut (a
/// restart, `pg_terminate_backend`), none could be had in time, the server is short of disk,
/// memory or connections.
fn unavailable(err: &sqlx::Error) -> Option<&'static str> {
    match err {
        sqlx::Error::PoolTimedOut => Some("every database connection is busy"),
        sqlx::Error::PoolClosed => Some("the database pool is closed"),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some("the database connection was lost"),
        sqlx::Error::Protocol(_) => Some("the database connection broke"),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            match &code[..2] {
                // connection_exception, operator_intervention (admin shutdown, crash
                // shutdown, cannot connect now), insufficient_resources.
                "08" => Some("the database connection was lost"),
                "57" => Some("the database server is shutting down or restarting"),
                "53" => Some("the database server is short of disk, memory or connections"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Maps PostgreSQL errors onto the store's: a unique violation is a conflict, the rest
/// (including a lost connection or an exhausted pool) is a database error.
pub fn db_error(err: sqlx::Error) -> StoreError {
    if let Some(reason) = unavailable(&err) {
        return StoreError::Unavailable(reason.to_string());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_run_without_jit_and_with_the_statement_timeout() {
        let options = PoolOptions {
            statement_timeout: std::time::Duration::from_secs(7),
            ..PoolOptions::default()
        };
        let session = session_options("postgres://hookd@127.0.0.1:5432/hookd", &options)
            .expect("a valid URL");
        let set = session.get_options().expect("session options");
        assert!(set.contains("jit=off"), "{set}");
        assert!(set.contains("statement_timeout=7000"), "{set}");
    }
}
