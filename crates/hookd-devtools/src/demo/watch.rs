//! Reads hookd's attempt log for the merchant's endpoint, as an operator would
//! (`GET /api/v1/app/{app}/attempt/endpoint/{ep}`), and tells each failed attempt with the
//! retry hookd scheduled for it. Successes are counted here and told by the merchant.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use super::script::PAYMENTS;
use super::show::{Actor, Mark, Show};
use crate::client::ApiClient;
use hookd::domain::time::{now_millis, parse_rfc3339};

/// An attempt as the API lists it (the fields read here).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttemptOut {
    id: String,
    msg_id: String,
    /// 0 success, 2 failure.
    status: i64,
    response_status_code: i64,
    response: String,
}

/// The watching task; stopped by [`Watcher::stop`].
pub struct Watcher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Which endpoint to watch, through which client.
pub struct Target {
    pub client: ApiClient,
    pub app: String,
    pub endpoint: String,
}

impl Watcher {
    pub fn start(target: Target, journal: Arc<Journal>, show: Arc<Show>, every: Duration) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(target, journal, show, every, stop.clone()));
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn watch(
    target: Target,
    journal: Arc<Journal>,
    show: Arc<Show>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut seen = HashSet::new();
    let mut complained = false;
    loop {
        match attempts(&target).await {
            Ok(attempts) => {
                for attempt in attempts {
                    if seen.contains(&attempt.id) {
                        continue;
                    }
                    // hookd may deliver before the gateway has heard back with the message's
                    // id; such an attempt is taken on the next round.
                    let Some(posted) = journal.message(&attempt.msg_id) else {
                        continue;
                    };
                    seen.insert(attempt.id.clone());
                    if attempt.status == 0 {
                        journal.attempt_succeeded(&attempt.msg_id);
                        continue;
                    }
                    let number = journal.attempt_failed(&attempt.msg_id);
                    let next = next_step(&target, &attempt.msg_id).await;
                    show.event(
                        Actor::Hookd,
                        Mark::Failed,
                        PAYMENTS[posted.payment].id,
                        posted.event,
                        &format!(
                            "attempt {number}: {} · {next}",
                            failure_reason(attempt.response_status_code, &attempt.response)
                        ),
                    );
                }
            }
            Err(err) if !complained => {
                complained = true;
                show.say("hookd", &format!("cannot read the attempt log: {err:#}"));
            }
            Err(_) => {}
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Every attempt on the endpoint, oldest first (the demo makes a few dozen).
async fn attempts(target: &Target) -> anyhow::Result<Vec<AttemptOut>> {
    let base = format!(
        "/api/v1/app/{}/attempt/endpoint/{}?limit=250",
        target.app, target.endpoint
    );
    let mut all = Vec::new();
    let mut path = base.clone();
    loop {
        let page = target.client.call(Method::GET, &path, None).await?;
        let data: Vec<AttemptOut> = serde_json::from_value(page["data"].clone())?;
        all.extend(data);
        match page["iterator"].as_str() {
            Some(iterator) if page["done"] == false => {
                path = format!("{base}&iterator={iterator}");
            }
            _ => break,
        }
    }
    // The API lists newest first.
    all.reverse();
    Ok(all)
}

/// What hookd plans for the message now, from its delivery state.
async fn next_step(target: &Target, msg_id: &str) -> String {
    let path = format!("/api/v1/app/{}/msg/{msg_id}/endpoint", target.app);
    let Ok(page) = target.client.call(Method::GET, &path, None).await else {
        return "will be retried".to_string();
    };
    let state = &page["data"][0];
    let next = state["nextAttempt"].as_str().and_then(parse_rfc3339);
    describe_next(state["status"].as_i64(), next, now_millis())
}

/// `retrying in 1.0s`, from a delivery's status (0 success, 1 pending, 2 failed, 3 sending) and
/// next attempt time; pure.
pub fn describe_next(status: Option<i64>, next_attempt: Option<i64>, now: i64) -> String {
    match (status, next_attempt) {
        (Some(0), _) => "delivered since".to_string(),
        (Some(2), _) => "no retries left".to_string(),
        (Some(1), Some(at)) if at > now => {
            format!("retrying in {:.1}s", (at - now) as f64 / 1000.0)
        }
        _ => "retrying now".to_string(),
    }
}

/// Why an attempt failed, in a few words.
pub fn failure_reason(status_code: i64, response: &str) -> String {
    if status_code != 0 {
        return format!("answered {status_code}");
    }
    let response = response.to_ascii_lowercase();
    if response.contains("refused") {
        "connection refused".to_string()
    } else if response.contains("reset") || response.contains("closed") {
        "connection dropped".to_string()
    } else if response.contains("timed out") {
        "timed out".to_string()
    } else {
        "no answer".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_steps_read_naturally() {
        assert_eq!(
            describe_next(Some(1), Some(2_500), 1_000),
            "retrying in 1.5s"
        );
        assert_eq!(describe_next(Some(1), Some(900), 1_000), "retrying now");
        assert_eq!(describe_next(Some(3), None, 1_000), "retrying now");
        assert_eq!(describe_next(Some(0), None, 1_000), "delivered since");
        assert_eq!(describe_next(Some(2), None, 1_000), "no retries left");
    }

    #[test]
    fn failure_reasons_are_short() {
        assert_eq!(
            failure_reason(
                0,
                "connection failed: tcp connect error: Connection refused (os error 111)"
            ),
            "connection refused"
        );
        assert_eq!(failure_reason(503, "down"), "answered 503");
        assert_eq!(failure_reason(0, "???"), "no answer");
    }
}
