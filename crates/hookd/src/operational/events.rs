//! The operational events, when each is sent, and their payloads in Svix's shapes
//! (`EndpointCreatedEvent`, `EndpointDisabledEvent`, `MessageAttemptExhaustedEvent`, … of
//! Svix's OpenAPI document). Pure functions only.

use serde::Serialize;

use crate::domain::time::rfc3339;
use crate::domain::{AppId, AttemptId, EndpointId, MessageId};
use crate::store::{AttemptResult, DisabledEndpoint, NextStep};

/// The attempt whose failure sends `message.attempt.failing`, as with Svix: the fourth. With the
/// default schedule that is about 35 minutes after the first failure; a delivery whose retries
/// run out sooner sends only `message.attempt.exhausted`.
pub(crate) const FAILING_AT_ATTEMPT: u32 = 4;

/// The kinds of operational event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// One operational event as emitted, before the names (uids, event id) it shows are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The names an event shows besides ids, looked up when it is published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub app_uid: Option<String>,
    pub endpoint_uid: Option<String>,
    pub msg_event_id: Option<String>,
}

#[derive(Serialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: T,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointData<'a> {
    app_id: &'a str,
    app_uid: Option<&'a str>,
    endpoint_id: &'a str,
    endpoint_uid: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DisabledData<'a> {
    app_id: &'a str,
    app_uid: Option<&'a str>,
    endpoint_id: &'a str,
    endpoint_uid: Option<&'a str>,
    fail_since: String,
    /// `automatic`: hookd disabled it (an operator's disabling is an `endpoint.updated`).
    trigger: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptData<'a> {
    app_id: &'a str,
    app_uid: Option<&'a str>,
    endpoint_id: &'a str,
    msg_id: &'a str,
    msg_event_id: Option<&'a str>,
    last_attempt: &'a LastAttempt,
}

/// The JSON body of the operational webhook for `event`: `{"type": …, "data": {…}}`.
pub fn payload(event: &Event, names: &Names) -> String {
    let kind = event.kind().name();
    let json = match event {
        Event::Endpoint {
            app_id,
            app_uid,
            endpoint_id,
            endpoint_uid,
            ..
        } => serde_json::to_string(&Envelope {
            kind,
            data: EndpointData {
                app_id,
                app_uid: app_uid.as_deref(),
                endpoint_id,
                endpoint_uid: endpoint_uid.as_deref(),
            },
        }),
        Event::Disabled(disabled) => serde_json::to_string(&Envelope {
            kind,
            data: DisabledData {
                app_id: &disabled.app_id,
                app_uid: names.app_uid.as_deref(),
                endpoint_id: &disabled.endpoint_id,
                endpoint_uid: names.endpoint_uid.as_deref(),
                fail_since: rfc3339(disabled.fail_since),
                trigger: "automatic",
            },
        }),
        Event::Attempt {
            app_id,
            endpoint_id,
            msg_id,
            last_attempt,
            ..
        } => serde_json::to_string(&Envelope {
            kind,
            data: AttemptData {
                app_id,
                app_uid: names.app_uid.as_deref(),
                endpoint_id,
                msg_id,
                msg_event_id: names.msg_event_id.as_deref(),
                last_attempt,
            },
        }),
    };
    // Serialising these plain structs cannot fail.
    json.unwrap_or_else(|_| format!(r#"{{"type":"{kind}","data":{{}}}}"#))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::store::{Attempt, TriggerType};

    fn result(attempt_number: u32, success: bool, next: NextStep) -> AttemptResult {
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

    #[test]
    fn attempt_payloads_have_svix_shape() {
        let event = attempt_event(&result(8, false, NextStep::Exhausted)).expect("event");
        let names = Names {
            app_uid: Some("acme".into()),
            endpoint_uid: None,
            msg_event_id: Some("evt-1".into()),
        };
        let body: Value = serde_json::from_str(&payload(&event, &names)).expect("json");
        assert_eq!(
            body,
            json!({
                "type": "message.attempt.exhausted",
                "data": {
                    "appId": "app_1",
                    "appUid": "acme",
                    "endpointId": "ep_1",
                    "msgId": "msg_1",
                    "msgEventId": "evt-1",
                    "lastAttempt": {
                        "id": "atmpt_1",
                        "responseStatusCode": 503,
                        "timestamp": "2021-02-25T15:02:10.000Z"
                    }
                }
            })
        );
    }

    #[test]
    fn endpoint_payloads_have_svix_shape() {
        let disabled = Event::Disabled(DisabledEndpoint {
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            fail_since: 1_614_265_330_000,
        });
        let names = Names {
            app_uid: None,
            endpoint_uid: Some("primary".into()),
            msg_event_id: None,
        };
        let body: Value = serde_json::from_str(&payload(&disabled, &names)).expect("json");
        assert_eq!(
            body,
            json!({
                "type": "endpoint.disabled",
                "data": {
                    "appId": "app_1",
                    "appUid": null,
                    "endpointId": "ep_1",
                    "endpointUid": "primary",
                    "failSince": "2021-02-25T15:02:10.000Z",
                    "trigger": "automatic"
                }
            })
        );
        let deleted = Event::Endpoint {
            kind: Kind::EndpointDeleted,
            app_id: "app_1".into(),
            app_uid: Some("acme".into()),
            endpoint_id: "ep_1".into(),
            endpoint_uid: None,
        };
        let body: Value =
            serde_json::from_str(&payload(&deleted, &Names::default())).expect("json");
        assert_eq!(
            body,
            json!({
                "type": "endpoint.deleted",
                "data": {"appId": "app_1", "appUid": "acme", "endpointId": "ep_1", "endpointUid": null}
            })
        );
    }
}
