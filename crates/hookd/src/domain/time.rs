//! Timestamps: stored as unix milliseconds, shown as RFC 3339 in UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the unix epoch, now.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// The RFC 3339 form the API answers with, e.g. `2026-11-29T10:00:00.123Z`.
pub fn rfc3339(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp from a query or body into unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let text = rfc3339(1_614_265_330_123);
        assert_eq!(text, "2021-02-25T15:02:10.123Z");
        assert_eq!(parse_rfc3339(&text), Some(1_614_265_330_123));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
