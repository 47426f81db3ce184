//! A webhook receiver on 127.0.0.1 that records every request and answers as scripted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Status(u16),
    /// Holds the request open until the script changes.
    Stall,
    /// Answers with the status after a delay in milliseconds.
    Slow(u16, u64),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered (a stalled request counts only if later released).
    pub reply: Reply,
    /// When the request arrived.
    pub arrived: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

type Script = Box<dyn FnMut(usize, &str, &[u8]) -> Reply + Send>;

/// The receiver; dropping it stops nothing (tests are short-lived).
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    generation: watch::Sender<u64>,
}

impl Receiver {
    /// A receiver answering 204 to everything.
    pub async fn start() -> Self {
        Self::scripted(|_, _| Reply::Status(204)).await
    }

    /// A receiver whose answer to request number n (from 0) at path p is `script(n, p)`.
    pub async fn scripted(mut script: impl FnMut(usize, &str) -> Reply + Send + 'static) -> Self {
        Self::scripted_by_body(move |n, path, _| script(n, path)).await
    }

    /// A receiver whose answer may also depend on the request body.
    pub async fn scripted_by_body(
        script: impl FnMut(usize, &str, &[u8]) -> Reply + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let receiver = Self {
            addr: listener.local_addr().expect("addr"),
            log: Arc::default(),
            script: Arc::new(Mutex::new(Box::new(script))),
            generation: watch::Sender::new(0),
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let r = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let r = r.clone();
                        async move { Ok::<_, Infallible>(r.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        receiver
    }

    /// Replaces the script; stalled requests are answered by the new one.
    pub fn set_script(&self, mut script: impl FnMut(usize, &str) -> Reply + Send + 'static) {
        *self.script.lock().expect("script") = Box::new(move |n, path, _| script(n, path));
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let arrived = Instant::now();
        let path = req.uri().path().to_string();
        let headers = req.headers().clone();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut changes = self.generation.subscribe();
        let mut reply = self.next_reply(&path, &body);
        while reply == Reply::Stall {
            if changes.changed().await.is_err() {
                break;
            }
            reply = self.next_reply(&path, &body);
        }
        let code = match reply {
            Reply::Status(code) => code,
            Reply::Slow(code, millis) => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                code
            }
            Reply::Stall => unreachable!("a stall ends only with another reply"),
        };
        self.log.lock().expect("log").push(Received {
            path,
            headers,
            body,
            reply,
            arrived,
        });
        let mut response = Response::new(Full::new(Bytes::from_static(b"receiver says hi")));
        *response.status_mut() = StatusCode::from_u16(code).expect("status");
        response
    }

    fn next_reply(&self, path: &str, body: &[u8]) -> Reply {
        let n = self.log.lock().expect("log").len();
        (self.script.lock().expect("script"))(n, path, body)
    }

    /// Every request answered so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log").clone()
    }

    /// The requests answered with a 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| {
                matches!(
                    r.reply,
                    Reply::Status(200..=299) | Reply::Slow(200..=299, _)
                )
            })
            .collect()
    }

    /// Waits until `count` requests were answered with a 2xx.
    pub async fn wait_delivered(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= count {
                return delivered;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} deliveries arrived",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
