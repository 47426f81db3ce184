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

/// How to launch hookd; shared by all runs of a bench invocation.
#[derive(Clone, Debug)]
pub struct HookdConfig {
    pub bin: PathBuf,
    /// `None`: a fresh SQLite file in each run's temp dir.
    pub database_url: Option<String>,
    /// `HOOKD_LOG`; the bench's default is `warn`, so logging costs little.
    pub log_filter: String,
}

impl HookdConfig {
    /// "sqlite", "postgres", ... (the URL scheme).
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

pub struct Hookd {
    child: Child,
    pid: u32,
    base_url: String,
    token: String,
    dir: TempDir,
    log_path: PathBuf,
}

impl Hookd {
    /// Spawns `hookd serve` and waits until its health check answers.
    pub async fn start(config: &HookdConfig) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hookd-bench-")
            .tempdir()
            .context("creating the run's temp dir")?;
        let log_path = dir.path().join("hookd.log");
        let port = free_port()?;
        let token = random_token();
        let database_url = match &config.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", dir.path().join("hookd.db").display()),
        };
        let child = spawn(config, port, &token, &database_url, &log_path)?;
        let pid = child.id().context("hookd exited before its pid was read")?;
        let mut hookd = Self {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            token,
            dir,
            log_path,
        };
        match hookd.wait_healthy().await {
            Ok(()) => Ok(hookd),
            Err(e) => hookd.finish(Err(e)).await,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Resident set size of the hookd process, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        read_vm_rss(self.pid)
    }

    /// Fails if hookd has exited: a crash mid-run would otherwise show up
    /// only as missing deliveries.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("hookd exited unexpectedly: {status}"),
        }
    }

    /// Stops hookd and passes `outcome` through. On error the temp dir
    /// (with hookd's log) is kept and its path added to the error.
    pub async fn finish<T>(mut self, outcome: anyhow::Result<T>) -> anyhow::Result<T> {
        let outcome = outcome.and_then(|v| self.ensure_running().map(|()| v));
        // Kill errors mean it is already gone, which is what we want.
        let _ = self.child.kill().await;
        match outcome {
            Ok(v) => Ok(v),
            Err(e) => {
                let Self { dir, log_path, .. } = self;
                let _kept = dir.keep();
                let tail = log_tail(&log_path, 20);
                Err(e.context(format!(
                    "hookd log kept at {}; its last lines:\n{tail}",
                    log_path.display()
                )))
            }
        }
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?;
        let url = format!("{}/api/v1/health", self.base_url);
        let deadline = Instant::now() + HEALTH_DEADLINE;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            self.ensure_running()?;
            match client.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => last = format!("status {}", resp.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(HEALTH_POLL).await;
        }
        bail!("hookd not healthy after {HEALTH_DEADLINE:?} at {url}: {last}")
    }
}

fn spawn(
    config: &HookdConfig,
    port: u16,
    token: &str,
    database_url: &str,
    log_path: &Path,
) -> anyhow::Result<Child> {
    let log = File::create(log_path).context("creating hookd's log file")?;
    let mut cmd = Command::new(&config.bin);
    cmd.arg("serve");
    // Settings inherited from the caller's shell would make runs differ.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HOOKD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HOOKD_DATABASE_URL", database_url)
        .env("HOOKD_ADMIN_TOKEN", token)
        .env("HOOKD_ALLOW_DESTINATIONS", "127.0.0.0/8")
        .env("HOOKD_LOG", &config.log_filter)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
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
            log_filter: "warn".into(),
        };
        assert_eq!(cfg.database_kind(), "postgres");
    }
}
