//! Runs hookd as a child process on a fresh temp database, for one bench run.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::Rng;
use tempfile::TempDir;
use tokio::process::{Child, Command};

const HEALTH_POLL: Duration = Duration::from_millis(50);
const HEALTH_DEADLINE: Duration = Duration::from_secs(30);
/// How long a stopping hookd may take to shut down cleanly before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// How to launch hookd; shared by all runs of a bench invocation.
#[derive(Clone, Debug)]
pub struct HookdConfig {
    pub bin: PathBuf,
    /// `None`: a fresh SQLite file in each run's temp dir. A PostgreSQL URL names a server
    /// (and its maintenance database) on which each run creates and drops its own database.
    pub database_url: Option<String>,
    /// hookd processes per run, all on the run's database (more than one needs PostgreSQL).
    pub nodes: usize,
    /// `HOOKD_LOG`; the bench's default is `warn`, so logging costs little.
    pub log_filter: String,
    /// Settings given with `--hookd-env KEY=VALUE`, set after the bench's own (so they win).
    pub extra_env: Vec<(String, String)>,
}

impl HookdConfig {
    /// "sqlite", "postgres", ... (the URL scheme).
    /// Whether every run gets a database of its own.
    pub fn fresh_database_per_run(&self) -> bool {
        self.database_url.as_deref().is_none_or(is_postgres)
    }

    pub fn database_kind(&self) -> String {
        match &self.database_url {
            None => "sqlite".to_owned(),
            Some(url) => url.split("://").next().unwrap_or("unknown").to_owned(),
        }
    }

    /// First line of `hookd --version`.
    pub fn version(&self) -> anyhow::Result<String> {
        let out = std::process::Command::new(&self.bin)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version exited with {}",
                self.bin.display(),
                out.status
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or("").trim();
        Ok(if first.is_empty() {
            "(no --version output)"
        } else {
            first
        }
        .to_owned())
    }
}

/// The hookd nodes of one run: one process, or (`--nodes N`, PostgreSQL) N processes on the
/// same fresh database, all accepting the same admin token.
pub struct Hookd {
    nodes: Vec<Node>,
    token: String,
    dir: TempDir,
    /// The PostgreSQL database made for this run, dropped when it ends.
    database: Option<FreshDatabase>,
    /// What `restart` needs to start the same nodes again on the same database.
    config: HookdConfig,
    database_url: String,
    main_secret: Option<String>,
    /// How many times the nodes were started (names each start's log files).
    starts: usize,
}

struct Node {
    child: Child,
    pid: u32,
    base_url: String,
    log_path: PathBuf,
}

impl Hookd {
    /// Spawns the run's `hookd serve` processes and waits until each health check answers.
    pub async fn start(config: &HookdConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hookd-bench-")
            .tempdir()
            .context("creating the run's temp dir")?;
        let token = random_token();
        let (database_url, database) = match &config.database_url {
            Some(url) if is_postgres(url) => {
                let fresh = FreshDatabase::create(url).await?;
                (fresh.url.clone(), Some(fresh))
            }
            Some(url) => (url.clone(), None),
            None => (
                format!("sqlite://{}", dir.path().join("hookd.db").display()),
                None,
            ),
        };
        // Every node must seal endpoint secrets with the same key; PostgreSQL requires one.
        let main_secret = database.is_some().then(random_token);
        let mut hookd = Self {
            nodes: Vec::new(),
            token,
            dir,
            database,
            config: config.clone(),
            database_url,
            main_secret,
            starts: 0,
        };
        match hookd.spawn_nodes().await {
            Ok(()) => Ok(hookd),
            Err(e) => hookd.finish(Err(e)).await,
        }
    }

    /// Starts the nodes (on new ports) and waits until each answers its health check.
    async fn spawn_nodes(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        for n in 0..self.config.nodes.max(1) {
            let log_path = match self.starts {
                1 => self.dir.path().join(format!("hookd-{n}.log")),
                start => self.dir.path().join(format!("hookd-{n}.start{start}.log")),
            };
            let port = free_port()?;
            let launch = Launch {
                port,
                token: &self.token,
                database_url: &self.database_url,
                main_secret: self.main_secret.as_deref(),
                log_path: &log_path,
            };
            let child = spawn(&self.config, &launch)?;
            let pid = child.id().context("hookd exited before its pid was read")?;
            self.nodes.push(Node {
                child,
                pid,
                base_url: format!("http://127.0.0.1:{port}"),
                log_path,
            });
        }
        self.wait_healthy().await
    }

    /// Stops every node as an operator would (SIGTERM, then SIGKILL after `STOP_DEADLINE`),
    /// keeping the run's database and temp dir, e.g. to load rows into the database directly.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        for node in &self.nodes {
            // `kill` is the portable way to send SIGTERM without unsafe code.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &node.pid.to_string()])
                .status();
        }
        for node in &mut self.nodes {
            match tokio::time::timeout(STOP_DEADLINE, node.child.wait()).await {
                Ok(status) => {
                    status.context("waiting for hookd to stop")?;
                }
                Err(_) => {
                    eprintln!(
                        "warning: hookd ({}) did not stop within {STOP_DEADLINE:?}; killing it",
                        node.base_url
                    );
                    let _ = node.child.kill().await;
                }
            }
        }
        // The stopped nodes' logs stay in the temp dir; only running nodes are tracked.
        self.nodes.clear();
        Ok(())
    }

    /// Starts the nodes again on the same database (after [`Hookd::stop`]), same token.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes.is_empty(),
            "restart needs the nodes stopped first"
        );
        self.spawn_nodes().await
    }

    /// The database URL the nodes run on (the run's fresh PostgreSQL database, or the
    /// `sqlite://` file).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Whether the nodes run on PostgreSQL (whose server's CPU is then part of a run's cost).
    pub fn on_postgres(&self) -> bool {
        is_postgres(&self.database_url)
    }

    /// Updates the PostgreSQL planner's statistics of the run's database, as autovacuum does
    /// after a burst of writes on a default server (some test servers, this machine's among
    /// them, run with autovacuum off). Nothing to do on SQLite.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let Some(database) = &self.database else {
            return Ok(());
        };
        let mut connection = sqlx::PgConnection::connect(&database.url)
            .await
            .context("connecting to the run's database to analyze it")?;
        sqlx::query("ANALYZE")
            .execute(&mut connection)
            .await
            .context("analyzing the run's database")?;
        let _ = connection.close().await;
        Ok(())
    }

    /// The first node's address: where setup calls go.
    pub fn base_url(&self) -> &str {
        &self.nodes[0].base_url
    }

    /// Every node's address: publishers spread over them.
    pub fn base_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base_url.clone()).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Resident set size of all hookd processes together, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        self.nodes.iter().map(|n| read_vm_rss(n.pid)).sum()
    }

    /// Fails if a hookd process has exited: a crash mid-run would otherwise show up
    /// only as missing deliveries.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            if let Some(status) = node.child.try_wait()? {
                bail!("hookd ({}) exited unexpectedly: {status}", node.base_url);
            }
        }
        Ok(())
    }

    /// Stops hookd and passes `outcome` through. On error the temp dir
    /// (with hookd's logs) is kept and its path added to the error.
    pub async fn finish<T>(mut self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        let outcome = outcome.and_then(|v| self.ensure_running().map(|()| v));
        for node in &mut self.nodes {
            // Kill errors mean it is already gone, which is what we want.
            let _ = node.child.kill().await;
        }
        if let Some(database) = self.database.take() {
            database.drop_now().await;
        }
        match outcome {
            Ok(v) => Ok(v),
            Err(e) => {
                let Self { dir, nodes, .. } = self;
                let _kept = dir.keep();
                let tails: Vec<String> = nodes
                    .iter()
                    .map(|n| {
                        format!(
                            "hookd log kept at {}; its last lines:\n{}",
                            n.log_path.display(),
                            log_tail(&n.log_path, 20)
                        )
                    })
                    .collect();
                Err(e.context(tails.join("\n")))
            }
        }
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?;
        let deadline = Instant::now() + HEALTH_DEADLINE;
        for n in 0..self.nodes.len() {
            let url = format!("{}/api/v1/health", self.nodes[n].base_url);
            let mut last = String::from("no answer yet");
            loop {
                if Instant::now() >= deadline {
                    bail!("hookd not healthy after {HEALTH_DEADLINE:?} at {url}: {last}");
                }
                self.ensure_running()?;
                match client.get(&url).send().await {
                    Ok(resp) if resp.status().is_success() => break,
                    Ok(resp) => last = format!("status {}", resp.status()),
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(HEALTH_POLL).await;
            }
        }
        Ok(())
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A database created for one run on the PostgreSQL server `--database-url` names, so runs
/// never see each other's rows.
struct FreshDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDatabase {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        use sqlx::Connection;
        let name = format!("hookd_bench_{}", &random_token()["bench_".len()..]);
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .context("connecting to PostgreSQL to create the run's database")?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .context("creating the run's database")?;
        let _ = admin.close().await;
        let (server, _) = admin_url
            .split_once('?')
            .map_or((admin_url, ""), |(a, b)| (a, b));
        let (server, _) = server.rsplit_once('/').context(
            "--database-url must name a database, e.g. postgres://postgres@127.0.0.1/postgres",
        )?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: format!("{server}/{name}"),
            name,
        })
    }

    async fn drop_now(self) {
        use sqlx::Connection;
        let dropped = async {
            let mut admin = sqlx::PgConnection::connect(&self.admin_url).await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await?;
            admin.close().await
        };
        if let Err(e) = dropped.await {
            eprintln!(
                "warning: the run's database {} was not dropped: {e}",
                self.name
            );
        }
    }
}

struct Launch<'a> {
    port: u16,
    token: &'a str,
    database_url: &'a str,
    main_secret: Option<&'a str>,
    log_path: &'a Path,
}

fn spawn(config: &HookdConfig, launch: &Launch<'_>) -> anyhow::Result<Child> {
    let log = File::create(launch.log_path).context("creating hookd's log file")?;
    let mut cmd = Command::new(&config.bin);
    cmd.arg("serve");
    // Settings inherited from the caller's shell would make runs differ.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOKD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOOKD_LISTEN", format!("127.0.0.1:{}", launch.port))
        .env("HOOKD_DATABASE_URL", launch.database_url)
        .env("HOOKD_ADMIN_TOKEN", launch.token)
        .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
        .env("HOOKD_LOG", &config.log_filter)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    if let Some(secret) = launch.main_secret {
        cmd.env("HOOKD_MAIN_SECRET", secret);
    }
    cmd.envs(config.extra_env.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
        .with_context(|| format!("starting {} serve", config.bin.display()))
}

/// Last `n` lines of hookd's log, to show why a run failed.
fn log_tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(log unreadable: {e})"),
    }
}

/// A port that was free a moment ago; hookd binds it right after.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn random_token() -> String {
    let bytes: [u8; 16] = rand::thread_rng().gen();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("bench_{hex}")
}

pub fn read_vm_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_kib_field(&status, "VmRSS:").context("no VmRSS in /proc status")
}

/// Value of a `Name:   1234 kB` line from a /proc file.
pub fn parse_kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_fields() {
        let text = "Name:\thookd\nVmRSS:\t   12345 kB\nVmSwap:\t0 kB\n";
        assert_eq!(parse_kib_field(text, "VmRSS:"), Some(12345));
        assert_eq!(parse_kib_field(text, "VmHWM:"), None);
    }

    #[test]
    fn token_shape() {
        let t = random_token();
        assert_eq!(t.len(), "bench_".len() + 32);
        assert!(t.starts_with("bench_"));
    }

    #[test]
    fn database_kind_from_url() {
        let cfg = HookdConfig {
            bin: PathBuf::from("hookd"),
            database_url: Some("postgres://u@127.0.0.1/db".into()),
            nodes: 1,
            log_filter: "warn".into(),
            extra_env: Vec::new(),
        };
        assert_eq!(cfg.database_kind(), "postgres");
    }
}
