//! The compiled schemas that ingest checks payloads against, cached per event type.
//!
//! An event type with `validatePayloads` set has every payload of its messages checked against
//! the newest of its schemas. Reading the event type and compiling its schema for each message
//! would cost a query and a compilation per ingest, so this node keeps what it found for each
//! event type name (a compiled validator, or "nothing to check") for [`FRESH_FOR`]. A change
//! made through this node's API forgets the entry at once; a change made on another node is
//! seen once the entry is older than [`FRESH_FOR`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::SchemaViolation;
use crate::store::{SharedStore, StoreError};

/// How long an entry is trusted before the event type is read again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(5);
/// The most entries kept. Messages may name event types that are not in the catalog, and each
/// name gets an entry, so the cache is bounded: past this size, stale entries are dropped, and
/// if that is not enough, all of them.
const MAX_ENTRIES: usize = 10_000;

/// What ingest must do for one event type.
#[derive(Clone)]
enum Rule {
    /// No validation: unknown type, flag off, or no schema.
    Accept,
    /// Check against this compiled schema.
    Check(Arc<jsonschema::Validator>),
    /// Validation is on but the newest schema does not compile: refuse, saying why.
    Refuse(SchemaViolation),
}

struct Entry {
    loaded_at: Instant,
    rule: Rule,
}

/// Why a payload was not accepted.
#[derive(Debug)]
pub(crate) enum PayloadError {
    /// The payload breaks its event type's schema.
    Invalid(SchemaViolation),
    /// The event type could not be read.
    Store(StoreError),
}

impl From<StoreError> for PayloadError {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

#[derive(Default)]
struct Entries {
    by_name: HashMap<String, Entry>,
    /// Bumped by every [`PayloadValidators::forget`], so that a load which started before a
    /// change does not store what it read.
    generation: u64,
}

/// The per event type validators of this node.
pub(crate) struct PayloadValidators {
    store: SharedStore,
    entries: Mutex<Entries>,
}

impl PayloadValidators {
    pub fn new(store: SharedStore) -> Self {
        Self {
            store,
            entries: Mutex::default(),
        }
    }

    /// Checks a payload (JSON text) of `event_type` if that event type asks for it.
    pub async fn check(&self, event_type: &str, payload: &str) -> Result<(), PayloadError> {
        let rule = match self.cached(event_type) {
            Some(rule) => rule,
            None => self.load(event_type).await?,
        };
        match rule {
            Rule::Accept => Ok(()),
            Rule::Refuse(violation) => Err(PayloadError::Invalid(violation)),
            Rule::Check(validator) => {
                // The API has already parsed the payload as a JSON object.
                let value: Value = serde_json::from_str(payload).map_err(|e| {
                    PayloadError::Invalid(SchemaViolation {
                        path: String::new(),
                        message: e.to_string(),
                    })
                })?;
                super::check(&validator, &value).map_err(PayloadError::Invalid)
            }
        }
    }

    /// Drops what is known of `event_type`, after it was created, changed or deleted.
    pub(crate) fn forget(&self, event_type: &str) {
        let mut entries = self.lock();
        entries.generation += 1;
        entries.by_name.remove(event_type);
    }

    fn cached(&self, event_type: &str) -> Option<Rule> {
        let entries = self.lock();
        let entry = entries.by_name.get(event_type)?;
        (entry.loaded_at.elapsed() < FRESH_FOR).then(|| entry.rule.clone())
    }

    /// Reads the event type, compiles its schema if it asks for validation, and remembers the
    /// outcome unless the event type was changed meanwhile.
    async fn load(&self, event_type: &str) -> Result<Rule, StoreError> {
        let generation = self.lock().generation;
        let found = self.store.get_event_type(event_type).await?;
        let rule = match found {
            Some(et) if et.validate_payloads => match et.schemas.as_ref().map(super::compile) {
                Some(Ok(Some(validator))) => Rule::Check(Arc::new(validator)),
                Some(Err(violation)) => Rule::Refuse(violation),
                Some(Ok(None)) | None => Rule::Accept,
            },
            _ => Rule::Accept,
        };
        let mut entries = self.lock();
        if entries.generation == generation {
            if entries.by_name.len() >= MAX_ENTRIES {
                entries
                    .by_name
                    .retain(|_, entry| entry.loaded_at.elapsed() < FRESH_FOR);
                if entries.by_name.len() >= MAX_ENTRIES {
                    entries.by_name.clear();
                }
            }
            entries.by_name.insert(
                event_type.to_string(),
                Entry {
                    loaded_at: Instant::now(),
                    rule: rule.clone(),
                },
            );
        }
        Ok(rule)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // The map holds no invariant a panic could break halfway.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
