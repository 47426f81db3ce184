//! The API's checks of stored free text (domain/text.rs says what is refused and why).

use std::collections::BTreeMap;

use super::error::ApiError;
use crate::domain::text::{describe_control, forbidden_control, Lines};

/// A 422 on `loc` when `text` holds a control character it may not.
pub(crate) fn check_text(loc: &[&str], text: &str, lines: Lines) -> Result<(), ApiError> {
    match forbidden_control(text, lines) {
        Some(found) => Err(ApiError::invalid(loc, describe_control(found))),
        None => Ok(()),
    }
}

/// Metadata keys and values are single lines; a 422 names the key (`["body", "metadata", key]`).
pub(crate) fn check_metadata(metadata: Option<&BTreeMap<String, String>>) -> Result<(), ApiError> {
    for (key, value) in metadata.into_iter().flatten() {
        check_text(&["body", "metadata"], key, Lines::Single)?;
        check_text(&["body", "metadata", key], value, Lines::Single)?;
    }
    Ok(())
}
