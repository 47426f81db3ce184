//! The overview: traffic, failures, backlog and the endpoints that need attention, for the last
//! hour and day. Every figure comes from a small table: per-minute traffic that each node adds
//! to every few seconds, hourly counts per endpoint kept with the attempts, and the backlog
//! count the metrics already sample; none reads the attempts themselves, so the page costs the
//! same at ten million attempts as at ten.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;

use super::pages::{age, bars, Bar, Chrome, OrProblem, PageResult};
use super::session::OperatorSession;
use crate::api::AppState;
use crate::domain::time::now_millis;
use crate::portal::pages::render;
use crate::store::activity::hour_of;
use crate::store::dashboard::minute_of;
use crate::store::{EndpointCounts, EndpointLatency, TrafficMinute};

/// The part of the overview that refreshes itself.
pub struct Live {
    pub updated: String,
    pub hour: Totals,
    pub day: Totals,
    pub pending: u64,
    pub oldest_pending: Option<String>,
    pub endpoints: EndpointCounts,
    pub slowest: Vec<EndpointLatency>,
    /// Messages in, per minute of the last hour.
    pub in_per_minute: Vec<Bar>,
    /// Attempts (delivered over failed), per minute of the last hour.
    pub out_per_minute: Vec<Bar>,
    pub in_per_hour: Vec<Bar>,
    pub out_per_hour: Vec<Bar>,
}

/// Sums over a span.
#[derive(Default)]
pub struct Totals {
    pub messages_in: u64,
    pub delivered: u64,
    pub failed: u64,
}

impl Totals {
    fn of<'a>(minutes: impl Iterator<Item = &'a TrafficMinute>) -> Self {
        minutes.fold(Self::default(), |mut sum, m| {
            sum.messages_in += m.messages_in;
            sum.delivered += m.delivered;
            sum.failed += m.failed;
            sum
        })
    }

    /// Failed attempts as a share of all attempts, `—` without attempts.
    pub fn failure_rate(&self) -> String {
        let attempts = self.delivered + self.failed;
        if attempts == 0 {
            return "—".into();
        }
        let tenths = (self.failed * 1000 + attempts / 2) / attempts;
        format!("{}.{} %", tenths / 10, tenths % 10)
    }
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
pub struct OverviewPage {
    pub chrome: Chrome,
    pub title: String,
    pub live: Live,
}

#[derive(Template)]
#[template(path = "dashboard/overview_live.html")]
pub struct LivePart {
    pub live: Live,
}

/// `GET /ui/`: the overview (or, signed out, the sign-in form).
pub async fn page(State(state): State<AppState>, session: OperatorSession) -> PageResult {
    let live = load(&state).await?;
    Ok(render(
        &OverviewPage {
            chrome: Chrome::new(&session, "overview"),
            title: "Overview".into(),
            live,
        },
        StatusCode::OK,
    ))
}

/// `GET /ui/overview`: the figures alone, which the page polls every few seconds.
pub async fn live(State(state): State<AppState>, _session: OperatorSession) -> PageResult {
    Ok(render(
        &LivePart {
            live: load(&state).await?,
        },
        StatusCode::OK,
    ))
}

/// Buckets of `width` minutes ending with the current one, oldest first.
fn buckets(minutes: &[TrafficMinute], now_minute: i64, count: i64, width: i64) -> Vec<Totals> {
    let first = now_minute - count * width + 1;
    let mut out: Vec<Totals> = (0..count).map(|_| Totals::default()).collect();
    for m in minutes
        .iter()
        .filter(|m| m.minute >= first && m.minute <= now_minute)
    {
        if let Some(bucket) = usize::try_from((m.minute - first) / width)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            bucket.messages_in += m.messages_in;
            bucket.delivered += m.delivered;
            bucket.failed += m.failed;
        }
    }
    out
}

async fn load(state: &AppState) -> Result<Live, axum::response::Response> {
    let now = now_millis();
    let now_minute = minute_of(now);
    let day = state
        .store
        .traffic_since(now_minute - 24 * 60 + 1)
        .await
        .or_problem()?;
    let backlog = state.store.backlog().await.or_problem()?;
    let endpoints = state.store.endpoint_counts().await.or_problem()?;
    let slowest = state
        .store
        .slowest_endpoints(hour_of(now) - 1, 5)
        .await
        .or_problem()?;
    let per_minute = buckets(&day, now_minute, 60, 1);
    let per_hour = buckets(&day, now_minute, 24, 60);
    let minute_label = |i: usize| format!("{} min ago", 59 - i);
    let hour_label = |i: usize| format!("{} h ago", 23 - i);
    let ins = |spans: &[Totals]| -> Vec<(u64, u64)> {
        spans.iter().map(|t| (t.messages_in, 0)).collect()
    };
    let outs = |spans: &[Totals]| -> Vec<(u64, u64)> {
        spans.iter().map(|t| (t.delivered, t.failed)).collect()
    };
    Ok(Live {
        updated: crate::portal::pages::when(now),
        hour: Totals::of(day.iter().filter(|m| m.minute > now_minute - 60)),
        day: Totals::of(day.iter()),
        pending: backlog.pending,
        oldest_pending: backlog.oldest_created_at.map(|at| age(now, at)),
        endpoints,
        slowest,
        in_per_minute: bars(&ins(&per_minute), minute_label),
        out_per_minute: bars(&outs(&per_minute), minute_label),
        in_per_hour: bars(&ins(&per_hour), hour_label),
        out_per_hour: bars(&outs(&per_hour), hour_label),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(minute: i64, messages_in: u64) -> TrafficMinute {
        TrafficMinute {
            minute,
            messages_in,
            delivered: messages_in,
            failed: 0,
        }
    }

    #[test]
    fn buckets_end_with_the_current_minute() {
        let minutes = [minute(100, 1), minute(99, 2), minute(40, 7), minute(101, 9)];
        let spans = buckets(&minutes, 100, 60, 1);
        assert_eq!(spans.len(), 60);
        assert_eq!(spans[59].messages_in, 1);
        assert_eq!(spans[58].messages_in, 2);
        // Minute 40 is 60 minutes before 100: outside; minute 101 is in the future.
        assert_eq!(spans.iter().map(|s| s.messages_in).sum::<u64>(), 3);
        let hours = buckets(&minutes, 100, 2, 60);
        assert_eq!(hours[1].messages_in, 3);
        assert_eq!(hours[0].messages_in, 7);
    }

    #[test]
    fn failure_rate_is_a_share_of_attempts() {
        let totals = Totals {
            messages_in: 0,
            delivered: 2,
            failed: 1,
        };
        assert_eq!(totals.failure_rate(), "33.3 %");
        assert_eq!(Totals::default().failure_rate(), "—");
    }
}
