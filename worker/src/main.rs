//! `kiln-worker`: consumes render jobs, renders, uploads to S3, marks the
//! rendition ready. Serves `/healthz`, `/readyz` and `/metrics` on
//! `KILN_WORKER_LISTEN`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use kiln_core::job::JobKind;
use kiln_core::queue::Publisher;
use kiln_core::storage::Storage;
use kiln_core::{db, env_file, shutdown, telemetry};

mod config;
mod consumer;
mod health;
mod jobs;
mod metrics;
mod render;

use config::WorkerConfig;
use consumer::Consumer;
use jobs::image::JobContext;

fn main() -> ExitCode {
    let env_file = env_file::load();
    telemetry::init_tracing();
    if let Err(err) = env_file {
        tracing::error!("{err:#}");
        return ExitCode::FAILURE;
    }
    let config = match WorkerConfig::from_env() {
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
            tracing::error!("kiln-worker stopped: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let cancel = shutdown::on_signals();
    let metrics_handle = telemetry::install_metrics().ok();
    metrics::describe();

    let db = db::pool(&config.db)?;
    let storage = Storage::new(config.s3.clone());
    let publisher = Arc::new(Publisher::new(config.amqp.clone(), vec![JobKind::Image]));
    let health = health::Health {
        db: db.clone(),
        storage: storage.clone(),
        publisher: publisher.clone(),
        metrics: metrics_handle,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let health_task = tokio::spawn(health::serve(listener, health, cancel.clone()));
    println!("kiln-worker health on http://{bound}");

    let consumer = Arc::new(Consumer {
        amqp: config.amqp.clone(),
        prefetch: config.prefetch,
        job_timeout: config.job_timeout,
        publisher,
        ctx: Arc::new(JobContext {
            db: db.clone(),
            storage,
            limits: config.limits,
            cpu: Arc::new(Semaphore::new(config.concurrency)),
        }),
    });
    tracing::info!(
        concurrency = config.concurrency,
        prefetch = config.prefetch,
        "kiln-worker starting"
    );
    consumer.run(cancel.clone()).await;
    let _ = health_task.await;
    db.close().await;
    tracing::info!("kiln-worker stopped cleanly");
    Ok(())
}
