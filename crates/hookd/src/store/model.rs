//! The records the store keeps, independent of any backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookd_signing::EndpointKey;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::domain::{
    AppId, AttemptId, Channel, DeliveryId, EndpointId, EventTypeName, MessageId, TaskId, TokenId,
    Uid,
};

/// A tenant: one merchant of the platform.
#[derive(Debug, Clone)]
pub struct Application {
    pub id: AppId,
    pub uid: Option<Uid>,
    pub name: String,
    pub throttle_rate: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A previous signing key (`whsec_…` or `whsk_…`) that still signs until `expires_at` (unix ms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetiringSecret {
    pub secret: String,
    pub expires_at: i64,
}

/// A URL of an application that receives the event types it subscribed to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: AppId,
    pub uid: Option<Uid>,
    /// Text, not an `EndpointUrl`: a `hookd listen` session's endpoint has a
    /// `hookd-listen://` URL, and the engine parses every URL into its transport target.
    pub url: String,
    pub description: String,
    pub disabled: bool,
    /// `None` receives every event type.
    pub event_types: Option<Vec<EventTypeName>>,
    /// `None` receives messages on any channel, or none.
    pub channels: Option<Vec<Channel>>,
    pub throttle_rate: Option<i64>,
    pub metadata: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub secret: EndpointKey,
    pub retiring_secrets: Vec<RetiringSecret>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Endpoint {
    /// Whether a message of this event type on these channels is for this endpoint.
    pub fn wants(&self, event_type: &str, channels: Option<&[Channel]>) -> bool {
        if self.disabled {
            return false;
        }
        let type_matches = self
            .event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type));
        let channel_matches = match &self.channels {
            None => true,
            Some(wanted) => channels
                .unwrap_or_default()
                .iter()
                .any(|c| wanted.contains(c)),
        };
        type_matches && channel_matches
    }

    /// The secrets that sign a delivery at `now`: the current one, then those still in grace.
    pub fn signing_secrets(&self, now: i64) -> Vec<EndpointKey> {
        let mut secrets = vec![self.secret.clone()];
        secrets.extend(
            self.retiring_secrets
                .iter()
                .filter(|old| old.expires_at > now)
                .filter_map(|old| EndpointKey::parse(&old.secret).ok()),
        );
        secrets
    }
}

/// An entry of the event type catalog.
#[derive(Debug, Clone)]
pub struct EventType {
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub schemas: Option<serde_json::Value>,
    pub feature_flag: Option<String>,
    /// Whether ingest checks payloads of this type against the newest of `schemas` (a hookd
    /// extension, off by default).
    pub validate_payloads: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One event posted by the platform for one application.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_type: EventTypeName,
    pub event_id: Option<Uid>,
    pub channels: Option<Vec<Channel>>,
    /// The payload exactly as ingested; it is the body of every delivery. `{}` once expired.
    pub payload: Arc<str>,
    /// Messages with the same key reach each endpoint in ingest order.
    pub ordering_key: Option<Uid>,
    pub created_at: i64,
    /// When the payload's retention ends (unix ms): `payloadRetentionPeriod` after ingest.
    pub payload_expires_at: i64,
    /// The payload was removed (its retention ended, or it was deleted through the API); the
    /// message's deliveries that still had work were cancelled with it.
    pub payload_expired: bool,
}

impl Message {
    /// A new message of `app_id`, ingested now (`created_at`, unix ms), whose payload is kept
    /// for `payload_retention_ms`. Every message hookd stores is made here.
    pub fn new(
        app_id: AppId,
        event_type: EventTypeName,
        payload: Arc<str>,
        created_at: i64,
        payload_retention_ms: i64,
    ) -> Self {
        Self {
            id: MessageId::generate(),
            app_id,
            event_type,
            event_id: None,
            channels: None,
            payload,
            ordering_key: None,
            created_at,
            payload_expires_at: created_at.saturating_add(payload_retention_ms),
            payload_expired: false,
        }
    }
}

/// How long a message's payload is kept when its sender does not say (Svix's default,
/// `payloadRetentionPeriod`: 90 days).
pub(crate) const DEFAULT_PAYLOAD_RETENTION_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// A message's place in its application's feed, in commit order (which ids, generated before
/// the commit, do not give). Positions compare as (`group`, `seq`): on PostgreSQL `group` is the
/// inserting transaction's id and `seq` a sequence value; SQLite's single writer numbers every
/// message in commit order, so `group` is 0 and `seq` alone orders. The default position comes
/// before every message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedPosition {
    pub group: i64,
    pub seq: i64,
}

/// The codes of `deliveries.status`, named so that SQL text says which state it means
/// (`format!("… WHERE status = {SENDING}")`) and [`DeliveryStatus`] takes the same numbers.
pub mod status {
    pub const SUCCESS: i64 = 0;
    pub const PENDING: i64 = 1;
    pub const FAILED: i64 = 2;
    pub const SENDING: i64 = 3;
    pub const CANCELED: i64 = 4;
    pub const HELD: i64 = 5;
}

/// The codes of `deliveries.trigger_type` and `attempts.trigger_type`, shared with
/// [`TriggerType`].
pub mod trigger {
    pub const SCHEDULED: i64 = 0;
    pub const MANUAL: i64 = 1;
}

/// The state of one message's delivery to one endpoint, as Svix numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Success = status::SUCCESS as isize,
    Pending = status::PENDING as isize,
    Failed = status::FAILED as isize,
    Sending = status::SENDING as isize,
    /// Stopped because the endpoint was disabled; shown as failed.
    Canceled = status::CANCELED as isize,
    /// Waiting for an earlier message with the same ordering key to finish; shown as pending.
    Held = status::HELD as isize,
}

impl DeliveryStatus {
    /// The code stored for this state.
    pub const fn code(self) -> i64 {
        self as i64
    }
}

impl TryFrom<i64> for DeliveryStatus {
    type Error = StoreError;

    /// Reads a stored code. An unknown one means the row was not written by this version of
    /// hookd; guessing a state for it could send a delivery twice or never, so it is an error.
    fn try_from(code: i64) -> Result<Self, StoreError> {
        match code {
            status::SUCCESS => Ok(Self::Success),
            status::PENDING => Ok(Self::Pending),
            status::FAILED => Ok(Self::Failed),
            status::SENDING => Ok(Self::Sending),
            status::CANCELED => Ok(Self::Canceled),
            status::HELD => Ok(Self::Held),
            other => Err(StoreError::Database(format!(
                "delivery with unknown status code {other}"
            ))),
        }
    }
}

/// A delivery's state as listed by the API.
#[derive(Debug, Clone)]
pub struct DeliveryState {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<i64>,
}

impl DeliveryState {
    /// The state of a delivery row with status `code` and `next_attempt_at`.
    pub fn from_row(code: i64, next_attempt_at: Option<i64>) -> Result<Self, StoreError> {
        let status = DeliveryStatus::try_from(code)?;
        Ok(Self {
            status,
            // While sending, the column holds the lease expiry, not a planned attempt.
            next_attempt_at: next_attempt_at.filter(|_| status == DeliveryStatus::Pending),
        })
    }
}

/// Counts of an endpoint's deliveries by state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

impl EndpointStats {
    /// Counts `count` deliveries stored with status `code`; held ones count as pending, as
    /// the API shows them.
    pub fn add(&mut self, code: i64, count: u64) -> Result<(), StoreError> {
        let total = match DeliveryStatus::try_from(code)? {
            DeliveryStatus::Success => &mut self.success,
            DeliveryStatus::Pending | DeliveryStatus::Held => &mut self.pending,
            DeliveryStatus::Sending => &mut self.sending,
            DeliveryStatus::Failed => &mut self.fail,
            DeliveryStatus::Canceled => &mut self.canceled,
        };
        *total += count;
        Ok(())
    }
}

/// An endpoint's recent attempts counted per time bucket, and its failure clock: what the
/// portal's endpoint list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointActivity {
    /// When the endpoint's current run of failures began (unix ms); `None` while it works.
    pub failing_since: Option<i64>,
    /// Buckets with at least one attempt, oldest first.
    pub buckets: Vec<ActivityBucket>,
}

/// Attempts made in one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityBucket {
    /// The bucket's hour counted from the window's first (0 for the first).
    pub index: i64,
    pub succeeded: u64,
    pub failed: u64,
}

/// What started an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerType {
    Scheduled = trigger::SCHEDULED as isize,
    Manual = trigger::MANUAL as isize,
}

impl TriggerType {
    /// Reads a stored code. Only a manual trigger is told apart (it is what the API shows);
    /// any other code reads as scheduled, as it always has.
    pub fn from_code(code: i64) -> Self {
        if code == trigger::MANUAL {
            Self::Manual
        } else {
            Self::Scheduled
        }
    }
}

/// One recorded HTTP attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: AttemptId,
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub success: bool,
    /// 0 when no HTTP answer was received (timeout, refused, blocked).
    pub response_status_code: i64,
    pub response: String,
    pub response_duration_ms: i64,
    pub trigger_type: TriggerType,
    pub created_at: i64,
}

/// A claim on due deliveries: who holds them, with which token, until when.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub token: String,
    pub now: i64,
    pub until: i64,
    /// Endpoints the worker has no room for now: their deliveries are neither claimed nor
    /// leased at ingest, so one slow endpoint cannot take every slot.
    pub skip_endpoints: Vec<EndpointId>,
    /// How many deliveries of each endpoint a claim may take.
    pub endpoint_room: EndpointRoom,
}

impl Lease {
    /// A lease with room for any number of deliveries of every endpoint.
    pub fn new(owner: impl Into<String>, token: impl Into<String>, now: i64, until: i64) -> Self {
        Self {
            owner: owner.into(),
            token: token.into(),
            now,
            until,
            skip_endpoints: Vec::new(),
            endpoint_room: EndpointRoom::unbounded(),
        }
    }
}

/// How many deliveries of one endpoint a claim may take: what the worker can still run and
/// queue for it. A claim that took more would give the rest straight back, two writes per
/// delivery for nothing; while a recovered endpoint drains its backlog, that would happen at
/// every claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRoom {
    /// The room of any endpoint not in `limited`.
    pub each: usize,
    /// Endpoints with less room than `each` (more than none: those are skipped), and theirs.
    pub limited: Vec<(EndpointId, usize)>,
}

impl EndpointRoom {
    pub fn unbounded() -> Self {
        Self {
            each: usize::MAX,
            limited: Vec::new(),
        }
    }

    /// `each` as a SQL integer.
    pub fn each_sql(&self) -> i64 {
        i64::try_from(self.each).unwrap_or(i64::MAX)
    }
}

/// Everything a worker needs to make one attempt without touching the database.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: DeliveryId,
    pub lease_token: String,
    pub msg_id: MessageId,
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    pub event_type: EventTypeName,
    pub url: String,
    pub payload: Arc<str>,
    pub secrets: Vec<EndpointKey>,
    pub headers: BTreeMap<String, String>,
    /// Attempts already made before this one.
    pub attempts_made: u32,
    /// When the message was ingested (unix ms), for the end-to-end latency metric.
    pub msg_created_at: i64,
    pub trigger_type: TriggerType,
}

impl ClaimedDelivery {
    /// The delivery of `message` to `endpoint`, leased under `lease`, signed by the secrets
    /// valid at the lease's start.
    pub fn new(
        delivery_id: DeliveryId,
        lease: &Lease,
        message: &Message,
        endpoint: &Endpoint,
        attempts_made: u32,
    ) -> Self {
        Self {
            delivery_id,
            lease_token: lease.token.clone(),
            msg_id: message.id.clone(),
            app_id: message.app_id.clone(),
            endpoint_id: endpoint.id.clone(),
            event_type: message.event_type.clone(),
            url: endpoint.url.clone(),
            payload: Arc::clone(&message.payload),
            secrets: endpoint.signing_secrets(lease.now),
            headers: endpoint.headers.clone(),
            attempts_made,
            msg_created_at: message.created_at,
            trigger_type: TriggerType::Scheduled,
        }
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Done,
    RetryAt(i64),
    Exhausted,
    /// The endpoint answered 410 Gone: the delivery stops (canceled) and the endpoint is
    /// disabled at once.
    Gone,
}

/// The outcome of one attempt, to be recorded under its lease.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: DeliveryId,
    pub lease_token: String,
    pub attempt: Attempt,
    pub app_id: AppId,
    pub next: NextStep,
    /// Which attempt of the delivery this was: 1 for the first (a resend starts again at 1).
    pub attempt_number: u32,
}

/// How recorded results judge an endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// An endpoint whose attempts have only failed for this long is disabled.
    pub disable_after: std::time::Duration,
}

/// What recording a batch of results did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// One flag per result, in order: whether it applied (its lease still held).
    pub applied: Vec<bool>,
    /// The endpoints this batch disabled, by their failure clock or a 410.
    pub disabled: Vec<DisabledEndpoint>,
    /// Held deliveries made due because the one before them in their key finished.
    pub released: usize,
    /// Waiting deliveries made due because their endpoint recovered ([`super::catchup`]).
    pub caught_up: usize,
    /// Operational events this batch wrote to the outbox ([`super::outbox`]).
    pub operational: usize,
}

/// What committing a message did.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Deliveries leased to the ingesting worker, ready to send.
    pub claimed: Vec<ClaimedDelivery>,
    /// Deliveries left to claiming: due now, or held behind an earlier one of their key.
    pub unleased: usize,
}

/// An endpoint disabled while recording results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisabledEndpoint {
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    /// When its failures began (unix ms).
    pub fail_since: i64,
}

/// How much delivery work is waiting, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Deliveries pending or in flight.
    pub pending: u64,
    /// When the oldest of them was ingested (unix ms).
    pub oldest_created_at: Option<i64>,
    pub endpoints_disabled: u64,
}

/// Filters of the message list.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub channel: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Only messages with this ordering key (a payment id, say).
    pub ordering_key: Option<String>,
    /// Only messages with at least one delivery in one of these states.
    pub delivery_statuses: Option<Vec<DeliveryStatus>>,
}

/// Filters of the attempt lists.
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub msg_id: Option<MessageId>,
    pub endpoint_id: Option<EndpointId>,
    /// Only successes (`Some(true)`) or only failures (`Some(false)`).
    pub success: Option<bool>,
}

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// One page of a list: at most `limit` items after (or, `backwards`, before) `cursor`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
    pub backwards: bool,
    pub order: Order,
}

impl PageRequest {
    /// The first page of at most `limit` items, newest first.
    pub fn newest(limit: usize) -> Self {
        Self {
            limit,
            cursor: None,
            backwards: false,
            order: Order::Descending,
        }
    }
}

/// An API token as stored: only its hash is kept.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: TokenId,
    pub hash: String,
    pub name: String,
    /// `None` for an org token, the application id for an application token.
    pub app_id: Option<AppId>,
    pub created_at: i64,
    pub revoked: bool,
    pub kind: TokenKind,
    /// Refused from this time on (unix ms); `None` never expires.
    pub expires_at: Option<i64>,
    /// What a portal key or session may do (capability names); `None` for API tokens.
    pub capabilities: Option<Vec<String>>,
}

impl ApiToken {
    /// Whether the token is still good at `now`: not revoked, not expired.
    pub fn is_live(&self, now: i64) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| at > now)
    }
}

/// What a stored token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A bearer token of the management API.
    Api,
    /// The one-time key of a portal magic link, exchanged for a [`TokenKind::PortalSession`].
    PortalLink,
    /// A merchant's session in the portal, scoped to one application and its capabilities.
    PortalSession,
    /// An operator's session in the dashboard, begun with an org token; its name says who.
    OperatorSession,
}

impl TokenKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::PortalLink => "portal_link",
            TokenKind::PortalSession => "portal_session",
            TokenKind::OperatorSession => "operator_session",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "api" => Some(TokenKind::Api),
            "portal_link" => Some(TokenKind::PortalLink),
            "portal_session" => Some(TokenKind::PortalSession),
            "operator_session" => Some(TokenKind::OperatorSession),
            _ => None,
        }
    }
}

/// An `idempotency-key` as the store keeps it: the key a client sent, within the scope of the
/// caller's token, so two tenants never share a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// `org`, or `app:<app_id>` for an application token.
    pub scope: String,
    pub key: String,
}

/// A request's claim on an idempotency key.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: IdempotencyKey,
    /// A hash of the request (method, path, body): the same key must come with the same request.
    pub fingerprint: String,
    pub now: i64,
    /// Until when the claiming request holds the key while it runs (unix ms); past it, the
    /// request counts as dead and another may take the key over.
    pub locked_until: i64,
    /// When the record, and the answer saved in it, are forgotten (unix ms).
    pub expires_at: i64,
}

/// What a claim on an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The key was free (never used, expired, or its holder's lock lapsed): the claiming request
    /// now holds it and runs.
    Acquired,
    /// Another request holds the key and is still running.
    InFlight { fingerprint: String },
    /// A request with this key has finished; its answer is to be replayed.
    Finished {
        fingerprint: String,
        response: StoredResponse,
    },
}

/// An API answer kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// What a background task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// Makes an endpoint's failed deliveries of a time window due again.
    EndpointRecover,
}

impl TaskKind {
    /// The name Svix gives this kind of task.
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskKind::EndpointRecover => "endpoint.recover",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        (text == "endpoint.recover").then_some(TaskKind::EndpointRecover)
    }
}

/// Where a background task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Running,
    Finished,
    /// Stopped before the end: its endpoint was disabled or deleted.
    Failed,
}

impl TaskStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Finished => "finished",
            TaskStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(TaskStatus::Running),
            "finished" => Some(TaskStatus::Finished),
            "failed" => Some(TaskStatus::Failed),
            _ => None,
        }
    }
}

/// A job recorded in the database and run by the workers in batches, so it survives restarts.
#[derive(Debug, Clone)]
pub struct BackgroundTask {
    pub id: TaskId,
    pub app_id: AppId,
    pub kind: TaskKind,
    pub status: TaskStatus,
    /// The endpoint whose failed deliveries are made due again.
    pub endpoint_id: EndpointId,
    /// The window of message creation times (unix ms) the task covers, `until` excluded.
    pub since: i64,
    pub until: i64,
    /// Deliveries made due so far.
    pub done: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What one batch of a background task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskBatch {
    pub task_id: TaskId,
    /// Deliveries this batch made due.
    pub made_due: u64,
    /// The task's status after the batch.
    pub status: TaskStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_code() {
        for status in [
            DeliveryStatus::Success,
            DeliveryStatus::Pending,
            DeliveryStatus::Failed,
            DeliveryStatus::Sending,
            DeliveryStatus::Canceled,
            DeliveryStatus::Held,
        ] {
            assert_eq!(DeliveryStatus::try_from(status.code()).ok(), Some(status));
        }
    }

    #[test]
    fn an_unknown_status_code_is_an_error() {
        assert!(DeliveryStatus::try_from(6).is_err());
        assert!(DeliveryStatus::try_from(-1).is_err());
        assert!(DeliveryState::from_row(9, Some(1)).is_err());
        assert!(EndpointStats::default().add(9, 1).is_err());
    }

    #[test]
    fn only_a_pending_delivery_lists_its_next_attempt() -> Result<(), StoreError> {
        let pending = DeliveryState::from_row(status::PENDING, Some(5))?;
        assert_eq!(pending.next_attempt_at, Some(5));
        let sending = DeliveryState::from_row(status::SENDING, Some(5))?;
        assert_eq!(sending.next_attempt_at, None);
        Ok(())
    }

    #[test]
    fn held_deliveries_count_as_pending() -> Result<(), StoreError> {
        let mut stats = EndpointStats::default();
        stats.add(status::HELD, 2)?;
        stats.add(status::PENDING, 1)?;
        stats.add(status::CANCELED, 4)?;
        assert_eq!(stats.pending, 3);
        assert_eq!(stats.canceled, 4);
        Ok(())
    }
}
