//! Reports of "check my endpoint" runs (`crate::certify`), kept per endpoint for its owner.

use super::records::Columns;
use crate::domain::{AppId, EndpointId};

/// How many reports an endpoint keeps; recording one more drops its oldest.
pub const KEPT_PER_ENDPOINT: usize = 10;

/// One finished check of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointCheck {
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    /// When the check ran (unix ms).
    pub checked_at: i64,
    /// Every check that must pass passed.
    pub passed: bool,
    /// The whole report, as JSON text: the store keeps it, `certify` reads it.
    pub report: String,
}

/// Reads every column of `endpoint_checks`.
pub fn endpoint_check<R: Columns>(row: &R) -> Result<EndpointCheck, R::Error> {
    Ok(EndpointCheck {
        app_id: row.text("app_id")?.into(),
        endpoint_id: row.text("endpoint_id")?.into(),
        checked_at: row.int("checked_at")?,
        passed: row.flag("passed")?,
        report: row.text("report")?,
    })
}
