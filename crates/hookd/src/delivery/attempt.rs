//! One attempt: sign, POST, and turn the answer into a result to record.

use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use tracing::debug;

use super::retry::{Outcome, RetryPolicy};
use super::transport::Transports;
use crate::domain::time::now_millis;
use crate::domain::AttemptId;
use crate::outbound::{header_map, SendError};
use crate::store::{Attempt, AttemptResult, ClaimedDelivery};
use crate::telemetry::{self, AttemptOutcome};

/// Which header names carry the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureHeaders {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard Webhooks).
    Webhook,
    /// `svix-id`, `svix-timestamp`, `svix-signature`.
    Svix,
    /// Both sets.
    Both,
}

/// What every attempt needs besides the delivery itself.
pub struct AttemptContext {
    pub transports: Transports,
    pub retry: RetryPolicy,
    pub signature_headers: SignatureHeaders,
}

/// The headers of one delivery: the endpoint's own, then content type and signature.
pub fn delivery_headers(
    delivery: &ClaimedDelivery,
    timestamp: i64,
    names: SignatureHeaders,
) -> reqwest::header::HeaderMap {
    let signature = hookd_signing::signature_header(
        &delivery.secrets,
        &delivery.msg_id,
        timestamp,
        delivery.payload.as_bytes(),
    );
    let timestamp = timestamp.to_string();
    let mut pairs: Vec<(&str, &str)> = delivery
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.push(("content-type", "application/json"));
    let prefixes: &[&str] = match names {
        SignatureHeaders::Webhook => &["webhook"],
        SignatureHeaders::Svix => &["svix"],
        SignatureHeaders::Both => &["webhook", "svix"],
    };
    let named: Vec<(String, &str)> = prefixes
        .iter()
        .flat_map(|prefix| {
            [
                (format!("{prefix}-id"), delivery.msg_id.as_str()),
                (format!("{prefix}-timestamp"), timestamp.as_str()),
                (format!("{prefix}-signature"), signature.as_str()),
            ]
        })
        .collect();
    pairs.extend(named.iter().map(|(name, value)| (name.as_str(), *value)));
    header_map(pairs)
}

/// A receiver's answer as text every backend can store: PostgreSQL refuses NUL in text, and a
/// receiver that answers one must not keep its attempts from being recorded.
fn storable_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{fffd}")
    } else {
        text
    }
}

/// Makes one attempt and says what to record.
pub async fn attempt(ctx: Arc<AttemptContext>, delivery: ClaimedDelivery) -> AttemptResult {
    let started_at = now_millis();
    let headers = delivery_headers(&delivery, started_at / 1000, ctx.signature_headers);
    let body = Bytes::copy_from_slice(delivery.payload.as_bytes());
    let sent = ctx.transports.send(&delivery.url, headers, body).await;
    let (outcome, label, status_code, response, duration) = match sent {
        Ok(reply) => {
            let outcome = Outcome::from_status(reply.status, reply.retry_after);
            let label = if outcome == Outcome::Delivered {
                AttemptOutcome::Success
            } else {
                AttemptOutcome::HttpError
            };
            (
                outcome,
                label,
                i64::from(reply.status),
                reply.body,
                reply.duration,
            )
        }
        Err((err, duration)) => {
            let (outcome, label) = match err {
                SendError::Timeout(_) => (Outcome::TimedOut, AttemptOutcome::Timeout),
                SendError::Blocked(_) => (Outcome::Unreachable, AttemptOutcome::Blocked),
                _ => (Outcome::Unreachable, AttemptOutcome::Unreachable),
            };
            (outcome, label, 0, err.to_string(), duration)
        }
    };
    let latency = (outcome == Outcome::Delivered).then(|| {
        let millis = now_millis().saturating_sub(delivery.msg_created_at).max(0);
        std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    });
    telemetry::attempt_finished(label, duration, latency);
    let attempt_number = delivery.attempts_made + 1;
    let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
    let next = ctx
        .retry
        .next_step(attempt_number, outcome, now_millis(), jitter);
    debug!(
        msg_id = %delivery.msg_id,
        endpoint_id = %delivery.endpoint_id,
        app_id = %delivery.app_id,
        status_code,
        attempt = attempt_number,
        ?next,
        "attempt finished"
    );
    AttemptResult {
        attempt: Attempt {
            id: AttemptId::generate(),
            msg_id: delivery.msg_id,
            endpoint_id: delivery.endpoint_id,
            url: delivery.url,
            success: outcome == Outcome::Delivered,
            response_status_code: status_code,
            response: storable_text(response),
            response_duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            trigger_type: delivery.trigger_type,
            created_at: started_at,
        },
        delivery_id: delivery.delivery_id,
        lease_token: delivery.lease_token,
        app_id: delivery.app_id,
        next,
        attempt_number,
    }
}
