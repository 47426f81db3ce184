//! Loopback webhook receiver: answers every POST with 204 and records, per
//! delivery, when the message was sent and when its request was fully read.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::clock::Clock;

/// Endpoint index used for paths that are not `/hook` or `/hook/<n>`.
pub const UNKNOWN_ENDPOINT: u32 = u32::MAX;

/// One delivery as seen by the receiver.
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
}

struct State {
    clock: Clock,
    delivered: AtomicU64,
    unique: AtomicU64,
    unparsed: AtomicU64,
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

    fn record(&self, endpoint: u32, body: &[u8], recv_us: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        let Ok(fields) = serde_json::from_slice::<BenchFields>(body) else {
            self.unparsed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut log = self.lock_log();
        if log.seen.insert((fields.bench_seq, endpoint)) {
            self.unique.fetch_add(1, Ordering::Relaxed);
        }
        log.samples.push(Sample {
            seq: fields.bench_seq,
            endpoint,
            sent_us: fields.bench_sent_us,
            recv_us,
        });
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

    /// Every POST received, duplicates included.
    pub fn delivered(&self) -> u64 {
        self.state.delivered.load(Ordering::Relaxed)
    }

    /// Distinct (message, endpoint) deliveries.
    pub fn unique(&self) -> u64 {
        self.state.unique.load(Ordering::Relaxed)
    }

    /// POSTs whose body lacked the bench fields.
    pub fn unparsed(&self) -> u64 {
        self.state.unparsed.load(Ordering::Relaxed)
    }

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
    let is_post = req.method() == Method::POST;
    let endpoint = endpoint_index(req.uri().path());
    let body = req.into_body().collect().await;
    // Latency ends here: the request, body included, has been read.
    let recv_us = state.clock.now_us();
    let status = match (is_post, body) {
        (true, Ok(collected)) => {
            state.record(endpoint, &collected.to_bytes(), recv_us);
            StatusCode::NO_CONTENT
        }
        (true, Err(_)) => StatusCode::BAD_REQUEST,
        (false, _) => StatusCode::METHOD_NOT_ALLOWED,
    };
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    Ok(response)
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
    use super::*;

    #[test]
    fn endpoint_paths() {
        assert_eq!(endpoint_index("/hook"), 0);
        assert_eq!(endpoint_index("/hook/42"), 42);
        assert_eq!(endpoint_index("/other"), UNKNOWN_ENDPOINT);
        assert_eq!(endpoint_index("/hook/x"), UNKNOWN_ENDPOINT);
    }

    #[tokio::test]
    async fn records_deliveries_and_duplicates() -> anyhow::Result<()> {
        let clock = Clock::new();
        let receiver = Receiver::start(clock).await?;
        let client = reqwest::Client::builder().no_proxy().build()?;
        let body = r#"{"benchSentUs":0,"benchSeq":5,"event":"x"}"#;
        for _ in 0..2 {
            let resp = client.post(receiver.url(Some(3))).body(body).send().await?;
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        }
        client.post(receiver.url(None)).body("nope").send().await?;
        assert_eq!(receiver.delivered(), 3);
        assert_eq!(receiver.unique(), 1);
        assert_eq!(receiver.unparsed(), 1);
        let samples = receiver.samples();
        assert_eq!(samples.len(), 2);
        assert_eq!((samples[0].seq, samples[0].endpoint), (5, 3));
        Ok(())
    }
}
