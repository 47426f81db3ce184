//! Malformed and hostile requests get a clear 4xx with `{code, detail}`; never a 5xx.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::TestServer;

/// One bad request: what is sent and the status expected.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    expect: u16,
}

fn case(name: &'static str, method: Method, path: &str, body: Option<Value>, expect: u16) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        content_type: Some("application/json"),
        body: body.map(|b| b.to_string().into_bytes()),
        expect,
    }
}

fn raw(
    name: &'static str,
    path: &str,
    content_type: Option<&'static str>,
    body: &[u8],
    expect: u16,
) -> Case {
    Case {
        name,
        method: Method::POST,
        path: path.to_string(),
        content_type,
        body: Some(body.to_vec()),
        expect,
    }
}

/// Sends one case with the org token; answers the status and the JSON body (or null).
async fn send(server: &TestServer, case: &Case) -> (u16, Value) {
    let mut request = server
        .client
        .request(case.method.clone(), format!("{}{}", server.base, case.path))
        .bearer_auth(&server.token);
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_requests_get_clear_client_errors() {
    let server = TestServer::start_with(|s| s.max_payload_bytes = 4096).await;
    let app = server.create_app("Merchant").await;
    let endpoint = server
        .create_endpoint(&app, "http://127.0.0.1:9/hook", json!({}))
        .await;
    let ep = endpoint["id"].as_str().expect("id").to_string();
    server.create_event_type("ok.type").await;
    let msg = format!("/api/v1/app/{app}/msg");
    let eps = format!("/api/v1/app/{app}/endpoint");
    let nonsense_schema = json!({"1": {"type": "nonsense-type"}});
    let big = format!(
        r#"{{"eventType":"a.b","payload":{{"x":"{}"}}}}"#,
        "y".repeat(5000)
    );

    let cases = vec![
        raw(
            "malformed JSON",
            &msg,
            Some("application/json"),
            b"{\"eventType\": ",
            400,
        ),
        raw(
            "JSON with trailing garbage",
            &msg,
            Some("application/json"),
            b"{} {}",
            400,
        ),
        raw(
            "not JSON at all",
            &msg,
            Some("application/json"),
            b"hello",
            400,
        ),
        raw(
            "wrong content type",
            &msg,
            Some("text/plain"),
            b"{\"a\":1}",
            415,
        ),
        raw(
            "payload over the limit",
            &msg,
            Some("application/json"),
            big.as_bytes(),
            413,
        ),
        raw(
            "invalid UTF-8",
            &msg,
            Some("application/json"),
            &[0x7b, 0xff, 0xfe, 0x7d],
            400,
        ),
        case(
            "missing eventType",
            Method::POST,
            &msg,
            Some(json!({"payload": {}})),
            422,
        ),
        case(
            "missing payload",
            Method::POST,
            &msg,
            Some(json!({"eventType": "a.b"})),
            422,
        ),
        case(
            "payload not an object",
            Method::POST,
            &msg,
            Some(json!({"eventType": "a.b", "payload": [1]})),
            422,
        ),
        case(
            "eventType wrong type",
            Method::POST,
            &msg,
            Some(json!({"eventType": 7, "payload": {}})),
            422,
        ),
        case(
            "eventType with spaces",
            Method::POST,
            &msg,
            Some(json!({"eventType": "a b", "payload": {}})),
            422,
        ),
        case(
            "too many channels",
            Method::POST,
            &msg,
            Some(
                json!({"eventType": "a.b", "payload": {}, "channels": ["a","b","c","d","e","f","g","h","i","j","k"]}),
            ),
            422,
        ),
        case(
            "message to a missing app",
            Method::POST,
            "/api/v1/app/app_missing/msg",
            Some(json!({"eventType": "a.b", "payload": {}})),
            404,
        ),
        case(
            "endpoint URL not a URL",
            Method::POST,
            &eps,
            Some(json!({"url": "not a url"})),
            422,
        ),
        case(
            "endpoint URL with ftp scheme",
            Method::POST,
            &eps,
            Some(json!({"url": "ftp://example.com/x"})),
            422,
        ),
        case(
            "endpoint URL with credentials",
            Method::POST,
            &eps,
            Some(json!({"url": "https://user:pw@example.com/"})),
            422,
        ),
        case(
            "endpoint URL too long",
            Method::POST,
            &eps,
            Some(json!({"url": format!("https://example.com/{}", "a".repeat(3000))})),
            422,
        ),
        case(
            "endpoint secret malformed",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "secret": "plain"})),
            422,
        ),
        case(
            "endpoint unknown event type",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "filterTypes": ["no.such.type"]})),
            422,
        ),
        case(
            "endpoint empty event types",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "filterTypes": []})),
            422,
        ),
        case(
            "endpoint reserved header",
            Method::PUT,
            &format!("{eps}/{ep}/headers"),
            Some(json!({"headers": {"webhook-signature": "x"}})),
            422,
        ),
        case(
            "endpoint header marking a check",
            Method::PUT,
            &format!("{eps}/{ep}/headers"),
            Some(json!({"headers": {"Hookd-Certify": "1"}})),
            422,
        ),
        case(
            "endpoint header with newline",
            Method::PUT,
            &format!("{eps}/{ep}/headers"),
            Some(json!({"headers": {"x-a": "a\r\nb: c"}})),
            422,
        ),
        case(
            "endpoint throttle rate zero",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "throttleRate": 0})),
            422,
        ),
        case(
            "endpoint throttle rate negative",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "throttleRate": -5})),
            422,
        ),
        case(
            "rotate with a bad key",
            Method::POST,
            &format!("{eps}/{ep}/secret/rotate"),
            Some(json!({"key": "whsec_short"})),
            422,
        ),
        case(
            "app without name",
            Method::POST,
            "/api/v1/app",
            Some(json!({"uid": "x"})),
            422,
        ),
        case(
            "app with empty name",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": ""})),
            422,
        ),
        case(
            "app uid with bad characters",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "n", "uid": "a b"})),
            422,
        ),
        case(
            "app name wrong type",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": {"x": 1}})),
            422,
        ),
        case(
            "event type bad name",
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "bad name!", "description": "d"})),
            422,
        ),
        case(
            "event type schemas not an object",
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "a.b", "description": "d", "schemas": 5})),
            422,
        ),
        case(
            "limit too large",
            Method::GET,
            "/api/v1/app?limit=1000",
            None,
            422,
        ),
        case(
            "limit not a number",
            Method::GET,
            "/api/v1/app?limit=ten",
            None,
            422,
        ),
        case(
            "order unknown",
            Method::GET,
            "/api/v1/app?order=sideways",
            None,
            422,
        ),
        case(
            "before not a timestamp",
            Method::GET,
            &format!("{msg}?before=yesterday"),
            None,
            422,
        ),
        case(
            "with_content not a boolean",
            Method::GET,
            &format!("{msg}?with_content=maybe"),
            None,
            422,
        ),
        case(
            "attempt status out of range",
            Method::GET,
            &format!("/api/v1/app/{app}/attempt/endpoint/{ep}?status=9"),
            None,
            422,
        ),
        case(
            "unknown app",
            Method::GET,
            "/api/v1/app/app_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            None,
            404,
        ),
        case(
            "unknown endpoint",
            Method::GET,
            &format!("{eps}/ep_nope"),
            None,
            404,
        ),
        case(
            "unknown message",
            Method::GET,
            &format!("{msg}/msg_nope"),
            None,
            404,
        ),
        case(
            "unknown attempt",
            Method::GET,
            &format!("{msg}/msg_nope/attempt/atmpt_nope"),
            None,
            404,
        ),
        case(
            "unknown route",
            Method::GET,
            "/api/v1/nothing-here",
            None,
            404,
        ),
        case(
            "path traversal",
            Method::GET,
            "/api/v1/app/..%2F..%2Fetc%2Fpasswd",
            None,
            404,
        ),
        case("wrong method", Method::DELETE, "/api/v1/app", None, 405),
        case(
            "PUT app with a bad uid in the path",
            Method::PUT,
            "/api/v1/app/bad%20uid",
            Some(json!({"name": "n"})),
            422,
        ),
        case(
            "app uid shaped like an id",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "n", "uid": "app_looks_like_id"})),
            422,
        ),
        case(
            "app uid shaped like another kind of id",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "n", "uid": "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV"})),
            422,
        ),
        case(
            "PUT app creating one with an id-shaped uid in the path",
            Method::PUT,
            "/api/v1/app/app_looks_like_id",
            Some(json!({"name": "n"})),
            422,
        ),
        case(
            "PUT app with an id-shaped uid in the body",
            Method::PUT,
            &format!("/api/v1/app/{app}"),
            Some(json!({"name": "n", "uid": "msg_looks_like_id"})),
            422,
        ),
        case(
            "PATCH app to an id-shaped uid",
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"uid": "app_looks_like_id"})),
            422,
        ),
        case(
            "endpoint uid shaped like an id",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "uid": "ep_looks_like_id"})),
            422,
        ),
        case(
            "PUT endpoint creating one with an id-shaped uid in the path",
            Method::PUT,
            &format!("{eps}/ep_looks_like_id"),
            Some(json!({"url": "https://example.com/"})),
            422,
        ),
        case(
            "PATCH endpoint to an id-shaped uid",
            Method::PATCH,
            &format!("{eps}/{ep}"),
            Some(json!({"uid": "app_looks_like_id"})),
            422,
        ),
        case(
            "message eventId shaped like an id",
            Method::POST,
            &msg,
            Some(json!({"eventType": "ok.type", "payload": {}, "eventId": "msg_looks_like_id"})),
            422,
        ),
        case(
            "event type schema that is not a JSON Schema",
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "a.b", "description": "d", "schemas": nonsense_schema})),
            422,
        ),
        case(
            "PUT event type with a schema that is not a JSON Schema",
            Method::PUT,
            "/api/v1/event-type/a.b",
            Some(json!({"description": "d", "schemas": nonsense_schema})),
            422,
        ),
        case(
            "PATCH event type to a schema that is not a JSON Schema",
            Method::PATCH,
            "/api/v1/event-type/ok.type",
            Some(json!({"schemas": nonsense_schema})),
            422,
        ),
        case(
            "malformed message iterator",
            Method::GET,
            &format!("{msg}?iterator=%00%ff%20garbage"),
            None,
            422,
        ),
        case(
            "malformed application iterator",
            Method::GET,
            "/api/v1/app?iterator=garbage",
            None,
            422,
        ),
        case(
            "malformed event type iterator",
            Method::GET,
            "/api/v1/event-type?iterator=%00%ff%20garbage",
            None,
            422,
        ),
        // Control characters in stored text: PostgreSQL cannot store NUL at all (it answered
        // 500), and SQLite kept what no page can show. Payloads stay byte-exact (below).
        case(
            "application name holding NUL",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "a\u{0}b"})),
            422,
        ),
        case(
            "PUT application with a name holding an escape character",
            Method::PUT,
            &format!("/api/v1/app/{app}"),
            Some(json!({"name": "a\u{1b}b"})),
            422,
        ),
        case(
            "PATCH application name holding a line break",
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"name": "first\nsecond"})),
            422,
        ),
        case(
            "application metadata value holding NUL",
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "M2", "metadata": {"k": "v\u{0}"}})),
            422,
        ),
        case(
            "PATCH application metadata key holding NUL",
            Method::PATCH,
            &format!("/api/v1/app/{app}"),
            Some(json!({"metadata": {"k\u{0}": "v"}})),
            422,
        ),
        case(
            "endpoint description holding NUL",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "description": "a\u{0}b"})),
            422,
        ),
        case(
            "PUT endpoint with metadata holding NUL",
            Method::PUT,
            &format!("{eps}/{ep}"),
            Some(json!({"url": "https://example.com/", "metadata": {"k": "\u{0}"}})),
            422,
        ),
        case(
            "PATCH endpoint description holding a DEL",
            Method::PATCH,
            &format!("{eps}/{ep}"),
            Some(json!({"description": "a\u{7f}"})),
            422,
        ),
        case(
            "PATCH endpoint metadata holding NUL",
            Method::PATCH,
            &format!("{eps}/{ep}"),
            Some(json!({"metadata": {"k": "a\u{0}"}})),
            422,
        ),
        case(
            "endpoint header value holding NUL",
            Method::POST,
            &eps,
            Some(json!({"url": "https://example.com/", "headers": {"x-k": "a\u{0}"}})),
            422,
        ),
        case(
            "event type description holding NUL",
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "c.d", "description": "a\u{0}b"})),
            422,
        ),
        case(
            "PUT event type with a description holding NUL",
            Method::PUT,
            "/api/v1/event-type/ok.type",
            Some(json!({"description": "a\u{0}b"})),
            422,
        ),
        case(
            "PATCH event type description holding NUL",
            Method::PATCH,
            "/api/v1/event-type/ok.type",
            Some(json!({"description": "\u{0}"})),
            422,
        ),
        case(
            "event type feature flag holding NUL",
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "e.f", "description": "d", "featureFlag": "b\u{0}"})),
            422,
        ),
        case(
            "PATCH event type feature flag holding NUL",
            Method::PATCH,
            "/api/v1/event-type/ok.type",
            Some(json!({"featureFlag": "b\u{0}"})),
            422,
        ),
    ];
    // The exact count, so that a case deleted by mistake is noticed.
    assert_eq!(cases.len(), 76);

    // Every case runs and every wrong answer is listed, so one run shows all that broke.
    let mut wrong = Vec::new();
    for case in cases {
        let (status, body) = send(&server, &case).await;
        let answered = status == case.expect
            && body["code"].is_string()
            && (body["detail"].is_string() || body["detail"].is_array());
        if !answered {
            wrong.push(format!(
                "{}: expected {}, got {status} {body}",
                case.name, case.expect
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Nothing partial was written by any of them.
    let messages = server.get(&msg).await.1;
    assert_eq!(messages["data"].as_array().expect("data").len(), 0);
    let apps = server.get("/api/v1/app").await.1;
    assert_eq!(apps["data"].as_array().expect("data").len(), 1);
    server.stop().await;
}

/// What the control-character rule leaves alone: payloads (kept byte for byte, NUL escapes
/// included), line breaks in descriptions, and any other Unicode in names.
#[tokio::test]
async fn payloads_line_breaks_and_unicode_are_not_control_character_faults() {
    let server = TestServer::start().await;
    let (status, app) = server
        .post(
            "/api/v1/app",
            json!({"name": "Café ☕ 東京", "metadata": {"city": "Zürich"}}),
        )
        .await;
    assert_eq!(status, 201, "{app}");
    let app = app["id"].as_str().expect("id").to_string();
    let (status, endpoint) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://example.com/", "description": "first line\nsecond\tline"}),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    assert_eq!(endpoint["description"], "first line\nsecond\tline");
    server.create_event_type("ok.type").await;
    let raw = r#"{"eventType":"ok.type","payload":{"note":"a\u0000b"}}"#;
    let response = server
        .client
        .post(format!("{}/api/v1/app/{app}/msg", server.base))
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 202);
    let message: Value = response.json().await.expect("json");
    let id = message["id"].as_str().expect("id");
    let (status, stored) = server.get(&format!("/api/v1/app/{app}/msg/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["payload"]["note"], "a\u{0}b");
    server.stop().await;
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let server = TestServer::start().await;
    let app = server.create_app("Merchant").await;
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "ftp://x.example/"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({
            "code": "validation",
            "detail": [{"loc": ["body", "url"], "msg": "must use the http or https scheme", "type": "value_error"}]
        })
    );
    let (_, body) = server
        .post(&format!("/api/v1/app/{app}/msg"), json!({"payload": {}}))
        .await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "eventType"]));
    server.stop().await;
}

#[tokio::test]
async fn bad_input_errors_name_the_field_and_the_fault() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post(
            "/api/v1/app",
            json!({"name": "n", "uid": "app_looks_like_id"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "validation");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "uid"]));
    let msg = body["detail"][0]["msg"].as_str().expect("msg");
    assert!(msg.contains("`app_`"), "{msg}");

    let (status, body) = server
        .post(
            "/api/v1/event-type",
            json!({"name": "a.b", "description": "d", "schemas": {
                "1": {"type": "object"},
                "2": {"type": "object", "properties": {"amount": {"type": "nonsense-type"}}}
            }}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "schemas", "2", "properties", "amount", "type"])
    );

    let (status, body) = server.get("/api/v1/app?iterator=garbage").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "iterator"]));
    server.stop().await;
}

/// Every list route that takes an `iterator` refuses one hookd never answered, and still
/// takes the ones it did.
#[tokio::test]
async fn every_list_refuses_a_malformed_iterator() {
    let server = TestServer::start().await;
    server.create_event_type("ok.type").await;
    let app = server.create_app("Merchant").await;
    let ep = server
        .create_endpoint(&app, "http://127.0.0.1:9/hook", json!({}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let msg = server
        .send_message(&app, json!({"eventType": "ok.type", "payload": {}}))
        .await;
    // Text that is no key of any list, and text that is a name but not an id.
    let never_keys = ["%00%ff%20garbage", "-", "a%20b", &"x".repeat(300)];
    let not_ids = ["garbage", "msg_nope", "app_01arz3ndektsv4rrffq69g5fav"];
    let lists = [
        ("/api/v1/event-type".to_string(), false),
        ("/api/v1/app".to_string(), true),
        (format!("/api/v1/app/{app}/endpoint"), true),
        (format!("/api/v1/app/{app}/msg"), true),
        (format!("/api/v1/app/{app}/msg/{msg}/endpoint"), true),
        (format!("/api/v1/app/{app}/endpoint/{ep}/msg"), true),
        (format!("/api/v1/app/{app}/attempt/endpoint/{ep}"), true),
        (format!("/api/v1/app/{app}/attempt/msg/{msg}"), true),
    ];
    for (list, by_id) in &lists {
        let refused = never_keys
            .iter()
            .chain(if *by_id { &not_ids[..] } else { &[] });
        for iterator in refused {
            let (status, body) = server.get(&format!("{list}?iterator={iterator}")).await;
            assert_eq!(status, 422, "{list}?iterator={iterator}: {body}");
            assert_eq!(
                body["detail"][0]["loc"],
                json!(["query", "iterator"]),
                "{list}"
            );
        }
        // The iterators a page answers are taken back, forwards and backwards.
        let (status, page) = server.get(&format!("{list}?limit=1")).await;
        assert_eq!(status, 200, "{list}: {page}");
        for key in ["iterator", "prevIterator"] {
            let Some(iterator) = page[key].as_str() else {
                continue;
            };
            let (status, body) = server.get(&format!("{list}?iterator={iterator}")).await;
            assert_eq!(status, 200, "{list}?iterator={iterator}: {body}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn uids_and_conflicts() {
    let server = TestServer::start().await;
    let (status, first) = server
        .post("/api/v1/app", json!({"name": "A", "uid": "merchant-1"}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .post("/api/v1/app", json!({"name": "B", "uid": "merchant-1"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "conflict");
    let (status, same) = server
        .post(
            "/api/v1/app?get_if_exists=true",
            json!({"name": "B", "uid": "merchant-1"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(same["id"], first["id"]);
    let (status, by_uid) = server.get("/api/v1/app/merchant-1").await;
    assert_eq!(status, 200);
    assert_eq!(by_uid["id"], first["id"]);
    let (status, patched) = server
        .call(
            Method::PATCH,
            "/api/v1/app/merchant-1",
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["uid"], "merchant-1");
    let (status, created) = server
        .call(
            Method::PUT,
            "/api/v1/app/merchant-2",
            Some(json!({"name": "Put"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["uid"], "merchant-2");
    let (status, _) = server
        .call(Method::DELETE, "/api/v1/app/merchant-2", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server.get("/api/v1/app/merchant-2").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn lists_page_with_iterators() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(server.create_app(&format!("App {i}")).await);
    }
    let first = server.get("/api/v1/app?limit=2").await.1;
    assert_eq!(first["done"], false);
    let page_ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|a| a["id"].as_str().expect("id").to_string())
            .collect()
    };
    let iterator = first["iterator"].as_str().expect("iterator");
    let second = server
        .get(&format!("/api/v1/app?limit=2&iterator={iterator}"))
        .await
        .1;
    let iterator = second["iterator"].as_str().expect("iterator");
    let third = server
        .get(&format!("/api/v1/app?limit=2&iterator={iterator}"))
        .await
        .1;
    assert_eq!(third["done"], true);
    let all: Vec<String> = [page_ids(&first), page_ids(&second), page_ids(&third)].concat();
    assert_eq!(all, ids);
    let prev = second["prevIterator"].as_str().expect("prev");
    let back = server
        .get(&format!("/api/v1/app?limit=2&iterator={prev}"))
        .await
        .1;
    assert_eq!(page_ids(&back), page_ids(&first));
    server.stop().await;
}
