//! The PostgreSQL store: any number of hookd nodes on one database.
//!
//! What differs from the SQLite store, and why:
//! - Claims take due rows with `FOR UPDATE SKIP LOCKED`, so nodes claiming at the same moment
//!   split the work instead of waiting on each other.
//! - Leases are never released at start: other nodes may hold them. A node gives back its own
//!   leases at shutdown ([`Store::release_leases`]); those of a node that died expire, and the
//!   claim query picks them up like any due delivery.
//! - Work made due without a local lease is announced with `NOTIFY hookd_due`, which every node
//!   `LISTEN`s to ([`wakeups`]); polling stays the ground truth.
//! - Writes need no single writer, but they are batched: concurrent ingests share one statement
//!   and one commit ([`ingest`]), and each batch of attempt results is one statement.

mod activity;
mod attempts;
mod catalog;
mod catchup;
mod checks;
mod claim;
mod connection;
mod dashboard;
mod feed;
mod idempotency;
mod ingest;
mod list;
mod messages;
mod outbox;
mod prune;
mod record;
mod rows;
mod tasks;
mod wakeups;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::ingest::IngestQueue;
use self::wakeups::Notifier;
use super::checks::EndpointCheck;
use super::cipher::SecretCipher;
use super::*;

/// The PostgreSQL implementation of [`Store`].
pub struct PgStore {
    pool: PgPool,
    cipher: Arc<SecretCipher>,
    ingest: IngestQueue,
    notifier: Notifier,
    operational: super::outbox::OutboxSwitch,
    /// Stops the store's background tasks when the store is dropped.
    stop: CancellationToken,
}

impl PgStore {
    /// Connects to `database_url` and brings the schema up to date.
    pub async fn open(
        database_url: &str,
        options: &PoolOptions,
        cipher: SecretCipher,
    ) -> StoreResult<Self> {
        let pool = connection::connect(database_url, options).await?;
        connection::migrate(&pool).await?;
        let sealed = catalog::seal_clear_secrets(&pool, &cipher).await?;
        if sealed > 0 {
            tracing::info!(
                endpoints = sealed,
                "sealed endpoint secrets stored in clear"
            );
        }
        let stop = CancellationToken::new();
        let cipher = Arc::new(cipher);
        Ok(Self {
            ingest: IngestQueue::start(
                pool.clone(),
                options.max_connections,
                Arc::clone(&cipher),
                stop.clone(),
            ),
            notifier: Notifier::start(pool.clone(), stop.clone()),
            pool,
            cipher,
            operational: Default::default(),
            stop,
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(connection::db_error)?;
        Ok(())
    }

    async fn create_app(&self, app: &Application) -> StoreResult<()> {
        catalog::insert_app(&self.pool, app).await
    }

    async fn get_app(&self, id_or_uid: &str) -> StoreResult<Option<Application>> {
        catalog::get_app(&self.pool, id_or_uid).await
    }

    async fn list_apps(&self, page: &PageRequest) -> StoreResult<Vec<Application>> {
        catalog::list_apps(&self.pool, page).await
    }

    async fn update_app(&self, app: &Application) -> StoreResult<()> {
        catalog::update_app(&self.pool, app).await
    }

    async fn delete_app(&self, app_id: &AppId) -> StoreResult<bool> {
        catalog::delete_app(&self.pool, app_id).await
    }

    async fn create_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        catalog::insert_endpoint(&self.pool, &self.cipher, endpoint).await
    }

    async fn get_endpoint(&self, app_id: &AppId, id_or_uid: &str) -> StoreResult<Option<Endpoint>> {
        catalog::get_endpoint(&self.pool, &self.cipher, app_id, id_or_uid).await
    }

    async fn list_endpoints(
        &self,
        app_id: &AppId,
        page: &PageRequest,
    ) -> StoreResult<Vec<Endpoint>> {
        catalog::list_endpoints(&self.pool, &self.cipher, app_id, page).await
    }

    async fn update_endpoint(&self, endpoint: &Endpoint, read_at: i64) -> StoreResult<bool> {
        catalog::update_endpoint(&self.pool, &self.cipher, endpoint, read_at).await
    }

    async fn delete_endpoint(&self, app_id: &AppId, endpoint_id: &EndpointId) -> StoreResult<bool> {
        catalog::delete_endpoint(&self.pool, app_id, endpoint_id).await
    }

    async fn change_endpoint(
        &self,
        change: EndpointChange<'_>,
        event: &Event,
    ) -> StoreResult<bool> {
        let rows = self.operational.rows([event.clone()]);
        if rows.is_empty() {
            return match change {
                EndpointChange::Create(endpoint) => {
                    self.create_endpoint(endpoint).await.map(|()| true)
                }
                EndpointChange::Update { endpoint, read_at } => {
                    self.update_endpoint(endpoint, read_at).await
                }
                EndpointChange::Delete {
                    app_id,
                    endpoint_id,
                } => self.delete_endpoint(app_id, endpoint_id).await,
            };
        }
        catalog::change_endpoint(&self.pool, &self.cipher, change, &rows).await
    }

    async fn endpoint_activity(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        since: i64,
    ) -> StoreResult<EndpointActivity> {
        activity::endpoint_activity(&self.pool, app_id, endpoint_id, since).await
    }

    async fn endpoint_stats(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
    ) -> StoreResult<EndpointStats> {
        catalog::endpoint_stats(&self.pool, app_id, endpoint_id).await
    }

    async fn create_event_type(&self, event_type: &EventType) -> StoreResult<()> {
        catalog::insert_event_type(&self.pool, event_type).await
    }

    async fn get_event_type(&self, name: &str) -> StoreResult<Option<EventType>> {
        catalog::get_event_type(&self.pool, name).await
    }

    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> StoreResult<Vec<EventType>> {
        catalog::list_event_types(&self.pool, page, include_archived).await
    }

    async fn update_event_type(&self, event_type: &EventType) -> StoreResult<()> {
        catalog::update_event_type(&self.pool, event_type).await
    }

    async fn delete_event_type(&self, name: &str) -> StoreResult<bool> {
        catalog::delete_event_type(&self.pool, name).await
    }

    async fn known_event_types(&self, names: &[String]) -> StoreResult<Vec<String>> {
        catalog::known_event_types(&self.pool, names).await
    }

    async fn create_message(
        &self,
        message: &Message,
        lease: Option<Lease>,
    ) -> StoreResult<Ingested> {
        let (claimed, created) = self.ingest.submit(message, lease).await?;
        let unleased = created - claimed.len();
        if unleased > 0 {
            // No local worker took them: tell every node's workers.
            self.notifier.notify();
        }
        Ok(Ingested { claimed, unleased })
    }

    async fn get_message(&self, app_id: &AppId, msg_id: &str) -> StoreResult<Option<Message>> {
        messages::get_message(&self.pool, app_id, msg_id).await
    }

    async fn list_messages(
        &self,
        app_id: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Message>> {
        messages::list_messages(&self.pool, app_id, filter, page).await
    }

    async fn read_feed(
        &self,
        app_id: &AppId,
        after: FeedPosition,
        limit: usize,
    ) -> StoreResult<Vec<(FeedPosition, Message)>> {
        feed::read_feed(&self.pool, app_id, after, limit).await
    }

    async fn expunge_payload(&self, app_id: &AppId, msg_id: &MessageId) -> StoreResult<bool> {
        messages::expunge_payload(&self.pool, app_id, msg_id).await
    }

    async fn create_message_to(
        &self,
        message: &Message,
        endpoint_id: &EndpointId,
    ) -> StoreResult<()> {
        messages::insert_message_to(&self.pool, message, endpoint_id).await?;
        // The API wakes its own worker; other nodes learn of it here.
        self.notifier.notify();
        Ok(())
    }

    async fn list_attempts(
        &self,
        app_id: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Attempt>> {
        attempts::list_attempts(&self.pool, app_id, filter, page).await
    }

    async fn get_attempt(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        attempt_id: &AttemptId,
    ) -> StoreResult<Option<Attempt>> {
        attempts::get_attempt(&self.pool, app_id, msg_id, attempt_id).await
    }

    async fn list_message_deliveries(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        page: &PageRequest,
    ) -> StoreResult<Vec<(Endpoint, DeliveryState)>> {
        attempts::list_message_deliveries(&self.pool, &self.cipher, app_id, msg_id, page).await
    }

    async fn list_endpoint_deliveries(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        page: &PageRequest,
    ) -> StoreResult<Vec<(Message, DeliveryState)>> {
        attempts::list_endpoint_deliveries(&self.pool, app_id, endpoint_id, page).await
    }

    async fn resend(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        endpoint_id: &EndpointId,
    ) -> StoreResult<bool> {
        let found = messages::resend(&self.pool, app_id, msg_id, endpoint_id).await?;
        if found {
            self.notifier.notify();
        }
        Ok(found)
    }

    async fn claim_due(&self, lease: &Lease, limit: usize) -> StoreResult<Vec<ClaimedDelivery>> {
        claim::claim_due(&self.pool, &self.cipher, lease, limit).await
    }

    async fn next_due(
        &self,
        skip_endpoints: &[EndpointId],
        node_id: &str,
    ) -> StoreResult<Option<i64>> {
        claim::next_due(&self.pool, skip_endpoints, node_id).await
    }

    async fn pin_listen_endpoint(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        node_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        claim::pin_listen_endpoint(&self.pool, app_id, endpoint_id, node_id, now).await
    }

    async fn record_attempts(
        &self,
        results: &[AttemptResult],
        health: &HealthPolicy,
        now: i64,
    ) -> StoreResult<Recorded> {
        if results.is_empty() {
            return Ok(Recorded::default());
        }
        record::record_attempts(&self.pool, results, health, now, &self.operational).await
    }

    async fn give_back(&self, deliveries: &[ClaimedDelivery], at: i64) -> StoreResult<()> {
        claim::give_back(&self.pool, deliveries, at).await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<()> {
        claim::release_leases(&self.pool, owner).await
    }

    fn wakeups(&self) -> Option<mpsc::Receiver<()>> {
        Some(wakeups::listen(self.pool.clone(), self.stop.clone()))
    }

    fn set_operational(&self, own_app: Option<AppId>) {
        self.operational.set(own_app);
    }

    async fn read_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxRow>> {
        outbox::read(&self.pool, limit).await
    }

    async fn publish_outbox(
        &self,
        endpoint_id: &EndpointId,
        published: &[Published],
    ) -> StoreResult<Vec<i64>> {
        let taken = outbox::publish(&self.pool, endpoint_id, published).await?;
        if !taken.is_empty() {
            // Any node's worker may claim the operational endpoint's deliveries.
            self.notifier.notify();
        }
        Ok(taken)
    }

    async fn create_task(&self, task: &BackgroundTask) -> StoreResult<()> {
        tasks::insert(&self.pool, task).await
    }

    async fn get_task(&self, task_id: &TaskId) -> StoreResult<Option<BackgroundTask>> {
        tasks::get(&self.pool, task_id).await
    }

    async fn run_task_batch(&self, limit: usize, now: i64) -> StoreResult<Option<TaskBatch>> {
        let batch = tasks::run_batch(&self.pool, limit, now).await?;
        if batch.as_ref().is_some_and(|b| b.made_due > 0) {
            self.notifier.notify();
        }
        Ok(batch)
    }

    async fn prune(&self, before: i64, limit: usize) -> StoreResult<u64> {
        let rows = prune::prune(&self.pool, before, limit).await?;
        let ended =
            tasks::prune(&self.pool, before, i64::try_from(limit).unwrap_or(i64::MAX)).await?;
        Ok(rows + ended)
    }

    async fn prune_expired(&self, now: i64, limit: usize) -> StoreResult<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let payloads = prune::expire_payloads(&self.pool, now, limit).await?;
        let keys = idempotency::prune(&self.pool, now, limit).await?;
        Ok(payloads + keys)
    }

    async fn claim_idempotency_key(
        &self,
        claim: &IdempotencyClaim,
    ) -> StoreResult<IdempotencyState> {
        idempotency::claim(&self.pool, claim).await
    }

    async fn save_idempotent_response(
        &self,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        idempotency::save(&self.pool, key, response).await
    }

    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> StoreResult<()> {
        idempotency::release(&self.pool, key).await
    }

    async fn create_token(&self, token: &ApiToken) -> StoreResult<()> {
        catalog::insert_token(&self.pool, token).await
    }

    async fn find_token(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        catalog::find_token(&self.pool, hash).await
    }

    async fn revoke_token(&self, hash: &str) -> StoreResult<bool> {
        catalog::revoke_token(&self.pool, hash).await
    }

    async fn backlog(&self) -> StoreResult<Backlog> {
        claim::backlog(&self.pool).await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> StoreResult<Option<ApiToken>> {
        catalog::redeem_token(&self.pool, hash, kind, now).await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        catalog::count_tokens(&self.pool).await
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        dashboard::list_api_tokens(&self.pool, crate::domain::time::now_millis()).await
    }

    async fn revoke_api_token(&self, token_id: &TokenId) -> StoreResult<bool> {
        dashboard::revoke_api_token(&self.pool, token_id).await
    }

    async fn search_apps(&self, text: &str, page: &PageRequest) -> StoreResult<Vec<Application>> {
        dashboard::search_apps(&self.pool, text, page).await
    }

    async fn search_endpoints(&self, text: &str, limit: usize) -> StoreResult<Vec<Endpoint>> {
        dashboard::search_endpoints(&self.pool, &self.cipher, text, limit).await
    }

    async fn search_messages(
        &self,
        search: &MessageSearch,
        page: &PageRequest,
    ) -> StoreResult<Vec<Message>> {
        messages::search_messages(&self.pool, search, page).await
    }

    async fn endpoint_counts(&self) -> StoreResult<EndpointCounts> {
        dashboard::endpoint_counts(&self.pool).await
    }

    async fn slowest_endpoints(
        &self,
        since_hour: i64,
        limit: usize,
    ) -> StoreResult<Vec<EndpointLatency>> {
        dashboard::slowest_endpoints(&self.pool, since_hour, limit).await
    }

    async fn add_traffic(&self, node_id: &str, minutes: &[TrafficMinute]) -> StoreResult<()> {
        dashboard::add_traffic(&self.pool, node_id, minutes).await
    }

    async fn traffic_since(&self, since_minute: i64) -> StoreResult<Vec<TrafficMinute>> {
        dashboard::traffic_since(&self.pool, since_minute).await
    }

    async fn report_node(&self, node: &NodeReport) -> StoreResult<()> {
        dashboard::report_node(&self.pool, node).await
    }

    async fn list_nodes(&self, since: i64) -> StoreResult<Vec<NodeReport>> {
        dashboard::list_nodes(&self.pool, since).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        dashboard::append_audit(&self.pool, entry).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<AuditEntry>> {
        dashboard::list_audit(&self.pool, filter, page).await
    }

    async fn record_endpoint_check(&self, check: &EndpointCheck) -> StoreResult<()> {
        checks::record(&self.pool, check).await
    }

    async fn endpoint_checks(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        limit: usize,
    ) -> StoreResult<Vec<EndpointCheck>> {
        checks::list(&self.pool, app_id, endpoint_id, limit).await
    }
}
