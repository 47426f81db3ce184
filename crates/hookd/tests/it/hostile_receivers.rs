//! Receivers that misbehave in every way HTTP allows, each a raw TCP server on 127.0.0.1 (HTTP
//! libraries refuse to misbehave like this): every one becomes a failed attempt whose recorded
//! response names the fault, and is retried. A thousand of them leak no worker slot, file
//! descriptor or memory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookd::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{report, TestServer};
use crate::receiver::Receiver;

/// The request timeout of these tests: short, so that the slow receivers fail fast.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
/// The size of the oversized answer.
const HUGE_BODY: u64 = 50 * 1024 * 1024;

/// One way of misbehaving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Starts a 200 answer, then resets the connection halfway through the body.
    ResetMidResponse,
    /// A 200 whose chunked body trickles on and never ends.
    EndlessBody,
    /// The status line and headers, one byte a second.
    TrickledHeaders,
    /// A 500 with a 50 MB body.
    HugeBody,
    /// A 200 with a 50 MB body: the endpoint took the message, so this one is a delivery (only
    /// the status decides) and is not among [`Hostile::ALL`].
    HugeOkBody,
    /// Bytes that are not an HTTP response.
    InvalidHttp,
    /// A plain-text HTTP server, called with `https://` so that hookd starts a TLS handshake.
    PlainTextForTls,
    /// A 302 to itself.
    RedirectLoop,
    /// A 200, but only after hookd gave up waiting.
    OkAfterTimeout,
}

impl Hostile {
    const ALL: [Hostile; 8] = [
        Hostile::ResetMidResponse,
        Hostile::EndlessBody,
        Hostile::TrickledHeaders,
        Hostile::HugeBody,
        Hostile::InvalidHttp,
        Hostile::PlainTextForTls,
        Hostile::RedirectLoop,
        Hostile::OkAfterTimeout,
    ];

    /// Words the recorded reason must hold, all of them (compared in lower case).
    fn reason_words(self) -> &'static [&'static str] {
        match self {
            // "reading the response failed: …" usually; a reset that overtakes the head in the
            // socket is reported as "request failed: …". Either way it says reset.
            Hostile::ResetMidResponse => &["connection reset"],
            Hostile::EndlessBody | Hostile::TrickledHeaders | Hostile::OkAfterTimeout => {
                &["timed out"]
            }
            Hostile::HugeBody | Hostile::HugeOkBody => &["[response too large: cut at 4096 bytes]"],
            Hostile::InvalidHttp => &["invalid http response"],
            Hostile::PlainTextForTls => &["tls handshake failed"],
            Hostile::RedirectLoop => &["redirect to http://127.0.0.1:", "not followed"],
        }
    }

    /// The status code recorded: 0 when no answer was received.
    fn recorded_status(self) -> i64 {
        match self {
            Hostile::HugeBody => 500,
            Hostile::HugeOkBody => 200,
            Hostile::RedirectLoop => 302,
            _ => 0,
        }
    }
}

/// A running hostile receiver.
struct HostileServer {
    behaviour: Hostile,
    addr: SocketAddr,
    /// The most bytes of the oversized body written on one connection before the client went
    /// away.
    huge_written: Arc<AtomicU64>,
    /// Connections accepted and not yet closed: each holds a descriptor of this process.
    open_connections: Arc<AtomicUsize>,
}

impl HostileServer {
    async fn start(behaviour: Hostile) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = Self {
            behaviour,
            addr: listener.local_addr().expect("addr"),
            huge_written: Arc::default(),
            open_connections: Arc::default(),
        };
        let (addr, written) = (server.addr, Arc::clone(&server.huge_written));
        let open = Arc::clone(&server.open_connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                open.fetch_add(1, Ordering::SeqCst);
                let (open, written) = (Arc::clone(&open), Arc::clone(&written));
                tokio::spawn(async move {
                    misbehave(behaviour, stream, addr, &written).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        server
    }

    fn url(&self) -> String {
        let scheme = if self.behaviour == Hostile::PlainTextForTls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/", self.addr)
    }
}

/// Reads one request (head and `content-length` body), or the first bytes of a TLS hello.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.first() == Some(&0x16) {
            return Some(()); // A TLS record: a plain-text server answers it at once.
        }
        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while seen.len() < end + 4 + length {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        return Some(());
    }
}

/// Serves one connection the way `behaviour` says, after reading the request.
async fn misbehave(
    behaviour: Hostile,
    mut stream: TcpStream,
    addr: SocketAddr,
    written: &AtomicU64,
) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    let _ = match behaviour {
        Hostile::ResetMidResponse => reset_mid_response(stream).await,
        Hostile::EndlessBody => endless_body(&mut stream).await,
        Hostile::TrickledHeaders => trickle_headers(&mut stream).await,
        Hostile::HugeBody => huge_body(&mut stream, "500 Internal Server Error", written).await,
        Hostile::HugeOkBody => huge_body(&mut stream, "200 OK", written).await,
        Hostile::InvalidHttp => stream.write_all(b"SMTP ready, no HTTP here\r\n\r\n").await,
        Hostile::PlainTextForTls => {
            let answer =
                "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
            stream.write_all(answer.as_bytes()).await
        }
        Hostile::RedirectLoop => {
            let answer = format!(
                "HTTP/1.1 302 Found\r\nlocation: http://{addr}/\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
            );
            stream.write_all(answer.as_bytes()).await
        }
        Hostile::OkAfterTimeout => ok_after_hang_up(&mut stream).await,
    };
}

/// Waits until the client has given up and closed its end, then answers 200: late by
/// construction, whatever the machine's speed.
async fn ok_after_hang_up(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    while stream.read(&mut buf).await? > 0 {}
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        .await
}

/// Promises 100 bytes, sends 4, then closes with SO_LINGER 0, which sends a TCP reset.
async fn reset_mid_response(mut stream: TcpStream) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
        .await?;
    stream.flush().await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    stream.set_zero_linger()?;
    drop(stream);
    Ok(())
}

/// One byte of chunked body every 20 ms, until the client hangs up.
async fn endless_body(stream: &mut TcpStream) -> std::io::Result<()> {
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    loop {
        stream.write_all(b"1\r\nx\r\n").await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The answer's head one byte a second; it would take a minute to finish.
async fn trickle_headers(stream: &mut TcpStream) -> std::io::Result<()> {
    let head = b"HTTP/1.1 200 OK\r\nx-slow: ................................................\r\ncontent-length: 0\r\n\r\n";
    for byte in head {
        stream.write_all(&[*byte]).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// An answer with a 50 MB body, written until done or until the client hangs up.
async fn huge_body(
    stream: &mut TcpStream,
    status: &str,
    written: &AtomicU64,
) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\ncontent-length: {HUGE_BODY}\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let chunk = vec![b'z'; 64 * 1024];
    let mut sent = 0;
    while sent < HUGE_BODY {
        stream.write_all(&chunk).await?;
        sent += chunk.len() as u64;
        written.fetch_max(sent, Ordering::Relaxed);
    }
    Ok(())
}

/// Test settings with a short request timeout and retries a few milliseconds apart.
fn hostile_settings(s: &mut Settings) {
    s.request_timeout = REQUEST_TIMEOUT;
    s.connect_timeout = REQUEST_TIMEOUT;
    s.retry.schedule = vec![Duration::from_millis(5); 2];
    s.retry.throttled_min = Duration::from_millis(5);
}

/// The attempts of one message, newest first.
async fn attempts(server: &TestServer, app: &str, msg: &str, at_least: usize) -> Vec<Value> {
    let path = format!("/api/v1/app/{app}/attempt/msg/{msg}");
    let body = server
        .wait_for(&path, Duration::from_secs(20), |b| {
            b["data"].as_array().is_some_and(|d| d.len() >= at_least)
        })
        .await;
    body["data"].as_array().expect("data").clone()
}

/// What is wrong with the attempts recorded for `behaviour`, if anything.
fn faults_in(behaviour: Hostile, tried: &[Value]) -> Vec<String> {
    let mut faults = Vec::new();
    for attempt in tried {
        let reason = attempt["response"].as_str().unwrap_or("").to_lowercase();
        // The oversized body's note is at its end.
        let skip = reason.chars().count().saturating_sub(160);
        let shown: String = reason.chars().skip(skip).collect();
        let code = &attempt["responseStatusCode"];
        report(&format!("{behaviour:?}: {code} {shown:?}"));
        if attempt["status"] != 2 {
            faults.push(format!(
                "{behaviour:?}: not a failed attempt: {}",
                attempt["status"]
            ));
        }
        if *code != behaviour.recorded_status() {
            faults.push(format!("{behaviour:?}: recorded status {code}"));
        }
        if !behaviour.reason_words().iter().all(|w| reason.contains(w)) {
            faults.push(format!(
                "{behaviour:?}: the reason {shown:?} does not name the fault"
            ));
        }
    }
    faults
}

#[tokio::test]
async fn each_hostile_receiver_is_a_failed_attempt_with_a_clear_reason_and_is_retried() {
    let server = TestServer::start_with(hostile_settings).await;
    let mut faults = Vec::new();
    for behaviour in Hostile::ALL {
        let hostile = HostileServer::start(behaviour).await;
        let (app, _) = server.merchant_with_endpoint(&hostile.url()).await;
        let msg = server
            .send_message(
                &app,
                json!({ "eventType": "payment.failed", "payload": {"p": 1} }),
            )
            .await;
        // Two attempts at least: the first failed and was retried.
        let tried = attempts(&server, &app, &msg, 2).await;
        faults.extend(faults_in(behaviour, &tried));
        if behaviour == Hostile::HugeBody {
            let written = hostile.huge_written.load(Ordering::Relaxed);
            report(&format!(
                "HugeBody: at most {written} of {HUGE_BODY} bytes written"
            ));
            if written >= HUGE_BODY {
                faults.push("HugeBody: hookd read the whole 50 MB".into());
            }
        }
    }
    assert!(faults.is_empty(), "{faults:#?}");
    server.stop().await;
}

#[tokio::test]
async fn a_2xx_with_a_50_mb_body_is_a_delivery_read_only_up_to_the_cap() {
    let server = TestServer::start_with(hostile_settings).await;
    let hostile = HostileServer::start(Hostile::HugeOkBody).await;
    let (app, _) = server.merchant_with_endpoint(&hostile.url()).await;
    let msg = server
        .send_message(
            &app,
            json!({ "eventType": "payment.failed", "payload": {"p": 1} }),
        )
        .await;
    let path = format!("/api/v1/app/{app}/msg/{msg}/endpoint");
    server
        .wait_for(&path, Duration::from_secs(20), |b| {
            b["data"][0]["status"] == 0
        })
        .await;
    let tried = attempts(&server, &app, &msg, 1).await;
    assert_eq!(tried.len(), 1, "a delivery is not retried: {tried:?}");
    let reason = tried[0]["response"].as_str().expect("response");
    assert!(
        reason.ends_with("\n[response too large: cut at 4096 bytes]"),
        "{reason}"
    );
    assert_eq!(
        reason.len(),
        4096 + "\n[response too large: cut at 4096 bytes]".len()
    );
    let written = hostile.huge_written.load(Ordering::Relaxed);
    assert!(
        written < HUGE_BODY,
        "hookd read the whole 50 MB ({written} bytes)"
    );
    server.stop().await;
}

/// Set in the child process that runs the leak check alone.
const ALONE: &str = "HOOKD_TEST_HOSTILE_LEAK_ALONE";
/// Hostile deliveries in the leak check: 125 messages to the 8 endpoints.
const LEAK_MESSAGES: usize = 125;
/// Descriptors that may be open after the run and not before: the database pool opens its
/// connections lazily (up to 4, plus PostgreSQL's LISTEN connection) and may not have opened
/// them all during the warm-up. Every connection to a hostile server is closed (each breaks,
/// times out or says `connection: close`), and the API client keeps no idle connection.
const FD_MARGIN: usize = 8;
/// RSS growth allowed over the run. The allocator keeps some of what a thousand concurrent
/// attempts used; a leak of even one 64 KiB read buffer per attempt (2,000 of them) would be
/// 125 MiB.
const RSS_GROWTH_LIMIT_KB: u64 = 48 * 1024;

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// This process's resident memory in KiB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Runs `test` in a child process of this suite with nothing else beside it: descriptors and
/// RSS are counted for the whole process, which other tests would disturb.
async fn run_alone(test: &str) {
    let status = tokio::process::Command::new(std::env::current_exe().expect("test executable"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .status()
        .await
        .expect("run the test alone");
    assert!(status.success(), "{test}, run alone, failed: {status}");
}

/// Waits until every delivery to every endpoint of `app` has failed finally.
async fn wait_all_failed(server: &TestServer, app: &str, endpoints: &[String], each: u64) {
    for ep in endpoints {
        let path = format!("/api/v1/app/{app}/endpoint/{ep}/stats");
        server
            .wait_for(&path, Duration::from_secs(40), |s| {
                s["fail"] == each && s["pending"] == 0 && s["sending"] == 0
            })
            .await;
    }
}

/// Waits until no hostile server holds a connection open.
async fn wait_connections_closed(servers: &[HostileServer]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let open: usize = servers
            .iter()
            .map(|s| s.open_connections.load(Ordering::SeqCst))
            .sum();
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} hostile connections still open: hookd never closed its end (a leaked descriptor)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The node's in-flight count from its first report after `after` (ms since the epoch).
async fn in_flight_reported_after(store: &hookd::store::SharedStore, after: i64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let nodes = store.list_nodes(after).await.expect("list nodes");
        if let Some(node) = nodes.iter().find(|n| n.heartbeat_at > after) {
            return node.in_flight;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no node report after {after}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The store beside the server, read-only in spirit: to read the node's reports.
async fn open_beside(server: &TestServer) -> hookd::store::SharedStore {
    let database = server.database();
    let pool = hookd::store::PoolOptions {
        max_connections: 1,
        ..hookd::store::PoolOptions::default()
    };
    hookd::store::open(
        &database.url,
        database.main_secret(),
        &pool,
        hookd::store::OpenMode::Tool,
    )
    .await
    .expect("open the store beside the server")
}

#[tokio::test]
async fn a_thousand_hostile_deliveries_leak_no_worker_slot_descriptor_or_memory() {
    const NAME: &str =
        "hostile_receivers::a_thousand_hostile_deliveries_leak_no_worker_slot_descriptor_or_memory";
    if std::env::var_os(ALONE).is_none() {
        return run_alone(NAME).await;
    }
    let mut server = TestServer::start_with(|s| {
        hostile_settings(s);
        s.retry.schedule = vec![Duration::from_millis(5)]; // two attempts, then exhausted
    })
    .await;
    // No idle API connections: they would be descriptors of this process counted after.
    server.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut hostile = Vec::new();
    for behaviour in Hostile::ALL {
        hostile.push(HostileServer::start(behaviour).await);
    }
    let app = server.create_app("Merchant").await;
    let mut endpoints = Vec::new();
    for h in &hostile {
        let endpoint = server.create_endpoint(&app, &h.url(), json!({})).await;
        endpoints.push(endpoint["id"].as_str().expect("id").to_string());
    }
    let store = open_beside(&server).await;
    let message = || json!({ "eventType": "payment.failed", "payload": {"p": 1} });

    // A warm-up round opens what stays open (database connections, the client's resolver).
    server.send_messages(&app, vec![message(); 8], 8).await;
    wait_all_failed(&server, &app, &endpoints, 8).await;
    wait_connections_closed(&hostile).await;
    let (fds_before, rss_before) = (open_fds(), rss_kb());

    server
        .send_messages(&app, vec![message(); LEAK_MESSAGES], 8)
        .await;
    wait_all_failed(&server, &app, &endpoints, 8 + LEAK_MESSAGES as u64).await;
    let finished = hookd::domain::time::now_millis();
    wait_connections_closed(&hostile).await;
    let in_flight = in_flight_reported_after(&store, finished).await;
    let (fds_after, rss_after) = (open_fds(), rss_kb());

    report(&format!(
        "{} hostile deliveries, 2 attempts each: in flight after {in_flight}; descriptors \
         {fds_before} before, {fds_after} after; RSS {rss_before} KiB before, {rss_after} KiB after",
        LEAK_MESSAGES * hostile.len()
    ));
    assert_eq!(in_flight, 0, "worker slots still taken");
    assert!(
        fds_after <= fds_before + FD_MARGIN,
        "descriptors leaked: {fds_before} before, {fds_after} after"
    );
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KB,
        "memory grew by {} KiB",
        rss_after.saturating_sub(rss_before)
    );
    every_endpoint_still_gets_deliveries(&server, &app, &endpoints).await;
    server.stop().await;
}

/// Points every endpoint at a well-behaved receiver and sends one more message: each is
/// delivered, so no endpoint's own in-flight slots were left taken by the hostile attempts.
async fn every_endpoint_still_gets_deliveries(
    server: &TestServer,
    app: &str,
    endpoints: &[String],
) {
    let receiver = Receiver::start().await;
    for ep in endpoints {
        let path = format!("/api/v1/app/{app}/endpoint/{ep}");
        let (status, body) = server
            .call(
                Method::PATCH,
                &path,
                Some(json!({ "url": receiver.url("/") })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    server
        .send_message(
            app,
            json!({ "eventType": "payment.failed", "payload": {"p": 2} }),
        )
        .await;
    receiver
        .wait_delivered(endpoints.len(), Duration::from_secs(20))
        .await;
}
