//! The merchant: the reference `payments-consumer` app served in this process on 127.0.0.1,
//! with an observer in front of it that tells the person watching what each delivery did.
//!
//! The outage is real: the server stops and its port refuses connections; it comes back on
//! the same port, with the same database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use hookd_receiver::Verifier;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::journal::Journal;
use super::show::{Actor, Mark, Show};

/// The most of a request body the observer reads (the consumer's deliveries are ~300 bytes).
const BODY_LIMIT: usize = 64 * 1024;
/// How long a stopping server may take to finish the requests it has.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The merchant's app, serving or down.
pub struct Merchant {
    addr: SocketAddr,
    /// The app with the observer in front, as served.
    router: Router,
    /// The app alone, asked for payments in-process.
    app: Router,
    running: Option<Running>,
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl Merchant {
    /// Opens the app's database and serves it on `listener`, verifying with `secret`.
    pub async fn start(
        listener: TcpListener,
        database_url: &str,
        secret: &str,
        journal: Arc<Journal>,
        show: Arc<Show>,
    ) -> anyhow::Result<Self> {
        let pool = payments_consumer::connect(database_url)
            .await
            .context("cannot open the merchant's database")?;
        let verifier = Verifier::new([secret]).context("the endpoint's secret")?;
        let app = payments_consumer::app(pool, verifier);
        let observer = Observer {
            app: app.clone(),
            journal,
            show,
            turn: Arc::new(Semaphore::new(1)),
        };
        let router = app
            .clone()
            .layer(middleware::from_fn_with_state(observer, observe));
        let mut merchant = Self {
            addr: listener.local_addr()?,
            router,
            app,
            running: None,
        };
        merchant.serve(listener);
        Ok(merchant)
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let server = axum::serve(listener, self.router.clone())
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let task = tokio::spawn(async move { server.await });
        self.running = Some(Running { stop, task });
    }

    /// Stops serving: the port refuses connections from now on.
    pub async fn go_down(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        running.stop.cancel();
        if tokio::time::timeout(STOP_GRACE, &mut running.task)
            .await
            .is_err()
        {
            running.task.abort();
        }
    }

    /// Serves again on the same address.
    pub async fn come_back(&mut self) -> anyhow::Result<()> {
        // The port was ours a moment ago; give the system a little time to let go of it.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("cannot listen on {} again", self.addr))
                }
            }
        };
        self.serve(listener);
        Ok(())
    }

    /// What the app knows of a payment.
    pub async fn payment(&self, payment_id: &str) -> anyhow::Result<Option<PaymentState>> {
        ask(&self.app, payment_id).await
    }

    /// Stops serving.
    pub async fn close(mut self) {
        self.go_down().await;
    }
}

/// A payment as the app's `GET /payments/{id}` shows it (the fields the demo reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentState {
    pub status: String,
    /// The `timestamp` of the event that set the state.
    pub updated_at_event: String,
    /// `None` if the order never had a membership.
    pub membership_active: Option<bool>,
    /// How many alerts the payment raised.
    pub alerts: i64,
}

/// Calls the app's `GET /payments/{id}` in-process (no socket: it works while the server is
/// down too, as the app's database does).
async fn ask(app: &Router, payment_id: &str) -> anyhow::Result<Option<PaymentState>> {
    let request = Request::get(format!("/payments/{payment_id}")).body(Body::empty())?;
    let response = app.clone().oneshot(request).await?;
    match response.status() {
        StatusCode::NOT_FOUND => Ok(None),
        StatusCode::OK => {
            let body = axum::body::to_bytes(response.into_body(), BODY_LIMIT).await?;
            Ok(Some(serde_json::from_slice(&body)?))
        }
        other => anyhow::bail!("the merchant's app answered {other} for {payment_id}"),
    }
}

/// Watches each delivery go through the app.
#[derive(Clone)]
struct Observer {
    app: Router,
    journal: Arc<Journal>,
    show: Arc<Show>,
    /// One delivery at a time, so that the payment's state before and after a delivery shows
    /// what that delivery did (a real merchant needs no such thing; the demo's load is tiny).
    turn: Arc<Semaphore>,
}

/// What a delivery says, read from its body.
struct Delivery {
    webhook_id: String,
    event: String,
    payment_id: String,
}

async fn observe(State(observer): State<Observer>, request: Request, next: Next) -> Response {
    if request.uri().path() != "/webhooks" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let payload: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let delivery = Delivery {
        webhook_id: parts
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        event: payload["event"].as_str().unwrap_or("?").to_string(),
        payment_id: payload["data"]["paymentId"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
    };
    let request = Request::from_parts(parts, Body::from(bytes));

    let turn = observer.turn.acquire().await.ok();
    let before = observer.payment(&delivery.payment_id).await;
    let response = next.run(request).await;
    let after = observer.payment(&delivery.payment_id).await;
    drop(turn);

    let status = response.status();
    let handled_before =
        status.is_success() && observer.journal.handled_before(&delivery.webhook_id);
    let verdict = verdict(status, handled_before, before.as_ref(), after.as_ref());
    observer.tell(&delivery, &verdict);
    response
}

impl Observer {
    async fn payment(&self, payment_id: &str) -> Option<PaymentState> {
        ask(&self.app, payment_id).await.ok().flatten()
    }

    fn tell(&self, delivery: &Delivery, verdict: &Verdict) {
        let failures = self.journal.failures(&delivery.webhook_id);
        let verified = if failures == 0 {
            "verified".to_string()
        } else {
            format!(
                "verified on retry, after {failures} failed attempt{}",
                if failures == 1 { "" } else { "s" }
            )
        };
        let (mark, detail) = match verdict {
            Verdict::Applied { status, effects } => {
                self.journal.count(|t| t.applied += 1);
                let mut detail = format!("{verified} · now {status}");
                for effect in effects {
                    detail.push_str(" · ");
                    detail.push_str(effect);
                }
                let mark = if failures == 0 {
                    Mark::Ok
                } else {
                    Mark::Retried
                };
                (mark, detail)
            }
            Verdict::Duplicate => {
                self.journal.count(|t| t.duplicates += 1);
                (
                    Mark::Note,
                    format!("{verified} · duplicate webhook-id: already handled, ignored"),
                )
            }
            Verdict::Stale { kept } => {
                self.journal.count(|t| t.stale += 1);
                (
                    Mark::Note,
                    format!("{verified} · stale: older than the {kept} it knows, ignored"),
                )
            }
            Verdict::Refused(code) => {
                self.journal.count(|t| t.rejected += 1);
                let why = if *code == StatusCode::UNAUTHORIZED {
                    "the signature does not verify"
                } else {
                    "not a valid delivery"
                };
                (
                    Mark::Failed,
                    format!("refused with {}: {why} · nothing changed", code.as_u16()),
                )
            }
        };
        self.show.event(
            Actor::Merchant,
            mark,
            &delivery.payment_id,
            &delivery.event,
            &detail,
        );
    }
}

/// What one delivery did to the merchant's app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The payment moved to `status`, with these business effects.
    Applied {
        status: String,
        effects: Vec<&'static str>,
    },
    /// The same `webhook-id` was handled before.
    Duplicate,
    /// Older news than the state kept, which stays.
    Stale { kept: String },
    /// Answered with this error status (a bad signature, a malformed event).
    Refused(StatusCode),
}

/// Tells what a delivery did from the answer and the payment's state around it (deliveries are
/// handled one at a time, so nothing else changed it in between).
pub fn verdict(
    status: StatusCode,
    handled_before: bool,
    before: Option<&PaymentState>,
    after: Option<&PaymentState>,
) -> Verdict {
    if !status.is_success() {
        return Verdict::Refused(status);
    }
    match (before, after) {
        (before, Some(after)) if before != Some(after) => {
            let mut effects = Vec::new();
            let was_active = before.and_then(|b| b.membership_active);
            match (was_active, after.membership_active) {
                (Some(true), Some(true)) => {}
                (_, Some(true)) => effects.push("membership activated"),
                (Some(true), Some(false)) => effects.push("membership ended"),
                _ => {}
            }
            if after.alerts > before.map_or(0, |b| b.alerts) {
                effects.push("alert raised");
            }
            Verdict::Applied {
                status: after.status.clone(),
                effects,
            }
        }
        _ if handled_before => Verdict::Duplicate,
        (_, after) => Verdict::Stale {
            kept: after.map_or_else(|| "state".to_string(), |a| a.status.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(
        status: &str,
        second: i64,
        membership_active: Option<bool>,
        alerts: i64,
    ) -> PaymentState {
        PaymentState {
            status: status.into(),
            updated_at_event: format!("2027-01-15T08:00:{second:02}Z"),
            membership_active,
            alerts,
        }
    }

    #[test]
    fn verdicts() {
        let ok = StatusCode::NO_CONTENT;
        let authorized = view("authorized", 1, None, 0);
        let captured = view("captured", 2, Some(true), 0);
        assert_eq!(
            verdict(ok, false, Some(&authorized), Some(&captured)),
            Verdict::Applied {
                status: "captured".into(),
                effects: vec!["membership activated"]
            }
        );
        assert_eq!(
            verdict(ok, false, None, Some(&view("failed", 1, None, 1))),
            Verdict::Applied {
                status: "failed".into(),
                effects: vec!["alert raised"]
            }
        );
        assert_eq!(
            verdict(
                ok,
                false,
                Some(&captured),
                Some(&view("refunded", 3, Some(false), 0))
            ),
            Verdict::Applied {
                status: "refunded".into(),
                effects: vec!["membership ended"]
            }
        );
        assert_eq!(
            verdict(ok, true, Some(&captured), Some(&captured)),
            Verdict::Duplicate
        );
        assert_eq!(
            verdict(ok, false, Some(&captured), Some(&captured)),
            Verdict::Stale {
                kept: "captured".into()
            }
        );
        assert_eq!(
            verdict(
                StatusCode::UNAUTHORIZED,
                false,
                Some(&captured),
                Some(&captured)
            ),
            Verdict::Refused(StatusCode::UNAUTHORIZED)
        );
    }
}
