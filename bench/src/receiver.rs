//! Loopback webhook receiver: answers every POST with 204 and records, per delivery, when the
//! message was sent and when its request was fully read. It verifies every delivery's Standard
//! Webhooks signature with the endpoint's secret, as a merchant's receiver would, and can play
//! an endpoint that is down (answering 503, or never answering until it comes back).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hookd_receiver::{Headers, Verifier};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// Endpoint index used for paths that are not `/hook` or `/hook/<n>`.
pub const UNKNOWN_ENDPOINT: u32 = u32::MAX;

/// One first arrival of a (message, endpoint) pair; redeliveries are only counted.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub seq: u64,
    /// `n` of `/hook/<n>`; 0 for plain `/hook`.
    pub endpoint: u32,
    pub sent_us: u64,
    pub recv_us: u64,
}

impl Sample {
    pub fn latency_us(&self) -> u64 {
        self.recv_us.saturating_sub(self.sent_us)
    }
}

/// How an endpoint behaves while it is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Outage {
    /// Answers every delivery 503 at once: hookd's attempts fail fast and are retried.
    Error,
    /// Reads nothing and answers nothing until the endpoint comes back, then answers 204:
    /// hookd's attempts hang (up to its request timeout) and hold its concurrency slots.
    Hang,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BenchFields {
    bench_sent_us: u64,
    bench_seq: u64,
}

#[derive(Default)]
struct Log {
    samples: Vec<Sample>,
    /// (seq, endpoint) pairs already seen, to tell duplicates from new deliveries.
    seen: HashSet<(u64, u32)>,
    /// Distinct deliveries per endpoint.
    unique_per_endpoint: HashMap<u32, u64>,
    /// Why the first delivery that failed verification failed, to name it in the error.
    first_bad_signature: Option<String>,
}

/// What the receiver knows about the endpoints it serves: their secrets and their outages.
#[derive(Default)]
struct Endpoints {
    verifiers: HashMap<u32, Verifier>,
    down: HashMap<u32, Outage>,
}

struct State {
    clock: Clock,
    delivered: AtomicU64,
    unique: AtomicU64,
    unparsed: AtomicU64,
    bad_signatures: AtomicU64,
    verified: AtomicU64,
    verify_ns: AtomicU64,
    attempts_while_down: AtomicU64,
    /// How long every delivery waits for its answer, in ms, after it was recorded.
    answer_delay_ms: AtomicU64,
    /// Per mille of requests answered 500 on purpose (spread evenly), and the requests seen
    /// and failed so far: a receiver that fails now and then, as real ones do.
    failure_permille: AtomicU64,
    requests: AtomicU64,
    failed_on_purpose: AtomicU64,
    endpoints: RwLock<Endpoints>,
    /// Bumped on every outage change, so hung requests look again.
    outage_changes: watch::Sender<u64>,
    log: Mutex<Log>,
}

impl State {
    fn lock_log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave the log half-updated in a
        // way that matters for statistics, so keep using it.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn endpoints(&self) -> std::sync::RwLockReadGuard<'_, Endpoints> {
        self.endpoints
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn endpoints_mut(&self) -> std::sync::RwLockWriteGuard<'_, Endpoints> {
        self.endpoints
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn outage(&self, endpoint: u32) -> Option<Outage> {
        self.endpoints().down.get(&endpoint).copied()
    }

    /// Checks the delivery's signature with its endpoint's secret, timing the check. The
    /// timestamp's freshness is judged at `arrived_unix` (seconds), when the request came in:
    /// one held by a hanging endpoint is not stale for having been held.
    fn verify(&self, endpoint: u32, headers: &HeaderMap, body: &[u8], arrived_unix: i64) {
        let verifier = self.endpoints().verifiers.get(&endpoint).cloned();
        let started = Instant::now();
        let outcome = match &verifier {
            Some(verifier) => verifier
                .verify_at(&HyperHeaders(headers), body, arrived_unix)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err(format!("no secret registered for endpoint {endpoint}")),
        };
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.verify_ns.fetch_add(took, Ordering::Relaxed);
        self.verified.fetch_add(1, Ordering::Relaxed);
        if let Err(why) = outcome {
            self.bad_signatures.fetch_add(1, Ordering::Relaxed);
            self.lock_log()
                .first_bad_signature
                .get_or_insert_with(|| format!("endpoint {endpoint}: {why}"));
        }
    }

    fn record(&self, endpoint: u32, body: &[u8], recv_us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let Ok(fields) = serde_json::from_slice::<BenchFields>(body) else {
            self.unparsed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut log = self.lock_log();
        // A redelivery is counted (as a duplicate), never a latency sample: its time says
        // how long the retry took, not how fast a message goes through.
        if !log.seen.insert((fields.bench_seq, endpoint)) {
            return;
        }
        self.unique.fetch_add(1, Ordering::Relaxed);
        *log.unique_per_endpoint.entry(endpoint).or_default() += 1;
        log.samples.push(Sample {
            seq: fields.bench_seq,
            endpoint,
            sent_us: fields.bench_sent_us,
            recv_us,
        });
    }

    /// Whether this request is one of the `failure_permille` to fail: request `n` fails when
    /// `n × permille / 1000` steps up, which spreads the failures evenly.
    fn fails_on_purpose(&self) -> bool {
        let permille = self.failure_permille.load(Ordering::Relaxed);
        if permille == 0 {
            return false;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let fails = (n + 1) * permille / 1000 != n * permille / 1000;
        if fails {
            self.failed_on_purpose.fetch_add(1, Ordering::Relaxed);
        }
        fails
    }

    /// Waits while the endpoint hangs; answers whether it is down with errors. Counts the
    /// requests that found it down either way.
    async fn refuses(&self, endpoint: u32) -> bool {
        if self.outage(endpoint).is_none() {
            return false; // The common case, without a subscription.
        }
        // Subscribed before looking again, so a change in between is not missed.
        let mut changes = self.outage_changes.subscribe();
        let mut counted = false;
        loop {
            let outage = self.outage(endpoint);
            if outage.is_some() && !counted {
                self.attempts_while_down.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            match outage {
                None => return false,
                Some(Outage::Error) => return true,
                Some(Outage::Hang) => {
                    if changes.changed().await.is_err() {
                        return false;
                    }
                }
            }
        }
    }
}

/// hyper's headers as the receiver kit reads them.
struct HyperHeaders<'a>(&'a HeaderMap);

impl Headers for HyperHeaders<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(|value| value.as_bytes())
    }
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(clock: Clock) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the receiver on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            clock,
            delivered: AtomicU64::new(0),
            unique: AtomicU64::new(0),
            unparsed: AtomicU64::new(0),
            bad_signatures: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            verify_ns: AtomicU64::new(0),
            attempts_while_down: AtomicU64::new(0),
            answer_delay_ms: AtomicU64::new(0),
            failure_permille: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed_on_purpose: AtomicU64::new(0),
            endpoints: RwLock::new(Endpoints::default()),
            outage_changes: watch::Sender::new(0),
            log: Mutex::new(Log::default()),
        });
        let accept_task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self {
            addr,
            state,
            accept_task,
        })
    }

    /// URL of the plain endpoint (`/hook`) or of fan-out endpoint `n` (`/hook/n`).
    pub fn url(&self, endpoint: Option<u32>) -> String {
        match endpoint {
            None => format!("http://{}/hook", self.addr),
            Some(n) => format!("http://{}/hook/{n}", self.addr),
        }
    }

    /// The secret (`whsec_…`) deliveries to endpoint `n` must be signed with.
    pub fn expect_secret(&self, endpoint: u32, secret: &str) -> anyhow::Result<()> {
        let verifier = Verifier::new([secret])
            .with_context(|| format!("endpoint {endpoint}'s secret is not a signing secret"))?;
        self.state
            .endpoints_mut()
            .verifiers
            .insert(endpoint, verifier);
        Ok(())
    }

    /// Takes endpoint `n` down (`Some`) or brings it back (`None`).
    pub fn set_outage(&self, endpoint: u32, outage: Option<Outage>) {
        {
            let mut endpoints = self.state.endpoints_mut();
            match outage {
                Some(outage) => endpoints.down.insert(endpoint, outage),
                None => endpoints.down.remove(&endpoint),
            };
        }
        self.state.outage_changes.send_modify(|n| *n += 1);
    }

    /// Makes every endpoint slow: each delivery is answered `delay` after it was read (its
    /// latency is taken before), so hookd's attempts stay in flight and fill its bounds.
    pub fn set_answer_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.answer_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Makes `permille` of all requests (spread evenly, every endpoint) answer 500 before
    /// they are read: hookd records a failed attempt and retries them.
    pub fn set_failure_permille(&self, permille: u64) {
        self.state
            .failure_permille
            .store(permille.min(1000), Ordering::Relaxed);
    }

    /// Requests answered 500 by [`Receiver::set_failure_permille`].
    pub fn failed_on_purpose(&self) -> u64 {
        self.state.failed_on_purpose.load(Ordering::Relaxed)
    }

    /// Every POST received, duplicates included.
    pub fn delivered(&self) -> u64 {
        self.state.delivered.load(Ordering::Relaxed)
    }

    /// Distinct (message, endpoint) deliveries.
    pub fn unique(&self) -> u64 {
        self.state.unique.load(Ordering::Relaxed)
    }

    /// Distinct deliveries to endpoint `n`.
    pub fn unique_for(&self, endpoint: u32) -> u64 {
        self.state
            .lock_log()
            .unique_per_endpoint
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Redeliveries of a (message, endpoint) pair already seen.
    pub fn duplicates(&self) -> u64 {
        self.delivered()
            .saturating_sub(self.unparsed())
            .saturating_sub(self.unique())
    }

    /// POSTs whose body lacked the bench fields.
    pub fn unparsed(&self) -> u64 {
        self.state.unparsed.load(Ordering::Relaxed)
    }

    /// Deliveries whose signature did not verify with their endpoint's secret.
    pub fn bad_signatures(&self) -> u64 {
        self.state.bad_signatures.load(Ordering::Relaxed)
    }

    /// Why the first bad signature was bad.
    pub fn first_bad_signature(&self) -> Option<String> {
        self.state.lock_log().first_bad_signature.clone()
    }

    /// Mean time of one signature check, in µs of this process (NaN before the first).
    pub fn verify_us_per_delivery(&self) -> f64 {
        let checks = self.state.verified.load(Ordering::Relaxed);
        let ns = self.state.verify_ns.load(Ordering::Relaxed);
        match checks {
            0 => f64::NAN,
            _ => ns as f64 / 1000.0 / checks as f64,
        }
    }

    /// Requests that found their endpoint down: answered 503, or held until it came back.
    pub fn attempts_while_down(&self) -> u64 {
        self.state.attempts_while_down.load(Ordering::Relaxed)
    }

    /// First arrivals only.
    pub fn samples(&self) -> Vec<Sample> {
        self.state.lock_log().samples.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE under overload; back off instead of spinning.
                eprintln!("receiver: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Small 204 answers must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone()));
            // Connection errors (peer reset when hookd is killed) are expected.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let arrived_unix = unix_now();
    let is_post = req.method() == Method::POST;
    let endpoint = endpoint_index(req.uri().path());
    if state.refuses(endpoint).await {
        return Ok(answer(StatusCode::SERVICE_UNAVAILABLE));
    }
    if state.fails_on_purpose() {
        return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR));
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await;
    // Latency ends here: the request, body included, has been read.
    let recv_us = state.clock.now_us();
    let status = match (is_post, body) {
        (true, Ok(collected)) => {
            let body = collected.to_bytes();
            state.verify(endpoint, &parts.headers, &body, arrived_unix);
            state.record(endpoint, &body, recv_us);
            let delay = state.answer_delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            StatusCode::NO_CONTENT
        }
        (true, Err(_)) => StatusCode::BAD_REQUEST,
        (false, _) => StatusCode::METHOD_NOT_ALLOWED,
    };
    Ok(answer(status))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

fn answer(status: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}

fn endpoint_index(path: &str) -> u32 {
    match path.strip_prefix("/hook") {
        Some("") | Some("/") => 0,
        Some(rest) => rest
            .strip_prefix('/')
            .and_then(|n| n.parse().ok())
            .unwrap_or(UNKNOWN_ENDPOINT),
        None => UNKNOWN_ENDPOINT,
    }
}

#[cfg(test)]
mod tests {
    use hookd_receiver::Secret;

    use super::*;

    #[test]
    fn endpoint_paths() {
        assert_eq!(endpoint_index("/hook"), 0);
        assert_eq!(endpoint_index("/hook/42"), 42);
        assert_eq!(endpoint_index("/other"), UNKNOWN_ENDPOINT);
        assert_eq!(endpoint_index("/hook/x"), UNKNOWN_ENDPOINT);
    }

    /// POSTs `body` to `url` signed with `secret`, as hookd would; answers the status.
    async fn post_signed(
        client: &reqwest::Client,
        url: &str,
        secret: &Secret,
        body: &str,
    ) -> anyhow::Result<StatusCode> {
        post_signed_at(client, url, secret, body, unix_now()).await
    }

    async fn post_signed_at(
        client: &reqwest::Client,
        url: &str,
        secret: &Secret,
        body: &str,
        now: i64,
    ) -> anyhow::Result<StatusCode> {
        let resp = client
            .post(url)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", now.to_string())
            .header(
                "webhook-signature",
                secret.sign("msg_1", now, body.as_bytes()),
            )
            .body(body.to_owned())
            .send()
            .await?;
        Ok(resp.status())
    }

    #[tokio::test]
    async fn records_deliveries_and_keeps_duplicates_out_of_samples() -> anyhow::Result<()> {
        let receiver = Receiver::start(Clock::new()).await?;
        let secret = Secret::generate();
        receiver.expect_secret(3, &secret.expose())?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        let body = r#"{"benchSentUs":0,"benchSeq":5,"event":"x"}"#;
        for _ in 0..2 {
            let status = post_signed(&client, &receiver.url(Some(3)), &secret, body).await?;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        assert_eq!(receiver.delivered(), 2);
        assert_eq!(receiver.unique(), 1);
        assert_eq!(receiver.unique_for(3), 1);
        assert_eq!(receiver.duplicates(), 1);
        assert_eq!(receiver.bad_signatures(), 0);
        assert!(receiver.verify_us_per_delivery() > 0.0);
        let samples = receiver.samples();
        assert_eq!(samples.len(), 1, "a duplicate is no latency sample");
        assert_eq!((samples[0].seq, samples[0].endpoint), (5, 3));
        Ok(())
    }

    #[tokio::test]
    async fn counts_bad_signatures() -> anyhow::Result<()> {
        let receiver = Receiver::start(Clock::new()).await?;
        let (expected, other) = (Secret::generate(), Secret::generate());
        receiver.expect_secret(0, &expected.expose())?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        let body = r#"{"benchSentUs":0,"benchSeq":1}"#;
        post_signed(&client, &receiver.url(None), &other, body).await?;
        assert_eq!(receiver.bad_signatures(), 1);
        // Unsigned, and to an endpoint whose secret the receiver was never told.
        client.post(receiver.url(None)).body(body).send().await?;
        post_signed(&client, &receiver.url(Some(9)), &expected, body).await?;
        assert_eq!(receiver.bad_signatures(), 3);
        // Rightly signed, but ten minutes old: a replay.
        let stale = unix_now() - 600;
        post_signed_at(&client, &receiver.url(None), &expected, body, stale).await?;
        assert_eq!(receiver.bad_signatures(), 4);
        let why = receiver.first_bad_signature().unwrap_or_default();
        assert!(why.contains("no signature matches"), "{why}");
        // Still deliveries: a bad signature is its own failure, not a missing message.
        assert_eq!(receiver.delivered(), 4);
        Ok(())
    }

    #[tokio::test]
    async fn endpoint_outages() -> anyhow::Result<()> {
        let receiver = Arc::new(Receiver::start(Clock::new()).await?);
        let secret = Secret::generate();
        receiver.expect_secret(0, &secret.expose())?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        let body = r#"{"benchSentUs":0,"benchSeq":1}"#;
        receiver.set_outage(0, Some(Outage::Error));
        let status = post_signed(&client, &receiver.url(None), &secret, body).await?;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            (receiver.attempts_while_down(), receiver.delivered()),
            (1, 0)
        );

        receiver.set_outage(0, Some(Outage::Hang));
        let url = receiver.url(None);
        let (client2, secret2) = (client.clone(), secret.clone());
        let held = tokio::spawn(async move { post_signed(&client2, &url, &secret2, body).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!held.is_finished(), "a hanging endpoint answers nothing");
        assert_eq!(receiver.attempts_while_down(), 2);
        receiver.set_outage(0, None);
        assert_eq!(held.await??, StatusCode::NO_CONTENT);
        assert_eq!(receiver.unique(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn slow_endpoints_answer_late_but_record_on_arrival() -> anyhow::Result<()> {
        let clock = Clock::new();
        let receiver = Receiver::start(clock).await?;
        let secret = Secret::generate();
        receiver.expect_secret(0, &secret.expose())?;
        receiver.set_answer_delay(Duration::from_millis(300));
        let client = reqwest::Client::builder().no_proxy().build()?;
        let sent_us = clock.now_us();
        let body = format!(r#"{{"benchSentUs":{sent_us},"benchSeq":1}}"#);
        let started = Instant::now();
        post_signed(&client, &receiver.url(None), &secret, &body).await?;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(receiver.samples()[0].latency_us() < 300_000);
        Ok(())
    }
}
