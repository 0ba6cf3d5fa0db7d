//! `kiln-worker`: consumes render jobs, renders, uploads to S3, marks the
//! rendition ready. Serves `/healthz`, `/readyz` and `/metrics` on
//! `KILN_WORKER_LISTEN`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use kiln_core::job::JobKind;
use kiln_infra::bootstrap::Binary;
use kiln_infra::queue::Publisher;
use kiln_infra::readiness::Dependencies;
use kiln_infra::storage::Storage;
use kiln_infra::{db, shutdown, telemetry};

use kiln_core::cards::Templates;
use kiln_worker::captcha::{refill, Fonts};
use kiln_worker::chromium::BrowserPool;
use kiln_worker::config::WorkerConfig;
use kiln_worker::consumer::Consumer;
use kiln_worker::jobs::captcha::CaptchaContext;
use kiln_worker::jobs::card::CardContext;
use kiln_worker::jobs::image::JobContext;
use kiln_worker::render_pool::RenderPool;
use kiln_worker::{health, metrics};

fn main() -> ExitCode {
    Binary {
        name: "kiln-worker",
        listen_var: "KILN_WORKER_LISTEN",
        default_listen: kiln_worker::config::DEFAULT_LISTEN,
    }
    .main(WorkerConfig::from_env, run)
}

async fn run(config: WorkerConfig) -> anyhow::Result<()> {
    let cancel = shutdown::on_signals();
    let metrics_handle = telemetry::metrics_or_warn();
    metrics::describe();

    let db = db::pool(&config.db)?;
    let storage = Storage::new(config.s3.clone());
    let publisher = Arc::new(Publisher::new(config.amqp.clone(), config.kinds.clone()));
    let health = health::Health {
        dependencies: Arc::new(Dependencies::new(
            db.clone(),
            publisher.clone(),
            storage.clone(),
        )),
        metrics: metrics_handle,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let health_task = tokio::spawn(health::serve(listener, health, cancel.clone()));
    println!("kiln-worker health on http://{bound}");

    let pool = Arc::new(RenderPool::new(config.concurrency)?);
    let mut consumers = tokio::task::JoinSet::new();
    if config.kinds.contains(&JobKind::Image) {
        let consumer = Arc::new(Consumer {
            amqp: config.amqp.clone(),
            prefetch: config.prefetch,
            job_timeout: config.job_timeout,
            publisher: publisher.clone(),
            handler: Arc::new(JobContext {
                db: db.clone(),
                storage: storage.clone(),
                render: config.render,
                pool: pool.clone(),
                fetch_budget: Arc::new(tokio::sync::Semaphore::new(
                    config.fetch_budget_bytes.div_ceil(1024) as usize,
                )),
                fetch_budget_kib: u32::try_from(config.fetch_budget_bytes.div_ceil(1024))
                    .unwrap_or(u32::MAX),
                max_crashes: config.max_crashes,
            }),
        });
        consumers.spawn(consumer.run(cancel.clone()));
    }
    if let Some(captcha) = &config.captcha {
        let fonts_dir = config.cards.templates_dir.join("captcha/fonts");
        let fonts = Fonts::load(&fonts_dir)?;
        fonts.check_covers(&captcha.alphabet)?;
        let context = Arc::new(CaptchaContext {
            db: db.clone(),
            config: Arc::new(captcha.clone()),
            fonts: Arc::new(fonts),
            encoders: pool.clone(),
        });
        consumers.spawn(refill::run(
            context.clone(),
            config.concurrency * 4,
            cancel.clone(),
        ));
        let consumer = Arc::new(Consumer {
            amqp: config.amqp.clone(),
            prefetch: config.prefetch,
            job_timeout: config.job_timeout,
            publisher: publisher.clone(),
            handler: context,
        });
        consumers.spawn(consumer.run(cancel.clone()));
    }
    let mut browsers = None;
    if config.kinds.contains(&JobKind::Card) {
        let cards = &config.cards;
        let templates = Templates::load(&cards.templates_dir).with_context(|| {
            format!(
                "loading card templates from {}",
                cards.templates_dir.display()
            )
        })?;
        let pool_config = cards.pool.clone();
        let browser_pool = BrowserPool::start(pool_config)
            .await
            .context("starting Chromium (KILN_CHROMIUM)")?;
        tracing::info!(browsers = browser_pool.size(), templates = ?templates.names().collect::<Vec<_>>(), "card browsers ready");
        browsers = Some(browser_pool.clone());
        let consumer = Arc::new(Consumer {
            amqp: config.amqp.clone(),
            // One delivery per browser plus one waiting.
            prefetch: (browser_pool.size() + 1) as u16,
            job_timeout: config.job_timeout,
            publisher: publisher.clone(),
            handler: Arc::new(CardContext {
                db: db.clone(),
                storage: storage.clone(),
                templates: std::sync::RwLock::new(templates),
                templates_dir: cards.templates_dir.clone(),
                browsers: browser_pool,
                encoders: pool.clone(),
                render_timeout: cards.render_timeout,
                jpeg_quality: cards.jpeg_quality,
                max_crashes: config.max_crashes,
            }),
        });
        consumers.spawn(consumer.run(cancel.clone()));
    }
    tracing::info!(
        concurrency = config.concurrency,
        prefetch = config.prefetch,
        kinds = ?config.kinds,
        "kiln-worker starting"
    );
    while consumers.join_next().await.is_some() {}
    let _ = health_task.await;
    if let Some(browsers) = browsers {
        browsers.shutdown().await;
    }
    tokio::task::spawn_blocking(move || pool.shutdown())
        .await
        .context("stopping the render threads")?;
    db.close().await;
    tracing::info!("kiln-worker stopped cleanly");
    Ok(())
}
