//! Wiring: the store, the delivery engine and the API, run until a shutdown signal.

use std::future::Future;

use tokio::net::TcpListener;
use tracing::info;

use std::sync::Arc;

use crate::api::feed::FeedWaiters;
use crate::api::rate_limit::ApiRateLimit;
use crate::api::{self, auth, AppContext, AppState};
use crate::catalog::validators::PayloadValidators;
use crate::config::{Role, Seed, Settings};
use crate::delivery::attempt::AttemptContext;
use crate::delivery::engine::EngineConfig;
use crate::delivery::transport::Transports;
use crate::delivery::Engine;
use crate::domain::ids::{new_id, IdPrefix};
use crate::domain::time::now_millis;
use crate::operational::{self, Emitter, Publisher};
use crate::outbound::{DestinationGuard, Outbound, OutboundConfig};
use crate::relay::RelayHub;
use crate::retention::Pruner;
use crate::store::{self, HealthPolicy, NodeReport, SharedStore};
use crate::tasks::TaskRunner;
use crate::telemetry::Traffic;

/// The address portal links point at: `HOOKD_PUBLIC_URL`, else the listen address (a
/// wildcard address is no place for a browser to go, so it becomes `localhost`).
fn public_url(settings: &Settings, listening: std::net::SocketAddr) -> String {
    if let Some(url) = &settings.portal.public_url {
        return url.as_str().trim_end_matches('/').to_string();
    }
    if listening.ip().is_unspecified() {
        tracing::warn!(
            "HOOKD_PUBLIC_URL is not set and hookd listens on every address: portal links will \
             say localhost; set HOOKD_PUBLIC_URL to the address merchants reach hookd at"
        );
        return format!("http://localhost:{}", listening.port());
    }
    format!("http://{listening}")
}

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
        store::OpenMode::Serve,
    )
    .await?;
    run_with_store(settings, store, listener, shutdown).await
}

/// [`run`] with a store already opened.
pub(crate) async fn run_with_store(
    settings: Settings,
    store: SharedStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let serves_api = settings.role != Role::Worker;
    if serves_api {
        ensure_first_token(&settings, &store).await?;
        if settings.seed == Some(Seed::Payments) {
            let added = crate::catalog::seed_payments(&store).await?;
            info!(added, "the payment event catalog is loaded");
        }
    }
    let relay = Arc::new(RelayHub::default());
    let traffic = Arc::new(Traffic::default());
    // Every role writes operational events (the API about endpoints, workers about deliveries)
    // and publishes the outbox.
    let (operational, target) = match &settings.operational_webhook {
        Some(webhook) => {
            let target = operational::ensure_target(&store, webhook).await?;
            store.set_operational(Some(target.app_id.clone()));
            (Emitter::on(), Some(target))
        }
        None => (Emitter::off(), None),
    };
    // Workers deliver, prune and run background tasks; an API-only process leaves all three
    // to them.
    let (engine, pruner, runner) = match settings.role {
        Role::Api => (None, None, None),
        Role::Worker | Role::All => {
            let engine = start_engine(
                &settings,
                &store,
                &relay,
                operational.clone(),
                Arc::clone(&traffic),
            )?;
            let runner = TaskRunner::start(
                store.clone(),
                Some(engine.handle()),
                settings.poll_interval,
                settings.task_batch_size,
            );
            let pruner = Pruner::start(store.clone(), settings.retention, settings.prune_interval);
            (Some(engine), Some(pruner), Some(runner))
        }
    };
    let publisher = target.map(|target| {
        Publisher::start(
            store.clone(),
            target,
            &operational,
            engine.as_ref().map(|engine| {
                let dispatch = engine.handle();
                Arc::new(move || dispatch.wake()) as operational::Wake
            }),
        )
    });
    let dispatch = engine.as_ref().map(Engine::handle);
    let node_id = dispatch.as_ref().map_or_else(
        || new_id(IdPrefix::Token).replacen("tok_", "node_", 1),
        |d| d.node_id().to_string(),
    );
    let reporter = NodeReporter::start(
        store.clone(),
        NodeReport {
            id: node_id.clone(),
            role: match settings.role {
                Role::Api => "api",
                Role::Worker => "worker",
                Role::All => "all",
            }
            .to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now_millis(),
            heartbeat_at: now_millis(),
            in_flight: 0,
        },
        dispatch.clone(),
        Arc::clone(&traffic),
    );
    let state = AppState::new(AppContext {
        validators: Arc::new(PayloadValidators::new(store.clone())),
        store,
        dispatch,
        admin_token_hash: settings.admin_token.as_deref().map(auth::hash_token),
        max_payload_bytes: settings.max_payload_bytes,
        guard: Arc::new(DestinationGuard::new(settings.allow_destinations.clone())),
        rate_limit: Arc::new(ApiRateLimit::new(settings.api_rate_limit)),
        relay,
        feed: Arc::new(FeedWaiters::default()),
        operational,
        public_url: public_url(&settings, listener.local_addr()?),
        portal: settings.portal.clone(),
        signature_headers: settings.signature_headers,
        traffic,
        settings: Arc::new(settings.clone()),
        node_id,
        outbound: outbound(&settings)?,
    });
    let feed = Arc::clone(&state.feed);
    let relay = Arc::clone(&state.relay);
    crate::telemetry::prometheus();
    let sampler = BacklogSampler::start(state.store.clone());
    // A worker-only process answers health probes and nothing else.
    let router = if serves_api {
        let pages = crate::portal::routes(&state).merge(crate::dashboard::routes(&state));
        api::router(state, pages)
    } else {
        api::health_router(state)
    };
    info!(address = %listener.local_addr()?, role = ?settings.role, "hookd is listening");
    // A dead dispatcher or recorder stops the process like a signal would, so that its
    // supervisor starts a healthy one (health answers 503 meanwhile).
    let engine_failed = engine.as_ref().map(Engine::failed);
    let died = engine_failed.clone();
    // Long-polls of the feed and of `hookd listen` answer as soon as shutdown begins, rather
    // than hold it up.
    let shutdown = async move {
        match died {
            Some(died) => tokio::select! {
                () = shutdown => {}
                () = died.cancelled() => {}
            },
            None => shutdown.await,
        }
        feed.stop();
        relay.stop();
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Some(pruner) = pruner {
        pruner.shutdown().await;
    }
    if let Some(runner) = runner {
        runner.shutdown().await;
    }
    if let Some(engine) = engine {
        engine.shutdown().await;
    }
    // The API and the recorder, the only causes, have stopped: publish what they left.
    if let Some(publisher) = publisher {
        publisher.finish(settings.shutdown_timeout).await;
    }
    sampler.stop().await;
    reporter.stop().await;
    if engine_failed.is_some_and(|failed| failed.is_cancelled()) {
        anyhow::bail!(
            "the delivery engine stopped unexpectedly (see the error above); hookd exits so \
             that its supervisor starts it again"
        );
    }
    info!("hookd stopped");
    Ok(())
}

/// Refreshes the backlog gauges every few seconds.
struct BacklogSampler {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl BacklogSampler {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    fn start(store: SharedStore) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                match store.backlog().await {
                    Ok(backlog) => {
                        let now = crate::domain::time::now_millis();
                        let age = backlog
                            .oldest_created_at
                            .map_or(0, |at| now.saturating_sub(at).max(0));
                        crate::telemetry::backlog(
                            backlog.pending,
                            std::time::Duration::from_millis(u64::try_from(age).unwrap_or(0)),
                            backlog.endpoints_disabled,
                        );
                    }
                    Err(err) => tracing::warn!(error = %err, "sampling the backlog failed"),
                }
                tokio::select! {
                    () = stopped.cancelled() => break,
                    () = tokio::time::sleep(Self::EVERY) => {}
                }
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Reports this node to the store every few seconds: its heartbeat and deliveries in flight,
/// and the traffic it counted since the last report, for the operator dashboard. Counts that
/// cannot be stored are kept for the next report; a node killed loses at most its last few
/// seconds of counts (never a message or an attempt, which live in their own tables).
struct NodeReporter {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl NodeReporter {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(2);

    fn start(
        store: SharedStore,
        mut node: NodeReport,
        dispatch: Option<crate::delivery::DispatchHandle>,
        traffic: Arc<Traffic>,
    ) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let last = stopped.is_cancelled();
                node.heartbeat_at = now_millis();
                node.in_flight = dispatch.as_ref().map_or(0, |d| d.in_flight() as u64);
                if let Err(err) = store.report_node(&node).await {
                    tracing::warn!(error = %err, "reporting this node failed");
                }
                let counted = traffic.take();
                if !counted.is_empty() {
                    if let Err(err) = store.add_traffic(&node.id, &counted).await {
                        tracing::warn!(error = %err, "storing this node's traffic counts failed");
                        traffic.restore(counted);
                    }
                }
                if last {
                    break;
                }
                tokio::select! {
                    () = stopped.cancelled() => {}
                    () = tokio::time::sleep(Self::EVERY) => {}
                }
            }
        });
        Self { stop, task }
    }

    /// Stops after one last report.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The client of deliveries (and endpoint checks): its timeouts, its SSRF guard.
fn outbound(settings: &Settings) -> anyhow::Result<Outbound> {
    Outbound::new(
        OutboundConfig {
            connect_timeout: settings.connect_timeout,
            request_timeout: settings.request_timeout,
        },
        DestinationGuard::new(settings.allow_destinations.clone()),
    )
}

fn start_engine(
    settings: &Settings,
    store: &SharedStore,
    relay: &Arc<RelayHub>,
    operational: Emitter,
    traffic: Arc<Traffic>,
) -> anyhow::Result<Engine> {
    let ctx = AttemptContext {
        transports: Transports::new(outbound(settings)?, Arc::clone(relay)),
        retry: settings.retry.clone(),
        signature_headers: settings.signature_headers,
    };
    let config = EngineConfig {
        max_in_flight: settings.max_in_flight,
        endpoint_max_in_flight: settings.endpoint_max_in_flight,
        poll_interval: settings.poll_interval,
        lease_duration: settings.lease_duration(),
        drain_timeout: settings.shutdown_timeout,
        health: HealthPolicy {
            disable_after: settings.disable_after,
        },
        traffic,
    };
    Ok(Engine::start(store.clone(), ctx, config, operational))
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
