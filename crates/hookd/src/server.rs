//! Wiring: the store, the delivery engine and the API, run until a shutdown signal.

use std::future::Future;

use tokio::net::TcpListener;
use tracing::info;

use crate::api::{self, auth, AppState};
use crate::config::{Role, Settings};
use crate::delivery::attempt::AttemptContext;
use crate::delivery::engine::EngineConfig;
use crate::delivery::Engine;
use crate::outbound::{DestinationGuard, Outbound, OutboundConfig};
use crate::retention::Pruner;
use crate::store::{self, SharedStore};

/// How long shutdown waits for attempts in flight.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs hookd on an already bound listener until `shutdown` completes, then stops cleanly.
/// Tests bind port 0 and pass the listener in.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = store::open(
        &settings.database_url,
        settings.main_secret.as_deref(),
        &settings.pool,
    )
    .await?;
    run_with_store(settings, store, listener, shutdown).await
}

/// [`run`] with a store already opened.
pub async fn run_with_store(
    settings: Settings,
    store: SharedStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let serves_api = settings.role != Role::Worker;
    if serves_api {
        ensure_first_token(&settings, &store).await?;
    }
    // Workers deliver and prune; an API-only process leaves both to them.
    let (engine, pruner) = match settings.role {
        Role::Api => (None, None),
        Role::Worker | Role::All => (
            Some(start_engine(&settings, &store)?),
            Some(Pruner::start(
                store.clone(),
                settings.retention,
                settings.prune_interval,
            )),
        ),
    };
    let state = AppState {
        store,
        dispatch: engine.as_ref().map(Engine::handle),
        admin_token_hash: settings.admin_token.as_deref().map(auth::hash_token),
        max_payload_bytes: settings.max_payload_bytes,
    };
    // A worker-only process answers health probes and nothing else.
    let router = if serves_api {
        api::router(state)
    } else {
        api::health_router(state)
    };
    info!(address = %listener.local_addr()?, role = ?settings.role, "hookd is listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Some(pruner) = pruner {
        pruner.shutdown().await;
    }
    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    info!("hookd stopped");
    Ok(())
}

fn start_engine(settings: &Settings, store: &SharedStore) -> anyhow::Result<Engine> {
    let outbound = Outbound::new(
        OutboundConfig {
            connect_timeout: settings.connect_timeout,
            request_timeout: settings.request_timeout,
        },
        DestinationGuard::new(settings.allow_destinations.clone()),
    )?;
    let ctx = AttemptContext {
        outbound,
        retry: settings.retry.clone(),
        signature_headers: settings.signature_headers,
    };
    let config = EngineConfig {
        max_in_flight: settings.max_in_flight,
        poll_interval: settings.poll_interval,
        lease_duration: settings.lease_duration(),
        drain_timeout: DRAIN_TIMEOUT,
    };
    Ok(Engine::start(store.clone(), ctx, config))
}

/// On a first start with no token at all, creates an org token and prints it once.
async fn ensure_first_token(settings: &Settings, store: &SharedStore) -> anyhow::Result<()> {
    if settings.admin_token.is_some() || store.count_tokens().await? > 0 {
        return Ok(());
    }
    let token = auth::issue_token(store, None, "first start").await?;
    println!("hookd created an org API token; it is shown only this once:\n\n    {token}\n");
    Ok(())
}
