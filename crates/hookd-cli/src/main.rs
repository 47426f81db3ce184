//! The `hookd` command: parses arguments and calls the libraries.
//!
//! The server's commands (`serve`, `migrate`, `token`, `openapi`) call the `hookd` library;
//! the developer tools (`demo`, `trigger`, `listen`) call `hookd-devtools`; `check-config` and
//! the hidden `generate` (man pages and shell completions, for packaging) are about the command
//! line itself and live here. This binary lives in its own package because `hookd-devtools`
//! depends on the `hookd` library, and Cargo does not let a package's binary depend on a crate
//! that depends on that package's own library.

mod check;
mod generate;

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use hookd::config::{RawSettings, Settings};

/// What `hookd --version` prints after the name: the version, the commit and the build date
/// (both recorded by `build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOOKD_BUILD_COMMIT"),
    ", built ",
    env!("HOOKD_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "hookd",
    version = VERSION,
    about = "Webhook delivery with a Svix-compatible API"
)]
struct Cli {
    /// A TOML file with settings (flags and HOOKD_* variables take precedence)
    #[arg(long, global = true, env = "HOOKD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery workers
    Serve {
        #[command(flatten)]
        settings: RawSettings,
    },
    /// Create or upgrade the database schema, then exit
    Migrate {
        #[command(flatten)]
        settings: RawSettings,
    },
    /// Copy a SQLite database while hookd serves from it (a consistent snapshot, checked, never
    /// overwriting): restore by starting hookd on the copy
    Backup {
        /// Where to write the copy (must not exist)
        path: std::path::PathBuf,
        #[command(flatten)]
        settings: RawSettings,
    },
    /// Check the configuration file and the HOOKD_* variables, then exit
    ///
    /// Reads the settings as `serve` would, without starting anything: exits 0 when they are
    /// valid and 1 with the first problem otherwise. Warns about HOOKD_* variables that no
    /// setting reads (a misspelt name is otherwise silently ignored).
    CheckConfig {
        #[command(flatten)]
        settings: RawSettings,
    },
    /// Print the OpenAPI document of the API (committed as docs/openapi.json)
    Openapi,
    /// Watch a payment gateway, hookd and a merchant's app at work for half a minute
    /// (exits 1 if any payment ends differently at the merchant than at the gateway)
    Demo {
        /// The same story ten times faster, for tests
        #[arg(long, env = "HOOKD_DEMO_FAST")]
        fast: bool,
    },
    /// Relay an application's deliveries to a local URL (for developing a receiver)
    Listen {
        /// Where to POST each delivery, e.g. http://localhost:3000/webhook
        #[arg(long)]
        forward_to: String,
        /// Only this event type (repeat for several); all when absent
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Post the catalog's example of an event type to a running hookd
    Trigger {
        /// The event type, e.g. payment.failed
        event_type: String,
        #[command(flatten)]
        target: Target,
    },
    /// Check that a webhook endpoint accepts genuine deliveries and refuses forged, tampered
    /// and stale ones (exits 1 unless every must-pass check passed)
    Certify {
        /// The endpoint's URL
        url: String,
        /// The endpoint's signing key: its whsec_… secret, or a whsk_… Ed25519 key (v1a)
        #[arg(long, env = "HOOKD_CERTIFY_SECRET", hide_env_values = true)]
        secret: String,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Which signature headers to send: webhook, svix or both
        #[arg(long, default_value = "both", value_parser = ["webhook", "svix", "both"])]
        headers: String,
        /// How long the endpoint may take to answer, as deliveries allow
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Loopback or private ranges the check may reach, comma-separated CIDRs (refused
        /// otherwise, as for deliveries), e.g. 127.0.0.0/8 to check a local server
        #[arg(long, env = "HOOKD_ALLOW_DESTINATIONS", default_value = "")]
        allow_destinations: String,
    },
    /// Manage API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Write man pages or shell completions of this command line into a directory (used to
    /// build the Debian package)
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: GenerateCommand,
    },
}

#[derive(Subcommand)]
enum GenerateCommand {
    /// hookd.1 and a page per sub-command (hookd-serve.1, …)
    Man {
        /// The directory to write into (created if missing)
        dir: PathBuf,
    },
    /// Completions for bash (hookd.bash), zsh (_hookd) and fish (hookd.fish)
    Completions {
        /// The directory to write into (created if missing)
        dir: PathBuf,
    },
}

/// Which hookd server and application a tool talks to.
#[derive(clap::Args)]
struct Target {
    /// The application (id or uid); without it, the only application there is
    #[arg(long)]
    app: Option<String>,
    /// The hookd server
    #[arg(long, env = "HOOKD_URL", default_value = "http://127.0.0.1:8071")]
    url: String,
    /// An API token (org, or the application's)
    #[arg(long, env = "HOOKD_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Revoke a token: it is refused from the next request on
    Revoke {
        /// The token itself (only its hash is stored, so the token is what identifies it)
        token: String,
        #[command(flatten)]
        settings: RawSettings,
    },
    /// Create a token and print it (it is shown only once)
    Create {
        /// Scope the token to one application (id or uid); without it, an org token
        #[arg(long)]
        app: Option<String>,
        /// A name to recognise the token by
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        settings: RawSettings,
    },
}

fn settings(raw: RawSettings, config: Option<&PathBuf>) -> anyhow::Result<Settings> {
    let raw = match config {
        Some(path) => raw.with_file(path)?,
        None => raw,
    };
    Ok(raw.resolve()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { settings: raw } => {
            let settings = settings(raw, cli.config.as_ref())?;
            hookd::telemetry::init_logging(settings.log_format);
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            let outcome = hookd::server::run(settings, listener, shutdown_signal()).await;
            hookd::telemetry::flush_traces();
            outcome
        }
        Command::Migrate { settings: raw } => {
            let settings = settings(raw, cli.config.as_ref())?;
            hookd::telemetry::init_logging(settings.log_format);
            hookd::store::open(
                &settings.database_url,
                settings.main_secret.as_deref(),
                &settings.pool,
                hookd::store::OpenMode::Tool,
            )
            .await?;
            println!("the database schema is up to date");
            Ok(())
        }
        Command::Backup {
            path,
            settings: raw,
        } => {
            let settings = settings(raw, cli.config.as_ref())?;
            let key = hookd::store::backup(&settings.database_url, &path).await?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!("backed up to {} ({size} bytes)", path.display());
            if let Some(key) = key {
                println!(
                    "Its endpoint secrets are sealed with the key in {}: keep a copy of that file \
                     apart from the backup, and to restore, put it beside the restored database \
                     under the database's name with .key appended.",
                    key.display()
                );
            }
            Ok(())
        }
        Command::Listen {
            forward_to,
            event_types,
            target,
        } => {
            let client = hookd_devtools::client::ApiClient::new(&target.url, &target.token);
            hookd_devtools::listen::listen(
                &client,
                target.app.as_deref(),
                &forward_to,
                event_types,
                shutdown_signal(),
            )
            .await
        }
        Command::Trigger { event_type, target } => {
            let client = hookd_devtools::client::ApiClient::new(&target.url, &target.token);
            let msg_id =
                hookd_devtools::trigger::trigger(&client, &event_type, target.app.as_deref())
                    .await?;
            println!("sent {event_type} as {msg_id}");
            Ok(())
        }
        Command::Certify {
            url,
            secret,
            json,
            headers,
            timeout,
            allow_destinations,
        } => {
            use hookd::certify::HeaderSet;
            let allowed = hookd::config::parse_cidrs(&allow_destinations)?;
            let headers = match headers.as_str() {
                "webhook" => HeaderSet::Webhook,
                "svix" => HeaderSet::Svix,
                _ => HeaderSet::Both,
            };
            let report =
                hookd::certify::run_command(&url, &secret, headers, timeout, allowed).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", hookd::certify::render(&report));
            }
            if !report.passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Demo { fast } => {
            hookd_devtools::demo::run(
                hookd_devtools::demo::DemoOptions { fast },
                shutdown_signal(),
            )
            .await
        }
        Command::CheckConfig { settings: raw } => {
            let source = match &cli.config {
                Some(path) => format!("{} and the HOOKD_* variables", path.display()),
                None => "the HOOKD_* variables (no configuration file)".to_string(),
            };
            let settings = settings(raw, cli.config.as_ref())
                .with_context(|| format!("the configuration from {source} is not valid"))?;
            for variable in check::unknown_variables(&Cli::command(), std::env::vars_os()) {
                eprintln!("warning: {variable} is not a hookd setting and is ignored (a typo?)");
            }
            println!("{source}: valid");
            println!("{}", check::summary(&settings));
            Ok(())
        }
        Command::Generate {
            what: GenerateCommand::Man { dir },
        } => {
            for path in generate::man_pages(Cli::command(), &dir)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Generate {
            what: GenerateCommand::Completions { dir },
        } => {
            for path in generate::completions(Cli::command(), &dir)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", hookd::api::openapi::document_json());
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Revoke {
                    token,
                    settings: raw,
                },
        } => {
            let settings = settings(raw, cli.config.as_ref())?;
            let store = hookd::store::open(
                &settings.database_url,
                settings.main_secret.as_deref(),
                &settings.pool,
                hookd::store::OpenMode::Tool,
            )
            .await?;
            if !store
                .revoke_token(&hookd::api::auth::hash_token(token.trim()))
                .await?
            {
                anyhow::bail!("no such token");
            }
            println!("revoked");
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    app,
                    name,
                    settings: raw,
                },
        } => {
            let settings = settings(raw, cli.config.as_ref())?;
            let store = hookd::store::open(
                &settings.database_url,
                settings.main_secret.as_deref(),
                &settings.pool,
                hookd::store::OpenMode::Tool,
            )
            .await?;
            let app_id = match app {
                Some(key) => Some(
                    store
                        .get_app(&key)
                        .await?
                        .with_context(|| format!("no application {key:?}"))?
                        .id,
                ),
                None => None,
            };
            let token = hookd::api::auth::issue_token(&store, app_id.as_deref(), &name).await?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conffile the package installs as /etc/hookd/hookd.toml.
    const PACKAGED_CONFIG: &str = include_str!("../../../packaging/hookd.toml");

    /// The TOML keys `serve` reads: its flags that have a HOOKD_* variable, with `_`.
    fn setting_keys() -> Vec<String> {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").expect("serve");
        let keys: Vec<String> = serve
            .get_arguments()
            .filter(|arg| arg.get_env().is_some() && arg.get_id() != "config")
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert!(keys.len() > 30, "{keys:?}");
        keys
    }

    #[test]
    fn the_packaged_configuration_lists_every_setting() {
        let missing: Vec<String> = setting_keys()
            .into_iter()
            .filter(|key| {
                !PACKAGED_CONFIG.lines().any(|line| {
                    let line = line.trim_start_matches("# ");
                    line.starts_with(&format!("{key} = "))
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "not in packaging/hookd.toml: {missing:?}"
        );
    }

    #[test]
    fn every_example_in_the_packaged_configuration_is_valid() {
        // Uncomment every `# key = value` line: the examples together must be accepted.
        let uncommented: String = PACKAGED_CONFIG
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if setting_keys()
                        .iter()
                        .any(|k| rest.starts_with(&format!("{k} = "))) =>
                {
                    rest
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, &uncommented).expect("write");
        let settings = RawSettings::default()
            .with_file(&path)
            .and_then(|raw| Ok(raw.resolve()?))
            .unwrap_or_else(|e| panic!("{e:#}\n{uncommented}"));
        assert_eq!(settings.database_url, "sqlite:///var/lib/hookd/hookd.db");
        assert!(settings.operational_webhook.is_some());
    }

    #[test]
    fn the_man_page_names_every_sub_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pages = generate::man_pages(Cli::command(), dir.path()).expect("man pages");
        let main = std::fs::read_to_string(dir.path().join("hookd.1")).expect("hookd.1");
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            // roff escapes every `-`.
            let reference = format!("hookd\\-{}(1)", name.replace('-', "\\-"));
            if sub.is_hide_set() {
                assert!(!main.contains(&reference), "{name} is hidden");
                continue;
            }
            assert!(main.contains(&reference), "{name} missing");
            assert!(
                pages.contains(&dir.path().join(format!("hookd-{name}.1"))),
                "no page for {name}: {pages:?}"
            );
        }
        assert!(pages.contains(&dir.path().join("hookd-token-create.1")));
    }
}
