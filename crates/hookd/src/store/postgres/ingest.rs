//! Ingest in batches: many API requests' messages committed by one statement.
//!
//! Each `create_message` call becomes a job on a queue. A few ingester tasks each take every
//! job waiting at that moment (up to [`INGEST_BATCH`]) and commit them with one statement:
//! messages, payloads and the fan-out into deliveries, joined with the endpoints in SQL. Each
//! caller is answered only after that commit. Under load this turns many small transactions,
//! each with its round trips and its WAL flush, into a few large ones; when idle, a batch is one
//! message and costs what a single insert would.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::postgres::PgPool;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use super::connection::db_error;
use super::rows::{self, to_json, ENDPOINT_COLUMNS};
use crate::store::cipher::SecretCipher;
use crate::store::{ClaimedDelivery, Lease, Message, StoreError, StoreResult};

/// The most messages one statement commits.
const INGEST_BATCH: usize = 128;
/// Statements in flight at once; the rest of the pool serves claims, results and reads.
const INGESTERS: usize = 4;
/// Messages waiting for an ingester before callers are slowed down.
const QUEUE_DEPTH: usize = 4096;

/// What one ingest answers: the deliveries leased at birth, and how many deliveries were made.
pub type Ingested = (Vec<ClaimedDelivery>, usize);

struct Job {
    message: Message,
    lease: Option<Lease>,
    reply: oneshot::Sender<StoreResult<Ingested>>,
}

/// The queue in front of the ingesters.
pub struct IngestQueue {
    jobs: mpsc::Sender<Job>,
}

impl IngestQueue {
    /// Starts the ingesters; they end when `stop` is cancelled or the queue is dropped.
    pub fn start(pool: PgPool, cipher: Arc<SecretCipher>, stop: CancellationToken) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..INGESTERS {
            tokio::spawn(ingester(
                pool.clone(),
                Arc::clone(&cipher),
                Arc::clone(&queue),
                stop.clone(),
            ));
        }
        Self { jobs }
    }

    /// Commits `message` with its fan-out; answers once it is durable.
    pub async fn submit(&self, message: &Message, lease: Option<Lease>) -> StoreResult<Ingested> {
        let stopped = || StoreError::Database("the PostgreSQL ingesters have stopped".into());
        let (reply, answer) = oneshot::channel();
        let job = Job {
            message: message.clone(),
            lease,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn ingester(
    pool: PgPool,
    cipher: Arc<SecretCipher>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    loop {
        // One ingester at a time gathers a batch; it lets go of the queue before it writes, so
        // the next batch forms while this one commits.
        let received = {
            let mut queue = queue.lock().await;
            tokio::select! {
                () = stop.cancelled() => 0,
                n = queue.recv_many(&mut batch, INGEST_BATCH) => n,
            }
        };
        if received == 0 {
            break;
        }
        commit(&pool, &cipher, std::mem::take(&mut batch)).await;
    }
}

/// Commits a batch and answers its callers. A batch refused for a constraint (one message's
/// fault) is retried message by message, so only that caller gets the error; any other failure
/// (the database is unreachable) fails the whole batch at once.
async fn commit(pool: &PgPool, cipher: &SecretCipher, batch: Vec<Job>) {
    match insert_batch(pool, cipher, &batch).await {
        Ok(mut answers) => {
            for job in batch {
                let answer = answers.remove(&job.message.id).unwrap_or_default();
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(StoreError::Conflict(_)) if batch.len() > 1 => {
            for job in batch {
                let answer = insert_batch(pool, cipher, std::slice::from_ref(&job))
                    .await
                    .map(|mut answers| answers.remove(&job.message.id).unwrap_or_default());
                let _ = job.reply.send(answer);
            }
        }
        Err(err) => {
            for job in batch {
                let _ = job.reply.send(Err(err.clone()));
            }
        }
    }
}

/// One statement: the messages, their payloads, and one delivery per enabled endpoint of the
/// message's application whose event types and channels match (the same rule as
/// [`Endpoint::wants`]). A delivery's id is derived from its message and endpoint, which are
/// unique together. Leased deliveries come back with their endpoint, ready to send.
async fn insert_batch(
    pool: &PgPool,
    cipher: &SecretCipher,
    batch: &[Job],
) -> StoreResult<HashMap<String, Ingested>> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut app_ids = Vec::with_capacity(n);
    let mut event_types = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut expires = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut untils = Vec::with_capacity(n);
    for job in batch {
        let m = &job.message;
        ids.push(m.id.as_str());
        app_ids.push(m.app_id.as_str());
        event_types.push(m.event_type.as_str());
        event_ids.push(m.event_id.as_deref());
        // Arrays of arrays must be rectangular in PostgreSQL: channels travel as JSON text.
        channels.push(m.channels.as_ref().map(to_json));
        created.push(m.created_at);
        expires.push(m.payload_expires_at);
        payloads.push(&*m.payload);
        owners.push(job.lease.as_ref().map(|l| l.owner.as_str()));
        tokens.push(job.lease.as_ref().map(|l| l.token.as_str()));
        untils.push(job.lease.as_ref().map(|l| l.until));
    }
    let rows = sqlx::query(&format!(
        "WITH m AS (
            SELECT m.*, CASE WHEN m.channels_json IS NULL THEN NULL ELSE
                        ARRAY(SELECT jsonb_array_elements_text(m.channels_json::jsonb)) END
                        AS channels
            FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                        $6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[],
                        $11::bigint[])
              AS m(id, app_id, event_type, event_id, channels_json, created_at, payload,
                   lease_owner, lease_token, lease_until, payload_expires_at)
         ), message AS (
            INSERT INTO messages (id, app_id, event_type, event_id, channels, created_at,
                                  payload_expires_at)
            SELECT id, app_id, event_type, event_id, channels, created_at, payload_expires_at
            FROM m
         ), payload AS (
            INSERT INTO message_payloads (msg_id, payload) SELECT id, payload FROM m
         ), delivery AS (
            INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
                                    lease_owner, lease_token, updated_at)
            SELECT 'dlv_' || substr(m.id, 5) || substr(e.id, 4), m.id, e.id, m.app_id,
                   CASE WHEN m.lease_token IS NULL THEN 1 ELSE 3 END,
                   COALESCE(m.lease_until, m.created_at), m.lease_owner, m.lease_token,
                   m.created_at
            FROM m JOIN endpoints e ON e.app_id = m.app_id AND NOT e.disabled
                 AND (e.event_types IS NULL OR m.event_type = ANY(e.event_types))
                 AND (e.channels IS NULL OR e.channels && COALESCE(m.channels, '{{}}'))
            RETURNING id, msg_id, endpoint_id, lease_token
         )
         SELECT d.id AS delivery_id, d.msg_id, d.lease_token IS NOT NULL AS leased,
                {ENDPOINT_COLUMNS}
         FROM delivery d LEFT JOIN endpoints e
              ON e.id = d.endpoint_id AND d.lease_token IS NOT NULL"
    ))
    .bind(&ids)
    .bind(&app_ids)
    .bind(&event_types)
    .bind(&event_ids)
    .bind(&channels)
    .bind(&created)
    .bind(&payloads)
    .bind(&owners)
    .bind(&tokens)
    .bind(&untils)
    .bind(&expires)
    .fetch_all(pool)
    .await
    .map_err(db_error)?;

    let jobs: HashMap<&str, &Job> = batch.iter().map(|j| (j.message.id.as_str(), j)).collect();
    let mut answers: HashMap<String, Ingested> = HashMap::new();
    for row in &rows {
        let msg_id: String = row.try_get("msg_id").map_err(db_error)?;
        let answer = answers.entry(msg_id.clone()).or_default();
        answer.1 += 1;
        let leased: bool = row.try_get("leased").map_err(db_error)?;
        let (true, Some(job)) = (leased, jobs.get(msg_id.as_str())) else {
            continue;
        };
        let Some(lease) = &job.lease else {
            continue;
        };
        let endpoint = rows::endpoint(row, cipher).map_err(db_error)?;
        let delivery_id: String = row.try_get("delivery_id").map_err(db_error)?;
        answer.0.push(ClaimedDelivery::new(
            delivery_id,
            lease,
            &job.message,
            &endpoint,
            0,
        ));
    }
    Ok(answers)
}
