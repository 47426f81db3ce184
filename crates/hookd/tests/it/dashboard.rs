//! The operator dashboard at the router level: the real server and its pages over HTTP, on
//! both backends. Journeys in a real browser are in `sdk-tests/python/test_dashboard_browser.py`.

use std::time::Duration;

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestServer;
use crate::receiver::{Receiver, Reply};

/// A browser signed in to the dashboard.
struct Operator {
    base: String,
    client: reqwest::Client,
    cookie: String,
    csrf: String,
}

/// What a page answered.
struct Page {
    status: StatusCode,
    location: Option<String>,
    html: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

async fn page_of(response: reqwest::Response) -> Page {
    Page {
        status: response.status(),
        location: response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        html: response.text().await.expect("body"),
    }
}

/// The value of `name="csrf"` in a page.
fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..].split('"').next().expect("token").to_string()
}

/// The cookie a sign-in with `token` sets, or the page it answered instead.
async fn sign_in(base: &str, token: &str) -> Result<String, Page> {
    let response = client()
        .post(format!("{base}/ui/login"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sign in");
    if response.status() != StatusCode::SEE_OTHER {
        return Err(page_of(response).await);
    }
    let cookie = response.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui"),
        "{cookie}"
    );
    Ok(cookie.split(';').next().expect("name=value").to_string())
}

impl Operator {
    async fn sign_in(server: &TestServer, token: &str) -> Self {
        let cookie = sign_in(&server.base, token)
            .await
            .unwrap_or_else(|page| panic!("sign-in refused: {}", page.html));
        let mut operator = Self {
            base: server.base.clone(),
            client: client(),
            cookie,
            csrf: String::new(),
        };
        let home = operator.get("/ui/").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.html);
        operator.csrf = csrf_in(&home.html);
        operator
    }

    async fn get(&self, path: &str) -> Page {
        page_of(
            self.client
                .get(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie)
                .send()
                .await
                .expect("get"),
        )
        .await
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let mut form = form.to_vec();
        form.push(("csrf", &self.csrf));
        self.post_raw(path, &form).await
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Page {
        page_of(
            self.client
                .post(format!("{}{path}", self.base))
                .header(COOKIE, &self.cookie)
                .form(form)
                .send()
                .await
                .expect("post"),
        )
        .await
    }

    /// Runs an action: asks, is asked to confirm, confirms.
    async fn act(&self, form: &[(&str, &str)]) -> Page {
        let asked = self.post("/ui/actions", form).await;
        assert_eq!(asked.status, StatusCode::OK, "{}", asked.html);
        assert!(asked.html.contains("Yes, do it"), "{}", asked.html);
        let mut confirmed = form.to_vec();
        confirmed.push(("confirmed", "yes"));
        self.post("/ui/actions", &confirmed).await
    }
}

/// Creates an org API token from the System page and answers it.
async fn org_token(operator: &Operator, name: &str) -> String {
    let page = operator
        .post("/ui/tokens", &[("name", name), ("app", "")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let marker = "id=\"new-token\" type=\"text\" readonly value=\"";
    let start = page.html.find(marker).expect("the new token") + marker.len();
    page.html[start..]
        .split('"')
        .next()
        .expect("token")
        .to_string()
}

fn seeded(settings: &mut hookd::config::Settings) {
    settings.seed = Some(hookd::config::Seed::Payments);
}

fn payment(event: &str, payment_id: &str, status: &str) -> Value {
    json!({
        "event": event,
        "timestamp": "2026-12-06T10:00:00Z",
        "data": {"paymentId": payment_id, "status": status, "amount": 4999, "currency": "EUR", "orderId": "ord_1"}
    })
}

#[tokio::test]
async fn an_org_token_signs_in_and_signing_out_ends_the_session() {
    let server = TestServer::start().await;
    let admin = Operator::sign_in(&server, &server.token).await;
    let token = org_token(&admin, "on-call").await;
    assert!(token.starts_with("hookd_org_"), "{token}");

    // What is not an org token opens nothing.
    let app = server.create_app("Acme").await;
    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let app_token = access["token"].as_str().expect("app token");
    for wrong in ["", "hookd_org_made_up", app_token] {
        let refused = sign_in(&server.base, wrong).await.expect_err("refused");
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(
            refused.html.contains("does not open the dashboard"),
            "{}",
            refused.html
        );
    }

    // The org token does; pages name who signed in and carry a strict policy.
    let operator = Operator::sign_in(&server, &token).await;
    let response = operator
        .client
        .get(format!("{}/ui/", server.base))
        .header(COOKIE, &operator.cookie)
        .send()
        .await
        .expect("page");
    let csp = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(response.text().await.expect("html").contains("on-call"));

    // Signing out needs the form's token, then ends the session for good.
    let forged = operator.post_raw("/ui/logout", &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(operator.get("/ui/").await.status, StatusCode::OK);
    let out = operator.post("/ui/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = operator.get("/ui/").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.html.contains("Sign in"), "{}", after.html);

    // A revoked token signs in no more.
    let tokens = admin.get("/ui/system").await;
    let id_start = tokens
        .html
        .find("on-call <span class=\"small muted\"><code>")
        .expect("listed");
    let token_id = tokens.html[id_start..]
        .split("<code>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("token id")
        .to_string();
    let revoked = admin
        .act(&[("action", "token_revoke"), ("value", &token_id)])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.html);
    assert!(sign_in(&server.base, &token).await.is_err());
    let (status, _) = server
        .call_as(&token, reqwest::Method::GET, "/api/v1/app", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn nobody_but_an_operator_gets_a_page_or_an_action() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, endpoint) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.created", "payload": {"a": 1}}),
        )
        .await;
    let (_, access) = server
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let app_token = access["token"].as_str().expect("app token").to_string();
    let url = access["url"].as_str().expect("url").to_string();
    let key = url.split("#key=").nth(1).expect("key").to_string();
    let portal_session = client()
        .post(format!("{}/portal/session", server.base))
        .form(&[("key", key.as_str())])
        .send()
        .await
        .expect("exchange")
        .json::<Value>()
        .await
        .expect("json")["session"]
        .as_str()
        .expect("session")
        .to_string();
    let gets = [
        "/ui/".to_string(),
        "/ui/overview".into(),
        "/ui/apps".into(),
        format!("/ui/apps/{app}"),
        format!("/ui/apps/{app}/messages/{msg}"),
        format!("/ui/apps/{app}/endpoints/{endpoint}/check"),
        "/ui/search?q=x".into(),
        "/ui/endpoints?url=127".into(),
        "/ui/audit".into(),
        "/ui/tasks/qtask_x".into(),
        "/ui/event-types".into(),
        "/ui/event-types/edit".into(),
        "/ui/system".into(),
    ];
    let posts: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/ui/actions".into(),
            vec![
                ("action", "disable".into()),
                ("app_id", app.clone()),
                ("endpoint_id", endpoint.clone()),
                ("confirmed", "yes".into()),
            ],
        ),
        (
            format!("/ui/apps/{app}/portal-link"),
            vec![("expiry", "3600".into())],
        ),
        ("/ui/tokens".into(), vec![("name", "sneaky".into())]),
        (
            "/ui/event-types/edit".into(),
            vec![("name", "sneaky.event".into()), ("intent", "save".into())],
        ),
        ("/ui/logout".into(), vec![]),
    ];
    // No cookie, a portal session, an application token and a raw org token in the cookie.
    let cookies = [
        None,
        Some(format!("hookd_ui={portal_session}")),
        Some(format!("hookd_ui={app_token}")),
        Some(format!("hookd_ui={}", server.token)),
        Some(format!("hookd_portal={portal_session}")),
    ];
    let http = client();
    for cookie in &cookies {
        for path in &gets {
            let mut request = http.get(format!("{}{path}", server.base));
            if let Some(cookie) = cookie {
                request = request.header(COOKIE, cookie);
            }
            let page = page_of(request.send().await.expect("get")).await;
            assert_eq!(
                page.status,
                StatusCode::UNAUTHORIZED,
                "GET {path} with {cookie:?}"
            );
            assert!(page.html.contains("Sign in"), "GET {path}");
            assert!(
                !page.html.contains(&msg) && !page.html.contains(&endpoint),
                "GET {path} leaked"
            );
        }
        for (path, form) in &posts {
            let mut request = http.post(format!("{}{path}", server.base)).form(form);
            if let Some(cookie) = cookie {
                request = request.header(COOKIE, cookie);
            }
            let page = page_of(request.send().await.expect("post")).await;
            assert_eq!(
                page.status,
                StatusCode::UNAUTHORIZED,
                "POST {path} with {cookie:?}"
            );
        }
    }
    // Nothing changed.
    let (_, found) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert_eq!(found["disabled"], json!(false));
    let (_, types) = server.get("/api/v1/event-type").await;
    assert!(!types.to_string().contains("sneaky"));
    let operator = Operator::sign_in(&server, &server.token).await;
    let audit = operator.get("/ui/audit").await;
    assert!(audit.html.contains("Nothing recorded"), "{}", audit.html);
    assert!(!operator.get("/ui/system").await.html.contains("sneaky"));
}

#[tokio::test]
async fn a_payment_id_finds_every_message_endpoint_and_attempt_across_applications() {
    let server = TestServer::start_with(seeded).await;
    let ok = Receiver::start().await;
    let failing = Receiver::scripted(|_, _| Reply::Status(500)).await;
    let shop = server.create_app("Shop").await;
    server
        .create_endpoint(&shop, &ok.url("/orders"), json!({}))
        .await;
    server
        .create_endpoint(&shop, &failing.url("/ledger"), json!({}))
        .await;
    let other = server.create_app("Other shop").await;
    server
        .create_endpoint(&other, &ok.url("/other"), json!({}))
        .await;
    let created = server
        .send_message(
            &shop,
            json!({"eventType": "payment.created", "eventId": "evt_c1", "orderingKey": "pay_1",
                   "payload": payment("payment.created", "pay_1", "created")}),
        )
        .await;
    let captured = server
        .send_message(
            &shop,
            json!({"eventType": "payment.captured", "orderingKey": "pay_1",
                   "payload": payment("payment.captured", "pay_1", "captured")}),
        )
        .await;
    let elsewhere = server
        .send_message(
            &other,
            json!({"eventType": "payment.created", "orderingKey": "pay_2",
                   "payload": payment("payment.created", "pay_2", "created")}),
        )
        .await;
    ok.wait_delivered(3, Duration::from_secs(10)).await;
    let operator = Operator::sign_in(&server, &server.token).await;
    // Until the failing endpoint's first attempts are recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let found = loop {
        let page = operator.get("/ui/search?q=pay_1").await;
        assert_eq!(page.status, StatusCode::OK);
        if page.html.matches("HTTP 500").count() >= 2 || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for expected in [
        &created, &captured, "/orders", "/ledger", "HTTP 204", "HTTP 500",
    ] {
        assert!(
            found.html.contains(expected),
            "{expected} missing: {}",
            found.html
        );
    }
    assert!(
        !found.html.contains(&elsewhere),
        "another payment's message was found"
    );
    // The same message by its eventId and by its id; the other shop's by its payment id.
    assert!(operator
        .get("/ui/search?q=evt_c1")
        .await
        .html
        .contains(&created));
    let by_id = operator.get(&format!("/ui/search?q={captured}")).await;
    assert!(by_id.html.contains(&captured) && !by_id.html.contains(&created));
    assert!(operator
        .get("/ui/search?q=pay_2")
        .await
        .html
        .contains(&elsewhere));
    let nothing = operator.get("/ui/search?q=pay_404").await;
    assert!(nothing.html.contains("Nothing matches"), "{}", nothing.html);
    // Filters: by event type across applications.
    let captures = operator.get("/ui/search?event_type=payment.captured").await;
    assert!(captures.html.contains(&captured) && !captures.html.contains(&elsewhere));
    // Endpoints by URL, applications by name.
    assert!(operator
        .get("/ui/endpoints?url=/ledger")
        .await
        .html
        .contains("/ledger"));
    let apps = operator.get("/ui/apps?q=other").await;
    assert!(apps.html.contains(&other) && !apps.html.contains(&format!("/ui/apps/{shop}\"")));
}

#[tokio::test]
async fn every_action_is_confirmed_made_through_the_api_and_audited() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let (app, endpoint) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.created", "payload": {"a": 1}}),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(10)).await;
    let operator = Operator::sign_in(&server, &server.token).await;
    let on = |action: &'static str| {
        vec![
            ("action", action),
            ("app_id", app.as_str()),
            ("endpoint_id", endpoint.as_str()),
        ]
    };
    let endpoint_state = || async {
        server
            .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
            .await
            .1
    };

    // Asking is not doing; a forged form does nothing either.
    let asked = operator.post("/ui/actions", &on("disable")).await;
    assert!(asked.html.contains("Disable endpoint"), "{}", asked.html);
    assert_eq!(endpoint_state().await["disabled"], json!(false));
    let mut forged = on("disable");
    forged.extend([("confirmed", "yes"), ("csrf", "forged")]);
    assert_eq!(
        operator.post_raw("/ui/actions", &forged).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(endpoint_state().await["disabled"], json!(false));

    // Disable, enable, rate limit, rotate.
    let done = operator.act(&on("disable")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(
        done.location.as_deref(),
        Some(format!("/ui/apps/{app}?done=disable").as_str())
    );
    assert_eq!(endpoint_state().await["disabled"], json!(true));
    operator.act(&on("enable")).await;
    assert_eq!(endpoint_state().await["disabled"], json!(false));
    let mut limit = on("rate_limit");
    limit.push(("value", "7"));
    operator.act(&limit).await;
    assert_eq!(endpoint_state().await["throttleRate"], json!(7));
    let mut bad_limit = on("rate_limit");
    bad_limit.extend([("value", "fast"), ("confirmed", "yes")]);
    assert_eq!(
        operator.post("/ui/actions", &bad_limit).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let secret = server.endpoint_secret(&app, &endpoint).await;
    operator.act(&on("rotate")).await;
    assert_ne!(server.endpoint_secret(&app, &endpoint).await, secret);

    // Resend to one endpoint and to all: two more deliveries arrive.
    let mut resend = on("resend");
    resend.push(("msg_id", &msg));
    operator.act(&resend).await;
    // (A resend while the last one is still on its way has nothing more to do.)
    receiver.wait_delivered(2, Duration::from_secs(10)).await;
    operator
        .act(&[("action", "resend_all"), ("app_id", &app), ("msg_id", &msg)])
        .await;
    receiver.wait_delivered(3, Duration::from_secs(10)).await;

    // Recover since an hour ago: a task page that shows it finish.
    let mut recover = on("recover");
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let since = since.format("%Y-%m-%d %H:%M").to_string();
    recover.push(("value", &since));
    let started = operator.act(&recover).await;
    let task_page = started.location.expect("task page");
    assert!(task_page.starts_with("/ui/tasks/qtask_"), "{task_page}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !operator.get(&task_page).await.html.contains("Finished") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the task did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Purge the payload.
    operator
        .act(&[("action", "purge"), ("app_id", &app), ("msg_id", &msg)])
        .await;
    let (_, message) = server.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
    assert_eq!(message["payload"], json!({}));

    // Check the endpoint (a receiver that answers 204 to anything): the report page says
    // what it gets wrong; the merchant's API sees the same report.
    let checked = operator.act(&on("certify")).await;
    let report_page = format!("/ui/apps/{app}/endpoints/{endpoint}/check");
    assert_eq!(checked.location.as_deref(), Some(report_page.as_str()));
    let report = operator.get(&report_page).await;
    assert!(report.html.contains("6 to fix"), "{}", report.html);
    assert_eq!(report.html.matches(">Failed<").count(), 6);
    assert!(receiver
        .received()
        .iter()
        .any(|r| r.header("hookd-certify") == "1"));
    let (_, kept) = server
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/certify"))
        .await;
    assert_eq!(kept["data"][0]["passed"], json!(false), "{kept}");

    // Every one is in the audit log, under the admin token, newest first; filters work.
    let audit = operator.get("/ui/audit").await;
    let order = [
        "certify",
        "purge",
        "recover",
        "resend_all",
        "resend",
        "rotate",
        "rate_limit",
        "enable",
        "disable",
    ];
    let mut at = 0;
    for action in order {
        let needle = format!("<code>{action}</code>");
        let found = audit.html[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{action} not in the log (in order): {}", audit.html));
        at += found + needle.len();
    }
    assert!(audit.html.contains("admin token (HOOKD_ADMIN_TOKEN)"));
    assert!(audit.html.contains("7 per second"));
    assert!(audit.html.contains("6 failed"));
    let filtered = operator.get("/ui/audit?action=disable").await;
    assert!(
        filtered.html.contains("<code>disable</code>")
            && !filtered.html.contains("<code>enable</code>")
    );
}

#[tokio::test]
async fn the_overview_counts_what_came_in_and_what_went_out() {
    let server = TestServer::start().await;
    let receiver = Receiver::scripted(|n, _| Reply::Status(if n == 0 { 500 } else { 204 })).await;
    let (app, _) = server.merchant_with_endpoint(&receiver.url("/hook")).await;
    let operator = Operator::sign_in(&server, &server.token).await;
    let before = operator.get("/ui/overview").await;
    assert!(
        before.html.contains("<p class=\"tile-value\">0</p>"),
        "{}",
        before.html
    );
    for _ in 0..3 {
        server
            .send_message(&app, json!({"eventType": "payment.created", "payload": {}}))
            .await;
    }
    receiver.wait_delivered(3, Duration::from_secs(10)).await;
    // Each node reports its counts every 2 seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let live = operator.get("/ui/overview").await;
        let messages_in = tile(&live.html, "Messages in, last hour");
        let delivered = tile(&live.html, "Delivered, last hour");
        if messages_in == "3" && delivered == "3" {
            assert_eq!(tile(&live.html, "Failure rate, last hour"), "25.0 %");
            assert!(live.html.contains("1 failed attempts"), "{}", live.html);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the overview never showed 3 in and 3 delivered: {}",
            live.html
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The system page lists this node, and no secret.
    let system = operator.get("/ui/system").await;
    assert!(system.html.contains("this page"), "{}", system.html);
    assert!(
        !system.html.contains(&server.token),
        "the admin token is shown"
    );
}

/// The value of the overview tile labelled `label`.
fn tile(html: &str, label: &str) -> String {
    let start = html
        .find(label)
        .unwrap_or_else(|| panic!("no tile {label}"))
        + label.len();
    let rest = &html[start..];
    let value = rest.find("tile-value\">").expect("value") + "tile-value\">".len();
    rest[value..].split('<').next().expect("text").to_string()
}

#[tokio::test]
async fn event_types_are_saved_only_with_a_schema_that_compiles_and_accepts_its_example() {
    let server = TestServer::start().await;
    let operator = Operator::sign_in(&server, &server.token).await;
    let form = |schema: &'static str, example: &'static str| {
        vec![
            ("name", "payment.disputed"),
            ("existing", ""),
            ("description", "A cardholder disputed the payment."),
            ("schema", schema),
            ("example", example),
            ("validate", "on"),
            ("intent", "save"),
        ]
    };
    let not_json = operator.post("/ui/event-types/edit", &form("{", "")).await;
    assert_eq!(not_json.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        not_json.html.contains("This is not JSON"),
        "{}",
        not_json.html
    );
    let schema =
        r#"{"type":"object","required":["amount"],"properties":{"amount":{"type":"integer"}}}"#;
    let refused = operator
        .post("/ui/event-types/edit", &form(schema, r#"{"amount":"ten"}"#))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.html.contains("refuses the example at /amount"),
        "{}",
        refused.html
    );
    let not_compiling = operator
        .post("/ui/event-types/edit", &form(r#"{"type":"nonsense"}"#, ""))
        .await;
    assert_eq!(
        not_compiling.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        not_compiling.html
    );
    let (status, _) = server.get("/api/v1/event-type/payment.disputed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let saved = operator
        .post("/ui/event-types/edit", &form(schema, r#"{"amount":10}"#))
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let (_, stored) = server.get("/api/v1/event-type/payment.disputed").await;
    assert_eq!(stored["schemas"]["1"]["examples"][0]["amount"], json!(10));
    assert_eq!(stored["archived"], json!(false));
    // Creating it again is refused; archiving it is recorded.
    let again = operator
        .post("/ui/event-types/edit", &form(schema, r#"{"amount":10}"#))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let archived = operator
        .post(
            "/ui/event-types/edit",
            &[
                ("existing", "payment.disputed"),
                ("description", "A cardholder disputed the payment."),
                ("schema", schema),
                ("example", r#"{"amount":10}"#),
                ("intent", "archive"),
            ],
        )
        .await;
    assert_eq!(archived.status, StatusCode::SEE_OTHER, "{}", archived.html);
    let (_, stored) = server.get("/api/v1/event-type/payment.disputed").await;
    assert_eq!(stored["archived"], json!(true));
    let audit = operator.get("/ui/audit").await;
    assert!(audit.html.contains("event_type.archive") && audit.html.contains("event_type.save"));
}

#[tokio::test]
async fn what_merchants_and_receivers_send_is_shown_as_text() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let hostile = "<script>alert(1)</script>";
    let (_, app) = server
        .post("/api/v1/app", json!({ "name": hostile, "uid": "evil" }))
        .await;
    let app = app["id"].as_str().expect("id").to_string();
    server
        .create_endpoint(
            &app,
            &receiver.url("/hook?x=\"><img src=x onerror=alert(1)>"),
            json!({}),
        )
        .await;
    let msg = server
        .send_message(
            &app,
            json!({"eventType": "payment.created", "orderingKey": "pay_x",
                   "payload": {"note": hostile, "close": "</pre><script>alert(2)</script>"}}),
        )
        .await;
    receiver.wait_delivered(1, Duration::from_secs(10)).await;
    let operator = Operator::sign_in(&server, &server.token).await;
    for path in [
        "/ui/apps".to_string(),
        format!("/ui/apps/{app}"),
        format!("/ui/apps/{app}/messages/{msg}"),
        "/ui/search?q=pay_x".into(),
        "/ui/search?q=%3Cscript%3Ealert(1)%3C/script%3E".into(),
        "/ui/endpoints?url=hook".into(),
    ] {
        let page = operator.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            !page.html.contains("<script>alert"),
            "{path} runs a script: {}",
            page.html
        );
        assert!(
            !page.html.contains("<img src=x"),
            "{path} has markup from data"
        );
    }
    assert!(operator
        .get(&format!("/ui/apps/{app}"))
        .await
        .html
        .contains("&#60;script&#62;alert(1)"));
}

#[tokio::test]
async fn a_portal_link_made_here_opens_the_merchants_portal_once() {
    let server = TestServer::start().await;
    let app = server.create_app("Acme").await;
    let operator = Operator::sign_in(&server, &server.token).await;
    let path = format!("/ui/apps/{app}/portal-link");

    // Only the offered lifetimes: a forged one is refused and nothing is made or recorded.
    let forged = operator.post(&path, &[("expiry", "99999999")]).await;
    assert_eq!(
        forged.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        forged.html
    );
    assert!(!forged.html.contains("#key="), "{}", forged.html);
    assert!(operator
        .get("/ui/audit")
        .await
        .html
        .contains("Nothing recorded"));

    let made = operator.post(&path, &[("expiry", "3600")]).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.html);
    let marker = "id=\"portal-link\" type=\"text\" readonly value=\"";
    let start = made.html.find(marker).expect("the link") + marker.len();
    let link = made.html[start..].split('"').next().expect("link");
    let key = link.split("#key=").nth(1).expect("a key in the fragment");
    let exchange = || async {
        client()
            .post(format!("{}/portal/session", server.base))
            .form(&[("key", key)])
            .send()
            .await
            .expect("exchange")
            .status()
    };
    assert_eq!(exchange().await, StatusCode::OK);
    assert_eq!(
        exchange().await,
        StatusCode::UNAUTHORIZED,
        "a link opens once"
    );
    let audit = operator.get("/ui/audit").await;
    assert!(audit.html.contains("portal_link.create"), "{}", audit.html);
}
