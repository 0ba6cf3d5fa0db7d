//! `kiln-api`: the HTTP front. Checks signed URLs, answers hits from the S3
//! cache, claims and queues misses, and waits for workers within a bound.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use kiln_core::cards::Templates;
use kiln_core::job::JobKind;
use kiln_core::queue::Publisher;
use kiln_core::storage::Storage;
use kiln_core::{db, env_file, shutdown, telemetry};

mod admin;
mod bulk_feeder;
mod config;
mod delivery;
mod error;
mod hot_cache;
mod metering;
mod metrics;
mod partner_access;
mod rate_limit;
mod rendition;
mod routes;
mod state;
mod waiters;

use config::ApiConfig;
use rate_limit::{Rate, RateLimiter};
use state::AppState;
use waiters::Waiters;

fn main() -> ExitCode {
    let env_file = env_file::load();
    telemetry::init_tracing();
    if let Err(err) = env_file {
        tracing::error!("{err:#}");
        return ExitCode::FAILURE;
    }
    let config = match ApiConfig::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("invalid configuration: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("kiln-api stopped: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ApiConfig) -> anyhow::Result<()> {
    let cancel = shutdown::on_signals();
    let metrics_handle = match telemetry::install_metrics() {
        Ok(handle) => Some(handle),
        Err(err) => {
            tracing::warn!("metrics disabled: {err:#}");
            None
        }
    };
    metrics::describe();

    let db = db::pool(&config.db)?;
    if config.migrate {
        db::migrate(&db).await?;
    }
    let waiters = Arc::new(Waiters::default());
    let listener_task = tokio::spawn(waiters.clone().run_listener(db.clone(), cancel.clone()));

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
    let state = Arc::new(AppState {
        templates,
        storage: Storage::new(config.s3.clone()),
        publisher: Publisher::new(
            config.amqp.clone(),
            vec![JobKind::Image, JobKind::Card, JobKind::Captcha],
        ),
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
        wait_slots: Semaphore::new(config.max_waiting),
        hot: Default::default(),
        partner_keys: Default::default(),
        meter: metering::Meter::new(config.audit),
        quotas: Default::default(),
        partner_rate: RateLimiter::new(Rate::per_second(1, 1)),
        waiters,
        db: db.clone(),
        metrics: metrics_handle,
        config,
    });
    let app = routes::router(state.clone());
    let feeder = tokio::spawn(bulk_feeder::run(state.clone(), cancel.clone()));
    // Usage counts are flushed until the server has finished its last request.
    let stop_flusher = tokio_util::sync::CancellationToken::new();
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
    // Tests and scripts read this line to find the port when KILN_LISTEN ends in :0.
    println!("kiln-api listening on http://{bound}");
    tracing::info!(%bound, "kiln-api listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(cancel.clone().cancelled_owned())
    .await
    .context("serving HTTP")?;
    cancel.cancel();
    stop_flusher.cancel();
    let _ = flusher.await;
    let _ = feeder.await;
    let _ = listener_task.await;
    db.close().await;
    tracing::info!("kiln-api stopped cleanly");
    Ok(())
}
