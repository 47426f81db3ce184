//! The merchant portal at the router level: the real server, its real pages over HTTP.
//! Journeys in a real browser are in `sdk-tests/python/test_portal_browser.py`.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

/// A browser's view of the portal: a session sent in the header, as the portal's script does.
struct Portal {
    base: String,
    client: reqwest::Client,
    session: String,
    app: String,
}

/// What a page answered.
struct Page {
    status: StatusCode,
    location: Option<String>,
    /// Where htmx is told to put the address bar (`HX-Push-Url`).
    push_url: Option<String>,
    html: String,
}

impl Portal {
    /// Opens a portal link for `app` (with the access body given) and exchanges its key.
    async fn open(server: &TestServer, app: &str, access: Value) -> Self {
        let key = portal_key(server, app, access).await;
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .expect("client");
        let response = client
            .post(format!("{}/portal/session", server.base))
            .form(&[("key", key.as_str())])
            .send()
            .await
            .expect("exchange");
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        Self {
            base: server.base.clone(),
            client,
            session: body["session"].as_str().expect("session").to_string(),
            app: app.to_string(),
        }
    }

    async fn send(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Page {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.session));
        if method == Method::POST {
            request = request.form(form);
        }
        let response = request.send().await.expect("request");
        Page {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            push_url: response
                .headers()
                .get("hx-push-url")
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            html: response.text().await.expect("body"),
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(Method::GET, path, &[]).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, form).await
    }
}

/// The one-time key of a fresh portal link, from the link's fragment.
async fn portal_key(server: &TestServer, app: &str, access: Value) -> String {
    let (status, body) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), access)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["url"].as_str().expect("url");
    let prefix = format!("{}/portal/#key=", server.base);
    url.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url} is not a portal link on {prefix}"))
        .to_string()
}

fn seeded(settings: &mut hookd::config::Settings) {
    settings.seed = Some(hookd::config::Seed::Payments);
}

/// Creates an endpoint through the portal's form; answers its id.
async fn add_endpoint(portal: &Portal, url: &str, event_types: &[&str]) -> String {
    let mut form = vec![("url", url), ("description", "Orders service")];
    form.extend(event_types.iter().map(|t| ("event_types", *t)));
    let page = portal.post("/portal/endpoints", &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let location = page.location.expect("location");
    location
        .strip_prefix("/portal/endpoints/")
        .and_then(|rest| rest.split('?').next())
        .expect("endpoint page")
        .to_string()
}

#[tokio::test]
async fn a_portal_link_opens_one_session_for_one_application() {
    let server = TestServer::start().await;
    let app = server.create_app("Acme").await;
    let key = portal_key(&server, &app, json!({})).await;
    assert!(key.starts_with("hookd_link_"));
    let client = reqwest::Client::new();

    // Without a session the portal answers its sign-in shell, whatever page is asked for.
    let shell = client
        .get(format!("{}/portal/messages", server.base))
        .send()
        .await
        .expect("shell");
    assert_eq!(shell.status(), StatusCode::OK);
    let csp = shell.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(shell.text().await.expect("html").contains("data-boot"));

    // The key is exchanged once; the session comes back as JSON and as an HttpOnly cookie.
    let exchange = |key: String| {
        let client = client.clone();
        let url = format!("{}/portal/session", server.base);
        async move {
            client
                .post(url)
                .form(&[("key", key)])
                .send()
                .await
                .expect("post")
        }
    };
    let first = exchange(key.clone()).await;
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = first.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/portal"),
        "{cookie}"
    );
    let session = first.json::<Value>().await.expect("json")["session"]
        .as_str()
        .expect("session")
        .to_string();
    assert_eq!(exchange(key).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        exchange("hookd_link_made_up".into()).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // The session opens pages, by header or by cookie, and names the merchant.
    let page = client
        .get(format!("{}/portal/", server.base))
        .bearer_auth(&session)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("No endpoints yet") && html.contains("Acme"),
        "{html}"
    );
    let by_cookie = client
        .get(format!("{}/portal/", server.base))
        .header(COOKIE, format!("hookd_portal={session}"))
        .send()
        .await
        .expect("page");
    assert!(by_cookie
        .text()
        .await
        .expect("html")
        .contains("No endpoints yet"));

    // A portal session is not an API token.
    let (status, _) = server
        .call_as(&session, Method::GET, &format!("/api/v1/app/{app}"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The logout route ends it; after that the portal says so.
    let (status, _) = server
        .call_as(&session, Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let ended = client
        .get(format!("{}/portal/", server.base))
        .bearer_auth(&session)
        .header("hx-request", "true")
        .send()
        .await
        .expect("page");
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    assert!(ended
        .text()
        .await
        .expect("html")
        .contains("Your session has ended"));
    server.stop().await;
}

#[tokio::test]
async fn portal_access_refuses_what_svix_refuses() {
    let server = TestServer::start().await;
    let app = server.create_app("Acme").await;
    for (body, field) in [
        (json!({ "expiry": 5 }), "expiry"),
        (json!({ "expiry": 100_000_000 }), "expiry"),
        (json!({ "capabilities": ["FlyToTheMoon"] }), "capabilities"),
    ] {
        let (status, answer) = server
            .post(&format!("/api/v1/auth/app-portal-access/{app}"), body)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(answer.to_string().contains(field), "{answer}");
    }
    let (status, _) = server
        .post(
            "/api/v1/auth/app-portal-access/app_01J00000000000000000000000",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn a_merchant_manages_an_endpoint_and_sees_its_deliveries() {
    let server = TestServer::start_with(seeded).await;
    let receiver = Receiver::start().await;
    let app = server.create_app("Acme").await;
    let portal = Portal::open(&server, &app, json!({})).await;

    // The form offers the catalog; the endpoint subscribes to two payment events.
    let form = portal.get("/portal/endpoints/new").await;
    assert!(form.html.contains("payment.captured") && form.html.contains("payment.failed"));
    let endpoint = add_endpoint(
        &portal,
        &receiver.url("/hooks"),
        &["payment.captured", "payment.failed"],
    )
    .await;
    let (_, stored) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(stored["url"], receiver.url("/hooks"));
    assert_eq!(
        stored["filterTypes"],
        json!(["payment.captured", "payment.failed"])
    );
    let list = portal.get("/portal/").await;
    assert!(list.html.contains(&receiver.url("/hooks")));

    // The secret stays hidden until revealed; rotating shows a new one.
    let detail = portal.get(&format!("/portal/endpoints/{endpoint}")).await;
    let secret = server.endpoint_secret(&app, &endpoint).await;
    assert!(!detail.html.contains(&secret));
    let revealed = portal
        .post(
            &format!("/portal/endpoints/{endpoint}/secret"),
            &[("csrf", "")],
        )
        .await;
    assert!(revealed.html.contains(&secret), "{}", revealed.html);
    // The address bar shows the endpoint's page, which reloads; the action's address, loaded
    // again, leads there too.
    let page_url = format!("/portal/endpoints/{endpoint}");
    assert_eq!(revealed.push_url.as_deref(), Some(page_url.as_str()));
    let reloaded = portal
        .get(&format!("/portal/endpoints/{endpoint}/secret"))
        .await;
    assert_eq!(reloaded.status, StatusCode::SEE_OTHER);
    assert_eq!(reloaded.location.as_deref(), Some(page_url.as_str()));
    let rotated = portal
        .post(&format!("/portal/endpoints/{endpoint}/rotate"), &[])
        .await;
    let new_secret = server.endpoint_secret(&app, &endpoint).await;
    assert_ne!(new_secret, secret);
    assert!(rotated.html.contains(&new_secret) && rotated.html.contains("24 hours"));

    // A test event is delivered, and its page shows the receiver's answer.
    let sent = portal
        .post(
            &format!("/portal/endpoints/{endpoint}/test"),
            &[("event_type", "payment.captured")],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let message_page = sent.location.expect("message page");
    receiver.wait_delivered(1, Duration::from_secs(10)).await;
    let message = wait_for_page(&portal, &message_page, "HTTP 204").await;
    assert!(message.html.contains("payment.captured"));

    // A failing receiver: the attempt shows as failed; once it is back, a resend delivers.
    receiver.set_script(|_, _| Reply::Status(500));
    let failing = portal
        .post(
            &format!("/portal/endpoints/{endpoint}/test"),
            &[("event_type", "payment.failed")],
        )
        .await
        .location
        .expect("message page");
    wait_for_page(&portal, &failing, "HTTP 500").await;
    receiver.set_script(|_, _| Reply::Status(204));
    let msg_id = failing.rsplit('/').next().expect("id").to_string();
    let resent = portal
        .post(&format!("/portal/messages/{msg_id}/resend/{endpoint}"), &[])
        .await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER);
    wait_for_page(&portal, &failing, "HTTP 204").await;

    // The delivery log finds both, and filters them.
    let log = portal.get("/portal/messages").await;
    assert!(log.html.contains("payment.failed") && log.html.contains("payment.captured"));
    let captured = portal
        .get("/portal/messages?event_type=payment.captured")
        .await;
    assert!(captured.html.contains("payment.captured") && !captured.html.contains(&msg_id));

    // The list's 24-hour count is every attempt the endpoint had: the hourly counts are
    // written with the attempts. Retries may still land, so the two are read until they agree.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, attempts) = server
            .get(&format!(
                "/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250"
            ))
            .await;
        let made = attempts["data"].as_array().map_or(0, Vec::len);
        let list = portal.get("/portal/").await;
        if made > 2
            && list
                .html
                .contains(&format!(">{made} attempts in the last 24 h<"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the list never showed {made} attempts: {}",
            list.html
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Disable, enable, delete.
    let disabled = portal
        .post(&format!("/portal/endpoints/{endpoint}/disable"), &[])
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    let (_, stored) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(stored["disabled"], true);
    portal
        .post(&format!("/portal/endpoints/{endpoint}/enable"), &[])
        .await;
    let (_, stored) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(stored["disabled"], false);
    let confirm = portal
        .get(&format!("/portal/endpoints/{endpoint}/delete"))
        .await;
    assert!(confirm.html.contains("Delete this endpoint?"));
    let deleted = portal
        .post(&format!("/portal/endpoints/{endpoint}/delete"), &[])
        .await;
    assert_eq!(deleted.location.as_deref(), Some("/portal/?done=deleted"));
    let (status, _) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// Reloads a page until it shows `text` (the delivery engine works in the background).
async fn wait_for_page(portal: &Portal, path: &str, text: &str) -> Page {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let page = portal.get(path).await;
        if page.html.contains(text) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed {text:?}: {}",
            page.html
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_form_shows_the_apis_errors_beside_their_fields() {
    let server = TestServer::start_with(seeded).await;
    let app = server.create_app("Acme").await;
    let portal = Portal::open(&server, &app, json!({})).await;
    for (url, expected) in [
        ("not a url", "url-error"),
        // A literal private address is refused by the SSRF guard's classifier; nothing connects.
        (
            "http://10.1.2.3/hooks",
            "Deliveries may not reach this address",
        ),
    ] {
        let page = portal.post("/portal/endpoints", &[("url", url)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.html.contains(expected), "{}", page.html);
        assert!(page.html.contains("aria-invalid=\"true\""));
    }
    let page = portal
        .post(
            "/portal/endpoints",
            &[("url", "http://127.0.0.1:9/h"), ("throttle_rate", "fast")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains("messages per second"));
    let page = portal
        .post(
            "/portal/endpoints",
            &[
                ("url", "http://127.0.0.1:9/h"),
                ("headers", "no colon here"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains("is not a header line"));
    let (_, endpoints) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(endpoints["data"], json!([]), "nothing was saved");
    server.stop().await;
}

#[tokio::test]
async fn a_session_reaches_nothing_of_another_application() {
    let server = TestServer::start_with(seeded).await;
    let receiver = Receiver::start().await;
    server.create_event_type("order.shipped").await;
    let (theirs, their_endpoint) = server.merchant_with_endpoint(&receiver.url("/b")).await;
    let their_msg = server
        .send_message(
            &theirs,
            json!({ "eventType": "order.shipped", "payload": { "secret": "theirs" } }),
        )
        .await;
    // The attempt is recorded after the receiver answers: wait for the record, not the call.
    let attempts = server
        .wait_for(
            &format!("/api/v1/app/{theirs}/attempt/msg/{their_msg}"),
            Duration::from_secs(20),
            |page| page["data"].as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    let their_attempt = attempts["data"][0]["id"]
        .as_str()
        .expect("attempt")
        .to_string();
    let mine = server.create_app("Mine").await;
    let portal = Portal::open(&server, &mine, json!({})).await;

    let ep = format!("/portal/endpoints/{their_endpoint}");
    let msg = format!("/portal/messages/{their_msg}");
    for path in [
        ep.clone(),
        format!("{ep}/edit"),
        format!("{ep}/delete"),
        format!("{ep}/check"),
        msg.clone(),
        format!("{msg}/attempts/{their_attempt}"),
    ] {
        let page = portal.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {path}");
        assert!(!page.html.contains("theirs"));
    }
    for action in [
        "", "/secret", "/rotate", "/enable", "/disable", "/test", "/recover", "/delete", "/check",
    ] {
        let page = portal
            .post(
                &format!("{ep}{action}"),
                &[
                    ("url", "http://127.0.0.1:9/taken"),
                    ("event_type", "payment.captured"),
                    ("since", "2026-01-01T00:00"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "POST {ep}{action}");
    }
    let page = portal
        .post(&format!("{msg}/resend/{their_endpoint}"), &[])
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // Lists show only the session's own application.
    assert!(!portal
        .get("/portal/")
        .await
        .html
        .contains(&receiver.url("/b")));
    assert!(!portal
        .get("/portal/messages")
        .await
        .html
        .contains(&their_msg));
    let (_, endpoint) = server
        .get(&format!("/api/v1/app/{theirs}/endpoint/{their_endpoint}"))
        .await;
    assert_eq!(
        endpoint["url"],
        receiver.url("/b"),
        "nothing of theirs changed"
    );
    assert_eq!(endpoint["disabled"], false);
    assert_eq!(portal.app, mine);
    server.stop().await;
}

#[tokio::test]
async fn a_read_only_session_changes_nothing() {
    let server = TestServer::start_with(seeded).await;
    let receiver = Receiver::start().await;
    server.create_event_type("order.shipped").await;
    let (app, endpoint) = server.merchant_with_endpoint(&receiver.url("/a")).await;
    let msg = server
        .send_message(&app, json!({ "eventType": "order.shipped", "payload": {} }))
        .await;
    let portal = Portal::open(&server, &app, json!({ "readOnly": true })).await;
    let secret = server.endpoint_secret(&app, &endpoint).await;

    let detail = portal.get(&format!("/portal/endpoints/{endpoint}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.html.contains("read-only access"));
    // The only form a read-only page carries is signing out.
    assert_eq!(detail.html.matches("<form").count(), 1, "{}", detail.html);
    let ep = format!("/portal/endpoints/{endpoint}");
    for (path, form) in [
        (
            "/portal/endpoints".to_string(),
            vec![("url", "http://127.0.0.1:9/x")],
        ),
        (ep.clone(), vec![("url", "http://127.0.0.1:9/x")]),
        (format!("{ep}/secret"), vec![]),
        (format!("{ep}/rotate"), vec![]),
        (format!("{ep}/disable"), vec![]),
        (
            format!("{ep}/test"),
            vec![("event_type", "payment.captured")],
        ),
        (format!("{ep}/recover"), vec![("since", "2026-01-01T00:00")]),
        (format!("{ep}/delete"), vec![]),
        (format!("{ep}/check"), vec![]),
        (format!("{ep}/rotate"), vec![("scheme", "v1a")]),
        (format!("/portal/messages/{msg}/resend/{endpoint}"), vec![]),
    ] {
        let page = portal.post(&path, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "POST {path}");
        assert!(!page.html.contains(&secret));
    }
    for path in [
        "/portal/endpoints/new".to_string(),
        format!("{ep}/edit"),
        format!("{ep}/delete"),
    ] {
        assert_eq!(
            portal.get(&path).await.status,
            StatusCode::FORBIDDEN,
            "GET {path}"
        );
    }
    let check = portal.get(&format!("{ep}/check")).await;
    assert_eq!(check.status, StatusCode::OK);
    assert_eq!(check.html.matches("<form").count(), 1, "{}", check.html);
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.header("hookd-certify").is_empty()),
        "a read-only session checked the endpoint"
    );
    assert_eq!(server.endpoint_secret(&app, &endpoint).await, secret);
    let (_, stored) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(stored["url"], receiver.url("/a"));
    assert_eq!(stored["disabled"], false);
    server.stop().await;
}

#[tokio::test]
async fn forms_sent_with_the_cookie_need_the_csrf_token() {
    let server = TestServer::start_with(seeded).await;
    let app = server.create_app("Acme").await;
    let portal = Portal::open(&server, &app, json!({})).await;
    let cookie = format!("hookd_portal={}", portal.session);
    let post = |csrf: String| {
        let request = portal
            .client
            .post(format!("{}/portal/endpoints", server.base))
            .header(COOKIE, cookie.clone())
            .form(&[("url", "http://127.0.0.1:9/hooks"), ("csrf", csrf.as_str())]);
        async move { request.send().await.expect("post").status() }
    };
    assert_eq!(post(String::new()).await, StatusCode::FORBIDDEN);
    assert_eq!(post("forged".into()).await, StatusCode::FORBIDDEN);
    let (_, endpoints) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(endpoints["data"], json!([]));
    // The token every form of the session's pages carries works.
    let form = portal
        .client
        .get(format!("{}/portal/endpoints/new", server.base))
        .header(COOKIE, cookie.clone())
        .send()
        .await
        .expect("form")
        .text()
        .await
        .expect("html");
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_string();
    assert_eq!(post(csrf).await, StatusCode::SEE_OTHER);
    server.stop().await;
}

/// A receiver on 127.0.0.1 that answers every request with `status` and raw `body` bytes.
async fn raw_receiver(status: u16, body: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = stream.read(&mut buffer).await;
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body).await;
            });
        }
    });
    format!("http://{addr}/hooks")
}

#[tokio::test]
async fn hostile_names_payloads_and_responses_show_as_text() {
    let server = TestServer::start_with(|s| {
        seeded(s);
        s.max_payload_bytes = 2 * 1024 * 1024;
    })
    .await;
    let (status, app) = server
        .post(
            "/api/v1/app",
            json!({ "name": "<img src=x onerror=alert(1)>" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let app = app["id"].as_str().expect("id").to_string();
    server.create_event_type("order.shipped").await;
    let url = raw_receiver(500, b"<script>alert(3)</script>\x00\xff\xfe binary").await;
    let endpoint = server.create_endpoint(&app, &url, json!({})).await;
    let endpoint = endpoint["id"].as_str().expect("id");
    let portal = Portal::open(&server, &app, json!({})).await;

    let list = portal.get("/portal/").await;
    assert!(
        list.html.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "{}",
        list.html
    );
    assert!(!list.html.contains("<img src=x"));

    let scripted = server
        .send_message(
            &app,
            json!({ "eventType": "order.shipped", "payload": { "note": "<script>alert(2)</script>" } }),
        )
        .await;
    let page = wait_for_page(&portal, &format!("/portal/messages/{scripted}"), "HTTP 500").await;
    assert!(!page.html.contains("<script>alert"), "{}", page.html);
    assert!(page.html.contains("&#60;script&#62;alert(2)"));
    let (_, attempts) = server
        .get(&format!("/api/v1/app/{app}/attempt/msg/{scripted}"))
        .await;
    let attempt = attempts["data"][0]["id"].as_str().expect("attempt");
    let detail = portal
        .get(&format!("/portal/messages/{scripted}/attempts/{attempt}"))
        .await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(!detail.html.contains("<script>alert"));
    assert!(detail.html.contains("&#60;script&#62;alert(3)"));

    // A payload nested 100,000 levels deep and one of 1 MiB: pages stay up and bounded.
    let deep = format!(
        "{{\"eventType\":\"order.shipped\",\"payload\":{{\"a\":{}{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let response = server
        .client
        .post(format!("{}/api/v1/app/{app}/msg", server.base))
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .expect("deep");
    // The API accepts it (it only stores the bytes); its answer echoes the payload, too deep
    // for serde_json, so the id is read from the text.
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let text = response.text().await.expect("text");
    let deep_id = text
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("id")
        .to_string();
    let page = portal.get(&format!("/portal/messages/{deep_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.len() < 200 * 1024);
    assert!(page.html.contains("Only the first 64 KiB"));
    let big = server
        .send_message(
            &app,
            json!({ "eventType": "order.shipped", "payload": { "blob": "x".repeat(1024 * 1024 - 100) } }),
        )
        .await;
    let page = portal.get(&format!("/portal/messages/{big}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.len() < 200 * 1024, "{} bytes", page.html.len());
    assert!(page.html.contains("Only the first 64 KiB"));
    assert!(
        portal
            .get(&format!("/portal/endpoints/{endpoint}"))
            .await
            .status
            == StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn framing_and_brand_follow_the_settings() {
    let server = TestServer::start_with(|s| {
        s.portal.frame_ancestors = vec!["https://dashboard.example.com".into()];
        s.portal.brand_name = "Paylane".into();
        s.portal.accent_color = "#0a7c59".into();
    })
    .await;
    let app = server.create_app("Acme").await;
    let portal = Portal::open(&server, &app, json!({})).await;
    let response = portal
        .client
        .get(format!("{}/portal/", server.base))
        .bearer_auth(&portal.session)
        .send()
        .await
        .expect("page");
    let csp = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.ends_with("frame-ancestors https://dashboard.example.com"),
        "{csp}"
    );
    assert!(response.text().await.expect("html").contains("Paylane"));
    let css = portal.get("/portal/brand.css").await;
    assert!(css.html.contains("--accent: #0a7c59"));
    let htmx = portal.get("/portal/assets/htmx-2.0.8.min.js").await;
    assert_eq!(htmx.status, StatusCode::OK);
    assert!(htmx.html.contains("htmx"));
    assert_eq!(
        portal.get("/portal/assets/../../etc/passwd").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn a_merchant_checks_a_v1a_endpoint_and_switches_back_to_a_secret() {
    let server = TestServer::start_with(seeded).await;
    let app = server.create_app("Acme").await;
    let (status, created) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({ "url": "http://127.0.0.1:9/unused", "signatureScheme": "v1a" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let endpoint = created["id"].as_str().expect("id").to_string();
    let public = server.endpoint_secret(&app, &endpoint).await;
    let receiver = crate::certify::verifying_merchant(vec![public.clone()]).await;
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{endpoint}"),
            Some(json!({ "url": receiver.url })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let portal = Portal::open(&server, &app, json!({})).await;
    let ep = format!("/portal/endpoints/{endpoint}");

    // The page offers the public key, and code that verifies with it.
    let page = portal.get(&ep).await;
    assert!(page.html.contains("Verification key"), "{}", page.html);
    assert!(
        page.html.contains("Ed25519PublicKey"),
        "the v1a Python sample"
    );
    assert!(!page.html.contains("standardwebhooks"), "no v1 sample");
    let shown = portal.post(&format!("{ep}/secret"), &[]).await;
    assert!(shown.html.contains(&public));
    assert!(!shown.html.contains("whsk_") && !shown.html.contains("whsec_"));

    // Never checked, then checked: every check passes and the report is kept.
    let check = portal.get(&format!("{ep}/check")).await;
    assert!(check.html.contains("never checked"), "{}", check.html);
    let ran = portal.post(&format!("{ep}/check"), &[]).await;
    assert_eq!(ran.status, StatusCode::SEE_OTHER, "{}", ran.html);
    assert_eq!(
        ran.location.as_deref(),
        Some(format!("{ep}/check").as_str())
    );
    let report = portal.get(&format!("{ep}/check")).await;
    assert!(report.html.contains("Secure"), "{}", report.html);
    assert!(
        report.html.contains("Your endpoint refuses forged"),
        "{}",
        report.html
    );
    assert_eq!(
        report.html.matches(">Failed<").count(),
        0,
        "{}",
        report.html
    );
    assert_eq!(
        report.html.matches(">Passed<").count(),
        8,
        "{}",
        report.html
    );
    assert!(report.html.contains("v1a"));
    assert!(portal.get(&ep).await.html.contains("Last checked"));
    assert_eq!(receiver.seen.lock().expect("log").len(), 9);
    // At once again: told to wait, nothing sent.
    let again = portal.post(&format!("{ep}/check"), &[]).await;
    let wait = again.location.expect("redirect");
    assert!(wait.ends_with("?done=too_soon"), "{wait}");
    assert!(portal.get(&wait).await.html.contains("Wait ten seconds"));
    assert_eq!(receiver.seen.lock().expect("log").len(), 9);

    // Back to a shared secret: shown once, both signatures for a day.
    let switched = portal
        .post(&format!("{ep}/rotate"), &[("scheme", "v1")])
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.html);
    assert!(switched.html.contains("Signing secret"));
    let secret = server.endpoint_secret(&app, &endpoint).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(switched.html.contains(&secret));
    assert!(switched.html.contains("both the old and the new secret"));
    let (_, stored) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(stored["signatureScheme"], "v1");
    server.stop().await;
}
