//! `kiln-api`: the HTTP front. Checks signed URLs, answers hits from the S3
//! cache, claims and queues misses, and waits for workers within a bound.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use kiln_core::cards::Templates;
use kiln_core::job::JobKind;
use kiln_infra::bootstrap::Binary;
use kiln_infra::queue::Publisher;
use kiln_infra::readiness::Dependencies;
use kiln_infra::storage::Storage;
use kiln_infra::{db, shutdown, telemetry};

mod captcha_issuer;
mod config;
mod miss;
mod openapi;
mod partners;
mod plumbing;
mod routes;
mod state;

use config::ApiConfig;
use miss::waiters::Waiters;
use plumbing::rate_limit::{Rate, RateLimiter};
use state::AppState;

fn main() -> ExitCode {
    Binary {
        name: "kiln-api",
        listen_var: "KILN_LISTEN",
        default_listen: config::DEFAULT_LISTEN,
    }
    .main(ApiConfig::from_env, run)
}

async fn run(config: ApiConfig) -> anyhow::Result<()> {
    let cancel = shutdown::on_signals();
    let metrics_handle = telemetry::metrics_or_warn();
    plumbing::metrics::describe();

    let db = db::pool(&config.db)?;
    if config.migrate {
        db::migrate(&db).await?;
    }
    let waiters = Arc::new(Waiters::default());
    let hot = Arc::new(miss::hot_cache::HotCache::default());
    // Requests still being served at shutdown wait on renders: the listener
    // that wakes them stops only after the server has drained.
    let stop_listener = tokio_util::sync::CancellationToken::new();
    let listener_task = tokio::spawn(waiters.clone().run_listener(
        db.clone(),
        hot.clone(),
        stop_listener.clone(),
    ));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let templates = Templates::load(&config.templates_dir).with_context(|| {
        format!(
            "loading card templates from {}",
            config.templates_dir.display()
        )
    })?;
    tracing::info!(templates = ?templates.names().collect::<Vec<_>>(), "card templates loaded");
    let storage = Storage::new(config.s3.clone());
    let publisher = Arc::new(Publisher::new(config.amqp.clone(), JobKind::ALL.to_vec()));
    let state = Arc::new(AppState {
        templates,
        dependencies: Dependencies::new(db.clone(), publisher.clone(), storage.clone()),
        storage,
        publisher,
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}")),
        captcha_issue_limit: RateLimiter::new(Rate::per_minute(
            config.captcha_rate.0,
            config.captcha_rate.1,
        )),
        captcha_verify_limit: RateLimiter::new(Rate::per_minute(
            config.verify_rate.0,
            config.verify_rate.1,
        )),
        captchas: Default::default(),
        public_miss_limit: RateLimiter::new(Rate::per_minute(
            config.public_miss_rate.0,
            config.public_miss_rate.1,
        )),
        unknown_key_limit: RateLimiter::new(Rate::per_minute(
            config.unknown_key_rate.0,
            config.unknown_key_rate.1,
        )),
        wait_slots: Semaphore::new(config.max_waiting),
        upload_slots: Semaphore::new(config.upload_concurrency),
        hot,
        hits: miss::retention::HitLog::new(config.retention_days.is_some()),
        partner_keys: partners::partner_access::KeyCache::new(config.partner_cache_capacity),
        meter: partners::metering::Meter::new(config.audit),
        quotas: Default::default(),
        partner_rate: RateLimiter::new(Rate::per_second(1, 1)),
        waiters,
        db: db.clone(),
        metrics: metrics_handle,
        config,
    });
    let app = routes::router(state.clone());
    let feeder = tokio::spawn(partners::bulk_feeder::run(state.clone(), cancel.clone()));
    // Usage counts and hit times are flushed until the server has finished
    // its last request.
    let stop_flusher = tokio_util::sync::CancellationToken::new();
    let retention = tokio::spawn(miss::retention::run(state.clone(), stop_flusher.clone()));
    let flusher = tokio::spawn({
        let (state, stop) = (state.clone(), stop_flusher.clone());
        async move {
            let interval = state.config.meter_flush;
            state
                .meter
                .run_flusher(state.db.clone(), interval, stop)
                .await;
        }
    });
    let metrics_server = match state.config.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding KILN_METRICS_LISTEN {addr}"))?;
            let metrics_app = routes::metrics_router(state.clone());
            let limits = state.config.server.clone();
            println!("kiln-api metrics on http://{}", listener.local_addr()?);
            Some(tokio::spawn(plumbing::server::serve(
                listener,
                metrics_app,
                limits,
                Default::default(),
                cancel.clone(),
            )))
        }
        None => None,
    };
    // Tests and scripts read this line to find the port when KILN_LISTEN ends in :0.
    println!("kiln-api listening on http://{bound}");
    tracing::info!(%bound, "kiln-api listening");
    plumbing::server::serve(
        listener,
        app,
        state.config.server.clone(),
        state.config.trusted_proxies.clone(),
        cancel.clone(),
    )
    .await
    .context("serving HTTP")?;
    cancel.cancel();
    if let Some(task) = metrics_server {
        let _ = task.await;
    }
    if let Err(err) = state.captchas.release_all(&state.db).await {
        tracing::warn!(%err, "leased captchas not returned (they expire)");
    }
    stop_flusher.cancel();
    stop_listener.cancel();
    let _ = flusher.await;
    let _ = retention.await;
    let _ = feeder.await;
    let _ = listener_task.await;
    db.close().await;
    tracing::info!("kiln-api stopped cleanly");
    Ok(())
}
