//! Operational webhooks: hookd telling the operator what happens to endpoints and deliveries
//! (docs/OPERATIONS.md, "Endpoint health and operational webhooks"): `endpoint.created`,
//! `endpoint.updated`, `endpoint.deleted`, `endpoint.disabled`, `message.attempt.failing`,
//! `message.attempt.exhausted`, `message.attempt.recovered`.
//!
//! They are ordinary webhooks. At start, hookd keeps an internal application (uid
//! [`APP_UID`]) with one endpoint at `HOOKD_OPERATIONAL_WEBHOOK_URL`, signed with
//! `HOOKD_OPERATIONAL_WEBHOOK_SECRET`; each event becomes a message of that application, so it
//! is committed, signed, retried, listed and resent like any other message.
//!
//! Events go through a transactional outbox ([`crate::store::outbox`]), so none is lost
//! between its cause and its message: the API's endpoint changes
//! ([`crate::store::Store::change_endpoint`]) and the recorder's results
//! ([`crate::store::Store::record_attempts`]) write their events in their own transaction,
//! once the server turned the outbox on ([`crate::store::Store::set_operational`]). The
//! [`Publisher`] task reads the outbox, looks up the names the events show (uids, event id),
//! builds Svix's payloads ([`events`]), and commits the messages and deletes their rows in one
//! transaction ([`crate::store::Store::publish_outbox`]): each event is published once, even
//! if a process dies in between or several nodes drain the outbox. It is woken by the
//! [`Emitter`] after a local commit and polls every [`POLL`] for rows a killed process or
//! another node left. Events about the operational application itself are never written, so a
//! failing operator URL cannot feed itself.

pub(crate) mod events;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use events::{Event, Kind, LastAttempt};

use hookd_signing::Secret;

use crate::domain::time::now_millis;
use crate::domain::{AppId, EndpointId, EndpointUrl, EventTypeName, Uid};
use crate::store::{
    Application, Endpoint, Message, OutboxRow, Published, SharedStore, StoreError,
    DEFAULT_PAYLOAD_RETENTION_MS,
};
use crate::telemetry;

/// The operator's URL for operational webhooks (`endpoint.disabled`, …) and the secret that
/// signs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationalWebhook {
    pub url: EndpointUrl,
    pub secret: Secret,
}

/// Tells this process's delivery worker that messages were committed for it to claim, before
/// its next poll. The server passes one that wakes the dispatcher, so this module knows nothing
/// of the delivery engine (which itself posts events here).
pub(crate) type Wake = Arc<dyn Fn() + Send + Sync>;

/// The uid of the internal application that carries operational webhooks.
pub(crate) const APP_UID: &str = "hookd-operational";
/// The uid of its one endpoint, at the operator's URL.
pub(crate) const ENDPOINT_UID: &str = "hookd-operational";
/// Metadata that marks the application as hookd's own, so a tenant's application that
/// happens to use the uid is never taken over.
const MARKER: (&str, &str) = ("hookd", "operational");
/// Outbox rows published per transaction.
const BATCH: usize = 64;
/// How often the publisher looks at the outbox without being woken: rows left by a process
/// that died, or written by another node, wait at most this long.
const POLL: Duration = Duration::from_secs(1);

/// Where the events of this process go: the internal application and its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
}

/// Creates or updates the internal application and its endpoint so that they match the
/// settings. Several nodes may run this at once: whoever loses the race to create reads what
/// the winner created.
pub async fn ensure_target(
    store: &SharedStore,
    settings: &OperationalWebhook,
) -> anyhow::Result<Target> {
    let app = ensure_app(store).await?;
    let url = settings.url.to_string();
    let endpoint = match store.get_endpoint(&app.id, ENDPOINT_UID).await? {
        Some(endpoint) => endpoint,
        None => {
            let now = now_millis();
            let endpoint = Endpoint {
                id: EndpointId::generate(),
                app_id: app.id.clone(),
                uid: Some(Uid::from_stored(ENDPOINT_UID.into())),
                url: url.clone(),
                description: "hookd's operational webhooks (HOOKD_OPERATIONAL_WEBHOOK_URL)".into(),
                disabled: false,
                event_types: None,
                channels: None,
                throttle_rate: None,
                metadata: [(MARKER.0.to_string(), MARKER.1.to_string())].into(),
                headers: Default::default(),
                secret: settings.secret.clone().into(),
                retiring_secrets: Vec::new(),
                created_at: now,
                updated_at: now,
            };
            match store.create_endpoint(&endpoint).await {
                Ok(()) => endpoint,
                Err(StoreError::Conflict(_)) => store
                    .get_endpoint(&app.id, ENDPOINT_UID)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the operational endpoint vanished"))?,
                Err(err) => return Err(err.into()),
            }
        }
    };
    let endpoint = if endpoint.url != url || endpoint.secret != settings.secret.clone().into() {
        // The operator changed the settings: the new URL and secret take over at once.
        let mut endpoint = endpoint;
        let read_at = endpoint.updated_at;
        endpoint.url = url;
        endpoint.secret = settings.secret.clone().into();
        endpoint.retiring_secrets.clear();
        endpoint.updated_at = now_millis().max(read_at + 1);
        if !store.update_endpoint(&endpoint, read_at).await? {
            anyhow::bail!(
                "the operational endpoint changed while its settings were applied; start again"
            );
        }
        endpoint
    } else {
        endpoint
    };
    if endpoint.disabled {
        warn!(
            app_id = %app.id,
            endpoint_id = %endpoint.id,
            "the operational webhook endpoint is disabled, so operational webhooks are not \
             delivered; re-enable it with PATCH /api/v1/app/{APP_UID}/endpoint/{ENDPOINT_UID} \
             {{\"disabled\": false}}"
        );
    }
    info!(app_id = %app.id, endpoint_id = %endpoint.id, "operational webhooks are on");
    Ok(Target {
        app_id: app.id,
        endpoint_id: endpoint.id,
    })
}

async fn ensure_app(store: &SharedStore) -> anyhow::Result<Application> {
    let ours = |app: &Application| app.metadata.get(MARKER.0).map(String::as_str) == Some(MARKER.1);
    if let Some(app) = store.get_app(APP_UID).await? {
        anyhow::ensure!(
            ours(&app),
            "an application with uid {APP_UID:?} exists ({}) and is not hookd's operational \
             application; change its uid to use HOOKD_OPERATIONAL_WEBHOOK_URL",
            app.id
        );
        return Ok(app);
    }
    let now = now_millis();
    let app = Application {
        id: AppId::generate(),
        uid: Some(Uid::from_stored(APP_UID.into())),
        name: "hookd operational webhooks".into(),
        throttle_rate: None,
        metadata: [(MARKER.0.to_string(), MARKER.1.to_string())].into(),
        created_at: now,
        updated_at: now,
    };
    match store.create_app(&app).await {
        Ok(()) => Ok(app),
        Err(StoreError::Conflict(_)) => match store.get_app(APP_UID).await? {
            Some(app) if ours(&app) => Ok(app),
            _ => anyhow::bail!("an application with uid {APP_UID:?} was created meanwhile"),
        },
        Err(err) => Err(err.into()),
    }
}

/// Wakes the [`Publisher`] after a cause committed operational events to the outbox; cheap to
/// clone. A hint only: the publisher also polls, for rows a killed process or another node
/// left. When operational webhooks are off it does nothing.
#[derive(Clone, Default)]
pub(crate) struct Emitter {
    committed: Option<Arc<Notify>>,
}

impl Emitter {
    /// An emitter that wakes nobody.
    pub fn off() -> Self {
        Self::default()
    }

    /// An emitter that wakes the [`Publisher`] started with it.
    pub fn on() -> Self {
        Self {
            committed: Some(Arc::new(Notify::new())),
        }
    }

    /// Events were committed to the outbox.
    pub(crate) fn committed(&self) {
        if let Some(committed) = &self.committed {
            committed.notify_one();
        }
    }

    /// The event the API writes with an endpoint change
    /// ([`crate::store::Store::change_endpoint`]).
    pub(crate) fn endpoint_event(kind: Kind, app: &Application, endpoint: &Endpoint) -> Event {
        Event::Endpoint {
            kind,
            app_id: app.id.clone(),
            app_uid: app.uid.clone().map(String::from),
            endpoint_id: endpoint.id.clone(),
            endpoint_uid: endpoint.uid.clone().map(String::from),
        }
    }
}

/// The task that turns outbox rows into messages of the operational application.
pub(crate) struct Publisher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing into `target`, woken by `emitter` and every [`POLL`]; `wake` tells
    /// this process's worker about new messages (other nodes hear of them from the store).
    pub fn start(
        store: SharedStore,
        target: Target,
        emitter: &Emitter,
        wake: Option<Wake>,
    ) -> Self {
        let stop = CancellationToken::new();
        let committed = emitter.committed.clone().unwrap_or_default();
        let publishing = Publishing {
            store,
            target,
            wake,
        };
        Self {
            task: tokio::spawn(publishing.run(committed, stop.clone())),
            stop,
        }
    }

    /// Publishes what the outbox holds, for up to `timeout` (call it once the API and the
    /// recorder have stopped). What is left stays in the outbox for the next start, or
    /// another node.
    pub async fn finish(self, timeout: Duration) {
        self.stop.cancel();
        let abort = self.task.abort_handle();
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => error!(error = %err, "the operational webhook publisher failed"),
            Err(_) => {
                abort.abort();
                warn!("operational webhooks left in the outbox at shutdown are sent after the next start");
            }
        }
    }
}

struct Publishing {
    store: SharedStore,
    target: Target,
    wake: Option<Wake>,
}

impl Publishing {
    async fn run(self, committed: Arc<Notify>, stop: CancellationToken) {
        loop {
            self.drain().await;
            tokio::select! {
                () = committed.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                () = stop.cancelled() => break,
            }
        }
        // The causes have stopped: publish what they left.
        self.drain().await;
    }

    /// Publishes batches until the outbox is empty or the store fails (the next round
    /// retries: the rows stay).
    async fn drain(&self) {
        loop {
            match self.batch().await {
                Ok(published) if published > 0 => {
                    if let Some(wake) = &self.wake {
                        wake();
                    }
                }
                Ok(_) => return,
                Err(err) => {
                    telemetry::operational_event("failed");
                    error!(error = %err, "operational webhooks could not be published; retrying");
                    return;
                }
            }
        }
    }

    /// Publishes one batch; answers how many rows it took (0: the outbox is empty, or another
    /// node took them all).
    async fn batch(&self) -> Result<usize, StoreError> {
        let rows = self.store.read_outbox(BATCH).await?;
        let mut names = NameCache::default();
        let mut published = Vec::with_capacity(rows.len());
        for row in &rows {
            published.push(Published {
                id: row.id,
                message: self.message(&mut names, row).await,
            });
        }
        let taken = self
            .store
            .publish_outbox(&self.target.endpoint_id, &published)
            .await?;
        // An unreadable row was deleted without a message (and counted as failed).
        let messages = published
            .iter()
            .filter(|p| p.message.is_some() && taken.contains(&p.id));
        for _ in messages {
            telemetry::operational_event("committed");
        }
        Ok(taken.len())
    }

    /// The message a row becomes; none for a row this version cannot read (it is logged and
    /// deleted rather than block the outbox).
    async fn message(&self, names: &mut NameCache, row: &OutboxRow) -> Option<Message> {
        let event: Event = match serde_json::from_str(&row.event) {
            Ok(event) => event,
            Err(err) => {
                telemetry::operational_event("failed");
                error!(error = %err, outbox_id = row.id, "an operational event cannot be read; it is dropped");
                return None;
            }
        };
        let looked_up = names.of(&self.store, &event).await;
        Some(Message::new(
            self.target.app_id.clone(),
            EventTypeName::from_stored(event.kind().name().into()),
            events::payload(&event, &looked_up).into(),
            now_millis(),
            DEFAULT_PAYLOAD_RETENTION_MS,
        ))
    }
}

/// Looks up the uids and event ids events show, each once per batch. A name that cannot be
/// read (the row is gone, or the database failed) is shown as null rather than holding the
/// event back.
#[derive(Default)]
struct NameCache {
    app_uids: HashMap<AppId, Option<String>>,
    endpoint_uids: HashMap<EndpointId, Option<String>>,
}

impl NameCache {
    async fn of(&mut self, store: &SharedStore, event: &Event) -> events::Names {
        match event {
            Event::Endpoint { .. } => events::Names::default(),
            Event::Disabled(disabled) => events::Names {
                app_uid: self.app_uid(store, &disabled.app_id).await,
                endpoint_uid: self
                    .endpoint_uid(store, &disabled.app_id, &disabled.endpoint_id)
                    .await,
                msg_event_id: None,
            },
            Event::Attempt { app_id, msg_id, .. } => events::Names {
                app_uid: self.app_uid(store, app_id).await,
                endpoint_uid: None,
                msg_event_id: store
                    .get_message(app_id, msg_id)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|m| m.event_id)
                    .map(String::from),
            },
        }
    }

    async fn app_uid(&mut self, store: &SharedStore, app_id: &AppId) -> Option<String> {
        if let Some(uid) = self.app_uids.get(app_id) {
            return uid.clone();
        }
        let uid = store
            .get_app(app_id)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.uid)
            .map(String::from);
        self.app_uids.insert(app_id.clone(), uid.clone());
        uid
    }

    async fn endpoint_uid(
        &mut self,
        store: &SharedStore,
        app_id: &AppId,
        endpoint_id: &EndpointId,
    ) -> Option<String> {
        if let Some(uid) = self.endpoint_uids.get(endpoint_id) {
            return uid.clone();
        }
        let uid = store
            .get_endpoint(app_id, endpoint_id)
            .await
            .ok()
            .flatten()
            .and_then(|e| e.uid)
            .map(String::from);
        self.endpoint_uids.insert(endpoint_id.clone(), uid.clone());
        uid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_emitter_wakes_its_publisher_once_per_commit_burst() {
        let emitter = Emitter::on();
        let committed = emitter.committed.clone().expect("on");
        emitter.committed();
        emitter.committed();
        tokio::time::timeout(Duration::from_secs(1), committed.notified())
            .await
            .expect("woken");
    }

    #[test]
    fn an_emitter_that_is_off_does_nothing() {
        Emitter::off().committed();
    }
}
