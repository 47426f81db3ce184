//! The pull feed (a hookd extension; Svix SDKs never call it): an application's messages in
//! commit order from a cursor, with long-polling, so that a merchant back from an outage can
//! read what it missed without the platform's help.
//!
//! `GET /api/v1/app/{app_id}/feed?after=<cursor>&limit=<1..250>&wait=<0..30>` answers
//! `{data, cursor, done}`. The cursor is the store's [`FeedPosition`] of the last message
//! answered; positions follow commit order and the store only answers final ones, so a
//! consumer that stores the cursor and passes it back never misses a message. With `wait`, an
//! empty page is held until a message arrives or the time is up: a commit on this node wakes
//! the waiting requests of its application at once ([`FeedWaiters`]), and they also read the
//! store again every [`POLL_EVERY`] to see messages committed by other nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::apps;
use super::auth::Principal;
use super::error::{ApiError, ErrorResponses};
use super::extract::{Path, Query};
use super::messages::MessageOut;
use super::pagination::parse_limit;
use super::AppState;
use crate::domain::ids::AppId;
use crate::store::{FeedPosition, Message, StoreResult};

/// The longest a request may wait for messages.
const MAX_WAIT_SECS: u64 = 30;
/// How often a waiting request reads the store again, for messages committed on other nodes.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// After a wake-up that found nothing yet, the next look comes this soon (then twice as late
/// each time, up to [`POLL_EVERY`]): on PostgreSQL a message becomes readable only once the
/// transactions that started before its own have ended, which takes a moment under load.
const RECHECK_AFTER_WAKE: Duration = Duration::from_millis(25);

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/app/{app_id}/feed", get(read))
}

#[derive(Debug, Deserialize)]
struct FeedParams {
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

/// One page of the feed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedOut {
    /// Messages in commit order, with their payloads.
    pub data: Vec<MessageOut>,
    /// Pass as `after` to read on from the last message of `data` (or, when `data` is empty,
    /// from where this page started). Store it once the messages are processed.
    pub cursor: String,
    /// True when no more messages can be read right now.
    pub done: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/app/{app_id}/feed",
    tag = "Message",
    operation_id = "v1.message.feed",
    summary = "Read the application's messages in commit order from a cursor (hookd extension)",
    description = "The pull feed: an application's messages, payloads included, in the order \
        they were committed. Start without `after`, then pass the `cursor` of each answer as \
        `after`; a consumer that stores the cursor after processing a page never misses a \
        message, even across its own outages. With `wait`, an empty page is held open until a \
        message arrives or `wait` seconds have passed. Messages removed by retention are no \
        longer in the feed.",
    params(
        ("app_id" = String, Path, description = "The application's id or uid"),
        ("after" = Option<String>, Query, description = "The `cursor` of a previous answer; the beginning of the feed when absent"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 250, description = "How many messages to answer, 1 to 250 (default 50)"),
        ("wait" = Option<u32>, Query, minimum = 0, maximum = 30, description = "Seconds to wait for a message when none is there yet, 0 to 30 (default 0)")
    ),
    responses((status = 200, description = "One page of the feed", body = FeedOut), ErrorResponses),
    security(("bearer" = []))
)]
async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path(app_id): Path<String>,
    Query(params): Query<FeedParams>,
) -> Result<axum::Json<FeedOut>, ApiError> {
    let app = apps::load(&state, &principal, &app_id).await?;
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        None => FeedPosition::default(),
        Some(text) => parse_cursor(text).ok_or_else(|| {
            ApiError::invalid(&["query", "after"], "is not a cursor this feed answered")
        })?,
    };
    let limit = parse_limit(params.limit.as_deref())?;
    let wait = parse_wait(params.wait.as_deref())?;
    let mut rows = next_page(&state, &app.id, after, limit, wait).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let last = rows.last().map_or(after, |(position, _)| *position);
    Ok(axum::Json(FeedOut {
        data: rows
            .into_iter()
            .map(|(_, message)| MessageOut::new(message, true))
            .collect(),
        cursor: format_cursor(last),
        done: !more,
    }))
}

/// Reads one page (one row more than `limit`, to tell whether more follow), waiting up to
/// `wait` while it is empty.
async fn next_page(
    state: &AppState,
    app_id: &AppId,
    after: FeedPosition,
    limit: usize,
    wait: Duration,
) -> StoreResult<Vec<(FeedPosition, Message)>> {
    if wait.is_zero() {
        return state.store.read_feed(app_id, after, limit + 1).await;
    }
    let deadline = Instant::now() + wait;
    let watch = state.feed.watch(app_id);
    let mut pause = POLL_EVERY;
    loop {
        // Registered before reading, so a commit between the read and the wait still wakes us.
        let notified = watch.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let rows = state.store.read_feed(app_id, after, limit + 1).await?;
        let now = Instant::now();
        if !rows.is_empty() || now >= deadline || state.feed.stopping.is_cancelled() {
            return Ok(rows);
        }
        tokio::select! {
            () = &mut notified => pause = RECHECK_AFTER_WAKE,
            () = tokio::time::sleep(pause.min(deadline - now)) => pause = (pause * 2).min(POLL_EVERY),
            () = state.feed.stopping.cancelled() => {}
        }
    }
}

/// `wait` in whole seconds, 0 to 30.
fn parse_wait(text: Option<&str>) -> Result<Duration, ApiError> {
    match text {
        None => Ok(Duration::ZERO),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_WAIT_SECS)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ApiError::invalid(
                    &["query", "wait"],
                    format!("must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"),
                )
            }),
    }
}

/// The cursor's text: opaque to clients, `<group>.<seq>` for hookd.
fn format_cursor(position: FeedPosition) -> String {
    format!("{}.{}", position.group, position.seq)
}

fn parse_cursor(text: &str) -> Option<FeedPosition> {
    let (group, seq) = text.split_once('.')?;
    let number = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse::<i64>().ok())
            .flatten()
    };
    Some(FeedPosition {
        group: number(group)?,
        seq: number(seq)?,
    })
}

/// The feed requests waiting on this node, by application; ingest wakes those of the
/// application it committed a message for.
#[derive(Default)]
pub struct FeedWaiters {
    apps: Mutex<HashMap<String, Waiting>>,
    /// Cancelled when the server shuts down: waiting requests answer at once.
    stopping: CancellationToken,
}

/// The requests waiting for one application.
struct Waiting {
    notify: Arc<Notify>,
    requests: usize,
}

impl FeedWaiters {
    /// Wakes the requests waiting for messages of `app_id`. Call after the commit.
    pub fn committed(&self, app_id: &str) {
        if let Some(waiting) = self.lock().get(app_id) {
            waiting.notify.notify_waiters();
        }
    }

    /// Makes every waiting request answer now, and later ones not wait.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    fn watch(&self, app_id: &str) -> Watch<'_> {
        let mut apps = self.lock();
        let waiting = apps.entry(app_id.to_string()).or_insert_with(|| Waiting {
            notify: Arc::default(),
            requests: 0,
        });
        waiting.requests += 1;
        Watch {
            waiters: self,
            app_id: app_id.to_string(),
            notify: Arc::clone(&waiting.notify),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Waiting>> {
        // The counts are changed in one step each; a panic elsewhere cannot leave them halfway.
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request's interest in an application; the last one gone removes the entry.
struct Watch<'a> {
    waiters: &'a FeedWaiters,
    app_id: String,
    notify: Arc<Notify>,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut apps = self.waiters.lock();
        if let Some(waiting) = apps.get_mut(&self.app_id) {
            waiting.requests -= 1;
            if waiting.requests == 0 {
                apps.remove(&self.app_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for position in [
            FeedPosition::default(),
            FeedPosition { group: 0, seq: 42 },
            FeedPosition {
                group: 8_589_934_592,
                seq: i64::MAX,
            },
        ] {
            assert_eq!(parse_cursor(&format_cursor(position)), Some(position));
        }
        for junk in [
            "",
            "1",
            "1.",
            ".1",
            "-1.2",
            "1.-2",
            "1.2.3",
            "a.b",
            "+1.2",
            "99999999999999999999.1",
        ] {
            assert_eq!(parse_cursor(junk), None, "{junk}");
        }
    }

    #[test]
    fn wait_is_whole_seconds_up_to_thirty() {
        assert_eq!(parse_wait(None).ok(), Some(Duration::ZERO));
        assert_eq!(parse_wait(Some("30")).ok(), Some(Duration::from_secs(30)));
        assert!(parse_wait(Some("31")).is_err());
        assert!(parse_wait(Some("-1")).is_err());
        assert!(parse_wait(Some("1.5")).is_err());
    }

    #[tokio::test]
    async fn the_last_watch_gone_removes_its_entry() {
        let waiters = FeedWaiters::default();
        let first = waiters.watch("app_a");
        let second = waiters.watch("app_a");
        {
            let notified = first.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            waiters.committed("app_a");
            notified.await;
        }
        drop(first);
        assert!(waiters.lock().contains_key("app_a"));
        drop(second);
        assert!(waiters.lock().is_empty());
        // Nobody waits: nothing to wake, nothing kept.
        waiters.committed("app_a");
        assert!(waiters.lock().is_empty());
    }
}
