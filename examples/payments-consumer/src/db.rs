//! The app's SQL, one small function per statement. Functions that take a connection run
//! inside the caller's transaction (pass `&mut *tx`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{SqliteConnection, SqlitePool};

use crate::payments::{Known, PaymentUpdate, Status};

/// The app's tables (see `schema.sql`).
pub const SCHEMA: &str = include_str!("schema.sql");

/// The stored state of a payment, with the status and event time the guard compares against.
pub async fn load_payment(
    conn: &mut SqliteConnection,
    payment_id: &str,
) -> Result<Option<Known>, sqlx::Error> {
    let row: Option<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT status, updated_at_event FROM payments WHERE id = ?1")
            .bind(payment_id)
            .fetch_optional(conn)
            .await?;
    row.map(|(status, at)| {
        Ok(Known {
            status: parse_status(&status)?,
            at,
        })
    })
    .transpose()
}

/// Stores `update` as the payment's state, inserting the payment if it is new.
pub async fn save_payment(
    conn: &mut SqliteConnection,
    update: &PaymentUpdate,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (id, status, amount, currency, order_id, updated_at_event)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET
             status = excluded.status,
             amount = excluded.amount,
             currency = excluded.currency,
             order_id = excluded.order_id,
             updated_at_event = excluded.updated_at_event",
    )
    .bind(&update.payment_id)
    .bind(update.status.as_str())
    .bind(update.amount)
    .bind(&update.currency)
    .bind(&update.order_id)
    .bind(update.at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts or ends the membership an order paid for.
pub async fn set_membership(
    conn: &mut SqliteConnection,
    order_id: &str,
    active: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (order_id, active) VALUES (?1, ?2)
         ON CONFLICT (order_id) DO UPDATE SET active = excluded.active",
    )
    .bind(order_id)
    .bind(active)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an alert for a person to follow up.
pub async fn insert_alert(
    conn: &mut SqliteConnection,
    payment_id: &str,
    webhook_id: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO alerts (payment_id, webhook_id, message) VALUES (?1, ?2, ?3)")
        .bind(payment_id)
        .bind(webhook_id)
        .bind(message)
        .execute(conn)
        .await?;
    Ok(())
}

/// A payment as `GET /payments/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub id: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub order_id: String,
    pub updated_at_event: DateTime<Utc>,
    /// Whether the order's membership is active; `None` if it never was.
    pub membership_active: Option<bool>,
    /// How many alerts the payment raised.
    pub alerts: i64,
}

/// The payment `payment_id` with its membership and alert count, if the app knows it.
pub async fn payment_view(
    pool: &SqlitePool,
    payment_id: &str,
) -> Result<Option<PaymentView>, sqlx::Error> {
    type Row = (
        String,
        String,
        i64,
        String,
        String,
        DateTime<Utc>,
        Option<bool>,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT p.id, p.status, p.amount, p.currency, p.order_id, p.updated_at_event, m.active,
                (SELECT COUNT(*) FROM alerts a WHERE a.payment_id = p.id)
         FROM payments p LEFT JOIN memberships m ON m.order_id = p.order_id
         WHERE p.id = ?1",
    )
    .bind(payment_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(id, status, amount, currency, order_id, updated_at_event, membership_active, alerts)| {
            PaymentView {
                id,
                status,
                amount,
                currency,
                order_id,
                updated_at_event,
                membership_active,
                alerts,
            }
        },
    ))
}

fn parse_status(name: &str) -> Result<Status, sqlx::Error> {
    Status::parse(name)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {name:?}").into()))
}
