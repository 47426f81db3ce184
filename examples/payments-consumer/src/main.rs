//! The `payments-consumer` command: reads its settings and runs the app from the library.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use hookd_receiver::Verifier;

#[derive(Parser)]
#[command(
    name = "payments-consumer",
    about = "The reference merchant: a membership app fed by hookd's payment webhooks"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the log says which)
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The app's SQLite database
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://payments-consumer.db"
    )]
    database_url: String,
    /// The endpoint's signing secret (whsec_…); during a rotation, the new and the old one,
    /// separated by a space
    #[arg(
        long = "secret",
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ' ',
        required = true
    )]
    secrets: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colours only for a person at a terminal, never in files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let verifier = Verifier::new(&args.secrets).context("WEBHOOK_SECRET")?;
    let pool = payments_consumer::connect(&args.database_url)
        .await
        .with_context(|| format!("cannot open {}", args.database_url))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");

    let app = payments_consumer::app(pool.clone(), verifier);
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown());
    // The pruner needs no shutdown of its own: it ends with this select when the server does.
    tokio::select! {
        served = server => served.context("server")?,
        () = payments_consumer::prune_inbox_forever(pool.clone(), Duration::from_secs(3600)) => {}
    }
    pool.close().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
