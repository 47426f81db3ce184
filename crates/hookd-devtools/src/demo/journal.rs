//! What the demo has seen so far, shared by the story, the merchant's observer and the watcher
//! of hookd's attempt log. The lock is held only to read or bump a few fields, never across an
//! `.await`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A message the gateway posted: which payment and event it carries.
#[derive(Debug, Clone)]
pub struct Posted {
    pub payment: usize,
    pub event: &'static str,
}

/// The counts the summary reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tallies {
    /// Events the gateway posted to hookd.
    pub posted: usize,
    /// Messages resent on purpose.
    pub resent: usize,
    /// Fake events posted straight to the merchant.
    pub forged: usize,
    /// Successful attempts in hookd's log.
    pub delivered: usize,
    /// Failed attempts in hookd's log.
    pub failed_attempts: usize,
    /// Messages delivered after at least one failed attempt.
    pub recovered: usize,
    /// Deliveries the merchant applied.
    pub applied: usize,
    /// Deliveries the merchant recognised as already handled.
    pub duplicates: usize,
    /// Deliveries older than what the merchant knew, ignored.
    pub stale: usize,
    /// Requests the merchant refused (forged or malformed).
    pub rejected: usize,
}

#[derive(Debug, Default)]
struct Inner {
    messages: HashMap<String, Posted>,
    /// Failed attempts per message, as read from hookd's attempt log.
    failures: HashMap<String, u32>,
    tallies: Tallies,
}

/// Shared by every part of the demo (behind an `Arc`).
#[derive(Debug, Default)]
pub struct Journal {
    inner: Mutex<Inner>,
    /// Webhook ids the merchant answered with 2xx: a second one is a duplicate.
    handled: Mutex<HashSet<String>>,
}

impl Journal {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic elsewhere poisons nothing worth refusing here: the data is counters.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut inner)
    }

    pub fn posted(&self, msg_id: &str, posted: Posted) {
        self.with(|i| {
            i.messages.insert(msg_id.to_string(), posted);
            i.tallies.posted += 1;
        });
    }

    pub fn resent(&self) {
        self.with(|i| i.tallies.resent += 1);
    }

    pub fn message(&self, msg_id: &str) -> Option<Posted> {
        self.with(|i| i.messages.get(msg_id).cloned())
    }

    /// Records a failed attempt of `msg_id` and answers how many it has had.
    pub fn attempt_failed(&self, msg_id: &str) -> u32 {
        self.with(|i| {
            i.tallies.failed_attempts += 1;
            let count = i.failures.entry(msg_id.to_string()).or_insert(0);
            *count += 1;
            *count
        })
    }

    /// Records a successful attempt of `msg_id`.
    pub fn attempt_succeeded(&self, msg_id: &str) {
        self.with(|i| {
            i.tallies.delivered += 1;
            // A message counts as recovered once, when its first success follows failures.
            if i.failures.get(msg_id).is_some_and(|n| *n > 0) {
                i.tallies.recovered += 1;
                i.failures.insert(msg_id.to_string(), 0);
            }
        });
    }

    /// Failed attempts seen so far for `msg_id` (before its success).
    pub fn failures(&self, msg_id: &str) -> u32 {
        self.with(|i| i.failures.get(msg_id).copied().unwrap_or(0))
    }

    /// Marks `webhook_id` handled; answers whether it already was.
    pub fn handled_before(&self, webhook_id: &str) -> bool {
        let mut handled = self.handled.lock().unwrap_or_else(|e| e.into_inner());
        !handled.insert(webhook_id.to_string())
    }

    pub fn count(&self, f: impl FnOnce(&mut Tallies)) {
        self.with(|i| f(&mut i.tallies));
    }

    pub fn tallies(&self) -> Tallies {
        self.with(|i| i.tallies)
    }

    /// Whether hookd's log shows every posted and resent message delivered.
    pub fn all_delivered(&self) -> bool {
        let t = self.tallies();
        t.delivered >= t.posted + t.resent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_recovers_once_after_failures() {
        let journal = Journal::default();
        journal.posted(
            "msg_1",
            Posted {
                payment: 0,
                event: "payment.created",
            },
        );
        assert!(!journal.all_delivered());
        assert_eq!(journal.attempt_failed("msg_1"), 1);
        assert_eq!(journal.attempt_failed("msg_1"), 2);
        journal.attempt_succeeded("msg_1");
        journal.attempt_succeeded("msg_1");
        let t = journal.tallies();
        assert_eq!((t.failed_attempts, t.recovered, t.delivered), (2, 1, 2));
        assert!(journal.all_delivered());
        assert!(!journal.handled_before("msg_1"));
        assert!(journal.handled_before("msg_1"));
    }
}
