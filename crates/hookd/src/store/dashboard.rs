//! The records the operator dashboard reads and writes: traffic counted per minute, the nodes
//! of the deployment, the audit log, and the global message search.

use super::records::Columns;
use super::MessageFilter;
use crate::domain::ids::{AppId, AuditId, EndpointId};

/// The length of one bucket of [`TrafficMinute`].
pub const MINUTE_MS: i64 = 60 * 1000;

/// The minute (counted from the epoch) holding `millis`.
pub fn minute_of(millis: i64) -> i64 {
    millis.div_euclid(MINUTE_MS)
}

/// `%text%` for a `LIKE … ESCAPE '\\'` that finds `text` anywhere, with LIKE's own wildcards
/// in `text` taken literally (an operator searching `pay_1` means the underscore).
pub fn contains(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// What happened in one minute: on one node when a node reports it, summed over the nodes when
/// the store answers it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficMinute {
    pub minute: i64,
    pub messages_in: u64,
    /// Attempts that succeeded.
    pub delivered: u64,
    /// Attempts that failed.
    pub failed: u64,
}

/// A node of the deployment as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub id: String,
    /// `all`, `api` or `worker`.
    pub role: String,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Deliveries this node was attempting when it reported.
    pub in_flight: u64,
}

/// The endpoints the overview counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    pub total: u64,
    /// Enabled, with failures and no success since the first of them.
    pub failing: u64,
    pub disabled: u64,
}

/// An endpoint's mean attempt duration over a span of hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLatency {
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub attempts: u64,
    pub mean_ms: u64,
}

/// A search over the messages of every application (or of one).
#[derive(Debug, Clone, Default)]
pub struct MessageSearch {
    pub app_id: Option<AppId>,
    /// Matches a message id, an `eventId` or an ordering key exactly ("where is pay_123?").
    pub text: Option<String>,
    pub filter: MessageFilter,
}

/// One thing an operator did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: AuditId,
    pub at: i64,
    /// Who: the name of the org token the operator signed in with.
    pub actor: String,
    /// What, as a short verb phrase (`endpoint.disable`).
    pub action: String,
    pub app_id: Option<AppId>,
    /// The id of what it was done to.
    pub target: String,
    /// Anything else worth keeping (the rate limit set, the time recovered from).
    pub detail: String,
}

/// Filters of the audit log; every one given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub app_id: Option<AppId>,
}

/// Row mappers shared by the backends, as in [`super::records`].
pub mod rows {
    use super::*;

    fn count<R: Columns>(row: &R, column: &str) -> Result<u64, R::Error> {
        Ok(u64::try_from(row.int(column)?).unwrap_or(0))
    }

    /// Reads `minute, messages_in, delivered, failed`.
    pub fn traffic_minute<R: Columns>(row: &R) -> Result<TrafficMinute, R::Error> {
        Ok(TrafficMinute {
            minute: row.int("minute")?,
            messages_in: count(row, "messages_in")?,
            delivered: count(row, "delivered")?,
            failed: count(row, "failed")?,
        })
    }

    pub fn node<R: Columns>(row: &R) -> Result<NodeReport, R::Error> {
        Ok(NodeReport {
            id: row.text("id")?,
            role: row.text("role")?,
            version: row.text("version")?,
            started_at: row.int("started_at")?,
            heartbeat_at: row.int("heartbeat_at")?,
            in_flight: count(row, "in_flight")?,
        })
    }

    pub fn audit_entry<R: Columns>(row: &R) -> Result<AuditEntry, R::Error> {
        Ok(AuditEntry {
            id: row.text("id")?.into(),
            at: row.int("at")?,
            actor: row.text("actor")?,
            action: row.text("action")?,
            app_id: row.opt_text("app_id")?.map(AppId::from),
            target: row.text("target")?,
            detail: row.text("detail")?,
        })
    }

    /// Reads `app_id, endpoint_id, url, attempts, mean_ms`.
    pub fn endpoint_latency<R: Columns>(row: &R) -> Result<EndpointLatency, R::Error> {
        Ok(EndpointLatency {
            app_id: row.text("app_id")?.into(),
            endpoint_id: row.text("endpoint_id")?.into(),
            url: row.text("url")?,
            attempts: count(row, "attempts")?,
            mean_ms: count(row, "mean_ms")?,
        })
    }

    /// Reads `total, failing, disabled`.
    pub fn endpoint_counts<R: Columns>(row: &R) -> Result<EndpointCounts, R::Error> {
        Ok(EndpointCounts {
            total: count(row, "total")?,
            failing: count(row, "failing")?,
            disabled: count(row, "disabled")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(contains("pay_1"), "%pay\\_1%");
        assert_eq!(contains("100%"), "%100\\%%");
        assert_eq!(contains("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn minutes_count_from_the_epoch() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 1);
        assert_eq!(minute_of(-1), -1);
    }
}
