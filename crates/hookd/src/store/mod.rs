//! The store: everything hookd keeps, behind one trait.
//!
//! Callers (the API, the delivery engine, the CLI) only see [`Store`] and the plain records
//! below; each backend ([`sqlite`] for one node, [`postgres`] for many) implements the trait
//! with its own SQL and migrations, chosen by the database URL's scheme. Invariants every
//! implementation keeps:
//! - `create_message` commits the message and one delivery per matching endpoint in one
//!   transaction before it returns.
//! - A claimed delivery carries a lease token; `record_attempts` applies a result only while the
//!   delivery still holds that token (fencing), so an attempt whose lease was lost changes nothing.
//! - An expired lease is claimable again by the same claim query as a due retry.
//! - `record_attempts` keeps each endpoint's failure clock ([`health`]) in the transaction that
//!   records its results, and disabling an endpoint there cancels its pending deliveries like
//!   [`Store::update_endpoint`] does.
//! - A claimed delivery whose endpoint is disabled is canceled, never handed to a worker.
//! - Every query that reads tenant data is scoped by application id.
//! - A delivery with an ordering key is held (not due) while an earlier delivery with the same
//!   key to the same endpoint is unfinished; finishing one releases the next.
//! - `record_attempts` brings a recovered endpoint back promptly ([`catchup`]): in the
//!   transaction where a failing endpoint succeeds, its deliveries waiting for a later retry
//!   start being made due, at most [`CATCHUP_BATCH`] due at a time and no faster than its
//!   rate limit; held deliveries stay held and attempt counts are kept.
//! - A throttled endpoint's deliveries start no closer than `1000 / throttleRate` ms apart
//!   across all nodes: claiming plans them with [`throttle::plan`] against the
//!   endpoint's stored schedule, and ingest never leases them directly.
//! - Operational events are written to the outbox ([`outbox`]) in the transaction of their
//!   cause (an endpoint change the API announces, recorded results), only while
//!   [`Store::set_operational`] turned it on, and never about the operational application;
//!   `publish_outbox` creates a row's message and deletes the row in one transaction, and of
//!   several nodes publishing at once only one publishes a row.
//! - A `hookd listen` session's endpoint is pinned to the node holding the session
//!   ([`Store::pin_listen_endpoint`]): while that node heartbeats, no other node claims its
//!   deliveries or leases them at ingest, so no other node ever attempts (and fails) them.
//! - `read_feed` answers an application's messages in commit order from positions that never
//!   change, and never answers a position that a transaction still running could precede.
//!
//! `tests/it/store_conformance.rs` checks these promises through the trait alone, with explicit
//! clocks and leases, on both backends.

pub(crate) mod activity;
pub(crate) mod catchup;
pub mod checks;
pub(crate) mod cipher;
pub(crate) mod claim;
pub mod dashboard;
pub(crate) mod health;
mod model;
pub mod outbox;
pub(crate) mod outcome;
pub(crate) mod postgres;
pub(crate) mod records;
pub(crate) mod sqlite;
pub(crate) mod tasks;
pub(crate) mod throttle;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{AppId, AttemptId, EndpointId, MessageId, TaskId, TokenId};
use outbox::Event;
use tokio::sync::mpsc;

pub use dashboard::{
    AuditEntry, AuditFilter, EndpointCounts, EndpointLatency, MessageSearch, NodeReport,
    TrafficMinute,
};
pub use model::*;
pub use outbox::{EndpointChange, OutboxRow, Published};

/// How many of a recovering endpoint's deliveries are kept due at once ([`catchup`]).
pub const CATCHUP_BATCH: usize = catchup::RELEASE_BATCH;
/// The shortest time between the starts of two catch-ups of one endpoint, in ms ([`catchup`]).
pub const CATCHUP_RESTART_AFTER_MS: i64 = catchup::RESTART_AFTER_MS;

/// How long a node may stay silent (no heartbeat in `nodes`; they come every 2 s) and still
/// hold its `hookd listen` pins, in ms. A pin to a node silent for longer (killed, or gone
/// for good) is ignored: any node claims the endpoint's deliveries, and without the session
/// they fail and retry as an unreachable endpoint's would, until the CLI re-opens the session
/// elsewhere and re-pins it. Long enough for a few lost heartbeats, short enough that a CLI
/// which never comes back does not keep its deliveries pending for long.
pub const LISTEN_HOLDER_SILENT_MS: i64 = 10_000;
/// The most pending deliveries of a listen endpoint that re-pinning makes due at once.
pub const LISTEN_RELEASE_LIMIT: i64 = 1_000;

/// Errors the store reports to its callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique value (uid, event type name, eventId, token) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// The database file is held by another hookd process.
    #[error("{0}")]
    Locked(String),
    /// The database cannot take the request now but will again without anyone's help: its
    /// disk is full, its connection was cut, every pooled connection is busy. Nothing was
    /// written; the caller may retry.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a unique value that is already taken belongs to. Each backend tells it from its own
/// names for the unique indexes; the words clients read in the 409 are chosen here, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    AppUid,
    EndpointUid,
    EventTypeName,
    EventId,
    MessageId,
    Other,
}

impl Taken {
    /// The first of `names` (a backend's name for a unique index, paired with what it holds)
    /// that `matches` the database's description of the violation.
    pub fn find(names: &[(&str, Taken)], matches: impl Fn(&str) -> bool) -> Taken {
        names
            .iter()
            .find(|(name, _)| matches(name))
            .map_or(Taken::Other, |(_, taken)| *taken)
    }

    /// The conflict clients see.
    pub fn conflict(self) -> StoreError {
        StoreError::Conflict(match self {
            Taken::AppUid => "an application with this uid",
            Taken::EndpointUid => "an endpoint with this uid",
            Taken::EventTypeName => "an event type with this name",
            Taken::EventId => "a message with this eventId",
            Taken::MessageId => "a message with this id",
            Taken::Other => "a record with this key",
        })
    }
}

/// The persistence interface of hookd.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    // Applications.
    async fn create_app(&self, app: &Application) -> StoreResult<()>;
    /// Finds an application by id or uid.
    async fn get_app(&self, id_or_uid: &str) -> StoreResult<Option<Application>>;
    async fn list_apps(&self, page: &PageRequest) -> StoreResult<Vec<Application>>;
    async fn update_app(&self, app: &Application) -> StoreResult<()>;
    async fn delete_app(&self, app_id: &AppId) -> StoreResult<bool>;

    // Endpoints, always within one application.
    async fn create_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()>;
    async fn get_endpoint(&self, app_id: &AppId, id_or_uid: &str) -> StoreResult<Option<Endpoint>>;
    async fn list_endpoints(
        &self,
        app_id: &AppId,
        page: &PageRequest,
    ) -> StoreResult<Vec<Endpoint>>;
    /// Saves every field of an endpoint. Disabling it cancels its pending deliveries;
    /// re-enabling it stops its failure clock.
    /// Writes `endpoint` over the stored one if that one still has the version the caller read
    /// (`read_at`, its `updated_at` then); answers false, writing nothing, when it changed
    /// meanwhile (an automatic disable, another request), so no update undoes a change it did
    /// not see. `endpoint.updated_at` must be later than `read_at`.
    async fn update_endpoint(&self, endpoint: &Endpoint, read_at: i64) -> StoreResult<bool>;
    async fn delete_endpoint(&self, app_id: &AppId, endpoint_id: &EndpointId) -> StoreResult<bool>;
    /// An endpoint change the API announces: what [`Store::create_endpoint`],
    /// [`Store::update_endpoint`] or [`Store::delete_endpoint`] does (answering true for a
    /// create), plus, when the change was made and the outbox is on, `event` written to the
    /// operational outbox in the same transaction.
    async fn change_endpoint(&self, change: EndpointChange<'_>, event: &Event)
        -> StoreResult<bool>;
    async fn endpoint_stats(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
    ) -> StoreResult<EndpointStats>;
    /// An endpoint's attempts per hour from the hour holding `since` (unix ms) on, as
    /// [`activity`] keeps them, and its failure clock.
    async fn endpoint_activity(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        since: i64,
    ) -> StoreResult<EndpointActivity>;

    // The event type catalog.
    async fn create_event_type(&self, event_type: &EventType) -> StoreResult<()>;
    async fn get_event_type(&self, name: &str) -> StoreResult<Option<EventType>>;
    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> StoreResult<Vec<EventType>>;
    async fn update_event_type(&self, event_type: &EventType) -> StoreResult<()>;
    async fn delete_event_type(&self, name: &str) -> StoreResult<bool>;
    /// Which of `names` are in the catalog and not archived.
    async fn known_event_types(&self, names: &[String]) -> StoreResult<Vec<String>>;

    // Messages.
    /// Commits the message and its fan-out. With a lease, the new deliveries the lease allows
    /// are claimed by the caller's worker in the same transaction and returned ready to send;
    /// the others are counted, so the caller can wake a worker to claim them.
    async fn create_message(
        &self,
        message: &Message,
        lease: Option<Lease>,
    ) -> StoreResult<Ingested>;
    /// Finds a message of an application by its id or its `eventId`.
    async fn get_message(
        &self,
        app_id: &AppId,
        id_or_event_id: &str,
    ) -> StoreResult<Option<Message>>;
    async fn list_messages(
        &self,
        app_id: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Message>>;
    /// The pull feed: up to `limit` messages of an application placed after `after`, in commit
    /// order, each with its position. Only messages whose place is final are answered: no
    /// message committed later can take a position before one already answered, so a reader
    /// that resumes from the last position it got never misses a message nor sees one twice.
    async fn read_feed(
        &self,
        app_id: &AppId,
        after: FeedPosition,
        limit: usize,
    ) -> StoreResult<Vec<(FeedPosition, Message)>>;

    /// Removes a message's payload now, as if its retention had ended: it reads as `{}`, and
    /// its deliveries that still had work are cancelled. False when the application has no
    /// such message.
    async fn expunge_payload(&self, app_id: &AppId, msg_id: &MessageId) -> StoreResult<bool>;
    /// Commits a message and one delivery of it to one endpoint of its application (due now),
    /// whatever the endpoint subscribes to: an example sent on request.
    async fn create_message_to(
        &self,
        message: &Message,
        endpoint_id: &EndpointId,
    ) -> StoreResult<()>;

    // Deliveries and attempts.
    async fn list_attempts(
        &self,
        app_id: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Attempt>>;
    async fn get_attempt(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        attempt_id: &AttemptId,
    ) -> StoreResult<Option<Attempt>>;
    /// The endpoints a message was fanned out to, with each delivery's state.
    async fn list_message_deliveries(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        page: &PageRequest,
    ) -> StoreResult<Vec<(Endpoint, DeliveryState)>>;
    /// The messages fanned out to an endpoint, with each delivery's state.
    async fn list_endpoint_deliveries(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        page: &PageRequest,
    ) -> StoreResult<Vec<(Message, DeliveryState)>>;
    /// Makes one message due again for one endpoint, now. False when the message or the
    /// endpoint does not exist in that application.
    async fn resend(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        endpoint_id: &EndpointId,
    ) -> StoreResult<bool>;

    // The delivery engine's side.
    /// Leases up to `lease.limit` due deliveries (expired leases included), passing over the
    /// endpoints pinned to another live node ([`LISTEN_HOLDER_SILENT_MS`]): `lease.owner` is
    /// the claiming node's id.
    async fn claim_due(&self, lease: &Lease, limit: usize) -> StoreResult<Vec<ClaimedDelivery>>;
    /// When the next delivery becomes due, if any is waiting, passing over the endpoints in
    /// `skip_endpoints` (those the worker is busy with: their finished attempts wake it) and,
    /// as the claim does, those pinned to a live node other than `node_id`.
    async fn next_due(
        &self,
        skip_endpoints: &[EndpointId],
        node_id: &str,
    ) -> StoreResult<Option<i64>>;
    /// Pins a `hookd listen` session's endpoint to the node that holds the session (and
    /// enables it, its failure clock stopped): from now on only `node_id` claims or leases its
    /// deliveries while that node is alive. Its pending deliveries waiting for a later retry
    /// (at most [`LISTEN_RELEASE_LIMIT`]) become due at `now`, so a session re-opened on
    /// another node gets at once what failed while it was away. False when the endpoint does
    /// not exist in that application.
    async fn pin_listen_endpoint(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        node_id: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Records attempt results; each applies only while its lease is held. In the same
    /// transaction, moves the failure clock of each endpoint with applied results and disables
    /// (cancelling its pending deliveries) those that failed for `health.disable_after` or
    /// answered 410. Answers which results applied and which endpoints were disabled. `now`
    /// (unix ms) is the time the failure clocks are judged at and the writes are stamped with;
    /// callers pass the wall clock, tests a clock of their own.
    async fn record_attempts(
        &self,
        results: &[AttemptResult],
        health: &HealthPolicy,
        now: i64,
    ) -> StoreResult<Recorded>;
    /// Gives back the leases a worker holds, so its deliveries are due again at once.
    async fn release_leases(&self, owner: &str) -> StoreResult<()>;
    /// Gives claimed deliveries back unattempted, due again at `at` (each only while its lease
    /// still holds).
    async fn give_back(&self, deliveries: &[ClaimedDelivery], at: i64) -> StoreResult<()>;
    /// How much delivery work is waiting.
    async fn backlog(&self) -> StoreResult<Backlog>;
    /// Wake-ups from other nodes that made deliveries due (PostgreSQL `LISTEN/NOTIFY`), for a
    /// store that several nodes share. Hints only: the engine keeps polling. `None` for a
    /// single-node store.
    fn wakeups(&self) -> Option<mpsc::Receiver<()>> {
        None
    }

    // The operational outbox ([`outbox`]).
    /// Turns the outbox on for the operational application `own_app` (about which nothing is
    /// written), or off with `None`, as it is when the store opens.
    fn set_operational(&self, own_app: Option<AppId>);
    /// Up to `limit` rows of the outbox, oldest first. Another node may publish them meanwhile:
    /// [`Store::publish_outbox`] decides.
    async fn read_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxRow>>;
    /// In one transaction, deletes the outbox rows of `published` still there (passing over
    /// rows another node is publishing) and commits the message of each row it deleted, with
    /// one delivery to `endpoint_id` (the operational endpoint). Answers the ids published.
    async fn publish_outbox(
        &self,
        endpoint_id: &EndpointId,
        published: &[Published],
    ) -> StoreResult<Vec<i64>>;

    // Background tasks.
    async fn create_task(&self, task: &BackgroundTask) -> StoreResult<()>;
    async fn get_task(&self, task_id: &TaskId) -> StoreResult<Option<BackgroundTask>>;
    /// Runs one batch of one running task that can move: makes up to `limit` of the failed
    /// deliveries it covers due now and records how far it got, in one transaction, so a task
    /// cut short by a crash resumes after its last batch. A task waits while deliveries of its
    /// previous batch are still due or in flight, so a large recovery never floods the queue
    /// ahead of other endpoints. A task whose endpoint was disabled or deleted fails. `None`
    /// when no task could move. `now` (unix ms) is when the batch's deliveries become due.
    async fn run_task_batch(&self, limit: usize, now: i64) -> StoreResult<Option<TaskBatch>>;

    // Retention.
    /// Deletes up to `limit` attempts made before `before` (unix ms), up to `limit` messages
    /// created before it whose deliveries have no work left, with their deliveries and
    /// attempts, and up to `limit` background tasks that ended before it, with the hourly
    /// attempt counts of the hours before it. Answers how many attempts, messages and tasks
    /// went; callers repeat while it reaches `limit`.
    async fn prune(&self, before: i64, limit: usize) -> StoreResult<u64>;
    /// Deletes up to `limit` rows of each kind that outlived its own deadline at `now`:
    /// payloads past their retention (as [`Store::expunge_payload`] does) and idempotency
    /// records past their 24 hours. Answers how many rows changed; callers repeat while it
    /// reaches `limit`.
    async fn prune_expired(&self, now: i64, limit: usize) -> StoreResult<u64>;

    // Idempotency keys.
    /// Claims an idempotency key for a request, atomically: exactly one of several requests
    /// arriving at once acquires a free key; the others learn what holds it.
    async fn claim_idempotency_key(
        &self,
        claim: &IdempotencyClaim,
    ) -> StoreResult<IdempotencyState>;
    /// Saves the answer of the request holding `key`, to be replayed until the record expires.
    async fn save_idempotent_response(
        &self,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> StoreResult<()>;
    /// Frees a key whose request ended without an answer worth replaying (a server error), so
    /// that a retry runs the request again.
    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> StoreResult<()>;

    // API tokens.
    async fn create_token(&self, token: &ApiToken) -> StoreResult<()>;
    async fn find_token(&self, hash: &str) -> StoreResult<Option<ApiToken>>;
    /// Revokes the token with this hash; false when there is none.
    async fn revoke_token(&self, hash: &str) -> StoreResult<bool>;
    /// Uses up a one-time token: revokes the live token of this hash and kind and answers it,
    /// atomically, so of two requests redeeming the same key only one gets it. `None` when
    /// there is no such token, or it was revoked, used or expired at `now`.
    async fn redeem_token(
        &self,
        hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> StoreResult<Option<ApiToken>>;
    async fn count_tokens(&self) -> StoreResult<u64>;
    /// The live API tokens (not portal or dashboard sessions), newest first.
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// Revokes the API token with this id; false when there is no such live token.
    async fn revoke_api_token(&self, token_id: &TokenId) -> StoreResult<bool>;

    // The operator dashboard: reads across applications, for org callers only.
    /// Applications whose id, uid or name contains `text` (every one when it is empty).
    async fn search_apps(&self, text: &str, page: &PageRequest) -> StoreResult<Vec<Application>>;
    /// Endpoints of any application whose URL contains `text`, newest first.
    async fn search_endpoints(&self, text: &str, limit: usize) -> StoreResult<Vec<Endpoint>>;
    /// Messages of any application (or of `search.app_id`) that match, paged by id.
    async fn search_messages(
        &self,
        search: &MessageSearch,
        page: &PageRequest,
    ) -> StoreResult<Vec<Message>>;
    async fn endpoint_counts(&self) -> StoreResult<EndpointCounts>;
    /// The endpoints whose attempts took longest on average from `since_hour` (hours since the
    /// epoch) on, slowest first.
    async fn slowest_endpoints(
        &self,
        since_hour: i64,
        limit: usize,
    ) -> StoreResult<Vec<EndpointLatency>>;
    /// Adds a node's counts to its rows of the per-minute traffic.
    async fn add_traffic(&self, node_id: &str, minutes: &[TrafficMinute]) -> StoreResult<()>;
    /// Traffic per minute from `since_minute` on, summed over the nodes, in minute order;
    /// minutes without traffic are absent.
    async fn traffic_since(&self, since_minute: i64) -> StoreResult<Vec<TrafficMinute>>;
    /// Writes a node's report over its previous one.
    async fn report_node(&self, node: &NodeReport) -> StoreResult<()>;
    /// Nodes that reported at or after `since`, by id.
    async fn list_nodes(&self, since: i64) -> StoreResult<Vec<NodeReport>>;
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The audit log, newest first, paged by id.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<AuditEntry>>;

    /// Keeps the report of a check of an endpoint, dropping its oldest beyond the newest
    /// [`checks::KEPT_PER_ENDPOINT`]. Deleting the endpoint deletes its reports.
    async fn record_endpoint_check(&self, check: &checks::EndpointCheck) -> StoreResult<()>;
    /// An endpoint's check reports, newest first.
    async fn endpoint_checks(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        limit: usize,
    ) -> StoreResult<Vec<checks::EndpointCheck>>;
}

/// The store chosen by a database URL.
pub type SharedStore = Arc<dyn Store>;

/// Who opens the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `hookd serve`: runs workers, so a SQLite file must be its alone (see
    /// [`sqlite::SqliteStore::open`]).
    Serve,
    /// A short command (`migrate`, `token …`) that may run beside a server.
    Tool,
}

/// Connection pool settings of a store that uses one (PostgreSQL).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections one node opens.
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails.
    pub acquire_timeout: Duration,
    /// How long one statement may run before the database cancels it.
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// True for the URL schemes of the PostgreSQL store.
pub(crate) fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// Opens the store a database URL names, running its migrations. Endpoint secrets are sealed
/// under `main_secret`; without one, a SQLite store keeps a generated key in `<database>.key`,
/// and a PostgreSQL store refuses to start (every node must hold the same key, and no node's
/// disk is the right place for it).
pub async fn open(
    database_url: &str,
    main_secret: Option<&str>,
    pool: &PoolOptions,
    mode: OpenMode,
) -> anyhow::Result<SharedStore> {
    if is_postgres_url(database_url) {
        let Some(secret) = main_secret else {
            anyhow::bail!(
                "HOOKD_MAIN_SECRET is required with PostgreSQL: every node seals and opens endpoint secrets with it, so set the same random value of 32+ characters on every node"
            );
        };
        let cipher = cipher::SecretCipher::from_main_secret(secret).map_err(anyhow::Error::msg)?;
        let store = postgres::PgStore::open(database_url, pool, cipher)
            .await
            .map_err(|e| anyhow::anyhow!("{e} (database {})", redact_url(database_url)))?;
        return Ok(Arc::new(store));
    }
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        let cipher = match main_secret {
            Some(secret) => cipher::SecretCipher::from_main_secret(secret),
            None => cipher::SecretCipher::from_key_file(&key_file_beside(path)),
        }
        .map_err(anyhow::Error::msg)?;
        let store = sqlite::SqliteStore::open(path, cipher, mode).await?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!(
        "HOOKD_DATABASE_URL must start with sqlite://, postgres:// or postgresql://, got {:?}",
        redact_url(database_url)
    )
}

/// `hookd backup`: a consistent copy of the SQLite database `database_url` names, taken while
/// hookd serves from it, written to `target` (which must not exist). PostgreSQL has its own
/// tools (docs/OPERATIONS.md); this refuses its URLs. Answers where the key that opens the
/// copy's sealed secrets is kept, when it is a generated key file rather than
/// `HOOKD_MAIN_SECRET`.
pub async fn backup(
    database_url: &str,
    target: &std::path::Path,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let Some(path) = database_url.strip_prefix("sqlite://") else {
        anyhow::bail!(
            "hookd backup copies a SQLite database; back PostgreSQL up with its own tools \
             (pg_dump, or base backups with WAL archiving: see docs/OPERATIONS.md)"
        );
    };
    let source = std::path::PathBuf::from(path);
    let target = target.to_path_buf();
    let key = key_file_beside(&source);
    tokio::task::spawn_blocking(move || sqlite::backup::backup(&source, &target)).await??;
    Ok(key.exists().then_some(key))
}

/// What to do about a database a newer hookd has migrated (both backends say it alike).
pub(crate) fn newer_schema(migration: &str) -> String {
    format!(
        "this database was upgraded by a newer hookd (it has migration {migration}, which this \
         version does not know): going back to an older version is not supported; run the \
         newer version, or restore a backup taken before the upgrade"
    )
}

/// `<database>.key`, where a SQLite store keeps its generated main secret.
fn key_file_beside(db_path: &std::path::Path) -> std::path::PathBuf {
    let mut path = db_path.as_os_str().to_owned();
    path.push(".key");
    path.into()
}

/// A database URL with any password removed, for messages.
pub(crate) fn redact_url(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => database_url.to_string(),
    }
}
