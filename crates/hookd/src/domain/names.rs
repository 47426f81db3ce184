//! Names chosen by API users: uids, event type names and channels.

use serde::{Deserialize, Serialize};

use super::ids::id_prefix_of;

/// Why a name was refused; becomes a 422 on the field that held it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("must be between 1 and {max} characters long")]
    Length { max: usize },
    #[error("may contain only letters, digits and {allowed}")]
    Characters { allowed: &'static str },
    #[error(
        "must not begin with `{prefix}`: hookd's own ids begin so, and a path that takes an id \
         or a uid could not tell them apart"
    )]
    LooksLikeId { prefix: &'static str },
}

fn check(text: &str, max: usize, extra: &'static str) -> Result<(), NameError> {
    if text.is_empty() || text.len() > max {
        return Err(NameError::Length { max });
    }
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        return Err(NameError::Characters {
            allowed: describe(extra),
        });
    }
    Ok(())
}

fn describe(extra: &'static str) -> &'static str {
    match extra {
        "-_." => "`-`, `_` and `.`",
        _ => "`-`, `_`, `.` and `:`",
    }
}

/// Nothing more to check beyond length and characters.
fn any_shape(_: &str) -> Result<(), NameError> {
    Ok(())
}

/// A uid is looked up where an id is too (`/app/{id-or-uid}`), so it must not look like one:
/// an application whose uid is another tenant's application id would make that path ambiguous.
fn not_id_shaped(text: &str) -> Result<(), NameError> {
    match id_prefix_of(text) {
        Some(prefix) => Err(NameError::LooksLikeId {
            prefix: prefix.as_str(),
        }),
        None => Ok(()),
    }
}

/// The characters beyond letters and digits, as a regular expression class.
fn regex_class(extra: &str) -> String {
    extra.chars().map(|c| format!("\\{c}")).collect()
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, extra = $extra:expr, shape = $shape:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: impl Into<String>) -> Result<Self, NameError> {
                let text = text.into();
                check(&text, $max, $extra)?;
                $shape(&text)?;
                Ok(Self(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A name hookd already holds: read back from the store (which only ever holds
            /// names parsed on their way in) or one of its own constants (the built-in
            /// catalog, the operational application). Not checked again.
            pub(crate) fn from_stored(text: String) -> Self {
                Self(text)
            }
        }

        /// Read access to the text (SQL parameters, comparisons, formatting); a `&str` never
        /// passes for a name without [`parse`](Self::parse).
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
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

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(text: String) -> Result<Self, NameError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some(format!("^[a-zA-Z0-9{}]+$", regex_class($extra))))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A user-chosen unique identifier of an application or endpoint (also a message's
    /// `eventId` and `orderingKey`), never shaped like one of hookd's ids.
    Uid, max = 256, extra = "-_.", shape = not_id_shaped
);
name_type!(
    /// An event type name such as `payment.captured`.
    EventTypeName, max = 256, extra = "-_.", shape = any_shape
);
name_type!(
    /// A channel a message is published on and an endpoint may listen to.
    Channel, max = 128, extra = "-_.:", shape = any_shape
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert!(EventTypeName::parse("payment.captured").is_ok());
        assert!(Channel::parse("merchant:42").is_ok());
        assert!(Uid::parse("merchant-42_eu.v1").is_ok());
    }

    #[test]
    fn refuses_empty_long_and_odd_names() {
        assert!(EventTypeName::parse("").is_err());
        assert!(EventTypeName::parse("a".repeat(257)).is_err());
        assert!(EventTypeName::parse("payment captured").is_err());
        assert!(Uid::parse("a:b").is_err());
        assert!(Channel::parse("ünicode").is_err());
    }

    #[test]
    fn refuses_uids_shaped_like_ids() {
        for text in [
            "app_looks_like_id",
            "ep_1",
            "msg_x",
            "atmpt_",
            "tok_abc",
            "qtask_1",
        ] {
            assert!(
                matches!(Uid::parse(text), Err(NameError::LooksLikeId { .. })),
                "{text}"
            );
        }
        assert!(Uid::parse("apps_and_more").is_ok());
        assert!(Uid::parse("my_app_1").is_ok());
        assert!(
            EventTypeName::parse("msg_sent").is_ok(),
            "only uids are refused"
        );
    }
}
