//! The inbox on PostgreSQL.

use std::time::Duration;

use sqlx::{Postgres, Transaction};

/// The table, for applications that keep their schema in their own migrations.
pub const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS webhook_inbox (
    id          TEXT PRIMARY KEY NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_inbox_received_at ON webhook_inbox (received_at);
";

/// Creates the table and its index if they do not exist.
pub async fn create_table<'c, E>(executor: E) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    sqlx::raw_sql(SCHEMA).execute(executor).await?;
    Ok(())
}

/// Records `webhook_id` inside the caller's transaction: `true` the first time, `false` for a
/// duplicate (then do nothing, answer 2xx). See the [module documentation](super) for why it
/// must share the transaction of the effect.
pub async fn record_once(
    tx: &mut Transaction<'_, Postgres>,
    webhook_id: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_inbox (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(webhook_id)
    .bind(super::unix_now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Deletes entries older than `horizon` and returns how many. Run it now and then (hourly is
/// plenty) with a horizon longer than the sender's retries, such as
/// [`DEFAULT_HORIZON`](super::DEFAULT_HORIZON).
pub async fn prune<'c, E>(executor: E, horizon: Duration) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Postgres>,
{
    let deleted = sqlx::query("DELETE FROM webhook_inbox WHERE received_at < $1")
        .bind(super::cutoff(horizon))
        .execute(executor)
        .await?
        .rows_affected();
    Ok(deleted)
}
