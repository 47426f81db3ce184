//! Operational webhooks: hookd telling the operator what happens to endpoints and deliveries
//! (docs/OPERATIONS.md, "Endpoint health and operational webhooks"): `endpoint.created`,
//! `endpoint.updated`, `endpoint.deleted`, `endpoint.disabled`, `message.attempt.failing`,
//! `message.attempt.exhausted`, `message.attempt.recovered`.
//!
//! They are ordinary webhooks. At start, hookd keeps an internal application (uid
//! [`APP_UID`]) with one endpoint at `HOOKD_OPERATIONAL_WEBHOOK_URL`, signed with
//! `HOOKD_OPERATIONAL_WEBHOOK_SECRET`; each event becomes a message of that application through
//! [`crate::store::Store::create_message`], so it is committed, signed, retried, listed and
//! resent like any other message.
//!
//! The API (endpoint changes) and the recorder (disabled endpoints, attempt events) call
//! [`Emitter`], which never waits and never fails its caller: events go onto a bounded queue,
//! and the [`Publisher`] task looks up the names they show (uids, event id), builds Svix's
//! payloads ([`events`]) and commits them. An event is lost only if the queue is full (counted
//! and logged), if it cannot be committed (logged), or if the process dies between committing
//! what caused it and committing the event. Events about the operational application itself
//! are never emitted, so a failing operator URL cannot feed itself.

pub(crate) mod events;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info, warn};

pub(crate) use events::{Event, Kind};

use hookd_signing::Secret;

use crate::domain::time::now_millis;
use crate::domain::{AppId, EndpointId, EndpointUrl, EventTypeName, Uid};
use crate::store::{
    Application, AttemptResult, Endpoint, Message, Recorded, SharedStore, StoreError,
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
/// Events waiting to be published before new ones are dropped.
const QUEUE: usize = 8192;
/// Events published per round; their messages are committed concurrently (one group commit).
const BATCH: usize = 64;

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

/// The handle the API and the recorder emit events through; cheap to clone. Emitting never
/// waits and never fails: when operational webhooks are off it does nothing.
#[derive(Clone, Default)]
pub(crate) struct Emitter {
    inner: Option<Arc<EmitterInner>>,
}

struct EmitterInner {
    events: mpsc::Sender<Event>,
    /// The operational application, about which no event is emitted.
    own_app_id: AppId,
    /// Set while events are being dropped, so that a flood logs once.
    dropping: AtomicBool,
}

impl Emitter {
    /// An emitter that emits nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// An emitter for `target` and the receiving end its [`Publisher`] takes.
    pub fn new(target: &Target) -> (Self, mpsc::Receiver<Event>) {
        let (events, queue) = mpsc::channel(QUEUE);
        let inner = EmitterInner {
            events,
            own_app_id: target.app_id.clone(),
            dropping: AtomicBool::new(false),
        };
        (
            Self {
                inner: Some(Arc::new(inner)),
            },
            queue,
        )
    }

    /// Queues one event.
    pub(crate) fn emit(&self, event: Event) {
        let Some(inner) = &self.inner else {
            return;
        };
        if *event.app_id() == inner.own_app_id {
            return;
        }
        let kind = event.kind().name();
        match inner.events.try_send(event) {
            Ok(()) => {
                inner.dropping.store(false, Ordering::Relaxed);
            }
            Err(_) => {
                telemetry::operational_event("dropped");
                if !inner.dropping.swap(true, Ordering::Relaxed) {
                    warn!(
                        event_type = kind,
                        "the operational webhook queue is full; events are dropped until it drains"
                    );
                }
            }
        }
    }

    /// An endpoint was created, updated or deleted through the API.
    pub(crate) fn endpoint_changed(&self, kind: Kind, app: &Application, endpoint: &Endpoint) {
        self.emit(Event::Endpoint {
            kind,
            app_id: app.id.clone(),
            app_uid: app.uid.clone().map(String::from),
            endpoint_id: endpoint.id.clone(),
            endpoint_uid: endpoint.uid.clone().map(String::from),
        });
    }

    /// The events a recorded batch of results sends: one per endpoint it disabled, and the
    /// attempt events of the results that applied (a result whose lease was lost sends none:
    /// whoever holds the delivery now will).
    pub fn recorded(&self, batch: &[AttemptResult], recorded: &Recorded) {
        if self.inner.is_none() {
            return;
        }
        for disabled in &recorded.disabled {
            self.emit(Event::Disabled(disabled.clone()));
        }
        for (result, applied) in batch.iter().zip(&recorded.applied) {
            if let Some(event) = applied.then(|| events::attempt_event(result)).flatten() {
                self.emit(event);
            }
        }
    }
}

/// The task that turns queued events into messages of the operational application.
pub(crate) struct Publisher {
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing into `target`; `wake` tells this process's worker about new messages
    /// (other nodes hear of them from the store). The task ends once every [`Emitter`] is
    /// dropped and the queue is drained.
    pub fn start(
        store: SharedStore,
        target: Target,
        queue: mpsc::Receiver<Event>,
        wake: Option<Wake>,
    ) -> Self {
        Self {
            task: tokio::spawn(publish(store, target, queue, wake)),
        }
    }

    /// Waits up to `timeout` for the queue to drain (call it once every emitter is gone).
    pub async fn finish(self, timeout: Duration) {
        let abort = self.task.abort_handle();
        match tokio::time::timeout(timeout, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => error!(error = %err, "the operational webhook publisher failed"),
            Err(_) => {
                abort.abort();
                warn!("operational webhooks still queued at shutdown were dropped");
            }
        }
    }
}

async fn publish(
    store: SharedStore,
    target: Target,
    mut queue: mpsc::Receiver<Event>,
    wake: Option<Wake>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let mut names = NameCache::default();
        let mut commits = JoinSet::new();
        for event in batch.drain(..) {
            let looked_up = names.of(&store, &event).await;
            let message = Message::new(
                target.app_id.clone(),
                EventTypeName::from_stored(event.kind().name().into()),
                events::payload(&event, &looked_up).into(),
                now_millis(),
                DEFAULT_PAYLOAD_RETENTION_MS,
            );
            let store = Arc::clone(&store);
            commits.spawn(async move {
                let committed = store.create_message(&message, None).await;
                (message.event_type, committed)
            });
        }
        while let Some(joined) = commits.join_next().await {
            match joined {
                Ok((_, Ok(_))) => telemetry::operational_event("committed"),
                Ok((event_type, Err(err))) => {
                    telemetry::operational_event("failed");
                    error!(error = %err, %event_type, "an operational webhook could not be stored");
                }
                Err(err) => error!(error = %err, "storing an operational webhook panicked"),
            }
        }
        if let Some(wake) = &wake {
            wake();
        }
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
    use crate::store::{Attempt, DisabledEndpoint, NextStep, TriggerType};

    fn target() -> Target {
        Target {
            app_id: "app_ops".into(),
            endpoint_id: "ep_ops".into(),
        }
    }

    fn exhausted(app_id: &str) -> AttemptResult {
        AttemptResult {
            delivery_id: "dlv_1".into(),
            lease_token: "lease".into(),
            attempt: Attempt {
                id: "atmpt_1".into(),
                msg_id: "msg_1".into(),
                endpoint_id: "ep_1".into(),
                url: "https://example.com/".into(),
                success: false,
                response_status_code: 500,
                response: String::new(),
                response_duration_ms: 1,
                trigger_type: TriggerType::Scheduled,
                created_at: 0,
            },
            app_id: app_id.into(),
            next: NextStep::Exhausted,
            attempt_number: 8,
        }
    }

    #[test]
    fn only_applied_results_of_other_applications_emit() {
        let (emitter, mut queue) = Emitter::new(&target());
        let batch = [exhausted("app_1"), exhausted("app_2"), exhausted("app_ops")];
        let recorded = Recorded {
            applied: vec![true, false, true],
            disabled: vec![DisabledEndpoint {
                app_id: "app_ops".into(),
                endpoint_id: "ep_ops".into(),
                fail_since: 0,
            }],
            released: 0,
            caught_up: 0,
        };
        emitter.recorded(&batch, &recorded);
        let event = queue.try_recv().expect("one event");
        assert_eq!(event.kind(), Kind::AttemptExhausted);
        assert_eq!(event.app_id(), "app_1");
        assert!(
            queue.try_recv().is_err(),
            "a lost lease or our own app emitted"
        );
    }

    #[test]
    fn an_emitter_that_is_off_does_nothing() {
        Emitter::off().recorded(
            &[exhausted("app_1")],
            &Recorded {
                applied: vec![true],
                ..Recorded::default()
            },
        );
    }
}
