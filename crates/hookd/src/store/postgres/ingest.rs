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
use crate::domain::DeliveryId;
use crate::store::cipher::SecretCipher;
use crate::store::status::{HELD, PENDING, SENDING};
use crate::store::{ClaimedDelivery, Lease, Message, StoreError, StoreResult};

/// The most messages one statement commits.
const INGEST_BATCH: usize = 128;
/// Most statements in flight at once; the rest of the pool serves claims, results and reads.
const MAX_INGESTERS: u32 = 4;
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
    /// Starts the ingesters (a quarter of the pool's connections, at most
    /// [`MAX_INGESTERS`]); they end when `stop` is cancelled or the queue is dropped.
    pub fn start(
        pool: PgPool,
        pool_size: u32,
        cipher: Arc<SecretCipher>,
        stop: CancellationToken,
    ) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..(pool_size / 4).clamp(1, MAX_INGESTERS) {
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
    // Messages with an ordering key are committed one by one under a lock on their key, so
    // "is an earlier delivery of this key unfinished?" is answered in commit order.
    let (keyed, batch): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|job| job.message.ordering_key.is_some());
    for job in keyed {
        let answer = insert_keyed(pool, cipher, &job).await;
        let _ = job.reply.send(answer);
    }
    if batch.is_empty() {
        return;
    }
    match insert_batch(pool, cipher, &batch).await {
        Ok(mut answers) => {
            for job in batch {
                let answer = answers.remove(job.message.id.as_str()).unwrap_or_default();
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(StoreError::Conflict(_)) if batch.len() > 1 => {
            for job in batch {
                let answer = insert_batch(pool, cipher, std::slice::from_ref(&job))
                    .await
                    .map(|mut answers| answers.remove(job.message.id.as_str()).unwrap_or_default());
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

/// Commits one keyed message under a transaction-level advisory lock on (application, key);
/// releasing the next held delivery takes the same lock (see `record::release_held`).
async fn insert_keyed(pool: &PgPool, cipher: &SecretCipher, job: &Job) -> StoreResult<Ingested> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    lock_key(
        &mut tx,
        &job.message.app_id,
        job.message.ordering_key.as_deref().unwrap_or_default(),
    )
    .await?;
    let mut answers = insert_batch(&mut *tx, cipher, std::slice::from_ref(job)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(answers.remove(job.message.id.as_str()).unwrap_or_default())
}

/// Serialises everything that holds or releases deliveries of one ordering key.
pub async fn lock_key(conn: &mut sqlx::PgConnection, app_id: &str, key: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
        .bind(app_id)
        .bind(key)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// One statement: the messages, their payloads, and one delivery per enabled endpoint of the
/// message's application whose event types and channels match (the same rule as
/// [`Endpoint::wants`]). A delivery's id is derived from its message and endpoint, which are
/// unique together. Leased deliveries come back with their endpoint, ready to send. The
/// messages' feed columns (`feed_xid`, `feed_seq`) are left out of the column list on purpose:
/// their defaults record this transaction's id and the next sequence values.
async fn insert_batch<'e, E>(
    executor: E,
    cipher: &SecretCipher,
    batch: &[Job],
) -> StoreResult<HashMap<String, Ingested>>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
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
    let mut keys = Vec::with_capacity(n);
    // Endpoints a worker has no room for are never leased at ingest (see `Lease`).
    let mut skip: Vec<&str> = Vec::new();
    for job in batch {
        keys.push(job.message.ordering_key.as_deref());
        if let Some(lease) = &job.lease {
            skip.extend(lease.skip_endpoints.iter().map(|id| id.as_str()));
        }
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
                        $11::text[], $13::bigint[])
              AS m(id, app_id, event_type, event_id, channels_json, created_at, payload,
                   lease_owner, lease_token, lease_until, ordering_key, payload_expires_at)
         ), message AS (
            INSERT INTO messages (id, app_id, event_type, event_id, channels, created_at,
                                  ordering_key, payload_expires_at)
            SELECT id, app_id, event_type, event_id, channels, created_at, ordering_key,
                   payload_expires_at
            FROM m
         ), payload AS (
            INSERT INTO message_payloads (msg_id, payload) SELECT id, payload FROM m
         ), fanout AS (
            -- Held behind an unfinished delivery of the same key, leased to the ingesting
            -- worker (never for a throttled or busy endpoint, nor for a listen session's
            -- endpoint pinned to another node: only that node holds the session), or due now.
            SELECT m.*, e.id AS endpoint_id,
                   CASE WHEN m.ordering_key IS NOT NULL AND EXISTS (
                            SELECT 1 FROM deliveries d2 WHERE d2.endpoint_id = e.id
                            AND d2.ordering_key = m.ordering_key AND d2.status IN ({PENDING}, {SENDING}, {HELD}))
                        THEN {HELD}
                        WHEN m.lease_token IS NOT NULL AND e.throttle_rate IS NULL
                             AND NOT (e.id = ANY($12::text[]))
                             AND (e.listen_node IS NULL OR e.listen_node = m.lease_owner)
                        THEN {SENDING}
                        ELSE {PENDING} END AS status
            FROM m JOIN endpoints e ON e.app_id = m.app_id AND NOT e.disabled
                 AND (e.event_types IS NULL OR m.event_type = ANY(e.event_types))
                 AND (e.channels IS NULL OR e.channels && COALESCE(m.channels, '{{}}'))
         ), delivery AS (
            INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at,
                                    lease_owner, lease_token, updated_at, ordering_key)
            SELECT 'dlv_' || substr(f.id, 5) || substr(f.endpoint_id, 4), f.id, f.endpoint_id,
                   f.app_id, f.status,
                   CASE f.status WHEN {HELD} THEN NULL WHEN {SENDING} THEN f.lease_until
                                 ELSE f.created_at END,
                   CASE WHEN f.status = {SENDING} THEN f.lease_owner END,
                   CASE WHEN f.status = {SENDING} THEN f.lease_token END,
                   f.created_at, f.ordering_key
            FROM fanout f
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
    .bind(&keys)
    .bind(&skip)
    .bind(&expires)
    .fetch_all(executor)
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
        let delivery_id: DeliveryId = row.try_get("delivery_id").map_err(db_error)?;
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
