//! The operator dashboard over a busy deployment: how fast the overview, the global search by
//! payment id and the application search answer once the database holds `--messages`
//! (1,000,000) messages and `--attempts` (3,000,000) attempts.
//!
//! Ingesting and delivering that much through the API would take hours on the bench machine,
//! so a run: starts hookd on a fresh database (its migrations make the schema), creates the
//! payment event types, `--apps` (1,000) applications and two endpoints each through the API
//! (so ids, uids and sealed secrets are hookd's own), stops hookd, writes a day of history
//! into the database directly ([`plan`]: the rows hookd would have written; [`load`]: SQLite
//! in one transaction, PostgreSQL with COPY), runs `ANALYZE` on PostgreSQL as autovacuum
//! would after such a load, and starts hookd again on the loaded database.
//!
//! Then it signs in to the dashboard (`POST /ui/login` with the admin token, the session
//! cookie) and times four pages, `--warmup` untimed then `--requests` timed GETs each, one
//! after another over one keep-alive connection: the overview page, its live fragment (as
//! htmx polls it), a search by a payment id (a different random payment each request) and an
//! application search (a different application each request). Every answer must be 200 and
//! show what it was asked for — the search every message and attempt of the payment, the
//! application search the application — or the run fails. Times are client-observed on
//! loopback (an upper bound of hookd's own) and hookd's own from its request log.

pub mod load;
pub mod plan;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use clap::Args;
use rand::Rng;
use serde_json::json;
use tokio::task::JoinSet;

use super::portal::{event_type_body, hookd_log, ms, request_latency, snippet, Admin, EVENT_TYPES};
use crate::clock::duration_us;
use crate::hookd::{Hookd, HookdConfig};
use crate::report::{percentile, Figure, Settings};
use load::{App, Endpoint};
use plan::{app_name, app_query, payment_key, Plan};

/// The dashboard's budget per page, server-side.
const BUDGET_MS: f64 = 100.0;
/// Concurrent API calls while creating the applications and endpoints.
const SETUP_TASKS: usize = 8;
/// The same history every run and on both backends (times follow the load's start).
const SEED: u64 = 0x6f6f_6b64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// One timed page: JSON keys and labels of its figures.
struct PageSpec {
    name: &'static str,
    p50: (&'static str, &'static str),
    p95: (&'static str, &'static str),
    server_p50: (&'static str, &'static str),
    server_p95: (&'static str, &'static str),
}

macro_rules! page {
    ($name:literal) => {
        PageSpec {
            name: $name,
            p50: (concat!($name, "_p50_ms"), concat!($name, " p50")),
            p95: (concat!($name, "_p95_ms"), concat!($name, " p95")),
            server_p50: (
                concat!($name, "_server_p50_ms"),
                concat!($name, " hookd p50"),
            ),
            server_p95: (
                concat!($name, "_server_p95_ms"),
                concat!($name, " hookd p95"),
            ),
        }
    };
}

/// The pages, in the order they are timed.
const PAGES: [PageSpec; 4] = [
    page!("overview_page"),
    page!("overview"),
    page!("search"),
    page!("apps"),
];

#[derive(Args, Clone, Debug)]
pub struct DashboardArgs {
    /// Messages loaded (four per payment).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Attempts loaded (about 1.5 per delivery, two deliveries per message).
    #[arg(long, default_value_t = 3_000_000)]
    pub attempts: u64,
    /// Applications created through the API, two endpoints each.
    #[arg(long, default_value_t = 1_000)]
    pub apps: usize,
    /// Timed requests per page, one after another.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Untimed requests per page before the timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// After timing, keep hookd and its database this many seconds (to run EXPLAIN on them).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
}

impl Default for DashboardArgs {
    fn default() -> Self {
        Self {
            messages: 1_000_000,
            attempts: 3_000_000,
            apps: 1_000,
            requests: 50,
            warmup: 5,
            hold: 0,
        }
    }
}

impl DashboardArgs {
    pub fn settings(&self) -> Settings {
        vec![
            ("messages", self.messages.to_string()),
            ("attempts", self.attempts.to_string()),
            ("apps", self.apps.to_string()),
            ("endpoints", (2 * self.apps).to_string()),
            ("requests_per_page", self.requests.to_string()),
            ("warmup_per_page", self.warmup.to_string()),
            ("budget_ms", BUDGET_MS.to_string()),
        ]
    }
}

pub async fn run_once(config: &HookdConfig, args: &DashboardArgs) -> anyhow::Result<Vec<Figure>> {
    ensure!(args.requests > 0, "--requests must be at least 1");
    // hookd's request log gives its own time per page; it logs nothing else at debug.
    let mut config = config.clone();
    config.log_filter = format!("{},tower_http=debug", config.log_filter);
    let mut hookd = Hookd::start(&config).await?;
    let outcome = measure(&mut hookd, args).await;
    hookd.finish(outcome).await
}

async fn measure(hookd: &mut Hookd, args: &DashboardArgs) -> anyhow::Result<Vec<Figure>> {
    // 1. What only the API can make: event types, applications, endpoints (sealed secrets).
    let setup_start = Instant::now();
    let admin = Admin::new(hookd, SETUP_TASKS)?;
    for (name, description, status) in EVENT_TYPES {
        admin
            .post(
                "/api/v1/event-type",
                &event_type_body(name, description, status),
            )
            .await
            .with_context(|| format!("creating event type {name}"))?;
    }
    let apps = create_apps(&admin, args.apps).await?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    // 2. A day of history, written with hookd stopped.
    hookd.stop().await?;
    let now = now_millis();
    let plan_start = Instant::now();
    let plan = Plan::new(SEED, now, args.apps, args.messages, args.attempts)?;
    let derived = plan.derive();
    let plan_s = plan_start.elapsed().as_secs_f64();
    eprintln!(
        "planned {} messages, {} attempts, {} deliveries pending, {} held in {plan_s:.1} s; \
         loading",
        plan.messages.len(),
        plan.attempts,
        plan.pending,
        plan.held
    );
    let load_start = Instant::now();
    let url = hookd.database_url().to_owned();
    let postgres = url.starts_with("postgres");
    if postgres {
        load::postgres(&url, &plan, &derived, &apps).await?;
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .context("the bench loads only sqlite:// and postgres:// databases")?
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (plan, derived, apps) = (&plan, &derived, &apps);
        tokio::task::block_in_place(|| load::sqlite(&path, plan, derived, apps))?;
    }
    let load_s = load_start.elapsed().as_secs_f64();
    // Plans as a production server's would be: autovacuum analyzes tables after a load.
    let analyze_start = Instant::now();
    hookd.analyze().await?;
    let analyze_s = analyze_start.elapsed().as_secs_f64();
    eprintln!("loaded in {load_s:.1} s, analyzed in {analyze_s:.1} s; restarting hookd");
    let restart_start = Instant::now();
    hookd.restart().await?;
    let restart_s = restart_start.elapsed().as_secs_f64();
    check_through_api(&admin_for(hookd)?, &plan, &apps).await?;

    // 3. The dashboard, signed in as the operator.
    let ui = ui_client()?;
    let cookie = sign_in(&ui, hookd).await?;
    let mut rng = rand::thread_rng();
    let by_payment = payment_index(&plan);
    let mut timed = Vec::with_capacity(PAGES.len());
    for spec in &PAGES {
        let mut samples = Vec::with_capacity(args.requests);
        for i in 0..args.warmup + args.requests {
            let request = match spec.name {
                // The backlog tile counts exactly the loaded pending deliveries.
                "overview_page" | "overview" => Request {
                    path: if spec.name == "overview" {
                        "/ui/overview"
                    } else {
                        "/ui/"
                    }
                    .to_owned(),
                    htmx: spec.name == "overview",
                    expect: vec![format!(">{}<", plan.pending)],
                    at_least: None,
                },
                "search" => {
                    let payment = rng.gen_range(0..plan.payments());
                    search_request(&plan, &by_payment, &apps, payment)
                }
                _ => {
                    let n = rng.gen_range(0..args.apps);
                    Request {
                        path: format!("/ui/apps?q={}", app_query(n).replace(' ', "+")),
                        htmx: false,
                        expect: vec![apps[n].id.clone(), app_name(n)],
                        at_least: None,
                    }
                }
            };
            let url = format!("{}{}", hookd.base_url(), request.path);
            let start = Instant::now();
            let (status, body) = get(&ui, &url, &cookie, request.htmx).await?;
            let took = duration_us(start.elapsed());
            if status != reqwest::StatusCode::OK {
                bail!(
                    "GET {} answered {status}: {}",
                    request.path,
                    snippet(body.as_bytes())
                );
            }
            if let Some(wrong) = request.check(&body) {
                bail!(
                    "GET {} answered a page {wrong}: {}",
                    request.path,
                    snippet(body.as_bytes())
                );
            }
            if i >= args.warmup {
                samples.push(took);
            }
        }
        timed.push((spec, samples));
    }

    // 4. Figures.
    let server = server_latencies(hookd)?;
    let mut figures = Vec::new();
    let mut worst_p95 = 0.0_f64;
    let mut worst_server_p95 = 0.0_f64;
    let mut over_budget = 0_u32;
    for (spec, mut samples) in timed {
        samples.sort_unstable();
        let [p50, p95] = [50.0, 95.0].map(|p| ms(percentile(&samples, p)));
        let all = server.get(spec.name).cloned().unwrap_or_default();
        // The timed requests are the page's last ones.
        let mut own = all[all.len().saturating_sub(args.requests)..].to_vec();
        own.sort_unstable();
        let [server_p50, server_p95] =
            [50.0, 95.0].map(|p| percentile(&own, p).map_or(f64::NAN, |v| v as f64));
        worst_p95 = worst_p95.max(p95);
        worst_server_p95 = worst_server_p95.max(server_p95);
        // Server-side is the budget's measure; the client's time bounds it when the log has none.
        if if server_p95.is_nan() { p95 } else { server_p95 } > BUDGET_MS {
            over_budget += 1;
        }
        figures.extend([
            Figure::new(spec.p50.0, spec.p50.1, "ms", 2, p50),
            Figure::new(spec.p95.0, spec.p95.1, "ms", 2, p95),
            Figure::new(spec.server_p50.0, spec.server_p50.1, "ms", 0, server_p50),
            Figure::new(spec.server_p95.0, spec.server_p95.1, "ms", 0, server_p95),
        ]);
    }
    let mut summary = vec![
        Figure::new("worst_p95_ms", "worst page p95", "ms", 2, worst_p95),
        Figure::new(
            "worst_server_p95_ms",
            "worst page hookd p95",
            "ms",
            0,
            worst_server_p95,
        ),
        Figure::new(
            "pages_over_budget",
            "pages with hookd p95 over 100 ms",
            "",
            0,
            f64::from(over_budget),
        ),
        Figure::new("messages", "messages", "", 0, plan.messages.len() as f64),
        Figure::new("attempts", "attempts", "", 0, plan.attempts as f64),
        Figure::new("pending", "deliveries pending", "", 0, plan.pending as f64),
        Figure::new("held", "deliveries held", "", 0, plan.held as f64),
        Figure::new("setup_s", "API setup", "s", 1, setup_s),
        Figure::new("plan_s", "planning", "s", 1, plan_s),
        Figure::new("load_s", "loading", "s", 1, load_s),
        Figure::new("analyze_s", "ANALYZE", "s", 1, analyze_s),
        Figure::new("restart_s", "restart", "s", 1, restart_s),
    ];
    summary.extend(figures);
    if args.hold > 0 {
        eprintln!(
            "holding hookd (pid {}, {}, database {}) for {} s; e.g. payment {}",
            hookd.pids()[0],
            hookd.base_url(),
            hookd.database_url(),
            args.hold,
            payment_key(plan.payments() / 2)
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    Ok(summary)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn admin_for(hookd: &Hookd) -> anyhow::Result<Admin> {
    Admin::new(hookd, 1)
}

/// Creates `count` applications ("Lisbon Coffee 0421", uid `merchant-0421`) with two endpoints
/// each (orders, risk), `SETUP_TASKS` calls at a time; answers them in order.
async fn create_apps(admin: &Admin, count: usize) -> anyhow::Result<Vec<App>> {
    let mut tasks = JoinSet::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..SETUP_TASKS {
        let (admin, next) = (admin.clone(), next.clone());
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, anyhow::Error>(made);
                }
                let uid = format!("merchant-{n:04}");
                let id = admin
                    .create("/api/v1/app", &json!({"name": app_name(n), "uid": uid}))
                    .await
                    .with_context(|| format!("creating application {uid}"))?;
                let mut endpoints = Vec::with_capacity(2);
                for (path, description) in [("orders", "Order service"), ("risk", "Risk team")] {
                    // Port 9 (discard) on loopback: nothing listens, nothing is ever sent.
                    let url = format!("http://127.0.0.1:9/{uid}/{path}");
                    let endpoint = admin
                        .create(
                            &format!("/api/v1/app/{id}/endpoint"),
                            &json!({"url": url, "description": description}),
                        )
                        .await
                        .with_context(|| format!("creating an endpoint of {uid}"))?;
                    endpoints.push(Endpoint { id: endpoint, url });
                }
                let [first, second]: [Endpoint; 2] = endpoints
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("two endpoints were made"))?;
                made.push((
                    n,
                    App {
                        id,
                        endpoints: [first, second],
                    },
                ));
            }
        });
    }
    let mut apps: Vec<(usize, App)> = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        apps.extend(done??);
    }
    apps.sort_by_key(|(n, _)| *n);
    Ok(apps.into_iter().map(|(_, app)| app).collect())
}

/// Reads a loaded payment back through hookd's own API: the message of one application and
/// its attempts, so rows hookd cannot read fail the run before anything is timed.
async fn check_through_api(admin: &Admin, plan: &Plan, apps: &[App]) -> anyhow::Result<()> {
    let Some(message) = plan
        .messages
        .iter()
        .rev()
        .find(|m| m.deliveries.iter().all(|d| d.made > 1))
    else {
        return Ok(());
    };
    let app = &apps[usize::from(message.app)].id;
    let id = message.id();
    let read = admin
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/app/{app}/msg/{id}"),
            Vec::new(),
        )
        .await
        .context("reading a loaded message through the API")?;
    ensure!(
        read["id"] == id.as_str(),
        "the API answered another message: {read}"
    );
    let attempts = admin
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/app/{app}/attempt/msg/{id}?limit=100"),
            Vec::new(),
        )
        .await
        .context("reading a loaded message's attempts through the API")?;
    let expected: usize = message.deliveries.iter().map(|d| usize::from(d.made)).sum();
    let listed = attempts["data"].as_array().map_or(0, Vec::len);
    ensure!(
        listed == expected,
        "the API lists {listed} attempts of {id}, the load wrote {expected}"
    );
    Ok(())
}

/// The four messages of each payment, by index into `plan.messages`.
fn payment_index(plan: &Plan) -> Vec<[u32; 4]> {
    let mut by_payment = vec![[u32::MAX; 4]; plan.payments() as usize];
    for (i, message) in plan.messages.iter().enumerate() {
        by_payment[message.payment as usize][usize::from(message.step)] =
            u32::try_from(i).unwrap_or(u32::MAX);
    }
    by_payment
}

/// A page request and the texts its answer must hold.
struct Request {
    path: String,
    htmx: bool,
    expect: Vec<String>,
    /// A text the answer must hold at least this many times.
    at_least: Option<(&'static str, usize)>,
}

impl Request {
    /// What is wrong with an answer, if anything.
    fn check(&self, body: &str) -> Option<String> {
        if let Some(missing) = self.expect.iter().find(|e| !body.contains(e.as_str())) {
            return Some(format!("without {missing:?}"));
        }
        match self.at_least {
            Some((text, n)) if body.matches(text).count() < n => Some(format!(
                "with {} times {text:?}, not at least {n}",
                body.matches(text).count()
            )),
            _ => None,
        }
    }
}

/// The search for a payment id: the answer must show each of its four messages, the
/// endpoints they went to, and a row per attempt made of them (each shows its `HTTP <code>`).
fn search_request(plan: &Plan, by_payment: &[[u32; 4]], apps: &[App], payment: u32) -> Request {
    let mut expect = Vec::new();
    let mut attempts = 0;
    for &i in &by_payment[payment as usize] {
        let message = &plan.messages[i as usize];
        expect.push(message.id());
        attempts += message
            .deliveries
            .iter()
            .map(|d| usize::from(d.made))
            .sum::<usize>();
        for endpoint in &apps[usize::from(message.app)].endpoints {
            if !expect.contains(&endpoint.id) {
                expect.push(endpoint.id.clone());
            }
        }
    }
    Request {
        path: format!("/ui/search?q={}", payment_key(payment)),
        htmx: false,
        expect,
        at_least: Some(("HTTP ", attempts)),
    }
}

fn ui_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        // Loopback only: never let an environment proxy see this traffic.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// Signs in as the operator: `POST /ui/login` with the admin token answers 303 and the
/// session cookie; answers the `Cookie` header to send from then on.
async fn sign_in(ui: &reqwest::Client, hookd: &Hookd) -> anyhow::Result<String> {
    let resp = ui
        .post(format!("{}/ui/login", hookd.base_url()))
        .form(&[("token", hookd.token())])
        .send()
        .await
        .context("POST /ui/login")?;
    let status = resp.status();
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|pair| pair.trim_start().starts_with("hookd_ui="))
                .map(|pair| pair.trim().to_owned())
        });
    let body = resp.bytes().await?;
    ensure!(
        status == reqwest::StatusCode::SEE_OTHER,
        "POST /ui/login answered {status}, not 303: {}",
        snippet(&body)
    );
    cookie.context("POST /ui/login set no hookd_ui cookie")
}

async fn get(
    ui: &reqwest::Client,
    url: &str,
    cookie: &str,
    htmx: bool,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let mut request = ui.get(url).header(reqwest::header::COOKIE, cookie);
    if htmx {
        request = request.header("hx-request", "true");
    }
    let resp = request.send().await?;
    let status = resp.status();
    // Read to the end: the page's time includes its body, and the connection is reused.
    Ok((status, resp.text().await?))
}

/// hookd's own time per page, in log order, from its request log (whole milliseconds).
fn server_latencies(hookd: &Hookd) -> anyhow::Result<HashMap<&'static str, Vec<u64>>> {
    let text = std::fs::read_to_string(hookd_log(hookd)?).context("reading hookd's log")?;
    let mut by_page: HashMap<&'static str, Vec<u64>> = HashMap::new();
    for line in text.lines() {
        if let Some((uri, latency)) = request_latency(line) {
            if let Some(page) = page_of(uri) {
                by_page.entry(page).or_default().push(latency);
            }
        }
    }
    Ok(by_page)
}

/// Which timed page a request URI is.
fn page_of(uri: &str) -> Option<&'static str> {
    let (path, _) = uri.split_once('?').unwrap_or((uri, ""));
    match path {
        "/ui/" => Some("overview_page"),
        "/ui/overview" => Some("overview"),
        "/ui/search" => Some("search"),
        "/ui/apps" => Some("apps"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris_name_their_page() {
        assert_eq!(page_of("/ui/"), Some("overview_page"));
        assert_eq!(page_of("/ui/overview"), Some("overview"));
        assert_eq!(page_of("/ui/search?q=pay_12"), Some("search"));
        assert_eq!(page_of("/ui/apps?q=Books+0421"), Some("apps"));
        assert_eq!(page_of("/ui/login"), None);
    }

    #[test]
    fn page_keys_are_distinct() {
        let mut keys: Vec<&str> = PAGES
            .iter()
            .flat_map(|p| [p.p50.0, p.p95.0, p.server_p50.0, p.server_p95.0])
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), PAGES.len() * 4);
    }

    #[test]
    fn searches_expect_every_message_and_attempt() {
        let plan = Plan::new(9, 1_796_000_000_000, 2, 400, 1_200).expect("plans");
        let apps: Vec<App> = (0..2)
            .map(|n| App {
                id: format!("app_{n}"),
                endpoints: [0, 1].map(|e| Endpoint {
                    id: format!("ep_{n}_{e}"),
                    url: String::new(),
                }),
            })
            .collect();
        let index = payment_index(&plan);
        let request = search_request(&plan, &index, &apps, 42);
        assert_eq!(request.path, "/ui/search?q=pay_42");
        let messages = request
            .expect
            .iter()
            .filter(|e| e.starts_with("msg_"))
            .count();
        assert_eq!(messages, 4);
        let (_, attempts) = request.at_least.expect("attempts are counted");
        assert!(attempts >= 8, "{attempts}");
        assert!(request.check("nothing").is_some());
    }
}
