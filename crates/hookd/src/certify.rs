//! `hookd certify`: attacks a merchant's endpoint the way an impostor would, with the
//! merchant's consent, and says what it got wrong.
//!
//! A battery of requests goes to the endpoint through the same outbound client deliveries use
//! (timeouts, no redirects, capped bodies). One is a correctly signed payment event, which must
//! be accepted in time; the rest are forged, tampered or stale, and must be refused with a 4xx.
//! Every request is marked as a certification request (a `webhook-id` starting `cert_` and a
//! `hookd-certify: 1` header) and none touches hookd's message history. The grading is pure
//! ([`grade`]) so each rule is tested without a network.

use std::time::Duration;

use bytes::Bytes;
use hookd_signing::{EndpointKey, Scheme, Sign};
use serde::{Deserialize, Serialize};

use crate::outbound::guard::DestinationGuard;
use crate::outbound::{header_map, Outbound, OutboundConfig, Reply, SendError};

/// How far from now the stale and future timestamps are: twice the 5 minutes receivers
/// usually tolerate.
const SKEW_SECS: i64 = 10 * 60;

/// Which signature headers the requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSet {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Webhook,
    /// `svix-id`, `svix-timestamp`, `svix-signature`.
    Svix,
    /// Both.
    Both,
}

impl HeaderSet {
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            HeaderSet::Webhook => &["webhook"],
            HeaderSet::Svix => &["svix"],
            HeaderSet::Both => &["webhook", "svix"],
        }
    }
}

/// What the endpoint must do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Accept it (2xx) within the delivery timeout.
    Accept,
    /// Refuse it (4xx).
    Refuse,
    /// Nothing a sender can require; reported for information.
    Inform,
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Info,
}

/// One check of the battery, as reported.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    pub name: String,
    pub expect: Expect,
    pub verdict: Verdict,
    /// What the endpoint answered (`HTTP 401`, `timed out after 15s`, …).
    pub answered: String,
    /// Why this verdict, and what to do about a failure.
    pub why: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub url: String,
    /// The signatures the requests carried: `v1` or `v1a`.
    pub signature_scheme: String,
    /// When the battery ran (RFC 3339).
    pub checked_at: String,
    pub checks: Vec<Check>,
    /// Every must-pass check passed.
    pub passed: bool,
}

/// A request of the battery, before it is sent.
struct Probe {
    name: &'static str,
    expect: Expect,
    msg_id: String,
    timestamp: i64,
    body: Vec<u8>,
    /// `None` sends no signature headers at all.
    signature: Option<String>,
    /// What a failure means and how to fix it.
    fix: &'static str,
}

/// A well-formed signature of the key's scheme and length that no key made.
fn forged_signature(scheme: Scheme) -> String {
    let bytes = match scheme {
        Scheme::V1 => 32,
        Scheme::V1a => 64,
    };
    use base64::Engine as _;
    let forged = base64::engine::general_purpose::STANDARD.encode(vec![0x5a; bytes]);
    format!("{},{forged}", scheme.as_str())
}

/// The requests of the battery, for the example `body` signed with `secret` at `now` (unix s).
fn battery(secret: &EndpointKey, body: &[u8], now: i64) -> Vec<Probe> {
    let id = |n: &str| format!("cert_{}_{n}", now);
    let signed = |msg_id: &str, ts: i64, body: &[u8]| secret.sign(msg_id, ts, body);
    let other = EndpointKey::generate(secret.scheme());
    let mut tampered = body.to_vec();
    // Change the amount's digits: the same shape, another meaning.
    if let Some(pos) = tampered.iter().position(u8::is_ascii_digit) {
        tampered[pos] = if tampered[pos] == b'9' {
            b'1'
        } else {
            tampered[pos] + 1
        };
    } else {
        tampered.push(b' ');
    }
    let good_id = id("valid");
    let mut probes = vec![
        Probe {
            name: "a correctly signed event is accepted",
            expect: Expect::Accept,
            signature: Some(signed(&good_id, now, body)),
            msg_id: good_id.clone(),
            timestamp: now,
            body: body.to_vec(),
            fix: "verify the signature over the raw body bytes exactly as received (not a \
                  re-serialization of the parsed JSON), answer 2xx as soon as it checks out and do \
                  slow work after answering; check the key is the endpoint's current one",
        },
        Probe {
            name: "a wrong signature is refused",
            expect: Expect::Refuse,
            msg_id: id("wrong"),
            timestamp: now,
            body: body.to_vec(),
            signature: Some(forged_signature(secret.scheme())),
            fix: "verify the webhook-signature header against the raw body before trusting it",
        },
        Probe {
            name: "a signature made with another secret is refused",
            expect: Expect::Refuse,
            signature: Some(other.sign(&id("other"), now, body)),
            msg_id: id("other"),
            timestamp: now,
            body: body.to_vec(),
            fix: "verify with this endpoint's own secret, not any well-formed signature",
        },
        Probe {
            name: "a request without signature headers is refused",
            expect: Expect::Refuse,
            msg_id: id("unsigned"),
            timestamp: now,
            body: body.to_vec(),
            signature: None,
            fix:
                "refuse requests that carry no webhook-id, webhook-timestamp and webhook-signature",
        },
        Probe {
            name: "a tampered body with the original signature is refused",
            expect: Expect::Refuse,
            signature: Some(signed(&id("tampered"), now, body)),
            msg_id: id("tampered"),
            timestamp: now,
            body: tampered,
            fix: "verify the signature over the raw body bytes as received, before parsing JSON",
        },
        Probe {
            name: "a timestamp 10 minutes old is refused",
            expect: Expect::Refuse,
            signature: Some(signed(&id("stale"), now - SKEW_SECS, body)),
            msg_id: id("stale"),
            timestamp: now - SKEW_SECS,
            body: body.to_vec(),
            fix:
                "refuse a webhook-timestamp more than 5 minutes from your clock: it stops replays \
                  of captured requests",
        },
        Probe {
            name: "a timestamp 10 minutes in the future is refused",
            expect: Expect::Refuse,
            signature: Some(signed(&id("future"), now + SKEW_SECS, body)),
            msg_id: id("future"),
            timestamp: now + SKEW_SECS,
            body: body.to_vec(),
            fix: "refuse a webhook-timestamp more than 5 minutes ahead of your clock, too",
        },
        Probe {
            name: "during a secret rotation, the last of several signatures is enough",
            expect: Expect::Accept,
            signature: Some(format!(
                "{} {}",
                other.sign(&id("rotation"), now, body),
                signed(&id("rotation"), now, body)
            )),
            msg_id: id("rotation"),
            timestamp: now,
            body: body.to_vec(),
            fix: "the header may hold several space-separated signatures (old and new secret \
                  while a rotation lasts): accept if any one of them verifies",
        },
    ];
    // The replay of the first request, same id, same signature.
    probes.push(Probe {
        name: "a replay of the first request (same webhook-id)",
        expect: Expect::Inform,
        signature: Some(signed(&good_id, now, body)),
        msg_id: good_id,
        timestamp: now,
        body: body.to_vec(),
        fix: "a sender cannot see whether a handler runs twice; hookd retries, so deduplicate by \
              webhook-id (hookd-receiver's inbox, or a unique key on webhook-id in the same \
              transaction as your change)",
    });
    probes
}

/// Grades one answer against what the check expects.
pub fn grade(
    expect: Expect,
    answer: &Result<Reply, SendError>,
    timeout: Duration,
) -> (Verdict, String) {
    let answered = match answer {
        Ok(reply) => format!("HTTP {} in {} ms", reply.status, reply.duration.as_millis()),
        Err(err) => err.to_string(),
    };
    let verdict = match (expect, answer) {
        (Expect::Inform, _) => Verdict::Info,
        (Expect::Accept, Ok(reply))
            if (200..300).contains(&reply.status) && reply.duration <= timeout =>
        {
            Verdict::Pass
        }
        (Expect::Refuse, Ok(reply)) if (400..500).contains(&reply.status) => Verdict::Pass,
        _ => Verdict::Fail,
    };
    (verdict, answered)
}

/// What the transport itself says about the endpoint: plain HTTP, or TLS that verified.
fn transport_check(url: &reqwest::Url, first: &Result<Reply, SendError>) -> Check {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    let (verdict, why) = match (url.scheme(), first) {
        ("https", Ok(_)) => (
            Verdict::Pass,
            "TLS 1.2 or newer with a certificate valid for this host (hookd offers nothing older \
             and checks the certificate like a delivery does)"
                .to_string(),
        ),
        ("https", Err(err)) => (
            Verdict::Fail,
            format!(
                "no TLS connection could be made ({err}): check the certificate chain, its \
                     host name and expiry"
            ),
        ),
        (_, _) if loopback => (
            Verdict::Info,
            "plain HTTP, acceptable only for local testing: use an https:// URL in production"
                .to_string(),
        ),
        _ => (
            Verdict::Fail,
            "plain HTTP: anyone on the path can read and replay events; use an https:// URL"
                .to_string(),
        ),
    };
    Check {
        name: "the endpoint is reached over TLS".to_string(),
        expect: Expect::Accept,
        verdict,
        answered: url.scheme().to_string(),
        why,
    }
}

/// Where and how the battery is sent.
pub struct Target<'a> {
    pub url: &'a reqwest::Url,
    pub key: &'a EndpointKey,
    /// Which signature headers the requests carry.
    pub headers: HeaderSet,
    /// Headers every request carries besides hookd's (an endpoint's own custom headers).
    pub extra_headers: &'a [(String, String)],
}

/// Sends one probe and grades the answer.
async fn send(
    outbound: &Outbound,
    target: &Target<'_>,
    probe: &Probe,
) -> (Check, Result<Reply, SendError>) {
    let mut pairs: Vec<(String, String)> = target.extra_headers.to_vec();
    pairs.push(("content-type".into(), "application/json".into()));
    pairs.push(("hookd-certify".into(), "1".into()));
    if let Some(signature) = &probe.signature {
        for prefix in target.headers.prefixes() {
            pairs.push((format!("{prefix}-id"), probe.msg_id.clone()));
            pairs.push((format!("{prefix}-timestamp"), probe.timestamp.to_string()));
            pairs.push((format!("{prefix}-signature"), signature.clone()));
        }
    }
    let answer = outbound
        .post(
            target.url.clone(),
            header_map(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            Bytes::from(probe.body.clone()),
        )
        .await
        .map_err(|(err, _)| err);
    let timeout = outbound.request_timeout();
    let (verdict, answered) = grade(probe.expect, &answer, timeout);
    let why = match verdict {
        Verdict::Pass => "as it should".to_string(),
        Verdict::Info => probe.fix.to_string(),
        Verdict::Fail => match probe.expect {
            Expect::Accept => format!(
                "it must answer 2xx within {} s: {}",
                timeout.as_secs(),
                probe.fix
            ),
            _ => format!("it must answer 4xx: {}", probe.fix),
        },
    };
    let check = Check {
        name: probe.name.to_string(),
        expect: probe.expect,
        verdict,
        answered,
        why,
    };
    (check, answer)
}

/// Runs the battery against the target through `outbound`. The genuine request goes first and
/// its replay last; the requests in between are independent and go together, so a slow
/// endpoint costs about three timeouts, not ten.
pub async fn run(outbound: &Outbound, target: &Target<'_>, body: &[u8], now: i64) -> Report {
    let mut probes = battery(target.key, body, now);
    let replay = probes.pop();
    let rest = probes.split_off(1.min(probes.len()));
    let mut checks = Vec::new();
    let mut first = None;
    for probe in &probes {
        let (check, answer) = send(outbound, target, probe).await;
        checks.push(check);
        first = Some(answer);
    }
    let middle = futures_util::future::join_all(rest.iter().map(|p| send(outbound, target, p)));
    checks.extend(middle.await.into_iter().map(|(check, _)| check));
    if let Some(replay) = &replay {
        checks.push(send(outbound, target, replay).await.0);
    }
    if let Some(first) = &first {
        checks.push(transport_check(target.url, first));
    }
    let passed = checks.iter().all(|c| c.verdict != Verdict::Fail);
    Report {
        url: target.url.to_string(),
        signature_scheme: target.key.scheme().as_str().to_string(),
        checked_at: crate::domain::time::rfc3339(now * 1000),
        checks,
        passed,
    }
}

/// The example the genuine request carries: the catalog's example of the first event type the
/// endpoint subscribes to that has one, or of `payment.captured`.
pub fn example_body(event_types: Option<&[crate::domain::EventTypeName]>) -> Vec<u8> {
    let entry = event_types
        .unwrap_or_default()
        .iter()
        .find_map(|name| crate::catalog::entry(name))
        .or_else(|| crate::catalog::entry("payment.captured"));
    let example = entry.map_or_else(
        || serde_json::json!({"type": "payment.captured"}),
        crate::catalog::example,
    );
    // Pretty-printed on purpose: a receiver that verifies a re-serialization of the parsed body
    // instead of the raw bytes (a common bug: `JSON.stringify(req.body)`, `json.dumps(...)`)
    // gets other bytes than were signed and refuses the genuine request, so the report says so.
    serde_json::to_vec_pretty(&example).unwrap_or_default()
}

/// The report as a person reads it.
pub fn render(report: &Report) -> String {
    let mut out = format!("hookd certify {}\n\n", report.url);
    for check in &report.checks {
        let mark = match check.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Info => "INFO",
        };
        out.push_str(&format!("{mark}  {} — {}\n", check.name, check.answered));
        if check.verdict != Verdict::Pass {
            out.push_str(&format!("      {}\n", check.why));
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .count();
    out.push_str(&if report.passed {
        "\nThe endpoint refuses forged, tampered and stale requests and accepts genuine ones.\n"
            .to_string()
    } else {
        format!(
            "\n{failed} check(s) failed. Verification code for Node, Python, Go and Rust is in the \
             merchant portal's endpoint page (and in hookd-receiver for Rust).\n"
        )
    });
    out
}

/// `hookd certify`: the battery from the command line. Like a delivery, it reaches loopback,
/// private and other refused addresses only where `allowed` (`--allow-destinations`, or
/// `HOOKD_ALLOW_DESTINATIONS` as for the server) lets it, so checking a local server is a
/// choice made in so many words.
pub async fn run_command(
    url: &str,
    secret: &str,
    headers: HeaderSet,
    timeout: Duration,
    allowed: Vec<ipnet::IpNet>,
) -> anyhow::Result<Report> {
    let url = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("invalid URL {url}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("the URL must be http:// or https://");
    }
    let key = EndpointKey::parse(secret).map_err(|e| anyhow::anyhow!("invalid secret: {e}"))?;
    let guard = DestinationGuard::new(allowed);
    if let crate::outbound::guard::Verdict::Blocked(reason) = guard.check_url(&url) {
        anyhow::bail!(
            "{url} is {reason}, which deliveries may not reach, so certify does not either; to \
             check a server of your own there, allow its range, e.g. --allow-destinations \
             127.0.0.0/8 (or HOOKD_ALLOW_DESTINATIONS)"
        );
    }
    let outbound = Outbound::new(
        OutboundConfig {
            connect_timeout: Duration::from_secs(5).min(timeout),
            request_timeout: timeout,
        },
        guard,
    )?;
    let body = example_body(None);
    let now = crate::domain::time::now_millis() / 1000;
    let target = Target {
        url: &url,
        key: &key,
        headers,
        extra_headers: &[],
    };
    Ok(run(&outbound, &target, &body, now).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, ms: u64) -> Result<Reply, SendError> {
        Ok(Reply {
            status,
            retry_after: None,
            body: String::new(),
            duration: Duration::from_millis(ms),
        })
    }

    #[test]
    fn accepting_means_2xx_in_time_and_refusing_means_4xx() {
        let t = Duration::from_secs(1);
        assert_eq!(grade(Expect::Accept, &reply(204, 5), t).0, Verdict::Pass);
        assert_eq!(grade(Expect::Accept, &reply(204, 1500), t).0, Verdict::Fail);
        assert_eq!(grade(Expect::Accept, &reply(401, 5), t).0, Verdict::Fail);
        assert_eq!(grade(Expect::Refuse, &reply(401, 5), t).0, Verdict::Pass);
        assert_eq!(grade(Expect::Refuse, &reply(200, 5), t).0, Verdict::Fail);
        // A crash is not a refusal: the sender retries a 5xx, so forged requests hit it again.
        assert_eq!(grade(Expect::Refuse, &reply(500, 5), t).0, Verdict::Fail);
        let timed_out = Err(SendError::Timeout(t));
        assert_eq!(grade(Expect::Refuse, &timed_out, t).0, Verdict::Fail);
        assert_eq!(grade(Expect::Inform, &reply(200, 5), t).0, Verdict::Info);
    }

    #[test]
    fn the_example_is_not_what_a_reserialization_gives_back() {
        let body = example_body(None);
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_ne!(serde_json::to_vec(&parsed).expect("compact"), body);
        assert!(body.windows(4).any(|w| w == b"\n  \""), "indented");
    }

    #[test]
    fn the_battery_signs_only_what_it_means_to() {
        let key = EndpointKey::generate(Scheme::V1);
        let EndpointKey::Symmetric(secret) = &key else {
            unreachable!("generated as v1")
        };
        let body = br#"{"amount":4999}"#;
        let probes = battery(&key, body, 1_000_000);
        let valid = &probes[0];
        let signature = valid.signature.as_deref().unwrap_or_default();
        assert!(secret.verify(&valid.msg_id, valid.timestamp, &valid.body, signature));
        assert!(probes.iter().all(|p| p.msg_id.starts_with("cert_")));
        let tampered = probes
            .iter()
            .find(|p| p.name.contains("tampered"))
            .expect("tampered");
        assert_ne!(tampered.body, body.to_vec());
        let sig = tampered.signature.as_deref().unwrap_or_default();
        assert!(!secret.verify(&tampered.msg_id, tampered.timestamp, &tampered.body, sig));
        let rotation = probes
            .iter()
            .find(|p| p.name.contains("rotation"))
            .expect("rotation");
        let header = rotation.signature.as_deref().unwrap_or_default();
        assert!(secret.verify_header(&rotation.msg_id, rotation.timestamp, body, header));
        assert!(!secret.verify(
            &rotation.msg_id,
            rotation.timestamp,
            body,
            header.split(' ').next().unwrap_or_default()
        ));
    }
}
