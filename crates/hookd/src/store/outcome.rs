//! What recording an attempt does to its delivery, and which ordering keys it lets go, as pure
//! functions. Each backend applies results under their leases with its own SQL and asks these
//! functions what to write.
//!
//! A delivery with an ordering key holds back the later deliveries of its key to the same
//! endpoint while it is unfinished. Once it finishes (delivered, exhausted, or stopped by a 410),
//! the earliest held one of the key is released, in the same transaction, so a crash after the
//! commit cannot leave the key held for ever. A retry is not finished: the key stays held.

use super::{DeliveryStatus, NextStep};

/// The state a delivery takes after an attempt: its status and when it is due next (`None`
/// when it has no more work).
pub fn after_attempt(next: NextStep) -> (DeliveryStatus, Option<i64>) {
    match next {
        NextStep::Done => (DeliveryStatus::Success, None),
        NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
        NextStep::Exhausted => (DeliveryStatus::Failed, None),
        NextStep::Gone => (DeliveryStatus::Canceled, None),
    }
}

/// Whether an attempt with this next step finishes its delivery, releasing its key.
pub fn finishes(next: NextStep) -> bool {
    after_attempt(next).1.is_none()
}

/// One ordering key of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyOf<'a> {
    pub app_id: &'a str,
    pub ordering_key: &'a str,
    pub endpoint_id: &'a str,
}

/// The keys to release after a batch whose finished deliveries had `keys`: each once, sorted
/// by application and key, the order in which backends lock keys so that two recorders never
/// wait on each other in a cycle.
pub fn keys_to_release<'a>(keys: impl IntoIterator<Item = KeyOf<'a>>) -> Vec<KeyOf<'a>> {
    let mut keys: Vec<KeyOf<'a>> = keys.into_iter().collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_retry_leaves_work() {
        assert_eq!(
            after_attempt(NextStep::RetryAt(7)),
            (DeliveryStatus::Pending, Some(7))
        );
        assert_eq!(
            after_attempt(NextStep::Done),
            (DeliveryStatus::Success, None)
        );
        assert_eq!(
            after_attempt(NextStep::Exhausted),
            (DeliveryStatus::Failed, None)
        );
        assert_eq!(
            after_attempt(NextStep::Gone),
            (DeliveryStatus::Canceled, None)
        );
        assert!(!finishes(NextStep::RetryAt(7)));
        assert!(finishes(NextStep::Done));
        assert!(finishes(NextStep::Exhausted));
        assert!(finishes(NextStep::Gone));
    }

    #[test]
    fn each_key_is_released_once_in_lock_order() {
        let key = |app_id, ordering_key, endpoint_id| KeyOf {
            app_id,
            ordering_key,
            endpoint_id,
        };
        let got = keys_to_release([
            key("app_2", "a", "ep_1"),
            key("app_1", "b", "ep_2"),
            key("app_1", "b", "ep_1"),
            key("app_2", "a", "ep_1"),
        ]);
        assert_eq!(
            got,
            [
                key("app_1", "b", "ep_1"),
                key("app_1", "b", "ep_2"),
                key("app_2", "a", "ep_1"),
            ]
        );
    }
}
