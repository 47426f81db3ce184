//! The `hookd` command: parses arguments and calls the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookd::config::{LogFormat, RawSettings, Settings};

#[derive(Parser)]
#[command(
    name = "hookd",
    version,
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
    /// Manage API tokens
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { settings: raw } => {
            let settings = settings(raw, cli.config.as_ref())?;
            init_logging(settings.log_format);
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("cannot listen on {}", settings.listen))?;
            hookd::server::run(settings, listener, shutdown_signal()).await
        }
        Command::Migrate { settings: raw } => {
            let settings = settings(raw, cli.config.as_ref())?;
            init_logging(settings.log_format);
            hookd::store::open(
                &settings.database_url,
                settings.main_secret.as_deref(),
                &settings.pool,
            )
            .await?;
            println!("the database schema is up to date");
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
