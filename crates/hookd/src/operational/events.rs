//! The operational events, when each is sent, and their payloads in Svix's shapes
//! (`EndpointCreatedEvent`, `EndpointDisabledEvent`, `MessageAttemptExhaustedEvent`, … of
//! Svix's OpenAPI document). Pure functions only.

use serde::Serialize;

use crate::domain::time::rfc3339;
pub use crate::store::outbox::{Event, Kind, LastAttempt};

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
    use crate::store::outbox::attempt_event;
    use crate::store::outbox::tests::result;
    use crate::store::{DisabledEndpoint, NextStep};

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
