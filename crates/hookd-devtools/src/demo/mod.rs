//! `hookd demo`: the whole payment story in one command, about half a minute, nothing to set up.
//!
//! In this one process, on 127.0.0.1 only:
//! - **hookd** itself ([`hookd::server::run`]) on a SQLite file in a temporary directory, with
//!   the payment event catalog and a retry schedule of seconds instead of minutes;
//! - **the merchant**: the reference `payments-consumer` app, which verifies each delivery's
//!   signature, dedupes it and applies it to its payments ([`merchant`]);
//! - **the gateway**: posts the events of eight payments to hookd's API ([`script`]).
//!
//! Midway the merchant's server goes down for a few seconds while the gateway keeps posting;
//! hookd's attempts fail and are retried ([`watch`] reads them from hookd's attempt log), and
//! when the server is back the retries deliver. At the end every payment's state at the
//! merchant is compared with the gateway's ([`report`]): the command fails unless they all
//! match.

mod journal;
mod merchant;
mod report;
mod script;
mod show;
mod watch;

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::Method;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::journal::{Journal, Posted, Tallies};
use self::merchant::Merchant;
use self::report::Row;
use self::script::{Gateway, Sent, Stamp, Step, PAYMENTS};
use self::show::{Actor, Mark, Paint, Show};
use self::watch::{Target, Watcher};
use crate::client::ApiClient;
use hookd::catalog;
use hookd::config::{Seed, Settings};
use hookd::delivery::RetryPolicy;
use hookd::domain::time::{now_millis, rfc3339};

/// How the demo runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoOptions {
    /// Shorten every pause and retry tenfold: the same story in a few seconds, for tests.
    pub fast: bool,
}

/// The longest wait, after the story, for deliveries still under way.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the demo; `Err` if anything fails to start or any payment ends differently at the
/// merchant than at the gateway. `interrupt` (Ctrl-C) stops it early, cleaning up.
pub async fn run(options: DemoOptions, interrupt: impl Future<Output = ()>) -> anyhow::Result<()> {
    let pace = Pace::new(options.fast);
    let show = Arc::new(Show::new(Paint::detect()));
    show.plain(&show.paint.bold(
        "hookd demo · a payment gateway, hookd and a merchant's membership app, all on 127.0.0.1",
    ));
    show.plain("");
    let dir = tempfile::Builder::new()
        .prefix("hookd-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let hookd = Hookd::start(dir.path(), pace).await?;
    show.say(
        "hookd",
        &format!(
            "listening on {}, data in {} (removed at the end)",
            hookd.base,
            dir.path().join("hookd.db").display()
        ),
    );
    let outcome = tokio::select! {
        outcome = play(&hookd, dir.path(), pace, &show) => outcome,
        () = interrupt => Err(anyhow::anyhow!("interrupted")),
    };
    hookd.stop().await;
    dir.close()
        .context("cannot remove the temporary directory")?;
    outcome
}

/// The story's clock: the show's pace, or ten times faster.
#[derive(Debug, Clone, Copy)]
struct Pace {
    scale: f64,
}

impl Pace {
    fn new(fast: bool) -> Self {
        Self {
            scale: if fast { 0.1 } else { 1.0 },
        }
    }

    /// `millis` at the show's pace, scaled.
    fn of(self, millis: u64) -> Duration {
        Duration::from_secs_f64(millis as f64 / 1000.0 * self.scale)
    }

    /// Seconds instead of hookd's default minutes and hours, so the outage heals on stage.
    fn retry_schedule(self) -> Vec<Duration> {
        [500, 1000, 2000, 3000, 3000, 3000, 3000, 3000, 3000, 3000]
            .into_iter()
            .map(|ms| self.of(ms))
            .collect()
    }

    /// How often the demo looks at hookd's attempt log.
    fn tick(self) -> Duration {
        self.of(150).max(Duration::from_millis(20))
    }
}

/// hookd, running inside this process.
struct Hookd {
    base: String,
    client: ApiClient,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Hookd {
    async fn start(dir: &Path, pace: Pace) -> anyhow::Result<Self> {
        let database = format!("sqlite://{}", dir.join("hookd.db").display());
        let mut settings = Settings::with_database(database);
        let token = format!("demo_{:032x}", rand::random::<u128>());
        settings.admin_token = Some(token.clone());
        // The merchant listens on loopback, which hookd refuses unless allowed (SECURITY.md,
        // "Destinations").
        settings.allow_destinations = vec!["127.0.0.0/8".parse()?];
        settings.retry = RetryPolicy::new(pace.retry_schedule(), pace.of(1000));
        settings.poll_interval = pace.tick();
        settings.connect_timeout = Duration::from_secs(2);
        settings.request_timeout = Duration::from_secs(5);
        settings.shutdown_timeout = Duration::from_secs(2);
        settings.seed = Some(Seed::Payments);

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let mut task = tokio::spawn(hookd::server::run(
            settings,
            listener,
            stop.clone().cancelled_owned(),
        ));
        let client = ApiClient::new(&base, &token);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client
            .call(Method::GET, "/api/v1/health", None)
            .await
            .is_err()
        {
            if task.is_finished() {
                return Err(match (&mut task).await {
                    Ok(Err(err)) => err.context("hookd stopped at start"),
                    _ => anyhow::anyhow!("hookd stopped at start"),
                });
            }
            if Instant::now() > deadline {
                anyhow::bail!("hookd did not answer within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            base,
            client,
            stop,
            task,
        })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Everything the story's steps touch.
struct Stage<'a> {
    client: &'a ApiClient,
    app: String,
    endpoint: String,
    merchant_url: String,
    pace: Pace,
    show: &'a Show,
    journal: &'a Journal,
    gateway: Gateway,
}

/// Sets up the merchant, tells the story, waits for the deliveries and judges.
async fn play(hookd: &Hookd, dir: &Path, pace: Pace, show: &Arc<Show>) -> anyhow::Result<()> {
    let client = &hookd.client;
    let event_types: Vec<&str> = catalog::PAYMENT_EVENTS.iter().map(|e| e.name).collect();
    show.say(
        "hookd",
        &format!(
            "payment event catalog loaded: {}",
            event_types
                .iter()
                .map(|t| t.trim_start_matches("payment."))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    // The merchant's port first: its endpoint in hookd needs the URL.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let merchant_url = format!("http://{}/webhooks", listener.local_addr()?);
    let Registered {
        app,
        endpoint,
        secret,
    } = register(client, &merchant_url, &event_types).await?;
    show.say(
        "hookd",
        &format!("application \"Acme Memberships\" ({app}), endpoint {endpoint} → {merchant_url}"),
    );

    let journal = Arc::new(Journal::default());
    let database = format!("sqlite://{}", dir.join("merchant.db").display());
    let mut merchant = Merchant::start(
        listener,
        &database,
        &secret,
        Arc::clone(&journal),
        Arc::clone(show),
    )
    .await?;
    show.say(
        "merchant",
        "the reference payments-consumer app is up; it verifies every delivery with the endpoint's secret (whsec_…)",
    );
    let schedule: Vec<String> = pace
        .retry_schedule()
        .iter()
        .take(4)
        .map(|d| format!("{}s", d.as_secs_f64()))
        .collect();
    show.say(
        "hookd",
        &format!(
            "retry schedule for the demo: {}, … (the default starts at 5s and lasts over a day)",
            schedule.join(", ")
        ),
    );

    let watcher = Watcher::start(
        Target {
            client: client.clone(),
            app: app.clone(),
            endpoint: endpoint.clone(),
        },
        Arc::clone(&journal),
        Arc::clone(show),
        pace.tick(),
    );
    let mut stage = Stage {
        client,
        app,
        endpoint,
        merchant_url,
        pace,
        show,
        journal: &journal,
        gateway: Gateway::default(),
    };
    let told = tell(&mut stage, &mut merchant).await;
    let settled = match told {
        Ok(()) => settle(&stage).await,
        Err(_) => false,
    };
    watcher.stop().await;
    let rows = match told {
        Ok(()) => final_rows(&stage.gateway, &merchant).await,
        Err(err) => Err(err),
    };
    merchant.close().await;
    let rows = rows?;

    judge(show, &rows, &journal.tallies(), settled)
}

/// The merchant's application and endpoint in hookd, and the endpoint's secret.
struct Registered {
    app: String,
    endpoint: String,
    secret: String,
}

/// Registers the merchant as an operator would: an application, an endpoint subscribed to
/// the payment events, and the secret copied from hookd for the merchant's verifier.
async fn register(
    client: &ApiClient,
    merchant_url: &str,
    event_types: &[&str],
) -> anyhow::Result<Registered> {
    let app = client.create_app("Acme Memberships", Some("acme")).await?;
    let app = app["id"].as_str().context("no application id")?.to_string();
    let endpoint = client
        .create_endpoint(
            &app,
            json!({
                "url": merchant_url,
                "uid": "memberships",
                "description": "Acme's membership app",
                "filterTypes": event_types,
            }),
        )
        .await?;
    let endpoint = endpoint["id"]
        .as_str()
        .context("no endpoint id")?
        .to_string();
    let secret = client
        .call(
            Method::GET,
            &format!("/api/v1/app/{app}/endpoint/{endpoint}/secret"),
            None,
        )
        .await?;
    let secret = secret["key"].as_str().context("no secret")?.to_string();
    Ok(Registered {
        app,
        endpoint,
        secret,
    })
}

/// Prints the final table and the counts, and answers the verdict.
fn judge(show: &Show, rows: &[Row<'_>], tallies: &Tallies, settled: bool) -> anyhow::Result<()> {
    show.heading("Final states: the gateway's word against the merchant's books");
    for line in report::table(rows, show.paint) {
        show.plain(&line);
    }
    show.plain("");
    for line in report::summary(tallies) {
        show.plain(&format!("  {line}"));
    }
    show.plain("");
    let verdict = report::verdict(rows);
    match &verdict {
        Ok(()) => show.plain(&format!(
            "{} every payment ends in the state the gateway gave it{}",
            show.paint.green("✓"),
            if settled {
                ""
            } else {
                " (some deliveries never landed)"
            }
        )),
        Err(_) => show.plain(&format!(
            "{} some payments differ from the gateway",
            show.paint.red("✗")
        )),
    }
    verdict
}

/// Each payment the gateway mentioned, with its last word and what the merchant knows.
async fn final_rows(gateway: &Gateway, merchant: &Merchant) -> anyhow::Result<Vec<Row<'static>>> {
    let states = script::final_states(gateway.sent(), PAYMENTS.len());
    let mut rows = Vec::new();
    for (payment, gateway) in PAYMENTS.iter().zip(states) {
        let Some(gateway) = gateway else { continue };
        rows.push(Row {
            payment,
            gateway,
            merchant: merchant.payment(payment.id).await?,
        });
    }
    Ok(rows)
}

/// Plays the script.
async fn tell(stage: &mut Stage<'_>, merchant: &mut Merchant) -> anyhow::Result<()> {
    for step in script::script() {
        match step {
            Step::Act(title) => stage.show.heading(title),
            Step::Post {
                payment,
                event,
                status,
                stamp,
                note,
            } => {
                let now = now_millis();
                let at = stage.gateway.stamp(payment, stamp, now);
                let p = &PAYMENTS[payment];
                let mut detail = format!("{:>10} · {note}", p.amount_text());
                if let Stamp::When(_) = stamp {
                    detail.push_str(&format!(
                        " (stamped {:.1}s ago)",
                        (now - at) as f64 / 1000.0
                    ));
                }
                // Told before it is sent: hookd may deliver before the gateway hears back.
                stage
                    .show
                    .event(Actor::Gateway, Mark::Sent, p.id, event, &detail);
                let payload = catalog::payment_event(
                    event,
                    &rfc3339(at),
                    p.id,
                    status.as_str(),
                    p.amount,
                    p.currency,
                    p.order_id,
                );
                let message = stage
                    .client
                    .send_message(&stage.app, event, payload)
                    .await?;
                let msg_id = message["id"].as_str().context("no message id")?;
                stage.journal.posted(msg_id, Posted { payment, event });
                stage.gateway.record(Sent {
                    payment,
                    status,
                    at,
                    msg_id: msg_id.to_string(),
                });
            }
            Step::Resend { payment, status } => {
                let msg_id = stage
                    .gateway
                    .msg_id(payment, status)
                    .context("the script resends a message never sent")?
                    .to_string();
                stage.show.event(
                    Actor::Gateway,
                    Mark::Retried,
                    PAYMENTS[payment].id,
                    script::event_type(status),
                    &format!("an operator resends {msg_id}: same webhook-id, delivered again"),
                );
                stage.journal.resent();
                stage
                    .client
                    .call(
                        Method::POST,
                        &format!(
                            "/api/v1/app/{}/msg/{msg_id}/endpoint/{}/resend",
                            stage.app, stage.endpoint
                        ),
                        None,
                    )
                    .await?;
            }
            Step::Forge { payment, status } => forge(stage, payment, status).await?,
            Step::MerchantDown => {
                merchant.go_down().await;
                stage.show.say(
                    "merchant",
                    &stage.show.paint.red(
                        "✗ the server is down: its port refuses connections (the gateway keeps posting)",
                    ),
                );
            }
            Step::MerchantUp => {
                merchant.come_back().await?;
                stage.show.say(
                    "merchant",
                    &stage.show.paint.green(
                        "✓ the server is back up on the same port: hookd's retries will deliver what it missed",
                    ),
                );
            }
            Step::Pause(millis) => tokio::time::sleep(stage.pace.of(millis)).await,
        }
    }
    Ok(())
}

/// Someone who does not have the endpoint's secret posts a capture straight to the merchant.
async fn forge(
    stage: &Stage<'_>,
    payment: usize,
    status: payments_consumer::payments::Status,
) -> anyhow::Result<()> {
    let p = &PAYMENTS[payment];
    let event = script::event_type(status);
    stage.show.event(
        Actor::Impostor,
        Mark::Sent,
        p.id,
        event,
        "posted straight to the merchant, signed with a guessed key",
    );
    stage.journal.count(|t| t.forged += 1);
    let now = now_millis();
    let body = catalog::payment_event(
        event,
        &rfc3339(now),
        p.id,
        status.as_str(),
        p.amount,
        p.currency,
        p.order_id,
    );
    // "forged by an impostor with no key", in base64: the shape of a signature, not one.
    let signature = "v1,Zm9yZ2VkIGJ5IGFuIGltcG9zdG9yIHdpdGggbm8ga2V5";
    reqwest::Client::new()
        .post(&stage.merchant_url)
        .header("webhook-id", "msg_forged_by_an_impostor")
        .header("webhook-timestamp", (now / 1000).to_string())
        .header("webhook-signature", signature)
        .json(&body)
        .send()
        .await
        .context("the merchant did not answer the forgery")?;
    Ok(())
}

/// Waits (bounded) until hookd's attempt log shows every message delivered; answers whether
/// they all were.
async fn settle(stage: &Stage<'_>) -> bool {
    stage
        .show
        .heading("Waiting for the last deliveries to land");
    let started = Instant::now();
    while !stage.journal.all_delivered() {
        if started.elapsed() > SETTLE_TIMEOUT {
            let t = stage.journal.tallies();
            stage.show.say(
                "hookd",
                &stage.show.paint.red(&format!(
                    "✗ {} of {} deliveries still missing after {} s",
                    (t.posted + t.resent).saturating_sub(t.delivered),
                    t.posted + t.resent,
                    SETTLE_TIMEOUT.as_secs()
                )),
            );
            return false;
        }
        tokio::time::sleep(stage.pace.tick()).await;
    }
    let t = stage.journal.tallies();
    stage.show.say(
        "hookd",
        &stage.show.paint.green(&format!(
            "✓ all {} deliveries landed ({} needed retries)",
            t.delivered, t.recovered
        )),
    );
    true
}
