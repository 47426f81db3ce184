//! The operational outbox: operational events ([`crate::operational`]) are written as rows of
//! `operational_outbox` in the transaction of what caused them, so that a crash right after
//! that commit loses none; the publisher later turns each row into a message of the
//! operational application and deletes it, in one transaction ([`super::Store::publish_outbox`]).
//!
//! What both backends share: whether the outbox is on, which events a cause writes, and their
//! JSON. Each backend keeps only its SQL.

use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{AppId, AttemptId, EndpointId, MessageId};
use crate::store::{AttemptResult, DisabledEndpoint, Endpoint, Message, NextStep};

/// The attempt whose failure sends `message.attempt.failing`, as with Svix: the fourth. With the
/// default schedule that is about 35 minutes after the first failure; a delivery whose retries
/// run out sooner sends only `message.attempt.exhausted`.
pub(crate) const FAILING_AT_ATTEMPT: u32 = 4;

/// The kinds of operational event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    EndpointCreated,
    EndpointUpdated,
    EndpointDeleted,
    EndpointDisabled,
    AttemptFailing,
    AttemptExhausted,
    AttemptRecovered,
}

impl Kind {
    /// The event type, as Svix names it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::EndpointCreated => "endpoint.created",
            Kind::EndpointUpdated => "endpoint.updated",
            Kind::EndpointDeleted => "endpoint.deleted",
            Kind::EndpointDisabled => "endpoint.disabled",
            Kind::AttemptFailing => "message.attempt.failing",
            Kind::AttemptExhausted => "message.attempt.exhausted",
            Kind::AttemptRecovered => "message.attempt.recovered",
        }
    }
}

/// One operational event as its cause writes it to the outbox (as JSON, in this shape), before
/// the names (uids, event id) it shows are looked up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An endpoint was created, updated or deleted through the API, which knows the uids.
    Endpoint {
        kind: Kind,
        app_id: AppId,
        app_uid: Option<String>,
        endpoint_id: EndpointId,
        endpoint_uid: Option<String>,
    },
    /// Recording results disabled an endpoint.
    Disabled(DisabledEndpoint),
    /// An attempt made a delivery failing, exhausted or recovered.
    Attempt {
        kind: Kind,
        app_id: AppId,
        endpoint_id: EndpointId,
        msg_id: MessageId,
        last_attempt: LastAttempt,
    },
}

impl Event {
    pub fn kind(&self) -> Kind {
        match self {
            Event::Endpoint { kind, .. } | Event::Attempt { kind, .. } => *kind,
            Event::Disabled(_) => Kind::EndpointDisabled,
        }
    }

    /// The application the event is about.
    pub fn app_id(&self) -> &AppId {
        match self {
            Event::Endpoint { app_id, .. } | Event::Attempt { app_id, .. } => app_id,
            Event::Disabled(disabled) => &disabled.app_id,
        }
    }
}

/// The attempt an attempt event reports (Svix's `MessageAttempetLast`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastAttempt {
    pub id: AttemptId,
    pub response_status_code: i64,
    pub timestamp: String,
}

/// The attempt event one recorded result sends, if any:
/// - `message.attempt.exhausted` when the delivery has no retry left;
/// - `message.attempt.failing` when attempt [`FAILING_AT_ATTEMPT`] failed and a retry follows;
/// - `message.attempt.recovered` when a later attempt succeeds, i.e. after `failing` was sent.
///
/// A 410 sends none: the `endpoint.disabled` it causes says more. A resend starts counting
/// again from its first attempt.
pub(crate) fn attempt_event(result: &AttemptResult) -> Option<Event> {
    let kind = match result.next {
        NextStep::Exhausted => Kind::AttemptExhausted,
        NextStep::RetryAt(_) if result.attempt_number == FAILING_AT_ATTEMPT => Kind::AttemptFailing,
        NextStep::Done if result.attempt_number > FAILING_AT_ATTEMPT => Kind::AttemptRecovered,
        _ => return None,
    };
    let attempt = &result.attempt;
    Some(Event::Attempt {
        kind,
        app_id: result.app_id.clone(),
        endpoint_id: attempt.endpoint_id.clone(),
        msg_id: attempt.msg_id.clone(),
        last_attempt: LastAttempt {
            id: attempt.id.clone(),
            response_status_code: attempt.response_status_code,
            timestamp: rfc3339(attempt.created_at),
        },
    })
}

/// One event waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    /// The event as JSON ([`Event`]'s serde form).
    pub event: String,
    /// When its cause committed (unix ms).
    pub created_at: i64,
}

/// What publishing does with one outbox row: the message it becomes, or none for a row that
/// could not be read (it is deleted all the same, so it cannot block the outbox).
#[derive(Debug, Clone)]
pub struct Published {
    pub id: i64,
    pub message: Option<Message>,
}

/// An endpoint change the API announces with [`super::Store::change_endpoint`].
#[derive(Debug, Clone, Copy)]
pub enum EndpointChange<'a> {
    Create(&'a Endpoint),
    /// [`super::Store::update_endpoint`]'s compare-and-set on `read_at`.
    Update {
        endpoint: &'a Endpoint,
        read_at: i64,
    },
    Delete {
        app_id: &'a AppId,
        endpoint_id: &'a EndpointId,
    },
}

/// Whether the causes write operational events, and about which application they never do.
/// Off until the server turns it on: a store opened by a tool, or a server without
/// operational webhooks, writes nothing.
#[derive(Debug, Default)]
pub(crate) struct OutboxSwitch(RwLock<Option<AppId>>);

impl OutboxSwitch {
    pub fn set(&self, own_app: Option<AppId>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = own_app;
    }

    /// The JSON rows to write for `events`: none when off, and none about the operational
    /// application itself, so a failing operator URL cannot feed itself.
    pub fn rows(&self, events: impl IntoIterator<Item = Event>) -> Vec<String> {
        let own_app = self.0.read().unwrap_or_else(|e| e.into_inner());
        let Some(own_app) = own_app.as_ref() else {
            return Vec::new();
        };
        events
            .into_iter()
            .filter(|event| event.app_id() != own_app)
            .filter_map(|event| serde_json::to_string(&event).ok())
            .collect()
    }
}

/// The events a recorded batch writes: one `endpoint.disabled` per endpoint it disabled, and
/// the attempt event ([`attempt_event`]) of each result that applied (a result whose
/// lease was lost writes none: whoever holds the delivery now will).
pub(crate) fn recorded_events(
    results: &[AttemptResult],
    applied: &[bool],
    disabled: &[DisabledEndpoint],
) -> Vec<Event> {
    let disabled = disabled.iter().cloned().map(Event::Disabled);
    let attempts = results
        .iter()
        .zip(applied)
        .filter(|(_, applied)| **applied)
        .filter_map(|(result, _)| attempt_event(result));
    disabled.chain(attempts).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::{Attempt, TriggerType};

    /// A recorded result of attempt `attempt_number` (also the operational payload tests').
    pub(crate) fn result(attempt_number: u32, success: bool, next: NextStep) -> AttemptResult {
        AttemptResult {
            delivery_id: "dlv_1".into(),
            lease_token: "lease".into(),
            attempt: Attempt {
                id: "atmpt_1".into(),
                msg_id: "msg_1".into(),
                endpoint_id: "ep_1".into(),
                url: "https://example.com/".into(),
                success,
                response_status_code: if success { 200 } else { 503 },
                response: String::new(),
                response_duration_ms: 3,
                trigger_type: TriggerType::Scheduled,
                created_at: 1_614_265_330_000,
            },
            app_id: "app_1".into(),
            next,
            attempt_number,
        }
    }

    fn kind_of(r: &AttemptResult) -> Option<Kind> {
        attempt_event(r).map(|e| e.kind())
    }

    #[test]
    fn failing_is_sent_once_on_the_fourth_failure_with_a_retry_ahead() {
        let retry = NextStep::RetryAt(1);
        assert_eq!(kind_of(&result(1, false, retry)), None);
        assert_eq!(kind_of(&result(3, false, retry)), None);
        assert_eq!(
            kind_of(&result(4, false, retry)),
            Some(Kind::AttemptFailing)
        );
        assert_eq!(kind_of(&result(5, false, retry)), None);
    }

    #[test]
    fn exhausted_whenever_retries_run_out() {
        for n in [1, 4, 8] {
            assert_eq!(
                kind_of(&result(n, false, NextStep::Exhausted)),
                Some(Kind::AttemptExhausted)
            );
        }
        assert_eq!(kind_of(&result(2, false, NextStep::Gone)), None);
    }

    #[test]
    fn recovered_only_after_failing_was_sent() {
        assert_eq!(kind_of(&result(1, true, NextStep::Done)), None);
        assert_eq!(kind_of(&result(4, true, NextStep::Done)), None);
        assert_eq!(
            kind_of(&result(5, true, NextStep::Done)),
            Some(Kind::AttemptRecovered)
        );
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
    fn only_applied_results_of_other_applications_are_written() {
        let switch = OutboxSwitch::default();
        switch.set(Some("app_ops".into()));
        let batch = [exhausted("app_1"), exhausted("app_2"), exhausted("app_ops")];
        let disabled = [DisabledEndpoint {
            app_id: "app_ops".into(),
            endpoint_id: "ep_ops".into(),
            fail_since: 0,
        }];
        let rows = switch.rows(recorded_events(&batch, &[true, false, true], &disabled));
        assert_eq!(rows.len(), 1, "a lost lease or our own app wrote: {rows:?}");
        let event: Event = serde_json::from_str(&rows[0]).expect("an event");
        assert_eq!(event.kind(), Kind::AttemptExhausted);
        assert_eq!(event.app_id(), "app_1");
    }

    #[test]
    fn a_switch_that_is_off_writes_nothing() {
        let events = recorded_events(&[exhausted("app_1")], &[true], &[]);
        assert_eq!(events.len(), 1);
        assert!(OutboxSwitch::default().rows(events).is_empty());
    }

    #[test]
    fn events_survive_their_json() {
        let switch = OutboxSwitch::default();
        switch.set(Some("app_ops".into()));
        let disabled = DisabledEndpoint {
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            fail_since: 7,
        };
        let events = recorded_events(&[exhausted("app_1")], &[true], &[disabled]);
        let rows = switch.rows(events.clone());
        let back: Vec<Event> = rows
            .iter()
            .map(|row| serde_json::from_str(row).expect("an event"))
            .collect();
        assert_eq!(back, events);
    }
}
