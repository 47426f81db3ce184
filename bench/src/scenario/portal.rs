//! The merchant portal with a busy application: how fast each page answers once the
//! application holds `--messages` (100,000) delivered messages.
//!
//! Setup, per run: the payment event types (the `--seed payments` catalog, created through the
//! API), one application with three endpoints — every message to the receiver (204), the
//! failed and refunded payments to a second receiver path (204), and a few hundred messages on
//! channel `declines` to an endpoint answering 500, disabled once they were tried, so their
//! deliveries end canceled and the log's "failed" filter finds them. Payments take four
//! messages each (created, authorized, captured or failed, updated or refunded), four in five
//! payments with their id as ordering key. Everything is delivered before the pages are timed.
//!
//! Then a portal session (magic link, exchanged once) and, per page, `--warmup` untimed and
//! `--requests` timed GETs, one after another over one keep-alive connection, as htmx sends
//! them (`Authorization: Bearer`, `HX-Request`). The client-observed time (request written to
//! body read, on loopback) bounds hookd's own time from above; hookd's own is read from its
//! request log (`tower_http` "finished processing request", whole milliseconds).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use clap::Args;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{health_figures, PublishStats, Setup};
use crate::clock::duration_us;
use crate::hookd::{Hookd, HookdConfig};
use crate::report::{percentile, Figure, Settings};

/// The page budget the portal promises.
const BUDGET_MS: f64 = 50.0;
/// Upper bound on waiting for the deliveries after publishing, so a stuck run ends.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(100);
/// Lets hookd record the last attempts after the receiver has read them.
const SETTLE: Duration = Duration::from_secs(2);
/// After a transport error, so a dead server is not hammered in a tight loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages of a payment: created, authorized, captured (or failed), updated (or refunded).
const PER_PAYMENT: u64 = 4;
/// The channel of the messages that also go to the endpoint answering 500.
const DECLINES: &str = "declines";
/// The event types of the second healthy endpoint.
const SECOND_ENDPOINT_TYPES: [&str; 2] = ["payment.failed", "payment.refunded"];

/// The seeded payment catalog (`crates/hookd/src/catalog`): name, description, the status
/// its payload reports.
pub(super) const EVENT_TYPES: [(&str, &str, &str); 6] = [
    (
        "payment.created",
        "A payment was created and awaits authorization.",
        "created",
    ),
    (
        "payment.authorized",
        "The payment was authorized; funds are reserved but not yet moved.",
        "authorized",
    ),
    (
        "payment.captured",
        "The payment was captured: the money moved. Fulfil the order now.",
        "captured",
    ),
    (
        "payment.failed",
        "The payment failed (declined, expired or cancelled).",
        "failed",
    ),
    (
        "payment.refunded",
        "The payment was refunded to the customer.",
        "refunded",
    ),
    (
        "payment.updated",
        "The payment changed; `data.status` says its state now.",
        "captured",
    ),
];

/// One timed page: JSON keys and labels of its figures.
struct PageSpec {
    name: &'static str,
    p50: (&'static str, &'static str),
    p95: (&'static str, &'static str),
    server_p50: (&'static str, &'static str),
    server_p95: (&'static str, &'static str),
}

macro_rules! page {
    ($name:literal) => {
        PageSpec {
            name: $name,
            p50: (concat!($name, "_p50_ms"), concat!($name, " p50")),
            p95: (concat!($name, "_p95_ms"), concat!($name, " p95")),
            server_p50: (
                concat!($name, "_server_p50_ms"),
                concat!($name, " hookd p50"),
            ),
            server_p95: (
                concat!($name, "_server_p95_ms"),
                concat!($name, " hookd p95"),
            ),
        }
    };
}

/// The pages, in the order they are timed (paths are built per run, see [`Targets::path`]).
const PAGES: [PageSpec; 10] = [
    page!("endpoints"),
    page!("endpoint"),
    page!("log"),
    page!("log_failed"),
    page!("log_event_type"),
    page!("log_key"),
    page!("log_deep"),
    page!("message"),
    page!("attempt"),
    page!("catalog"),
];

#[derive(Args, Clone, Debug)]
pub struct PortalArgs {
    /// Messages in the application before the pages are timed.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Concurrent publisher tasks for the ingest.
    #[arg(long, default_value_t = 64)]
    pub publishers: usize,
    /// Of those, messages also sent to an endpoint answering 500 (channel `declines`).
    #[arg(long, default_value_t = 300)]
    pub failing: u64,
    /// Timed requests per page, one after another.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Untimed requests per page before the timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// After timing, keep hookd and its database this many seconds (to run EXPLAIN on them).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
}

impl Default for PortalArgs {
    fn default() -> Self {
        Self {
            messages: 100_000,
            publishers: 64,
            failing: 300,
            requests: 50,
            warmup: 5,
            hold: 0,
        }
    }
}

impl PortalArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("messages", self.messages.to_string()),
            ("publishers", self.publishers.to_string()),
            ("endpoints", "3".to_owned()),
            ("failing_messages", self.failing.to_string()),
            ("requests_per_page", self.requests.to_string()),
            ("warmup_per_page", self.warmup.to_string()),
            ("budget_ms", BUDGET_MS.to_string()),
        ]
    }
}

pub async fn run_once(config: &HookdConfig, args: &PortalArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(
        args.messages >= 2 * PER_PAYMENT,
        "--messages must be at least {}",
        2 * PER_PAYMENT
    );
    ensure!(args.requests > 0, "--requests must be at least 1");
    ensure!(
        args.failing < args.messages,
        "--failing must be below --messages"
    );
    // hookd's request log gives its own time per page; it logs nothing else at debug.
    let mut config = config.clone();
    config.log_filter = format!("{},tower_http=debug", config.log_filter);
    let mut hookd = Hookd::start(&config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

/// What one published message looks like.
struct Plan {
    event_type: &'static str,
    status: &'static str,
    ordering_key: Option<String>,
    declined: bool,
}

/// Message `seq` of the run: payment `seq / 4`, the step of its life `seq % 4`.
fn plan(seq: u64, decline_every: u64) -> Plan {
    let payment = seq / PER_PAYMENT;
    let index = match seq % PER_PAYMENT {
        0 => 0,
        1 => 1,
        2 if payment % 20 == 7 => 3,
        2 => 2,
        _ if payment % 10 == 3 => 4,
        _ => 5,
    };
    let (event_type, _, status) = EVENT_TYPES[index];
    Plan {
        event_type,
        status,
        ordering_key: (!payment.is_multiple_of(5)).then(|| payment_key(payment)),
        declined: decline_every > 0 && seq % decline_every == decline_every / 2,
    }
}

fn payment_key(payment: u64) -> String {
    format!("pay_{payment:08}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ordering_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channels: Option<[&'a str; 1]>,
    payload: Value,
}

/// The seeded payment payload (~300 bytes), plus the fields the receiver counts by.
fn message_body(seq: u64, sent_us: u64, plan: &Plan) -> serde_json::Result<Vec<u8>> {
    let payment = seq / PER_PAYMENT;
    serde_json::to_vec(&Body {
        event_type: plan.event_type,
        ordering_key: plan.ordering_key.as_deref(),
        channels: plan.declined.then_some([DECLINES]),
        payload: json!({
            "event": plan.event_type,
            "timestamp": "2026-11-29T10:00:00Z",
            "benchSentUs": sent_us,
            "benchSeq": seq,
            "data": {
                "paymentId": payment_key(payment),
                "status": plan.status,
                "amount": 4999,
                "currency": "EUR",
                "orderId": format!("ord_{payment:012}"),
                "customer": format!("cus_{:06}", payment % 1000),
                "description": "Card checkout, web shop order (bench)",
            }
        }),
    })
}

/// The catalog's schema of a payment event type, with its example, as `--seed payments`
/// stores it (payloads validated at ingest).
pub(super) fn event_type_body(name: &str, description: &str, status: &str) -> Value {
    json!({
        "name": name,
        "description": description,
        "validatePayloads": true,
        "schemas": { "1": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": name,
            "type": "object",
            "required": ["event", "timestamp", "data"],
            "properties": {
                "event": {"const": name},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {
                    "type": "object",
                    "required": ["paymentId", "status", "amount", "currency", "orderId"],
                    "properties": {
                        "paymentId": {"type": "string", "minLength": 1},
                        "status": {"enum": ["created", "authorized", "captured", "failed", "refunded"]},
                        "amount": {"type": "integer", "minimum": 0},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "orderId": {"type": "string", "minLength": 1}
                    }
                }
            },
            "examples": [{
                "event": name,
                "timestamp": "2026-11-29T10:00:00Z",
                "data": {
                    "paymentId": "pay_1a2b3c4d",
                    "status": status,
                    "amount": 4999,
                    "currency": "EUR",
                    "orderId": "ord_20261129_0042"
                }
            }]
        }}
    })
}

/// Calls the bench needs beyond [`crate::api::Api`]'s, with the admin token.
#[derive(Clone)]
pub(super) struct Admin {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    auth: String,
}

#[derive(Deserialize)]
struct WithId {
    id: String,
}

impl Admin {
    pub(super) fn new(hookd: &Hookd, pool: usize) -> anyhow::Result<Self> {
        Ok(Self {
            client: client(pool)?,
            base: hookd.base_url().to_owned(),
            auth: format!("Bearer {}", hookd.token()),
        })
    }

    /// Sends `body` and answers the JSON of a 2xx answer.
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let resp = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.bytes().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {}", snippet(&text));
        }
        serde_json::from_slice(&text)
            .with_context(|| format!("{method} {path} answered no JSON: {}", snippet(&text)))
    }

    pub(super) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, serde_json::to_vec(body)?)
            .await
    }

    pub(super) async fn create(&self, path: &str, body: &Value) -> anyhow::Result<String> {
        let created: WithId = serde_json::from_value(self.post(path, body).await?)
            .with_context(|| format!("POST {path} answered without an id"))?;
        Ok(created.id)
    }
}

pub(super) fn client(pool: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        // Loopback only: never let an environment proxy see this traffic.
        .no_proxy()
        .pool_max_idle_per_host(pool.max(1))
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

pub(super) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// The ids the pages are built from.
struct Targets {
    endpoint_id: String,
    /// A message in the middle of the application's history, with an ordering key.
    middle_msg: String,
    middle_key: String,
    middle_attempt: String,
}

impl Targets {
    /// The page's path, and a text its body must hold (so a sign-in shell or an empty
    /// result does not pass for the page).
    fn path(&self, page: &str) -> (String, String) {
        let (msg, attempt) = (&self.middle_msg, &self.middle_attempt);
        match page {
            "endpoints" => ("/portal/".into(), self.endpoint_id.clone()),
            "endpoint" => (
                format!("/portal/endpoints/{}", self.endpoint_id),
                self.endpoint_id.clone(),
            ),
            "log" => ("/portal/messages".into(), "msg_".into()),
            "log_failed" => ("/portal/messages?status=failed".into(), "msg_".into()),
            "log_event_type" => (
                "/portal/messages?event_type=payment.failed".into(),
                "msg_".into(),
            ),
            "log_key" => (
                format!("/portal/messages?key={}", self.middle_key),
                msg.clone(),
            ),
            "log_deep" => (format!("/portal/messages?iterator={msg}"), "msg_".into()),
            "message" => (format!("/portal/messages/{msg}"), attempt.clone()),
            "attempt" => (
                format!("/portal/messages/{msg}/attempts/{attempt}"),
                attempt.clone(),
            ),
            _ => ("/portal/event-types".into(), "payment.failed".into()),
        }
    }
}

async fn measure(hookd: &mut Hookd, args: &PortalArgs) -> anyhow::Result<Vec<Figure>> {
    let setup = Setup::new(hookd, 4).await?;
    let admin = Admin::new(hookd, args.publishers)?;
    for (name, description, status) in EVENT_TYPES {
        admin
            .post(
                "/api/v1/event-type",
                &event_type_body(name, description, status),
            )
            .await
            .with_context(|| format!("creating event type {name}"))?;
    }
    let app = &setup.app_id;
    let endpoint_id = admin
        .create(
            &format!("/api/v1/app/{app}/endpoint"),
            &json!({"url": setup.receiver.url(None), "description": "Order service"}),
        )
        .await?;
    setup.expect_secret_of(app, &endpoint_id, None).await?;
    let risk_id = admin
        .create(
            &format!("/api/v1/app/{app}/endpoint"),
            &json!({"url": setup.receiver.url(Some(1)), "description": "Risk team",
                    "filterTypes": SECOND_ENDPOINT_TYPES}),
        )
        .await?;
    setup.expect_secret_of(app, &risk_id, Some(1)).await?;
    let failing = FailingReceiver::start().await?;
    let failing_id = admin
        .create(
            &format!("/api/v1/app/{app}/endpoint"),
            &json!({"url": failing.url, "description": "Legacy ERP", "channels": [DECLINES]}),
        )
        .await?;
    tokio::time::sleep(SETTLE).await;

    // Ingest, then wait until every delivery to the two healthy endpoints has landed.
    let middle_seq = middle_seq(args.messages);
    let ingest_start = Instant::now();
    let ingest = publish_all(&admin, app, args, middle_seq).await?;
    let ingest_s = ingest_start.elapsed().as_secs_f64();
    ingest.stats.warn_if_failed("portal");
    let drain_start = Instant::now();
    let expected = ingest.expected_deliveries.load(Ordering::Relaxed);
    let declined = ingest.declined.load(Ordering::Relaxed);
    let drained = wait_until(hookd, || {
        setup.receiver.unique() >= expected && failing.requests() >= declined
    })
    .await?;
    ensure!(
        drained,
        "deliveries did not drain within {DRAIN_LIMIT:?}: {} of {expected} delivered, {} of \
         {declined} failing attempts",
        setup.receiver.unique(),
        failing.requests()
    );
    let drain_s = drain_start.elapsed().as_secs_f64();
    // The failing endpoint is disabled (as hookd does after its health period): its deliveries
    // waiting for a retry end canceled.
    admin
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{failing_id}"),
            serde_json::to_vec(&json!({"disabled": true}))?,
        )
        .await
        .context("disabling the failing endpoint")?;
    tokio::time::sleep(SETTLE).await;
    // Plans as a production server's would be: autovacuum analyzes tables after a burst.
    hookd.analyze().await?;

    let middle_msg = ingest
        .middle_id
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .context("the middle message was not accepted")?;
    let attempts = admin
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/app/{app}/attempt/msg/{middle_msg}"),
            Vec::new(),
        )
        .await?;
    let middle_attempt = attempts["data"][0]["id"]
        .as_str()
        .context("the middle message has no attempt")?
        .to_owned();
    let targets = Targets {
        endpoint_id,
        middle_key: plan(middle_seq, 0)
            .ordering_key
            .context("the middle message has no ordering key")?,
        middle_msg,
        middle_attempt,
    };

    let session = portal_session(&admin, app).await?;
    let portal = client(1)?;
    let mut timed = Vec::with_capacity(PAGES.len());
    for spec in &PAGES {
        let (path, expect) = targets.path(spec.name);
        let url = format!("{}{path}", hookd.base_url());
        for _ in 0..args.warmup.max(1) {
            let body = get_page(&portal, &url, &session).await?;
            ensure!(
                body.contains(&expect),
                "{path} answered a page without {expect:?}: {}",
                snippet(body.as_bytes())
            );
        }
        let mut samples = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let start = Instant::now();
            get_page(&portal, &url, &session).await?;
            samples.push(duration_us(start.elapsed()));
        }
        timed.push((spec, path, samples));
    }
    let mut server = server_latencies(&hookd_log(hookd)?)?;
    let mut figures = Vec::new();
    let mut worst_p95 = 0.0_f64;
    let mut over_budget = 0_u32;
    for (spec, path, mut samples) in timed {
        samples.sort_unstable();
        let [p50, p95] = [50.0, 95.0].map(|p| ms(percentile(&samples, p)));
        worst_p95 = worst_p95.max(p95);
        if p95 > BUDGET_MS {
            over_budget += 1;
        }
        // The timed requests are the page's last ones.
        let all = server.remove(&path).unwrap_or_default();
        let mut own = all[all.len().saturating_sub(args.requests)..].to_vec();
        own.sort_unstable();
        let [server_p50, server_p95] =
            [50.0, 95.0].map(|p| percentile(&own, p).map_or(f64::NAN, |v| v as f64));
        figures.extend([
            Figure::new(spec.p50.0, spec.p50.1, "ms", 2, p50),
            Figure::new(spec.p95.0, spec.p95.1, "ms", 2, p95),
            Figure::new(spec.server_p50.0, spec.server_p50.1, "ms", 0, server_p50),
            Figure::new(spec.server_p95.0, spec.server_p95.1, "ms", 0, server_p95),
        ]);
    }
    let mut summary = vec![
        Figure::new("worst_p95_ms", "worst page p95", "ms", 2, worst_p95),
        Figure::new(
            "pages_over_budget",
            "pages with p95 over 50 ms",
            "",
            0,
            f64::from(over_budget),
        ),
        Figure::new(
            "accepted",
            "messages accepted",
            "",
            0,
            ingest.stats.accepted() as f64,
        ),
        Figure::new("ingest_s", "ingest", "s", 1, ingest_s),
        Figure::new("drain_s", "drain after ingest", "s", 1, drain_s),
        Figure::new(
            "failing_attempts",
            "attempts answered 500",
            "",
            0,
            failing.requests() as f64,
        ),
    ];
    summary.extend(figures);
    summary.extend(health_figures(&ingest.stats, &setup.receiver, expected));
    if args.hold > 0 {
        eprintln!(
            "holding hookd (pid {}, {}) and its database for {} s; app {app}",
            hookd.pids()[0],
            hookd.base_url(),
            args.hold
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    Ok(summary)
}

pub(super) fn ms(us: Option<u64>) -> f64 {
    us.map_or(f64::NAN, |us| us as f64 / 1000.0)
}

/// The first message at or after the middle that is a captured payment with an ordering key.
fn middle_seq(messages: u64) -> u64 {
    let mut seq = messages / 2 / PER_PAYMENT * PER_PAYMENT + 2;
    while plan(seq, 0).ordering_key.is_none() || plan(seq, 0).status != "captured" {
        seq += PER_PAYMENT;
    }
    seq
}

/// What the publishers did.
struct Ingest {
    stats: Arc<PublishStats>,
    /// Deliveries the receiver should see: every message once, failed and refunded twice.
    expected_deliveries: AtomicU64,
    /// Accepted messages on the `declines` channel.
    declined: AtomicU64,
    middle_id: Mutex<Option<String>>,
}

/// Publishes messages `0..messages` with `publishers` closed-loop tasks.
async fn publish_all(
    admin: &Admin,
    app_id: &str,
    args: &PortalArgs,
    middle_seq: u64,
) -> anyhow::Result<Arc<Ingest>> {
    let ingest = Arc::new(Ingest {
        stats: Arc::new(PublishStats::default()),
        expected_deliveries: AtomicU64::new(0),
        declined: AtomicU64::new(0),
        middle_id: Mutex::new(None),
    });
    let decline_every = match args.failing {
        0 => 0,
        n => args.messages / n,
    };
    let clock = crate::clock::Clock::new();
    let next = Arc::new(AtomicU64::new(0));
    let path = format!("/api/v1/app/{app_id}/msg");
    let mut tasks = JoinSet::new();
    for _ in 0..args.publishers.max(1) {
        let (admin, ingest, next, path) =
            (admin.clone(), ingest.clone(), next.clone(), path.clone());
        let messages = args.messages;
        tasks.spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= messages {
                    return Ok::<_, anyhow::Error>(());
                }
                let plan = plan(seq, decline_every);
                let body = message_body(seq, clock.now_us(), &plan)?;
                let answer = admin.call(reqwest::Method::POST, &path, body).await;
                let id = match &answer {
                    Ok(created) => created["id"].as_str().map(str::to_owned),
                    Err(_) => None,
                };
                if !ingest.stats.record(answer.map(drop)) {
                    tokio::time::sleep(ERROR_BACKOFF).await;
                    continue;
                }
                let copies = 1 + u64::from(SECOND_ENDPOINT_TYPES.contains(&plan.event_type));
                ingest
                    .expected_deliveries
                    .fetch_add(copies, Ordering::Relaxed);
                if plan.declined {
                    ingest.declined.fetch_add(1, Ordering::Relaxed);
                }
                if seq == middle_seq {
                    *ingest
                        .middle_id
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = id;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(ingest)
}

/// Polls `done` until it holds or `DRAIN_LIMIT` passes; answers whether it held.
async fn wait_until(hookd: &mut Hookd, done: impl Fn() -> bool) -> anyhow::Result<bool> {
    let start = Instant::now();
    while start.elapsed() < DRAIN_LIMIT {
        if done() {
            return Ok(true);
        }
        hookd.ensure_running()?;
        tokio::time::sleep(POLL).await;
    }
    Ok(done())
}

/// A portal session, as the merchant's browser gets one: the magic link, its key exchanged.
async fn portal_session(admin: &Admin, app_id: &str) -> anyhow::Result<String> {
    let link = admin
        .post(
            &format!("/api/v1/auth/app-portal-access/{app_id}"),
            &json!({}),
        )
        .await?;
    let url = link["url"].as_str().context("the portal link has no url")?;
    let (_, key) = url
        .split_once("#key=")
        .with_context(|| format!("the portal link {url} has no key"))?;
    let resp = admin
        .client
        .post(format!("{}/portal/session", admin.base))
        .form(&[("key", key)])
        .send()
        .await?;
    let status = resp.status();
    let text = resp.bytes().await?;
    if !status.is_success() {
        bail!("POST /portal/session answered {status}: {}", snippet(&text));
    }
    let exchanged: Value = serde_json::from_slice(&text)?;
    exchanged["session"]
        .as_str()
        .map(str::to_owned)
        .context("POST /portal/session answered no session")
}

/// One page as htmx asks for it; its body, read to the end.
async fn get_page(client: &reqwest::Client, url: &str, session: &str) -> anyhow::Result<String> {
    let resp = client
        .get(url)
        .header(AUTHORIZATION, format!("Bearer {session}"))
        .header("hx-request", "true")
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status != reqwest::StatusCode::OK {
        bail!("GET {url} answered {status}: {}", snippet(text.as_bytes()));
    }
    Ok(text)
}

/// hookd's log file: its stderr (the bench points it at a file in the run's temp dir).
pub(super) fn hookd_log(hookd: &Hookd) -> anyhow::Result<std::path::PathBuf> {
    let pid = hookd.pids()[0];
    std::fs::read_link(format!("/proc/{pid}/fd/2"))
        .with_context(|| format!("finding hookd's log through /proc/{pid}/fd/2"))
}

/// hookd's own time per request URI, in log order, in whole milliseconds, from its
/// `tower_http` lines: `request{method=GET uri=<uri> version=HTTP/1.1}: … finished processing
/// request latency=3 ms status=200`.
fn server_latencies(log: &std::path::Path) -> anyhow::Result<HashMap<String, Vec<u64>>> {
    let text = std::fs::read_to_string(log).context("reading hookd's log")?;
    let mut by_uri: HashMap<String, Vec<u64>> = HashMap::new();
    for line in text.lines() {
        if let Some((uri, ms)) = request_latency(line) {
            by_uri.entry(uri.to_owned()).or_default().push(ms);
        }
    }
    Ok(by_uri)
}

/// The URI and latency of a "finished processing request" line.
pub(super) fn request_latency(line: &str) -> Option<(&str, u64)> {
    let (span, event) = line.split_once("finished processing request")?;
    let (_, uri) = span.split_once(" uri=")?;
    let (uri, _) = uri.split_once(' ')?;
    let (_, latency) = event.split_once("latency=")?;
    let (number, unit) = latency.split_once(' ')?;
    unit.starts_with("ms")
        .then(|| number.parse().ok())?
        .map(|ms| (uri, ms))
}

/// An endpoint that answers every delivery 500 and counts them.
struct FailingReceiver {
    url: String,
    count: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FailingReceiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the failing receiver on 127.0.0.1")?;
        let url = format!("http://{}/erp", listener.local_addr()?);
        let count = Arc::new(AtomicU64::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let counter = counter.clone();
                        async move {
                            // Read the body so the connection stays usable.
                            let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                            counter.fetch_add(1, Ordering::Relaxed);
                            let mut resp = Response::new(Empty::<Bytes>::new());
                            *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, count, task })
    }

    fn requests(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for FailingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payments_take_four_messages() {
        let types: Vec<&str> = (0..8).map(|seq| plan(seq, 0).event_type).collect();
        assert_eq!(
            types,
            [
                "payment.created",
                "payment.authorized",
                "payment.captured",
                "payment.updated",
                "payment.created",
                "payment.authorized",
                "payment.captured",
                "payment.updated"
            ]
        );
        assert_eq!(plan(0, 0).ordering_key, None);
        assert_eq!(plan(4, 0).ordering_key.as_deref(), Some("pay_00000001"));
        assert_eq!(plan(7 * 4 + 2, 0).event_type, "payment.failed");
        assert_eq!(plan(3 * 4 + 3, 0).event_type, "payment.refunded");
    }

    #[test]
    fn declines_spread_over_the_run() {
        let declined = (0..100_000).filter(|&seq| plan(seq, 333).declined).count();
        assert_eq!(declined, 300);
    }

    #[test]
    fn payload_is_about_300_bytes() {
        let body = message_body(54_325, 12_345_678, &plan(54_325, 0)).expect("serializes");
        let v: Value = serde_json::from_slice(&body).expect("valid json");
        let payload = serde_json::to_vec(&v["payload"]).expect("serializes").len();
        assert!((270..=330).contains(&payload), "payload is {payload} bytes");
        assert_eq!(v["orderingKey"], "pay_00013581");
    }

    #[test]
    fn middle_is_a_keyed_capture() {
        let seq = middle_seq(100_000);
        assert!((50_000..50_100).contains(&seq), "{seq}");
        assert_eq!(plan(seq, 0).event_type, "payment.captured");
    }

    #[test]
    fn reads_tower_http_latency() {
        let line = "2026-12-06T12:00:00.000001Z DEBUG request{method=GET \
                    uri=/portal/messages?status=failed version=HTTP/1.1}: \
                    tower_http::trace::on_response: finished processing request \
                    latency=12 ms status=200";
        assert_eq!(
            request_latency(line),
            Some(("/portal/messages?status=failed", 12))
        );
        assert_eq!(request_latency("started processing request"), None);
    }

    #[test]
    fn page_keys_are_distinct() {
        let mut keys: Vec<&str> = PAGES
            .iter()
            .flat_map(|p| [p.p50.0, p.p95.0, p.server_p50.0, p.server_p95.0])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), PAGES.len() * 4);
    }
}
