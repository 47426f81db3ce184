//! Writes a [`Plan`] into hookd's database while hookd is stopped: the rows hookd itself would
//! have written had it ingested the messages and recorded the attempts (ids, statuses, the
//! feed position, payload expiry, the hourly counts per endpoint, traffic per minute and each
//! endpoint's failure clock), with the schema hookd's own migrations made.
//!
//! The secondary indexes of the three big tables are dropped first and built again from their
//! own definitions afterwards (`sqlite_master`, `pg_indexes`), which is how a bulk load is done
//! and leaves the same schema; primary keys and unique constraints stay in place.

use std::fmt::Write as _;

use anyhow::Context;
use ulid::Ulid;

use super::plan::{hash, payment_key, Derived, Message, Outcome, Plan, DAY_MS};

/// Payloads are kept 90 days unless the message asks otherwise (hookd's default).
const PAYLOAD_RETENTION_MS: i64 = 90 * 24 * 3_600_000;
/// `deliveries.status` codes (crates/hookd/src/store/model.rs, `status`).
const SUCCESS: i64 = 0;
const PENDING: i64 = 1;
const HELD: i64 = 5;
/// The tables whose secondary indexes are rebuilt after the load.
const BIG_TABLES: [&str; 4] = ["messages", "message_payloads", "deliveries", "attempts"];
/// Bytes of COPY data sent at a time.
const COPY_CHUNK: usize = 1 << 20;

/// An application created through the API, with its two endpoints.
#[derive(Clone, Debug)]
pub struct App {
    pub id: String,
    pub endpoints: [Endpoint; 2],
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
}

/// The node the history's traffic is counted under (hookd names nodes `node_<ulid>`).
fn history_node(plan: &Plan) -> String {
    let started = u64::try_from(plan.rules.now - DAY_MS).unwrap_or(0);
    format!("node_{}", Ulid::from_parts(started, 0x5eed))
}

fn status_code(outcome: Outcome) -> i64 {
    match outcome {
        Outcome::Delivered => SUCCESS,
        Outcome::Pending { .. } => PENDING,
        Outcome::Held => HELD,
    }
}

fn next_attempt_at(outcome: Outcome) -> Option<i64> {
    match outcome {
        Outcome::Pending { next_at } => Some(next_at),
        _ => None,
    }
}

/// When the delivery row last changed: its last attempt, or its message's ingest.
fn updated_at(plan: &Plan, message: &Message, endpoint: usize) -> i64 {
    let made = message.deliveries[endpoint].made;
    match made {
        0 => message.created_at,
        n => plan.attempt_of(message, endpoint, n - 1).at,
    }
}

/// SQLite's delivery ids are fresh ids taken at ingest (`dlv_<ulid>`).
fn sqlite_delivery_id(plan: &Plan, message: &Message, endpoint: usize) -> String {
    let random = hash(
        plan.rules.seed,
        &[
            0xd1,
            message.payment.into(),
            message.step.into(),
            endpoint as u64,
        ],
    );
    let millis = u64::try_from(message.created_at).unwrap_or(0);
    format!("dlv_{}", Ulid::from_parts(millis, u128::from(random) << 8))
}

/// PostgreSQL's batched ingest names a delivery after its message and endpoint.
fn postgres_delivery_id(message_id: &str, endpoint_id: &str) -> String {
    format!(
        "dlv_{}{}",
        message_id.trim_start_matches("msg_"),
        endpoint_id.trim_start_matches("ep_")
    )
}

/// Loads the plan into the SQLite file at `path`.
pub fn sqlite(path: &str, plan: &Plan, derived: &Derived, apps: &[App]) -> anyhow::Result<()> {
    use rusqlite::params;

    let mut conn =
        rusqlite::Connection::open(path).with_context(|| format!("opening {path} to load it"))?;
    // The load is redone from scratch if it fails, so it needs no durability of its own; the
    // final checkpoint writes everything into the file before hookd opens it again.
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY;",
    )?;
    let indexes: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
             AND tbl_name IN ({})",
            quoted(&BIG_TABLES)
        ))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let tx = conn.transaction()?;
    for (name, _) in &indexes {
        tx.execute(&format!("DROP INDEX \"{name}\""), [])?;
    }
    let feed_last: i64 = tx.query_row("SELECT last FROM feed_counter WHERE id = 1", [], |row| {
        row.get(0)
    })?;
    {
        let mut message_insert = tx.prepare(
            "INSERT INTO messages (id, app_id, event_type, event_id, channels, payload,
             created_at, payload_expires_at, ordering_key, feed_seq)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut delivery_insert = tx.prepare(
            "INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, attempts,
             next_attempt_at, trigger_type, updated_at, ordering_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
        )?;
        let mut attempt_insert = tx.prepare(
            "INSERT INTO attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
             response_status_code, response, response_duration_ms, trigger_type, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11)",
        )?;
        for (seq, message) in (feed_last + 1..).zip(&plan.messages) {
            let app = &apps[usize::from(message.app)];
            let msg_id = message.id();
            let key = payment_key(message.payment);
            message_insert.execute(params![
                msg_id,
                app.id,
                message.event_type(),
                message.event_id(),
                message.payload(),
                message.created_at,
                message.created_at + PAYLOAD_RETENTION_MS,
                key,
                seq
            ])?;
            for (e, endpoint) in app.endpoints.iter().enumerate() {
                let delivery = message.deliveries[e];
                let delivery_id = sqlite_delivery_id(plan, message, e);
                delivery_insert.execute(params![
                    delivery_id,
                    msg_id,
                    endpoint.id,
                    app.id,
                    status_code(delivery.outcome),
                    delivery.made,
                    next_attempt_at(delivery.outcome),
                    updated_at(plan, message, e),
                    key
                ])?;
                for attempt in plan.attempts_of(message, e) {
                    attempt_insert.execute(params![
                        attempt.id(),
                        delivery_id,
                        app.id,
                        msg_id,
                        endpoint.id,
                        endpoint.url,
                        attempt.success,
                        attempt.status_code,
                        attempt.response(),
                        attempt.duration_ms,
                        attempt.at
                    ])?;
                }
            }
        }
        let last = feed_last + i64::try_from(plan.messages.len())?;
        tx.execute("UPDATE feed_counter SET last = ?1 WHERE id = 1", [last])?;
        let mut activity = tx.prepare(
            "INSERT INTO endpoint_activity (endpoint_id, app_id, hour, succeeded, failed,
             duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (&(app, e, hour), &(succeeded, failed, duration)) in &derived.activity {
            let app = &apps[usize::from(app)];
            activity.execute(params![
                app.endpoints[usize::from(e)].id,
                app.id,
                hour,
                succeeded,
                failed,
                duration
            ])?;
        }
        let mut traffic = tx.prepare(
            "INSERT INTO traffic_minutes (minute, node_id, messages_in, delivered, failed)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let node = history_node(plan);
        for (&minute, &(messages_in, delivered, failed)) in &derived.traffic {
            traffic.execute(params![minute, node, messages_in, delivered, failed])?;
        }
        let mut health = tx.prepare("UPDATE endpoints SET first_failure_at = ?1 WHERE id = ?2")?;
        for (&(app, e), &since) in &derived.first_failure {
            health.execute(params![
                since,
                apps[usize::from(app)].endpoints[usize::from(e)].id
            ])?;
        }
    }
    for (name, sql) in &indexes {
        tx.execute_batch(sql)
            .with_context(|| format!("building index {name} again"))?;
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(())
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads the plan into the PostgreSQL database at `url` with COPY.
pub async fn postgres(
    url: &str,
    plan: &Plan,
    derived: &Derived,
    apps: &[App],
) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};

    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to the run's database to load it")?;
    conn.execute("SET maintenance_work_mem = '256MB'").await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT i.indexname::text, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = current_schema() AND i.tablename IN ({})
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        quoted(&BIG_TABLES)
    ))
    .fetch_all(&mut conn)
    .await?;
    for (name, _) in &indexes {
        conn.execute(format!("DROP INDEX \"{name}\"").as_str())
            .await?;
    }

    let mut copy = Copy::new(
        &mut conn,
        "COPY messages (id, app_id, event_type, event_id, channels, created_at,
         payload_expires_at, ordering_key) FROM STDIN",
    )
    .await?;
    for message in &plan.messages {
        let row = copy.row();
        let _ = writeln!(
            row,
            "{}\t{}\t{}\t{}\t\\N\t{}\t{}\t{}",
            message.id(),
            apps[usize::from(message.app)].id,
            message.event_type(),
            message.event_id(),
            message.created_at,
            message.created_at + PAYLOAD_RETENTION_MS,
            payment_key(message.payment)
        );
        copy.flush_if_full().await?;
    }
    copy.finish().await?;

    let mut copy = Copy::new(
        &mut conn,
        "COPY message_payloads (msg_id, payload) FROM STDIN",
    )
    .await?;
    for message in &plan.messages {
        let payload = message.payload();
        let row = copy.row();
        let _ = writeln!(row, "{}\t{}", message.id(), escape(&payload));
        copy.flush_if_full().await?;
    }
    copy.finish().await?;

    let mut copy = Copy::new(
        &mut conn,
        "COPY deliveries (id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at,
         trigger_type, updated_at, ordering_key) FROM STDIN",
    )
    .await?;
    for message in &plan.messages {
        let app = &apps[usize::from(message.app)];
        let msg_id = message.id();
        for (e, endpoint) in app.endpoints.iter().enumerate() {
            let delivery = message.deliveries[e];
            let next = next_attempt_at(delivery.outcome)
                .map_or_else(|| "\\N".to_owned(), |at| at.to_string());
            let row = copy.row();
            let _ = writeln!(
                row,
                "{}\t{msg_id}\t{}\t{}\t{}\t{}\t{next}\t0\t{}\t{}",
                postgres_delivery_id(&msg_id, &endpoint.id),
                endpoint.id,
                app.id,
                status_code(delivery.outcome),
                delivery.made,
                updated_at(plan, message, e),
                payment_key(message.payment)
            );
        }
        copy.flush_if_full().await?;
    }
    copy.finish().await?;

    let mut copy = Copy::new(
        &mut conn,
        "COPY attempts (id, delivery_id, app_id, msg_id, endpoint_id, url, success,
         response_status_code, response, response_duration_ms, trigger_type, created_at)
         FROM STDIN",
    )
    .await?;
    for message in &plan.messages {
        let app = &apps[usize::from(message.app)];
        let msg_id = message.id();
        for (e, endpoint) in app.endpoints.iter().enumerate() {
            let delivery_id = postgres_delivery_id(&msg_id, &endpoint.id);
            for attempt in plan.attempts_of(message, e) {
                let response = escape(attempt.response());
                let row = copy.row();
                let _ = writeln!(
                    row,
                    "{}\t{delivery_id}\t{}\t{msg_id}\t{}\t{}\t{}\t{}\t{response}\t{}\t0\t{}",
                    attempt.id(),
                    app.id,
                    endpoint.id,
                    escape(&endpoint.url),
                    if attempt.success { 't' } else { 'f' },
                    attempt.status_code,
                    attempt.duration_ms,
                    attempt.at
                );
            }
        }
        copy.flush_if_full().await?;
    }
    copy.finish().await?;

    let mut copy = Copy::new(
        &mut conn,
        "COPY endpoint_activity (endpoint_id, app_id, hour, succeeded, failed, duration_ms)
         FROM STDIN",
    )
    .await?;
    for (&(app, endpoint, hour), &(succeeded, failed, duration)) in &derived.activity {
        let app = &apps[usize::from(app)];
        let row = copy.row();
        let _ = writeln!(
            row,
            "{}\t{}\t{hour}\t{succeeded}\t{failed}\t{duration}",
            app.endpoints[usize::from(endpoint)].id,
            app.id
        );
        copy.flush_if_full().await?;
    }
    copy.finish().await?;

    let node = history_node(plan);
    let mut copy = Copy::new(
        &mut conn,
        "COPY traffic_minutes (minute, node_id, messages_in, delivered, failed) FROM STDIN",
    )
    .await?;
    for (&minute, &(messages_in, delivered, failed)) in &derived.traffic {
        let row = copy.row();
        let _ = writeln!(
            row,
            "{minute}\t{node}\t{messages_in}\t{delivered}\t{failed}"
        );
        copy.flush_if_full().await?;
    }
    copy.finish().await?;

    for (&(app, e), &since) in &derived.first_failure {
        sqlx::query("UPDATE endpoints SET first_failure_at = $1 WHERE id = $2")
            .bind(since)
            .bind(&apps[usize::from(app)].endpoints[usize::from(e)].id)
            .execute(&mut conn)
            .await?;
    }
    for (name, definition) in &indexes {
        conn.execute(definition.as_str())
            .await
            .with_context(|| format!("building index {name} again"))?;
    }
    let _ = conn.close().await;
    Ok(())
}

/// COPY's text format: backslash, tab, newline and carriage return escaped.
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\\', '\t', '\n', '\r']) {
        text.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .into()
    } else {
        text.into()
    }
}

/// One COPY … FROM STDIN in progress, its rows buffered and sent a megabyte at a time.
struct Copy<'c> {
    copy: sqlx::postgres::PgCopyIn<&'c mut sqlx::PgConnection>,
    buffer: String,
}

impl<'c> Copy<'c> {
    async fn new(conn: &'c mut sqlx::PgConnection, statement: &str) -> anyhow::Result<Self> {
        let copy = conn
            .copy_in_raw(statement)
            .await
            .with_context(|| format!("starting {}", first_words(statement)))?;
        Ok(Self {
            copy,
            buffer: String::with_capacity(COPY_CHUNK + 4096),
        })
    }

    fn row(&mut self) -> &mut String {
        &mut self.buffer
    }

    async fn flush_if_full(&mut self) -> anyhow::Result<()> {
        if self.buffer.len() >= COPY_CHUNK {
            self.copy.send(self.buffer.as_bytes()).await?;
            self.buffer.clear();
        }
        Ok(())
    }

    async fn finish(mut self) -> anyhow::Result<u64> {
        if !self.buffer.is_empty() {
            self.copy.send(self.buffer.as_bytes()).await?;
        }
        Ok(self.copy.finish().await?)
    }
}

fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes() {
        assert_eq!(escape("a\tb\\c\nd"), "a\\tb\\\\c\\nd");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn postgres_delivery_ids_join_message_and_endpoint() {
        assert_eq!(
            postgres_delivery_id("msg_01ABC", "ep_01DEF"),
            "dlv_01ABC01DEF"
        );
    }
}
