//! Runs the real hookd server on port 0 with a fresh database per test.
//!
//! The backend comes from `HOOKD_TEST_BACKEND`: `sqlite` (the default) gives each test its own
//! file in a temp folder; `postgres` gives each test its own database `hookd_test_<random>` on
//! the PostgreSQL server at `HOOKD_TEST_POSTGRES_URL` (default: the local one, user `postgres`),
//! dropped when the test ends. The same tests run on both.

use std::path::Path;
use std::time::Duration;

use hookd::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The main secret of PostgreSQL test servers (SQLite ones use a key file, as by default).
pub const MAIN_SECRET: &str = "hookd-test-main-secret-0123456789abcdef";

/// The database a test suite run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("HOOKD_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("HOOKD_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

/// True when this run tests PostgreSQL; otherwise prints why `test` is skipped.
pub fn postgres_only(test: &str) -> bool {
    if backend() == Backend::Postgres {
        return true;
    }
    skipped(
        test,
        "several nodes share one database only on PostgreSQL; run it with HOOKD_TEST_BACKEND=postgres",
    );
    false
}

/// A test that cannot get what it needs (a program, a privilege): skipped on a developer's
/// machine, but a failure under `CI=true`, where a skip would read as a pass of something that
/// never ran.
pub fn unavailable(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{test} cannot run, and CI=true does not skip it: {reason}");
    }
    skipped(test, reason);
}

/// Says on the terminal that a test did not run, and why.
pub fn skipped(test: &str, reason: &str) {
    report(&format!("skipped {test}: {reason}"));
}

/// Whether `needle` occurs in `haystack` (database files and rows, searched for secrets).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Prints a line on the terminal even when the test passes: written to the process's stderr
/// directly, because the test harness hides what `println!` and `eprintln!` print.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The maintenance database of the PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("HOOKD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database for one test, removed when dropped.
pub struct TestDatabase {
    pub url: String,
    dir: tempfile::TempDir,
    /// The PostgreSQL database to drop, with the server's maintenance URL.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A database on the backend this run tests.
    pub async fn create() -> Self {
        match backend() {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres_on(&postgres_admin_url()).await,
        }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("hookd.db").display());
        Self {
            url,
            dir,
            postgres: None,
        }
    }

    /// A new database on the PostgreSQL server whose maintenance database `admin_url` names.
    pub async fn postgres_on(admin_url: &str) -> Self {
        use sqlx::Connection;
        let name = format!(
            "hookd_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').expect("a URL with a database");
        Self {
            url: format!("{base}/{name}"),
            dir: tempfile::tempdir().expect("tempdir"),
            postgres: Some((admin_url.to_string(), name)),
        }
    }

    /// Runs one statement with one text parameter on this database, as an operator's SQL shell
    /// would (`sqlite` or `postgres`, whichever this is); answers the first column of the first
    /// row, if any, as text.
    pub async fn first_text(&self, sqlite: &str, postgres: &str, param: &str) -> Option<String> {
        if self.is_postgres() {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("connect");
            return sqlx::query_scalar::<_, String>(postgres)
                .bind(param)
                .fetch_optional(&mut conn)
                .await
                .expect("query");
        }
        let path = self
            .url
            .strip_prefix("sqlite://")
            .expect("sqlite url")
            .to_string();
        let (sqlite, param) = (sqlite.to_string(), param.to_string());
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).expect("open");
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .expect("busy timeout");
            let mut statement = conn.prepare(&sqlite).expect("prepare");
            let mut rows = statement.query([param]).expect("query");
            rows.next()
                .expect("row")
                .map(|row| row.get::<_, String>(0).expect("text"))
        })
        .await
        .expect("sqlite task")
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The main secret servers on this database need (`None`: SQLite's key file).
    pub fn main_secret(&self) -> Option<&'static str> {
        self.is_postgres().then_some(MAIN_SECRET)
    }

    /// The `HOOKD_*` variables that point a hookd process at this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("HOOKD_DATABASE_URL", self.url.clone())];
        if let Some(secret) = self.main_secret() {
            env.push(("HOOKD_MAIN_SECRET", secret.to_string()));
            env.push(("HOOKD_DATABASE_POOL_SIZE", "4".to_string()));
        }
        env
    }

    /// A folder that lives as long as the database (SQLite's file is in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything stored about endpoints, as bytes: the SQLite files (WAL included), or the
    /// text of every row of PostgreSQL's endpoint table.
    pub async fn endpoint_bytes(&self) -> Vec<u8> {
        let Some(_) = &self.postgres else {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(self.dir()).expect("read dir") {
                let path = entry.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("hookd.db") && !name.ends_with(".key") {
                    bytes.extend(std::fs::read(&path).expect("read"));
                }
            }
            return bytes;
        };
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url)
            .await
            .expect("connect");
        let text: Option<String> =
            sqlx::query_scalar("SELECT string_agg(e::text, E'\\n') FROM endpoints e")
                .fetch_one(&mut conn)
                .await
                .expect("read endpoints");
        text.unwrap_or_default().into_bytes()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread with its
        // own runtime drops the database (and any connection a server left open).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use sqlx::Connection;
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("note: a test database could not be dropped: {dropped:?}");
        }
    }
}

/// Settings every test starts from: loopback allowed, retries in milliseconds.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut settings =
        Settings::with_database_and_secret(database.url.clone(), database.main_secret());
    settings.pool.max_connections = 4;
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings.allow_destinations = vec!["127.0.0.0/8".parse().expect("cidr")];
    settings.retry.schedule = vec![Duration::from_millis(20); 3];
    settings.retry.throttled_min = Duration::from_millis(50);
    settings.poll_interval = Duration::from_millis(50);
    settings.request_timeout = Duration::from_secs(2);
    settings
}

/// A hookd server running inside the test process.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    /// Shared with the other nodes started with [`TestServer::start_another`].
    database: std::sync::Arc<TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on a fresh database after `adjust` has changed the test settings.
    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::start_on(TestDatabase::create().await, adjust).await
    }

    /// Starts a server on `database` after `adjust` has changed the test settings.
    pub async fn start_on(database: TestDatabase, adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::start_node(std::sync::Arc::new(database), adjust).await
    }

    /// Starts another node on this server's database (PostgreSQL: SQLite allows one process,
    /// and one server per file), after `adjust` has changed the test settings.
    pub async fn start_another(&self, adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::start_node(std::sync::Arc::clone(&self.database), adjust).await
    }

    async fn start_node(
        database: std::sync::Arc<TestDatabase>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings = test_settings(&database);
        adjust(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookd::server::run(settings, listener, async {
            let _ = stopped.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            token: ADMIN_TOKEN.into(),
            database,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server's database.
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    /// Stops the server and waits for it to finish cleanly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    /// Sends a request with the admin token; answers the status and the JSON body (or null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates an application and answers its id.
    pub async fn create_app(&self, name: &str) -> String {
        let (status, app) = self.post("/api/v1/app", json!({ "name": name })).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app["id"].as_str().expect("app id").to_string()
    }

    pub async fn create_event_type(&self, name: &str) {
        let (status, body) = self
            .post(
                "/api/v1/event-type",
                json!({ "name": name, "description": format!("{name} events") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates an endpoint with extra fields merged into the body; answers the endpoint.
    pub async fn create_endpoint(&self, app_id: &str, url: &str, extra: Value) -> Value {
        let mut body = json!({ "url": url });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, endpoint) = self
            .post(&format!("/api/v1/app/{app_id}/endpoint"), body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}");
        endpoint
    }

    /// An application with one endpoint at `url`; answers both ids.
    pub async fn merchant_with_endpoint(&self, url: &str) -> (String, String) {
        let app = self.create_app("Merchant").await;
        let endpoint = self.create_endpoint(&app, url, json!({})).await;
        let ep = endpoint["id"].as_str().expect("endpoint id").to_string();
        (app, ep)
    }

    pub async fn endpoint_secret(&self, app_id: &str, endpoint_id: &str) -> String {
        let (status, body) = self
            .get(&format!(
                "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["key"].as_str().expect("key").to_string()
    }

    /// Posts a message and answers its id.
    pub async fn send_message(&self, app_id: &str, body: Value) -> String {
        let (status, message) = self.post(&format!("/api/v1/app/{app_id}/msg"), body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{message}");
        message["id"].as_str().expect("msg id").to_string()
    }

    /// Posts many messages, `concurrency` at a time; answers their ids in the order given.
    pub async fn send_messages(
        &self,
        app_id: &str,
        bodies: Vec<Value>,
        concurrency: usize,
    ) -> Vec<String> {
        let url = format!("{}/api/v1/app/{app_id}/msg", self.base);
        let mut ids = vec![String::new(); bodies.len()];
        let mut pending = bodies.into_iter().enumerate();
        let mut posts = tokio::task::JoinSet::new();
        loop {
            while posts.len() < concurrency.max(1) {
                let Some((i, body)) = pending.next() else {
                    break;
                };
                let request = self.client.post(&url).bearer_auth(&self.token).json(&body);
                posts.spawn(async move {
                    let response = request.send().await.expect("request");
                    assert_eq!(response.status(), StatusCode::ACCEPTED);
                    let message: Value = response.json().await.expect("json");
                    (i, message["id"].as_str().expect("msg id").to_string())
                });
            }
            let Some(posted) = posts.join_next().await else {
                return ids;
            };
            let (i, id) = posted.expect("post task");
            ids[i] = id;
        }
    }

    /// Polls `path` until `done` holds for its JSON, or panics after `timeout`.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (_, body) = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} did not reach the expected state: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
