//! Prefixed, time-sortable identifiers (`app_…`, `ep_…`, `msg_…`, `atmpt_…`), and a type per
//! kind of id ([`AppId`], [`EndpointId`], [`MessageId`], …) so that an endpoint's id cannot be
//! passed where an application's is wanted.
//!
//! The part after the prefix is a ULID: 26 Crockford base32 characters whose first ten encode
//! the creation time in milliseconds. Ids therefore sort by creation time, which is what lets a
//! list be paged with the last id as its cursor.
//!
//! An id type says which kind of id a value is meant to be; it does not prove that such a row
//! exists, or that the text is well formed: only the store knows the first, and a lookup of an
//! id that was never issued simply finds nothing (a 404), as it always has. So a string taken
//! from a request path converts into an id without a check ([`From<String>`]), and new ids come
//! from [`AppId::generate`] and its siblings.
//!
//! Each holds a `String`: ids are read from rows and written to the API as text, so a `String`
//! moves in and out without copying, which an `Arc<str>` would not (rows decode to `String`).
//! Ids are cloned a few times per delivery at most; the payload, the one large value, is
//! already shared as an `Arc<str>`.
//!
//! An id derefs to `str` (as svix's id types deref to their text): a typed id goes wherever
//! text is read, such as a backend's SQL parameters, so the conversion is one way only; a
//! `&str` never passes where an [`AppId`] is wanted.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of identifier hookd issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdPrefix {
    App,
    Endpoint,
    Message,
    Attempt,
    Delivery,
    Token,
    Task,
    Audit,
}

impl IdPrefix {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdPrefix::App => "app_",
            IdPrefix::Endpoint => "ep_",
            IdPrefix::Message => "msg_",
            IdPrefix::Attempt => "atmpt_",
            IdPrefix::Delivery => "dlv_",
            IdPrefix::Token => "tok_",
            IdPrefix::Task => "qtask_",
            IdPrefix::Audit => "audit_",
        }
    }

    /// Every kind, so that text can be checked against all of them.
    pub const ALL: [IdPrefix; 8] = [
        IdPrefix::App,
        IdPrefix::Endpoint,
        IdPrefix::Message,
        IdPrefix::Attempt,
        IdPrefix::Delivery,
        IdPrefix::Token,
        IdPrefix::Task,
        IdPrefix::Audit,
    ];
}

/// The id prefix `text` begins with, if any: a name chosen by a user must not, or a path that
/// takes "an id or a uid" could not tell which one it was given.
pub(crate) fn id_prefix_of(text: &str) -> Option<IdPrefix> {
    IdPrefix::ALL
        .into_iter()
        .find(|prefix| text.starts_with(prefix.as_str()))
}

/// True when `text` is an id hookd could have issued: a known prefix, then a ULID in its
/// canonical spelling (26 upper-case Crockford base32 characters).
pub(crate) fn is_well_formed_id(text: &str) -> bool {
    let Some(prefix) = id_prefix_of(text) else {
        return false;
    };
    let ulid = &text[prefix.as_str().len()..];
    ulid::Ulid::from_string(ulid).is_ok_and(|parsed| parsed.to_string() == ulid)
}

/// A new id of the given kind, sorting after every id this process made before it.
pub(crate) fn new_id(prefix: IdPrefix) -> String {
    format!("{}{}", prefix.as_str(), next_ulid())
}

/// Ids made within one millisecond differ only in their random part, so two of them would sort
/// in random order, and a list paged by id would not match creation order. A monotonic
/// generator increments the random part instead (and holds its order if the clock steps back).
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Failing needs 2^80 ids within one millisecond; a fresh random id is then still unique.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new id of this kind, sorting after every id this process made before it.
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An id read back from the store.
            pub(crate) fn from_stored(text: String) -> Self {
                Self(text)
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Read access to the text, so an id goes wherever a `&str` is read (SQL parameters,
        /// lookups, formatting); the other way, a `&str` never passes for an id.
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        /// Lets maps keyed by this id be searched with a `&str`.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An application's id (`app_…`); not its uid, which the caller chooses.
    AppId, IdPrefix::App
);
id_type!(
    /// An endpoint's id (`ep_…`); not its uid, which the caller chooses.
    EndpointId, IdPrefix::Endpoint
);
id_type!(
    /// A message's id (`msg_…`); not its `eventId`, which the caller chooses.
    MessageId, IdPrefix::Message
);
id_type!(
    /// An attempt's id (`atmpt_…`).
    AttemptId, IdPrefix::Attempt
);
id_type!(
    /// A delivery's id (`dlv_…`): one message to one endpoint.
    DeliveryId, IdPrefix::Delivery
);
id_type!(
    /// An API token's or portal key's id (`tok_…`).
    TokenId, IdPrefix::Token
);
id_type!(
    /// A background task's id (`qtask_…`).
    TaskId, IdPrefix::Task
);
id_type!(
    /// An entry of the operator dashboard's audit log (`audit_…`).
    AuditId, IdPrefix::Audit
);

/// The smallest id that sorts at or after `millis`: used to turn a time filter into an id range.
pub(crate) fn lower_bound_at(prefix: IdPrefix, millis: i64) -> String {
    let millis = u64::try_from(millis.max(0)).unwrap_or(0);
    format!("{}{}", prefix.as_str(), ulid::Ulid::from_parts(millis, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let first = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = MessageId::generate();
        assert!(first.starts_with("msg_"));
        assert!(first < second);
    }

    #[test]
    fn ids_made_within_one_millisecond_keep_their_order() {
        // Thousands in a row span few milliseconds, so most share one with a neighbour.
        let ids: Vec<AppId> = (0..5_000).map(|_| AppId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert!(ids == sorted, "ids sort in the order they were made");
        assert!(ids.iter().all(|id| is_well_formed_id(id)));
    }

    #[test]
    fn only_issued_shapes_are_well_formed() {
        assert!(is_well_formed_id(MessageId::generate().as_str()));
        assert!(is_well_formed_id(AuditId::generate().as_str()));
        for text in [
            "",
            "garbage",
            "msg_",
            "msg_nope",
            "app_looks_like_id",
            "msg_01arz3ndektsv4rrffq69g5fav",
            "msg_01ARZ3NDEKTSV4RRFFQ69G5FAVX",
            "msg_01ARZ3NDEKTSV4RRFFQ69G5FA\u{0}",
            "node_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert!(!is_well_formed_id(text), "{text:?}");
        }
    }

    #[test]
    fn every_prefix_is_recognised() {
        for prefix in IdPrefix::ALL {
            let text = format!("{}anything", prefix.as_str());
            assert_eq!(id_prefix_of(&text), Some(prefix));
        }
        assert_eq!(id_prefix_of("merchant-42"), None);
        assert_eq!(id_prefix_of("APP_upper"), None);
    }

    #[test]
    fn lower_bound_sorts_before_later_ids() {
        let now = chrono::Utc::now().timestamp_millis();
        let bound = lower_bound_at(IdPrefix::Message, now - 1000);
        assert!(bound.as_str() < MessageId::generate().as_str());
    }
}
