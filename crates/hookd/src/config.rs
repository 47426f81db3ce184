//! Settings: from flags, `HOOKD_*` variables and an optional TOML file, checked once at start.
//!
//! Precedence is flag, then environment variable (both handled by clap), then the file, then
//! the default. Every value is parsed here into its final type, so a bad setting stops hookd
//! at start with a message naming the setting, never later.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use serde::Deserialize;

use hookd_signing::Secret;

use crate::delivery::RetryPolicy;
use crate::domain::EndpointUrl;
use crate::outbound::{DestinationGuard, Verdict};
use crate::store::{is_postgres_url, PoolOptions};

pub use crate::delivery::attempt::SignatureHeaders;
pub use crate::telemetry::LogFormat;

/// A built-in catalog loaded at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// The payment event types (`payment.created`, …) with schemas and examples.
    Payments,
}

/// What one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The management API only.
    Api,
    /// Delivery workers only.
    Worker,
    /// Both.
    All,
}

/// The validated settings of a hookd process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    pub admin_token: Option<String>,
    /// The key endpoint secrets are sealed under; `None` uses a key file beside SQLite.
    pub main_secret: Option<String>,
    pub allow_destinations: Vec<IpNet>,
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub signature_headers: SignatureHeaders,
    pub max_payload_bytes: usize,
    pub poll_interval: Duration,
    /// How long shutdown waits for attempts in flight.
    pub shutdown_timeout: Duration,
    pub max_in_flight: usize,
    /// Most attempts in flight to one endpoint per process.
    pub endpoint_max_in_flight: usize,
    /// API requests per second per token; 0 for no limit.
    pub api_rate_limit: u32,
    pub role: Role,
    pub log_format: LogFormat,
    pub seed: Option<Seed>,
    /// Connection pool of a PostgreSQL store (unused by SQLite).
    pub pool: PoolOptions,
    /// Attempts, and messages whose deliveries are finished, older than this are deleted.
    pub retention: Duration,
    /// How often a worker prunes what is past retention.
    pub prune_interval: Duration,
    /// A lease duration chosen by the operator instead of the one derived from the timeouts.
    pub lease_override: Option<Duration>,
    /// Deliveries a background task (`recover`) makes due at a time.
    pub task_batch_size: usize,
    /// An endpoint whose attempts have only failed for this long is disabled.
    pub disable_after: Duration,
    /// Where operational webhooks go, when the operator asked for them.
    pub operational_webhook: Option<OperationalWebhook>,
    /// The merchant portal's address and brand.
    pub portal: PortalSettings,
}

/// How the merchant portal is reached, embedded and branded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSettings {
    /// The address merchants reach hookd at, for portal links; `None` uses the listen address.
    pub public_url: Option<url::Url>,
    /// CSP `frame-ancestors` sources: who may show the portal in a frame.
    pub frame_ancestors: Vec<String>,
    pub brand_name: String,
    pub logo_url: Option<url::Url>,
    /// `#rrggbb`.
    pub accent_color: String,
}

pub use crate::operational::OperationalWebhook;

impl Settings {
    /// Settings for tests and embedding: a database URL and everything else at its default.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self::with_database_and_secret(database_url, None)
    }

    /// [`with_database`](Self::with_database) with a main secret (which PostgreSQL requires).
    pub fn with_database_and_secret(
        database_url: impl Into<String>,
        main_secret: Option<&str>,
    ) -> Self {
        RawSettings {
            database_url: Some(database_url.into()),
            main_secret: main_secret.map(String::from),
            ..RawSettings::default()
        }
        .resolve()
        .expect("the defaults are valid")
    }

    /// How long a claimed delivery stays leased: by default long enough for the slowest
    /// attempt. With PostgreSQL it is also how long a dead node's deliveries wait before
    /// another node takes them over.
    pub(crate) fn lease_duration(&self) -> Duration {
        self.lease_override.unwrap_or_else(|| {
            self.connect_timeout + self.request_timeout * 2 + Duration::from_secs(30)
        })
    }
}

/// Settings as given, before validation. Field names are the TOML keys; clap adds the flags and
/// `HOOKD_*` variables.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RawSettings {
    /// Address the API listens on [default: 127.0.0.1:8071]
    #[arg(long, env = "HOOKD_LISTEN")]
    pub listen: Option<String>,
    /// Database URL: sqlite://PATH, or postgres://USER@HOST/DB for several nodes
    /// [default: sqlite://hookd.db]
    #[arg(long, env = "HOOKD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A token accepted as an org token, in addition to stored tokens
    #[arg(long, env = "HOOKD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Key that seals endpoint secrets at rest (32+ characters); required with PostgreSQL
    /// [default: a generated key file beside the SQLite database]
    #[arg(long, env = "HOOKD_MAIN_SECRET", hide_env_values = true)]
    pub main_secret: Option<String>,
    /// Comma-separated CIDRs that deliveries may reach despite the SSRF guard
    #[arg(long, env = "HOOKD_ALLOW_DESTINATIONS")]
    pub allow_destinations: Option<String>,
    /// Comma-separated delays between attempts [default: 5s,5m,30m,2h,5h,10h,10h]
    #[arg(long, env = "HOOKD_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Shortest wait after a 429 or a timeout [default: 60s]
    #[arg(long, env = "HOOKD_THROTTLED_RETRY_MIN")]
    pub throttled_retry_min: Option<String>,
    /// Total time allowed for one attempt [default: 15s]
    #[arg(long, env = "HOOKD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Time allowed to connect to an endpoint [default: 5s]
    #[arg(long, env = "HOOKD_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<String>,
    /// Signature header names: webhook, svix or both [default: webhook]
    #[arg(long, env = "HOOKD_SIGNATURE_HEADERS")]
    pub signature_headers: Option<String>,
    /// Largest accepted message payload in bytes [default: 1048576]
    #[arg(long, env = "HOOKD_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<usize>,
    /// How often workers look for due deliveries when nothing wakes them [default: 1s]
    #[arg(long, env = "HOOKD_POLL_INTERVAL")]
    pub poll_interval: Option<String>,
    /// How long a stopping hookd waits for attempts in flight [default: 10s]
    #[arg(long, env = "HOOKD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// Most delivery attempts in flight per process [default: 512]
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Most attempts in flight to one endpoint per process [default: 64]
    #[arg(long, env = "HOOKD_ENDPOINT_MAX_IN_FLIGHT")]
    pub endpoint_max_in_flight: Option<usize>,
    /// API requests per second allowed per token, 0 for no limit [default: 20000]
    #[arg(long, env = "HOOKD_API_RATE_LIMIT")]
    pub api_rate_limit: Option<u32>,
    /// What this process runs: api, worker or all [default: all]
    #[arg(long, env = "HOOKD_ROLE")]
    pub role: Option<String>,
    /// Load a built-in event type catalog at start: payments
    #[arg(long, env = "HOOKD_SEED")]
    pub seed: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "HOOKD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Most PostgreSQL connections per process [default: 16]
    #[arg(long, env = "HOOKD_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<u32>,
    /// How long a query waits for a free PostgreSQL connection [default: 5s]
    #[arg(long, env = "HOOKD_DATABASE_ACQUIRE_TIMEOUT")]
    pub database_acquire_timeout: Option<String>,
    /// How long one PostgreSQL statement may run [default: 30s]
    #[arg(long, env = "HOOKD_DATABASE_STATEMENT_TIMEOUT")]
    pub database_statement_timeout: Option<String>,
    /// Age after which attempts, and messages whose deliveries are finished, are deleted
    /// [default: 90days]
    #[arg(long, env = "HOOKD_ATTEMPT_RETENTION")]
    pub attempt_retention: Option<String>,
    /// How often workers delete what is past retention [default: 1h]
    #[arg(long, env = "HOOKD_PRUNE_INTERVAL")]
    pub prune_interval: Option<String>,
    /// How long a claimed delivery is leased to one worker; a shorter lease hands a dead
    /// node's work over sooner, but an attempt slower than it may be sent twice
    /// [default: connect timeout + 2 × request timeout + 30s]
    #[arg(long, env = "HOOKD_LEASE_DURATION")]
    pub lease_duration: Option<String>,
    /// Disable an endpoint whose attempts have only failed for this long (any success resets
    /// the clock; a 410 Gone disables at once) [default: 5days]
    #[arg(long, env = "HOOKD_DISABLE_AFTER")]
    pub disable_after: Option<String>,
    /// URL that receives operational webhooks (endpoint.created/updated/deleted/disabled,
    /// message.attempt.failing/exhausted/recovered), checked by the same SSRF guard as any
    /// endpoint [default: none, no operational webhooks]
    #[arg(long, env = "HOOKD_OPERATIONAL_WEBHOOK_URL")]
    pub operational_webhook_url: Option<String>,
    /// Secret (whsec_…) that signs operational webhooks; required with the URL
    #[arg(long, env = "HOOKD_OPERATIONAL_WEBHOOK_SECRET", hide_env_values = true)]
    pub operational_webhook_secret: Option<String>,
    /// Deliveries a recovery makes due at a time; the next batch waits until the endpoint has
    /// attempted them [default: 1000]
    #[arg(long, env = "HOOKD_TASK_BATCH_SIZE")]
    pub task_batch_size: Option<usize>,
    /// The address merchants and operators reach hookd at, used in portal links
    /// [default: http:// and the listen address]
    #[arg(long, env = "HOOKD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Space-separated origins allowed to show the merchant portal in a frame (CSP
    /// frame-ancestors), e.g. https://dashboard.example.com [default: 'self']
    #[arg(long, env = "HOOKD_PORTAL_FRAME_ANCESTORS")]
    pub portal_frame_ancestors: Option<String>,
    /// The name shown at the top of the merchant portal [default: Webhooks]
    #[arg(long, env = "HOOKD_PORTAL_BRAND_NAME")]
    pub portal_brand_name: Option<String>,
    /// An http(s) URL of a logo shown beside the brand name [default: none]
    #[arg(long, env = "HOOKD_PORTAL_LOGO_URL")]
    pub portal_logo_url: Option<String>,
    /// The portal's accent colour as #rrggbb [default: #4f46e5]
    #[arg(long, env = "HOOKD_PORTAL_ACCENT_COLOR")]
    pub portal_accent_color: Option<String>,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {problem}")]
pub struct SettingError {
    name: &'static str,
    problem: String,
}

fn invalid(name: &'static str, problem: impl std::fmt::Display) -> SettingError {
    SettingError {
        name,
        problem: problem.to_string(),
    }
}

impl RawSettings {
    /// Fills what flags and variables left unset from a TOML file.
    pub fn with_file(self, path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let file: RawSettings = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid configuration file {}: {e}", path.display()))?;
        Ok(self.or(file))
    }

    fn or(self, other: Self) -> Self {
        Self {
            listen: self.listen.or(other.listen),
            database_url: self.database_url.or(other.database_url),
            admin_token: self.admin_token.or(other.admin_token),
            main_secret: self.main_secret.or(other.main_secret),
            allow_destinations: self.allow_destinations.or(other.allow_destinations),
            retry_schedule: self.retry_schedule.or(other.retry_schedule),
            throttled_retry_min: self.throttled_retry_min.or(other.throttled_retry_min),
            request_timeout: self.request_timeout.or(other.request_timeout),
            connect_timeout: self.connect_timeout.or(other.connect_timeout),
            signature_headers: self.signature_headers.or(other.signature_headers),
            max_payload_bytes: self.max_payload_bytes.or(other.max_payload_bytes),
            poll_interval: self.poll_interval.or(other.poll_interval),
            shutdown_timeout: self.shutdown_timeout.or(other.shutdown_timeout),
            max_in_flight: self.max_in_flight.or(other.max_in_flight),
            api_rate_limit: self.api_rate_limit.or(other.api_rate_limit),
            endpoint_max_in_flight: self.endpoint_max_in_flight.or(other.endpoint_max_in_flight),
            role: self.role.or(other.role),
            log_format: self.log_format.or(other.log_format),
            seed: self.seed.or(other.seed),
            database_pool_size: self.database_pool_size.or(other.database_pool_size),
            database_acquire_timeout: self
                .database_acquire_timeout
                .or(other.database_acquire_timeout),
            database_statement_timeout: self
                .database_statement_timeout
                .or(other.database_statement_timeout),
            attempt_retention: self.attempt_retention.or(other.attempt_retention),
            prune_interval: self.prune_interval.or(other.prune_interval),
            lease_duration: self.lease_duration.or(other.lease_duration),
            disable_after: self.disable_after.or(other.disable_after),
            operational_webhook_url: self
                .operational_webhook_url
                .or(other.operational_webhook_url),
            operational_webhook_secret: self
                .operational_webhook_secret
                .or(other.operational_webhook_secret),
            task_batch_size: self.task_batch_size.or(other.task_batch_size),
            public_url: self.public_url.or(other.public_url),
            portal_frame_ancestors: self.portal_frame_ancestors.or(other.portal_frame_ancestors),
            portal_brand_name: self.portal_brand_name.or(other.portal_brand_name),
            portal_logo_url: self.portal_logo_url.or(other.portal_logo_url),
            portal_accent_color: self.portal_accent_color.or(other.portal_accent_color),
        }
    }

    /// Validates every setting and applies defaults.
    pub fn resolve(self) -> Result<Settings, SettingError> {
        let listen = self.listen.as_deref().unwrap_or("127.0.0.1:8071");
        let listen = listen.parse().map_err(|_| {
            invalid(
                "HOOKD_LISTEN",
                format!("{listen:?} is not an address like 127.0.0.1:8071"),
            )
        })?;
        let database_url = self
            .database_url
            .unwrap_or_else(|| "sqlite://hookd.db".into());
        let postgres = is_postgres_url(&database_url);
        if !postgres && !database_url.starts_with("sqlite://") {
            return Err(invalid(
                "HOOKD_DATABASE_URL",
                "must be sqlite://PATH or postgres://USER@HOST[:PORT]/DATABASE",
            ));
        }
        let admin_token = self.admin_token.filter(|t| !t.is_empty());
        if admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "HOOKD_ADMIN_TOKEN",
                "must be at least 16 characters long",
            ));
        }
        let main_secret = self.main_secret.filter(|s| !s.is_empty());
        if main_secret
            .as_ref()
            .is_some_and(|s| s.len() < crate::store::cipher::MIN_MAIN_SECRET_LEN)
        {
            return Err(invalid(
                "HOOKD_MAIN_SECRET",
                "must be at least 32 characters long",
            ));
        }
        if postgres && main_secret.is_none() {
            return Err(invalid(
                "HOOKD_MAIN_SECRET",
                "is required with PostgreSQL: set the same random value of 32+ characters on \
                 every node (it seals endpoint secrets; no key file is kept)",
            ));
        }
        let pool_size = self.database_pool_size.unwrap_or(16);
        if !(2..=1000).contains(&pool_size) {
            return Err(invalid(
                "HOOKD_DATABASE_POOL_SIZE",
                "must be between 2 and 1000",
            ));
        }
        let retry_schedule = parse_durations(
            "HOOKD_RETRY_SCHEDULE",
            self.retry_schedule
                .as_deref()
                .unwrap_or("5s,5m,30m,2h,5h,10h,10h"),
        )?;
        let throttled_min = duration(
            "HOOKD_THROTTLED_RETRY_MIN",
            self.throttled_retry_min.as_deref().unwrap_or("60s"),
        )?;
        let max_payload_bytes = self.max_payload_bytes.unwrap_or(1024 * 1024);
        if max_payload_bytes == 0 || max_payload_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "HOOKD_MAX_PAYLOAD_BYTES",
                "must be between 1 and 67108864",
            ));
        }
        let task_batch_size = self.task_batch_size.unwrap_or(1000);
        if !(1..=100_000).contains(&task_batch_size) {
            return Err(invalid(
                "HOOKD_TASK_BATCH_SIZE",
                "must be between 1 and 100000",
            ));
        }
        let max_in_flight = self.max_in_flight.unwrap_or(512);
        if !(1..=100_000).contains(&max_in_flight) {
            return Err(invalid(
                "HOOKD_MAX_IN_FLIGHT",
                "must be between 1 and 100000",
            ));
        }
        let allow_destinations = parse_cidrs(self.allow_destinations.as_deref().unwrap_or(""))?;
        let portal = PortalSettings {
            public_url: self
                .public_url
                .as_deref()
                .filter(|text| !text.is_empty())
                .map(|text| web_url("HOOKD_PUBLIC_URL", text))
                .transpose()?,
            frame_ancestors: parse_frame_ancestors(self.portal_frame_ancestors.as_deref())?,
            brand_name: parse_brand_name(self.portal_brand_name)?,
            logo_url: self
                .portal_logo_url
                .as_deref()
                .filter(|text| !text.is_empty())
                .map(|text| web_url("HOOKD_PORTAL_LOGO_URL", text))
                .transpose()?,
            accent_color: parse_accent(self.portal_accent_color.as_deref())?,
        };
        let operational_webhook = parse_operational_webhook(
            self.operational_webhook_url,
            self.operational_webhook_secret,
            &allow_destinations,
        )?;
        Ok(Settings {
            listen,
            database_url,
            admin_token,
            main_secret,
            allow_destinations,
            retry: RetryPolicy::new(retry_schedule, throttled_min),
            request_timeout: positive("HOOKD_REQUEST_TIMEOUT", self.request_timeout, "15s")?,
            connect_timeout: positive("HOOKD_CONNECT_TIMEOUT", self.connect_timeout, "5s")?,
            signature_headers: parse_signature_headers(self.signature_headers.as_deref())?,
            max_payload_bytes,
            poll_interval: positive("HOOKD_POLL_INTERVAL", self.poll_interval, "1s")?,
            shutdown_timeout: duration(
                "HOOKD_SHUTDOWN_TIMEOUT",
                self.shutdown_timeout.as_deref().unwrap_or("10s"),
            )?,
            max_in_flight,
            api_rate_limit: self.api_rate_limit.unwrap_or(20_000),
            endpoint_max_in_flight: self
                .endpoint_max_in_flight
                .unwrap_or(64)
                .clamp(1, max_in_flight),
            role: parse_role(self.role.as_deref())?,
            log_format: parse_log_format(self.log_format.as_deref())?,
            seed: match self.seed.as_deref() {
                None | Some("") => None,
                Some("payments") => Some(Seed::Payments),
                Some(other) => {
                    return Err(invalid(
                        "HOOKD_SEED",
                        format!("{other:?} is not a catalog (payments)"),
                    ))
                }
            },
            pool: PoolOptions {
                max_connections: pool_size,
                acquire_timeout: positive(
                    "HOOKD_DATABASE_ACQUIRE_TIMEOUT",
                    self.database_acquire_timeout,
                    "5s",
                )?,
                statement_timeout: positive(
                    "HOOKD_DATABASE_STATEMENT_TIMEOUT",
                    self.database_statement_timeout,
                    "30s",
                )?,
            },
            retention: positive("HOOKD_ATTEMPT_RETENTION", self.attempt_retention, "90days")?,
            prune_interval: positive("HOOKD_PRUNE_INTERVAL", self.prune_interval, "1h")?,
            lease_override: self
                .lease_duration
                .map(|text| positive("HOOKD_LEASE_DURATION", Some(text), ""))
                .transpose()?,
            disable_after: positive("HOOKD_DISABLE_AFTER", self.disable_after, "5days")?,
            operational_webhook,
            task_batch_size,
            portal,
        })
    }
}

/// An absolute http(s) URL.
fn web_url(name: &'static str, text: &str) -> Result<url::Url, SettingError> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| invalid(name, format!("{text:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(name, format!("{text:?} must be an http(s) URL")));
    }
    Ok(url)
}

/// CSP `frame-ancestors` sources. Each is checked so a setting can never add another directive
/// to the header (no `;`, quotes only in the two keywords).
fn parse_frame_ancestors(text: Option<&str>) -> Result<Vec<String>, SettingError> {
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("'self'");
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|source| !source.is_empty())
        .map(|source| {
            let keyword = matches!(source, "'self'" | "'none'");
            let host_source = !source.is_empty()
                && source.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.' | '-' | '*' | '[' | ']')
                });
            if keyword || host_source {
                Ok(source.to_string())
            } else {
                Err(invalid(
                    "HOOKD_PORTAL_FRAME_ANCESTORS",
                    format!("{source:?} is not an origin like https://dashboard.example.com, 'self' or 'none'"),
                ))
            }
        })
        .collect()
}

fn parse_brand_name(text: Option<String>) -> Result<String, SettingError> {
    let name = text
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Webhooks".into());
    if name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(invalid(
            "HOOKD_PORTAL_BRAND_NAME",
            "must be at most 60 characters, without control characters",
        ));
    }
    Ok(name)
}

fn parse_accent(text: Option<&str>) -> Result<String, SettingError> {
    let color = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("#4f46e5");
    let hex = color.strip_prefix('#').unwrap_or("");
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(
            "HOOKD_PORTAL_ACCENT_COLOR",
            format!("{color:?} is not a colour like #4f46e5"),
        ));
    }
    Ok(color.to_ascii_lowercase())
}

fn duration(name: &'static str, text: &str) -> Result<Duration, SettingError> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            name,
            format!("{text:?} is not a duration like 15s or 250ms ({e})"),
        )
    })
}

fn positive(
    name: &'static str,
    text: Option<String>,
    default: &str,
) -> Result<Duration, SettingError> {
    let value = duration(name, text.as_deref().unwrap_or(default))?;
    if value.is_zero() {
        return Err(invalid(name, "must be longer than zero"));
    }
    Ok(value)
}

fn parse_durations(name: &'static str, text: &str) -> Result<Vec<Duration>, SettingError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(|part| duration(name, part)).collect()
}

/// `HOOKD_ALLOW_DESTINATIONS`: comma-separated CIDRs or addresses deliveries may reach although
/// the SSRF guard refuses their range.
pub fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, SettingError> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "HOOKD_ALLOW_DESTINATIONS",
                        format!("{part:?} is not a CIDR like 10.0.0.0/8 or an address"),
                    )
                })
        })
        .collect()
}

/// The operational webhook target: a URL deliveries may reach and its `whsec_` secret, both or
/// neither. Like an endpoint URL, a literal address outside the allowed destinations is refused
/// now; a host name is judged when it is resolved, at each delivery.
fn parse_operational_webhook(
    url: Option<String>,
    secret: Option<String>,
    allow_destinations: &[IpNet],
) -> Result<Option<OperationalWebhook>, SettingError> {
    const URL: &str = "HOOKD_OPERATIONAL_WEBHOOK_URL";
    const SECRET: &str = "HOOKD_OPERATIONAL_WEBHOOK_SECRET";
    let url = url.filter(|u| !u.trim().is_empty());
    let secret = secret.filter(|s| !s.is_empty());
    let (url, secret) = match (url, secret) {
        (None, None) => return Ok(None),
        (Some(url), Some(secret)) => (url, secret),
        (Some(_), None) => {
            return Err(invalid(
                SECRET,
                "is required with HOOKD_OPERATIONAL_WEBHOOK_URL: give a whsec_ secret to sign \
                 operational webhooks with",
            ))
        }
        (None, Some(_)) => return Err(invalid(URL, "is required with its secret")),
    };
    let url = EndpointUrl::parse(url.trim()).map_err(|e| invalid(URL, e))?;
    if let Verdict::Blocked(reason) =
        DestinationGuard::new(allow_destinations.to_vec()).check_url(url.as_url())
    {
        return Err(invalid(
            URL,
            format!(
                "deliveries may not reach this address: {reason} (allow it with \
                 HOOKD_ALLOW_DESTINATIONS)"
            ),
        ));
    }
    // The error says what is wrong with the secret, never the secret itself.
    let secret = Secret::parse(&secret).map_err(|e| invalid(SECRET, e))?;
    Ok(Some(OperationalWebhook { url, secret }))
}

fn parse_signature_headers(text: Option<&str>) -> Result<SignatureHeaders, SettingError> {
    match text.unwrap_or("webhook") {
        "webhook" => Ok(SignatureHeaders::Webhook),
        "svix" => Ok(SignatureHeaders::Svix),
        "both" => Ok(SignatureHeaders::Both),
        other => Err(invalid(
            "HOOKD_SIGNATURE_HEADERS",
            format!("{other:?} is not one of webhook, svix, both"),
        )),
    }
}

fn parse_role(text: Option<&str>) -> Result<Role, SettingError> {
    match text.unwrap_or("all") {
        "api" => Ok(Role::Api),
        "worker" => Ok(Role::Worker),
        "all" => Ok(Role::All),
        other => Err(invalid(
            "HOOKD_ROLE",
            format!("{other:?} is not one of api, worker, all"),
        )),
    }
}

fn parse_log_format(text: Option<&str>) -> Result<LogFormat, SettingError> {
    match text.unwrap_or("text") {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid(
            "HOOKD_LOG_FORMAT",
            format!("{other:?} is not one of text, json"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let settings = RawSettings::default().resolve().expect("defaults");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8071");
        assert_eq!(settings.database_url, "sqlite://hookd.db");
        assert_eq!(settings.retry.schedule.len(), 7);
        assert_eq!(settings.request_timeout, Duration::from_secs(15));
        assert_eq!(settings.max_payload_bytes, 1024 * 1024);
        assert_eq!(settings.signature_headers, SignatureHeaders::Webhook);
        assert_eq!(settings.disable_after, Duration::from_secs(5 * 24 * 3600));
    }

    #[test]
    fn bad_values_name_their_setting() {
        let bad = RawSettings {
            retry_schedule: Some("5s,soon".into()),
            ..RawSettings::default()
        };
        let err = bad.resolve().expect_err("invalid").to_string();
        assert!(err.contains("HOOKD_RETRY_SCHEDULE"), "{err}");

        let bad = RawSettings {
            allow_destinations: Some("127.0.0.0/8,nowhere".into()),
            ..RawSettings::default()
        };
        let err = bad.resolve().expect_err("invalid").to_string();
        assert!(err.contains("HOOKD_ALLOW_DESTINATIONS"), "{err}");
    }

    #[test]
    fn postgres_needs_a_main_secret() {
        let raw = RawSettings {
            database_url: Some("postgres://hookd@127.0.0.1/hookd".into()),
            ..RawSettings::default()
        };
        let err = raw.clone().resolve().expect_err("no secret").to_string();
        assert!(err.contains("HOOKD_MAIN_SECRET"), "{err}");
        let settings = RawSettings {
            main_secret: Some("a main secret that is long enough for hookd".into()),
            database_pool_size: Some(4),
            ..raw
        }
        .resolve()
        .expect("valid");
        assert_eq!(settings.pool.max_connections, 4);
        assert_eq!(settings.retention, Duration::from_secs(90 * 24 * 3600));

        let bad = RawSettings {
            database_url: Some("mysql://x".into()),
            ..RawSettings::default()
        };
        let err = bad.resolve().expect_err("invalid").to_string();
        assert!(err.contains("HOOKD_DATABASE_URL"), "{err}");
    }

    #[test]
    fn operational_webhooks_need_a_reachable_url_and_a_secret() {
        const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let raw = |url: Option<&str>, secret: Option<&str>| RawSettings {
            operational_webhook_url: url.map(String::from),
            operational_webhook_secret: secret.map(String::from),
            ..RawSettings::default()
        };
        assert_eq!(
            raw(None, None).resolve().expect("off").operational_webhook,
            None
        );
        let on = raw(Some("https://ops.example.com/hooks"), Some(SECRET))
            .resolve()
            .expect("valid");
        let target = on.operational_webhook.expect("configured");
        assert_eq!(target.url.to_string(), "https://ops.example.com/hooks");
        assert_eq!(target.secret.expose(), SECRET);

        let err = raw(Some("https://ops.example.com/"), None)
            .resolve()
            .expect_err("no secret")
            .to_string();
        assert!(err.contains("HOOKD_OPERATIONAL_WEBHOOK_SECRET"), "{err}");
        let err = raw(Some("https://ops.example.com/"), Some("whsec_short"))
            .resolve()
            .expect_err("bad secret")
            .to_string();
        assert!(err.contains("HOOKD_OPERATIONAL_WEBHOOK_SECRET"), "{err}");
        assert!(!err.contains("whsec_short"), "the secret leaked: {err}");
        let err = raw(Some("http://127.0.0.1:9000/"), Some(SECRET))
            .resolve()
            .expect_err("loopback")
            .to_string();
        assert!(err.contains("HOOKD_OPERATIONAL_WEBHOOK_URL"), "{err}");
        let allowed = RawSettings {
            allow_destinations: Some("127.0.0.0/8".into()),
            ..raw(Some("http://127.0.0.1:9000/"), Some(SECRET))
        };
        assert!(allowed
            .resolve()
            .expect("allowed")
            .operational_webhook
            .is_some());
    }

    #[test]
    fn file_values_fill_only_what_is_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hookd.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\nrequest_timeout = \"3s\"\n",
        )
        .expect("write");
        let raw = RawSettings {
            listen: Some("127.0.0.1:7000".into()),
            ..RawSettings::default()
        };
        let settings = raw
            .with_file(&path)
            .expect("file")
            .resolve()
            .expect("valid");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(settings.request_timeout, Duration::from_secs(3));
    }
}
