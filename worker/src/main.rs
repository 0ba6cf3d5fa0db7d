//! `kiln-worker`: consumes render jobs, renders, uploads to S3, marks the
//! rendition ready. Serves `/healthz`, `/readyz` and `/metrics` on
//! `KILN_WORKER_LISTEN`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use kiln_core::job::JobKind;
use kiln_core::queue::Publisher;
use kiln_core::storage::Storage;
use kiln_core::{db, env_file, shutdown, telemetry};

use kiln_worker::config::WorkerConfig;
use kiln_worker::consumer::Consumer;
use kiln_worker::jobs::image::JobContext;
use kiln_worker::render_pool::RenderPool;
use kiln_worker::{health, metrics};

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

    let pool = Arc::new(RenderPool::new(config.concurrency)?);
    let consumer = Arc::new(Consumer {
        amqp: config.amqp.clone(),
        prefetch: config.prefetch,
        job_timeout: config.job_timeout,
        publisher,
        ctx: Arc::new(JobContext {
            db: db.clone(),
            storage,
            render: config.render,
            pool: pool.clone(),
        }),
    });
    tracing::info!(
        concurrency = config.concurrency,
        prefetch = config.prefetch,
        "kiln-worker starting"
    );
    consumer.run(cancel.clone()).await;
    let _ = health_task.await;
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .context("stopping the render threads")?;
    db.close().await;
    tracing::info!("kiln-worker stopped cleanly");
    Ok(())
}
