//! The built-in payment event catalog: the six payment event types, each with a JSON Schema
//! and an example, loaded by `hookd serve --seed payments` and used by `hookd trigger` and
//! `hookd demo`; and the checking of payloads against an event type's schema
//! ([`validators`] keeps the compiled schemas that ingest uses).

pub(crate) mod validators;

use serde_json::{json, Value};

use crate::domain::time::now_millis;
use crate::domain::EventTypeName;
use crate::store::{EventType, SharedStore, StoreError, StoreResult};

/// One entry of the catalog.
pub struct CatalogEntry {
    pub name: &'static str,
    pub description: &'static str,
    /// The payment status this event reports.
    pub status: &'static str,
}

/// The payment event types, in the order a payment usually meets them.
pub const PAYMENT_EVENTS: &[CatalogEntry] = &[
    CatalogEntry {
        name: "payment.created",
        description: "A payment was created and awaits authorization.",
        status: "created",
    },
    CatalogEntry {
        name: "payment.authorized",
        description: "The payment was authorized; funds are reserved but not yet moved.",
        status: "authorized",
    },
    CatalogEntry {
        name: "payment.captured",
        description: "The payment was captured: the money moved. Fulfil the order now.",
        status: "captured",
    },
    CatalogEntry {
        name: "payment.failed",
        description: "The payment failed (declined, expired or cancelled).",
        status: "failed",
    },
    CatalogEntry {
        name: "payment.refunded",
        description: "The payment was refunded to the customer.",
        status: "refunded",
    },
    CatalogEntry {
        name: "payment.updated",
        description: "The payment changed; `data.status` says its state now.",
        status: "authorized",
    },
];

/// The statuses a payment event may report.
pub(crate) const STATUSES: &[&str] = &["created", "authorized", "captured", "failed", "refunded"];

/// Finds a catalog entry by event type name.
pub fn entry(name: &str) -> Option<&'static CatalogEntry> {
    PAYMENT_EVENTS.iter().find(|e| e.name == name)
}

/// The JSON Schema every payment event's payload follows (the seed's shape).
pub fn payment_schema(event: &str) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event,
        "type": "object",
        "required": ["event", "timestamp", "data"],
        "properties": {
            "event": {"const": event},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "required": ["paymentId", "status", "amount", "currency", "orderId"],
                "properties": {
                    "paymentId": {"type": "string", "minLength": 1},
                    "status": {"enum": STATUSES},
                    "amount": {"type": "integer", "minimum": 0},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "orderId": {"type": "string", "minLength": 1}
                }
            }
        }
    })
}

/// A payment event payload in the catalog's shape.
pub fn payment_event(
    event: &str,
    timestamp: &str,
    payment_id: &str,
    status: &str,
    amount: u64,
    currency: &str,
    order_id: &str,
) -> Value {
    json!({
        "event": event,
        "timestamp": timestamp,
        "data": {
            "paymentId": payment_id,
            "status": status,
            "amount": amount,
            "currency": currency,
            "orderId": order_id,
        }
    })
}

/// The example payload of an event type, stamped now.
pub fn example(entry: &CatalogEntry) -> Value {
    let now = crate::domain::time::rfc3339(now_millis());
    payment_event(
        entry.name,
        &now,
        "pay_1a2b3c4d",
        entry.status,
        4999,
        "EUR",
        "ord_20261129_0042",
    )
}

/// The event type record of an entry: version "1" of its schema, with the example attached as
/// the schema's `examples`, as Svix's catalog does.
fn event_type(entry: &CatalogEntry) -> EventType {
    let mut schema = payment_schema(entry.name);
    schema["examples"] = json!([example(entry)]);
    let now = now_millis();
    EventType {
        name: EventTypeName::from_stored(entry.name.to_string()),
        description: entry.description.to_string(),
        archived: false,
        deprecated: false,
        schemas: Some(json!({ "1": schema })),
        feature_flag: None,
        // The seeded schemas are the contract hookd's own tools (`trigger`, `demo`) post to:
        // a payload that breaks it is refused at ingest rather than sent to every merchant.
        validate_payloads: true,
        created_at: now,
        updated_at: now,
    }
}

/// Loads the payment catalog, adding what is missing and leaving changed entries alone.
pub(crate) async fn seed_payments(store: &SharedStore) -> StoreResult<usize> {
    let mut added = 0;
    for entry in PAYMENT_EVENTS {
        match store.create_event_type(&event_type(entry)).await {
            Ok(()) => added += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_has_the_seed_shape() {
        for entry in PAYMENT_EVENTS {
            let example = example(entry);
            assert_eq!(example["event"], entry.name);
            assert!(STATUSES.contains(&example["data"]["status"].as_str().expect("status")));
            assert_eq!(
                payment_schema(entry.name)["properties"]["event"]["const"],
                entry.name
            );
        }
        assert_eq!(PAYMENT_EVENTS.len(), 6);
    }
}

/// Why a payload does not follow its event type's schema: the first failing path and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    /// JSON pointer into the payload, e.g. `/data/amount`.
    pub path: String,
    pub message: String,
}

impl SchemaViolation {
    /// The failing path as segments (`["data", "amount"]`), JSON pointer escapes undone.
    pub(crate) fn segments(&self) -> Vec<String> {
        pointer_segments(&self.path)
    }
}

/// A JSON pointer (`/data/a~1b`) as its segments (`["data", "a/b"]`), escapes undone.
fn pointer_segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Checks `payload` against the newest version of the event type's schemas, if it has any.
pub fn validate(schemas: &Value, payload: &Value) -> Result<(), SchemaViolation> {
    match compile(schemas)? {
        Some(validator) => check(&validator, payload),
        None => Ok(()),
    }
}

/// Why a version of an event type's schemas is not a JSON Schema, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFault {
    /// The version's key in `schemas` (`"1"`).
    pub version: String,
    /// JSON pointer into that version's schema, e.g. `/properties/amount/type`.
    pub path: String,
    pub message: String,
}

impl SchemaFault {
    /// Where the fault is under `schemas`: the version, then the pointer's segments.
    pub(crate) fn segments(&self) -> Vec<String> {
        std::iter::once(self.version.clone())
            .chain(pointer_segments(&self.path))
            .collect()
    }
}

/// Compiles one version of an event type's schemas; a fault names its place in the schema.
/// Schemas may only refer to themselves: this build of `jsonschema` fetches no remote `$ref`,
/// so a schema cannot make hookd send a request anywhere.
fn compile_version(version: &str, schema: &Value) -> Result<jsonschema::Validator, SchemaFault> {
    jsonschema::validator_for(schema).map_err(|e| SchemaFault {
        version: version.to_string(),
        path: e.instance_path().to_string(),
        message: format!("the event type's schema is not valid: {e}"),
    })
}

/// Compiles the newest version of an event type's schemas; `None` when it has none.
pub(crate) fn compile(schemas: &Value) -> Result<Option<jsonschema::Validator>, SchemaViolation> {
    let Some((version, schema)) = newest_version(schemas) else {
        return Ok(None);
    };
    // A violation's path points into payloads, so the schema's own fault is told in the
    // message only.
    compile_version(version, schema)
        .map(Some)
        .map_err(|fault| SchemaViolation {
            path: String::new(),
            message: fault.message,
        })
}

/// Checks that every version of `schemas` compiles, so that none is stored that payloads
/// could later not be checked against, or that a reader of the catalog would take as valid.
pub(crate) fn check_every_version(schemas: &Value) -> Result<(), SchemaFault> {
    let Some(versions) = schemas.as_object() else {
        return Ok(());
    };
    for (version, schema) in versions {
        compile_version(version, schema)?;
    }
    Ok(())
}

/// The first way `payload` breaks the compiled schema, if any.
pub fn check(validator: &jsonschema::Validator, payload: &Value) -> Result<(), SchemaViolation> {
    let first = validator
        .iter_errors(payload)
        .next()
        .map(|error| SchemaViolation {
            path: error.instance_path().to_string(),
            message: error.to_string(),
        });
    first.map_or(Ok(()), Err)
}

/// The `examples` of the newest version of an event type's schemas, if it lists any.
pub(crate) fn schema_examples(schemas: &Value) -> Option<&Vec<Value>> {
    newest_schema(schemas)?.get("examples")?.as_array()
}

/// Schemas are keyed by version ("1", "2", …); the highest number is the current one.
pub(crate) fn newest_schema(schemas: &Value) -> Option<&Value> {
    newest_version(schemas).map(|(_, schema)| schema)
}

fn newest_version(schemas: &Value) -> Option<(&String, &Value)> {
    schemas
        .as_object()?
        .iter()
        .max_by_key(|(version, _)| version.parse::<u64>().unwrap_or(0))
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    #[test]
    fn examples_follow_their_schemas() {
        for entry in PAYMENT_EVENTS {
            let schemas = json!({ "1": payment_schema(entry.name) });
            assert_eq!(
                validate(&schemas, &example(entry)),
                Ok(()),
                "{}",
                entry.name
            );
        }
    }

    #[test]
    fn a_violation_names_the_failing_path() {
        let schemas = json!({ "1": payment_schema("payment.captured") });
        let mut payload = example(entry("payment.captured").expect("entry"));
        payload["data"]["amount"] = json!("a lot");
        let violation = validate(&schemas, &payload).expect_err("invalid");
        assert_eq!(violation.path, "/data/amount");
        payload["data"]["amount"] = json!(10);
        payload["data"]["currency"] = json!("euro");
        assert_eq!(
            validate(&schemas, &payload).expect_err("invalid").path,
            "/data/currency"
        );
    }

    #[test]
    fn segments_undo_pointer_escapes() {
        let violation = SchemaViolation {
            path: "/data/a~1b/0/c~0d".into(),
            message: String::new(),
        };
        assert_eq!(violation.segments(), ["data", "a/b", "0", "c~d"]);
        let root = SchemaViolation {
            path: String::new(),
            message: String::new(),
        };
        assert!(root.segments().is_empty());
    }

    #[test]
    fn examples_come_from_the_newest_schema() {
        let schemas = json!({
            "1": {"examples": [{"v": 1}]},
            "2": {"examples": [{"v": 2}, {"v": 3}]}
        });
        assert_eq!(
            schema_examples(&schemas),
            Some(&vec![json!({"v": 2}), json!({"v": 3})])
        );
        assert_eq!(schema_examples(&json!({"1": {"type": "object"}})), None);
    }

    #[test]
    fn a_fault_in_any_version_names_its_place() {
        let schemas = json!({
            "1": {"type": "object", "properties": {"amount": {"type": "nonsense-type"}}},
            "2": {"type": "object"}
        });
        let fault = check_every_version(&schemas).expect_err("version 1 is broken");
        assert_eq!(fault.segments(), ["1", "properties", "amount", "type"]);
        assert!(check_every_version(&json!({"1": {"type": "object"}, "2": true})).is_ok());
        assert!(check_every_version(&json!({"1": 5})).is_err());
    }

    #[test]
    fn the_newest_version_counts() {
        let schemas =
            json!({ "1": {"type": "object"}, "2": {"type": "object", "required": ["x"]} });
        assert!(validate(&schemas, &json!({})).is_err());
        assert!(validate(&json!({}), &json!({})).is_ok());
    }
}
