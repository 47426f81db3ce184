//! The embedded SQLite store: one file, WAL, `synchronous=FULL`, one group-committing writer.

mod activity;
mod attempts;
pub(crate) mod backup;
mod catalog;
mod catchup;
mod checks;
mod claim;
mod connection;
mod dashboard;
mod feed;
mod idempotency;
mod list;
mod messages;
mod outbox;
mod prune;
mod record;
mod rows;
mod tasks;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use self::connection::{ProcessLock, Readers, Writer};
use super::checks::EndpointCheck;
use super::cipher::SecretCipher;
use super::*;

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    cipher: Arc<SecretCipher>,
    operational: Arc<super::outbox::OutboxSwitch>,
    _lock: Option<ProcessLock>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// Only one server may use the file, so any lease found when a server opens it belongs to a
    /// process that died: those deliveries are made due again at once. Tools (token commands,
    /// migrations) may open the file beside a running server; SQLite serialises their writes.
    pub async fn open(path: &Path, cipher: SecretCipher, mode: OpenMode) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let lock = match mode {
            OpenMode::Serve => Some(ProcessLock::acquire(path)?),
            OpenMode::Tool => None,
        };
        let writer = Writer::start(path)?;
        let readers = Readers::open(path)?;
        let cipher = Arc::new(cipher);
        let sealing = (path.to_path_buf(), Arc::clone(&cipher));
        let sealed = tokio::task::spawn_blocking(move || {
            catalog::seal_clear_secrets_in(&sealing.0, &sealing.1)
        })
        .await
        .map_err(|e| StoreError::Database(format!("sealing secrets stopped: {e}")))??;
        if sealed > 0 {
            tracing::info!(
                endpoints = sealed,
                "sealed endpoint secrets stored in clear"
            );
        }
        if lock.is_some() {
            writer.run(|conn| claim::release_leases(conn, None)).await?;
        }
        Ok(Self {
            writer,
            readers,
            cipher,
            operational: Arc::default(),
            _lock: lock,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        if let Some(reason) = self.writer.refused() {
            return Err(StoreError::Unavailable(reason));
        }
        self.readers
            .run(|conn| {
                conn.query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(connection::db_error)
            })
            .await
    }

    async fn create_app(&self, app: &Application) -> StoreResult<()> {
        let app = app.clone();
        self.writer.run(move |c| catalog::insert_app(c, &app)).await
    }

    async fn get_app(&self, id_or_uid: &str) -> StoreResult<Option<Application>> {
        let key = id_or_uid.to_string();
        self.readers.run(move |c| catalog::get_app(c, &key)).await
    }

    async fn list_apps(&self, page: &PageRequest) -> StoreResult<Vec<Application>> {
        let page = page.clone();
        self.readers
            .run(move |c| catalog::list_apps(c, &page))
            .await
    }

    async fn update_app(&self, app: &Application) -> StoreResult<()> {
        let app = app.clone();
        self.writer.run(move |c| catalog::update_app(c, &app)).await
    }

    async fn delete_app(&self, app_id: &AppId) -> StoreResult<bool> {
        let app_id = app_id.to_string();
        self.writer
            .run(move |c| catalog::delete_app(c, &app_id))
            .await
    }

    async fn create_endpoint(&self, endpoint: &Endpoint) -> StoreResult<()> {
        let endpoint = endpoint.clone();
        let cipher = Arc::clone(&self.cipher);
        self.writer
            .run(move |c| catalog::insert_endpoint(c, &cipher, &endpoint))
            .await
    }

    async fn get_endpoint(&self, app_id: &AppId, id_or_uid: &str) -> StoreResult<Option<Endpoint>> {
        let (app_id, key) = (app_id.to_string(), id_or_uid.to_string());
        let cipher = Arc::clone(&self.cipher);
        self.readers
            .run(move |c| catalog::get_endpoint(c, &cipher, &app_id, &key))
            .await
    }

    async fn list_endpoints(
        &self,
        app_id: &AppId,
        page: &PageRequest,
    ) -> StoreResult<Vec<Endpoint>> {
        let (app_id, page) = (app_id.to_string(), page.clone());
        let cipher = Arc::clone(&self.cipher);
        self.readers
            .run(move |c| catalog::list_endpoints(c, &cipher, &app_id, &page))
            .await
    }

    async fn update_endpoint(&self, endpoint: &Endpoint, read_at: i64) -> StoreResult<bool> {
        let endpoint = endpoint.clone();
        let cipher = Arc::clone(&self.cipher);
        self.writer
            .run(move |c| catalog::update_endpoint(c, &cipher, &endpoint, read_at))
            .await
    }

    async fn delete_endpoint(&self, app_id: &AppId, endpoint_id: &EndpointId) -> StoreResult<bool> {
        let (app_id, endpoint_id) = (app_id.to_string(), endpoint_id.to_string());
        self.writer
            .run(move |c| catalog::delete_endpoint(c, &app_id, &endpoint_id))
            .await
    }

    async fn change_endpoint(
        &self,
        change: EndpointChange<'_>,
        event: &Event,
    ) -> StoreResult<bool> {
        let rows = self.operational.rows([event.clone()]);
        let cipher = Arc::clone(&self.cipher);
        let change = catalog::OwnedChange::from(change);
        self.writer
            .run(move |c| {
                let changed = catalog::change_endpoint(c, &cipher, &change)?;
                if changed {
                    outbox::insert(c, &rows, crate::domain::time::now_millis())?;
                }
                Ok(changed)
            })
            .await
    }

    async fn endpoint_activity(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        since: i64,
    ) -> StoreResult<EndpointActivity> {
        let (app_id, endpoint_id) = (app_id.to_string(), endpoint_id.to_string());
        self.readers
            .run(move |c| activity::endpoint_activity(c, &app_id, &endpoint_id, since))
            .await
    }

    async fn endpoint_stats(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
    ) -> StoreResult<EndpointStats> {
        let (app_id, endpoint_id) = (app_id.to_string(), endpoint_id.to_string());
        self.readers
            .run(move |c| catalog::endpoint_stats(c, &app_id, &endpoint_id))
            .await
    }

    async fn create_event_type(&self, event_type: &EventType) -> StoreResult<()> {
        let event_type = event_type.clone();
        self.writer
            .run(move |c| catalog::insert_event_type(c, &event_type))
            .await
    }

    async fn get_event_type(&self, name: &str) -> StoreResult<Option<EventType>> {
        let name = name.to_string();
        self.readers
            .run(move |c| catalog::get_event_type(c, &name))
            .await
    }

    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> StoreResult<Vec<EventType>> {
        let page = page.clone();
        self.readers
            .run(move |c| catalog::list_event_types(c, &page, include_archived))
            .await
    }

    async fn update_event_type(&self, event_type: &EventType) -> StoreResult<()> {
        let event_type = event_type.clone();
        self.writer
            .run(move |c| catalog::update_event_type(c, &event_type))
            .await
    }

    async fn delete_event_type(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.writer
            .run(move |c| catalog::delete_event_type(c, &name))
            .await
    }

    async fn known_event_types(&self, names: &[String]) -> StoreResult<Vec<String>> {
        let names = names.to_vec();
        self.readers
            .run(move |c| catalog::known_event_types(c, &names))
            .await
    }

    async fn create_message(
        &self,
        message: &Message,
        lease: Option<Lease>,
    ) -> StoreResult<Ingested> {
        let message = message.clone();
        let cipher = Arc::clone(&self.cipher);
        self.writer
            .run(move |c| messages::insert_message(c, &cipher, &message, lease.as_ref()))
            .await
    }

    async fn get_message(&self, app_id: &AppId, msg_id: &str) -> StoreResult<Option<Message>> {
        let (app_id, msg_id) = (app_id.to_string(), msg_id.to_string());
        self.readers
            .run(move |c| messages::get_message(c, &app_id, &msg_id))
            .await
    }

    async fn list_messages(
        &self,
        app_id: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Message>> {
        let (app_id, filter, page) = (app_id.to_string(), filter.clone(), page.clone());
        self.readers
            .run(move |c| messages::list_messages(c, &app_id, &filter, &page))
            .await
    }

    async fn read_feed(
        &self,
        app_id: &AppId,
        after: FeedPosition,
        limit: usize,
    ) -> StoreResult<Vec<(FeedPosition, Message)>> {
        let app_id = app_id.to_string();
        self.readers
            .run(move |c| feed::read_feed(c, &app_id, after, limit))
            .await
    }

    async fn expunge_payload(&self, app_id: &AppId, msg_id: &MessageId) -> StoreResult<bool> {
        let (app_id, msg_id) = (app_id.to_string(), msg_id.to_string());
        self.writer
            .run(move |c| messages::expunge_payload(c, &app_id, &msg_id))
            .await
    }

    async fn create_message_to(
        &self,
        message: &Message,
        endpoint_id: &EndpointId,
    ) -> StoreResult<()> {
        let (message, endpoint_id) = (message.clone(), endpoint_id.to_string());
        self.writer
            .run(move |c| messages::insert_message_to(c, &message, &endpoint_id))
            .await
    }

    async fn list_attempts(
        &self,
        app_id: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<Attempt>> {
        let (app_id, filter, page) = (app_id.to_string(), filter.clone(), page.clone());
        self.readers
            .run(move |c| attempts::list_attempts(c, &app_id, &filter, &page))
            .await
    }

    async fn get_attempt(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        attempt_id: &AttemptId,
    ) -> StoreResult<Option<Attempt>> {
        let (app_id, msg_id, attempt_id) = (
            app_id.to_string(),
            msg_id.to_string(),
            attempt_id.to_string(),
        );
        self.readers
            .run(move |c| attempts::get_attempt(c, &app_id, &msg_id, &attempt_id))
            .await
    }

    async fn list_message_deliveries(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        page: &PageRequest,
    ) -> StoreResult<Vec<(Endpoint, DeliveryState)>> {
        let (app_id, msg_id, page) = (app_id.to_string(), msg_id.to_string(), page.clone());
        let cipher = Arc::clone(&self.cipher);
        self.readers
            .run(move |c| attempts::list_message_deliveries(c, &cipher, &app_id, &msg_id, &page))
            .await
    }

    async fn list_endpoint_deliveries(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        page: &PageRequest,
    ) -> StoreResult<Vec<(Message, DeliveryState)>> {
        let (app_id, endpoint_id, page) =
            (app_id.to_string(), endpoint_id.to_string(), page.clone());
        self.readers
            .run(move |c| attempts::list_endpoint_deliveries(c, &app_id, &endpoint_id, &page))
            .await
    }

    async fn resend(
        &self,
        app_id: &AppId,
        msg_id: &MessageId,
        endpoint_id: &EndpointId,
    ) -> StoreResult<bool> {
        let (app_id, msg_id, endpoint_id) = (
            app_id.to_string(),
            msg_id.to_string(),
            endpoint_id.to_string(),
        );
        self.writer
            .run(move |c| messages::resend(c, &app_id, &msg_id, &endpoint_id))
            .await
    }

    async fn claim_due(&self, lease: &Lease, limit: usize) -> StoreResult<Vec<ClaimedDelivery>> {
        let lease = lease.clone();
        let cipher = Arc::clone(&self.cipher);
        self.writer
            .run(move |c| claim::claim_due(c, &cipher, &lease, limit))
            .await
    }

    async fn next_due(
        &self,
        skip_endpoints: &[EndpointId],
        _node_id: &str,
    ) -> StoreResult<Option<i64>> {
        // One process holds the database: every pin names it or a process that is gone.
        let skip = skip_endpoints.to_vec();
        self.readers.run(move |c| claim::next_due(c, &skip)).await
    }

    async fn pin_listen_endpoint(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        node_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (app_id, endpoint_id, node_id) =
            (app_id.clone(), endpoint_id.clone(), node_id.to_string());
        self.writer
            .run(move |c| claim::pin_listen_endpoint(c, &app_id, &endpoint_id, &node_id, now))
            .await
    }

    async fn backlog(&self) -> StoreResult<Backlog> {
        self.readers.run(claim::backlog).await
    }

    async fn record_attempts(
        &self,
        results: &[AttemptResult],
        health: &HealthPolicy,
        now: i64,
    ) -> StoreResult<Recorded> {
        let (results, health) = (results.to_vec(), *health);
        let operational = Arc::clone(&self.operational);
        self.writer
            .run(move |c| record::record_attempts(c, &results, &health, now, &operational))
            .await
    }

    async fn give_back(&self, deliveries: &[ClaimedDelivery], at: i64) -> StoreResult<()> {
        let deliveries = deliveries.to_vec();
        self.writer
            .run(move |c| claim::give_back_all(c, &deliveries, at))
            .await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<()> {
        let owner = owner.to_string();
        self.writer
            .run(move |c| claim::release_leases(c, Some(&owner)))
            .await
    }

    fn set_operational(&self, own_app: Option<AppId>) {
        self.operational.set(own_app);
    }

    async fn read_outbox(&self, limit: usize) -> StoreResult<Vec<OutboxRow>> {
        self.readers.run(move |c| outbox::read(c, limit)).await
    }

    async fn publish_outbox(
        &self,
        endpoint_id: &EndpointId,
        published: &[Published],
    ) -> StoreResult<Vec<i64>> {
        let (endpoint_id, published) = (endpoint_id.to_string(), published.to_vec());
        self.writer
            .run(move |c| outbox::publish(c, &endpoint_id, &published))
            .await
    }

    async fn create_task(&self, task: &BackgroundTask) -> StoreResult<()> {
        let task = task.clone();
        self.writer.run(move |c| tasks::insert(c, &task)).await
    }

    async fn get_task(&self, task_id: &TaskId) -> StoreResult<Option<BackgroundTask>> {
        let task_id = task_id.to_string();
        self.readers.run(move |c| tasks::get(c, &task_id)).await
    }

    async fn run_task_batch(&self, limit: usize, now: i64) -> StoreResult<Option<TaskBatch>> {
        self.writer
            .run(move |c| tasks::run_batch(c, limit, now))
            .await
    }

    async fn prune(&self, before: i64, limit: usize) -> StoreResult<u64> {
        self.writer
            .run(move |c| {
                let rows = prune::prune(c, before, limit)?;
                let ended = tasks::prune(c, before, i64::try_from(limit).unwrap_or(i64::MAX))?;
                Ok(rows + u64::try_from(ended).unwrap_or(0))
            })
            .await
    }

    async fn prune_expired(&self, now: i64, limit: usize) -> StoreResult<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.writer
            .run(move |c| {
                let payloads = prune::expire_payloads(c, now, limit)?;
                let keys = idempotency::prune(c, now, limit)?;
                Ok(u64::try_from(payloads + keys).unwrap_or(0))
            })
            .await
    }

    async fn claim_idempotency_key(
        &self,
        claim: &IdempotencyClaim,
    ) -> StoreResult<IdempotencyState> {
        let claim = claim.clone();
        self.writer
            .run(move |c| idempotency::claim(c, &claim))
            .await
    }

    async fn save_idempotent_response(
        &self,
        key: &IdempotencyKey,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let (key, response) = (key.clone(), response.clone());
        self.writer
            .run(move |c| idempotency::save(c, &key, &response))
            .await
    }

    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> StoreResult<()> {
        let key = key.clone();
        self.writer
            .run(move |c| idempotency::release(c, &key))
            .await
    }

    async fn create_token(&self, token: &ApiToken) -> StoreResult<()> {
        let token = token.clone();
        self.writer
            .run(move |c| catalog::insert_token(c, &token))
            .await
    }

    async fn find_token(&self, hash: &str) -> StoreResult<Option<ApiToken>> {
        let hash = hash.to_string();
        self.readers
            .run(move |c| catalog::find_token(c, &hash))
            .await
    }

    async fn revoke_token(&self, hash: &str) -> StoreResult<bool> {
        let hash = hash.to_string();
        self.writer
            .run(move |c| catalog::revoke_token(c, &hash))
            .await
    }

    async fn redeem_token(
        &self,
        hash: &str,
        kind: TokenKind,
        now: i64,
    ) -> StoreResult<Option<ApiToken>> {
        let hash = hash.to_string();
        self.writer
            .run(move |c| catalog::redeem_token(c, &hash, kind, now))
            .await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        self.readers.run(catalog::count_tokens).await
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let now = crate::domain::time::now_millis();
        self.readers
            .run(move |c| dashboard::list_api_tokens(c, now))
            .await
    }

    async fn revoke_api_token(&self, token_id: &TokenId) -> StoreResult<bool> {
        let token_id = token_id.to_string();
        self.writer
            .run(move |c| dashboard::revoke_api_token(c, &token_id))
            .await
    }

    async fn search_apps(&self, text: &str, page: &PageRequest) -> StoreResult<Vec<Application>> {
        let (text, page) = (text.to_string(), page.clone());
        self.readers
            .run(move |c| dashboard::search_apps(c, &text, &page))
            .await
    }

    async fn search_endpoints(&self, text: &str, limit: usize) -> StoreResult<Vec<Endpoint>> {
        let text = text.to_string();
        let cipher = Arc::clone(&self.cipher);
        self.readers
            .run(move |c| dashboard::search_endpoints(c, &cipher, &text, limit))
            .await
    }

    async fn search_messages(
        &self,
        search: &MessageSearch,
        page: &PageRequest,
    ) -> StoreResult<Vec<Message>> {
        let (search, page) = (search.clone(), page.clone());
        self.readers
            .run(move |c| messages::search_messages(c, &search, &page))
            .await
    }

    async fn endpoint_counts(&self) -> StoreResult<EndpointCounts> {
        self.readers.run(dashboard::endpoint_counts).await
    }

    async fn slowest_endpoints(
        &self,
        since_hour: i64,
        limit: usize,
    ) -> StoreResult<Vec<EndpointLatency>> {
        self.readers
            .run(move |c| dashboard::slowest_endpoints(c, since_hour, limit))
            .await
    }

    async fn add_traffic(&self, node_id: &str, minutes: &[TrafficMinute]) -> StoreResult<()> {
        let (node_id, minutes) = (node_id.to_string(), minutes.to_vec());
        self.writer
            .run(move |c| dashboard::add_traffic(c, &node_id, &minutes))
            .await
    }

    async fn traffic_since(&self, since_minute: i64) -> StoreResult<Vec<TrafficMinute>> {
        self.readers
            .run(move |c| dashboard::traffic_since(c, since_minute))
            .await
    }

    async fn report_node(&self, node: &NodeReport) -> StoreResult<()> {
        let node = node.clone();
        self.writer
            .run(move |c| dashboard::report_node(c, &node))
            .await
    }

    async fn list_nodes(&self, since: i64) -> StoreResult<Vec<NodeReport>> {
        self.readers
            .run(move |c| dashboard::list_nodes(c, since))
            .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let entry = entry.clone();
        self.writer
            .run(move |c| dashboard::append_audit(c, &entry))
            .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Vec<AuditEntry>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.readers
            .run(move |c| dashboard::list_audit(c, &filter, &page))
            .await
    }

    async fn record_endpoint_check(&self, check: &EndpointCheck) -> StoreResult<()> {
        let check = check.clone();
        self.writer.run(move |c| checks::record(c, &check)).await
    }

    async fn endpoint_checks(
        &self,
        app_id: &AppId,
        endpoint_id: &EndpointId,
        limit: usize,
    ) -> StoreResult<Vec<EndpointCheck>> {
        let (app_id, endpoint_id) = (app_id.clone(), endpoint_id.clone());
        self.readers
            .run(move |c| checks::list(c, &app_id, &endpoint_id, limit))
            .await
    }
}
