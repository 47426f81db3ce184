//! Prefixed, time-sortable identifiers (`app_…`, `ep_…`, `msg_…`, `atmpt_…`).
//!
//! The part after the prefix is a ULID: 26 Crockford base32 characters whose first ten encode
//! the creation time in milliseconds. Ids therefore sort by creation time, which is what lets a
//! list be paged with the last id as its cursor.

/// The kinds of identifier hookd issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdPrefix {
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
}

/// A new id of the given kind.
pub fn new_id(prefix: IdPrefix) -> String {
    format!("{}{}", prefix.as_str(), ulid::Ulid::new())
}

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
        let first = new_id(IdPrefix::Message);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id(IdPrefix::Message);
        assert!(first.starts_with("msg_"));
        assert!(first < second);
    }

    #[test]
    fn lower_bound_sorts_before_later_ids() {
        let now = chrono::Utc::now().timestamp_millis();
        let bound = lower_bound_at(IdPrefix::Message, now - 1000);
        assert!(bound < new_id(IdPrefix::Message));
    }
}
