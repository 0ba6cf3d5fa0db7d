//! The worker's configuration (`KILN_*` variables), validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use kiln_core::job::JobKind;

use crate::chromium::{Launch, PoolConfig, Sandbox};
use kiln_core::captcha::CaptchaConfig;
use kiln_core::limits::SourceLimits;
use kiln_infra::config::{
    millis_or, parse_or, var_or, AmqpConfig, DbConfig, FromEnv as _, S3Config,
};

/// Where the process listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9091";

/// rav1e speed for AVIF output; see the README's benchmark for how it compares
/// with sharp's default AVIF effort.
const DEFAULT_AVIF_SPEED: u8 = 8;

/// Social-card rendering settings.
#[derive(Clone, Debug)]
pub struct CardSettings {
    pub templates_dir: PathBuf,
    pub pool: PoolConfig,
    pub render_timeout: Duration,
    pub jpeg_quality: u8,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Unacknowledged deliveries held at once (RabbitMQ prefetch; default
    /// eight per render thread).
    pub prefetch: u16,
    /// Images rendered in parallel (CPU-bound work on the blocking pool).
    pub concurrency: usize,
    pub job_timeout: Duration,
    /// Bytes of originals held at once by deliveries waiting to render
    /// (`KILN_WORKER_FETCH_BUDGET_BYTES`, default 256 MiB).
    pub fetch_budget_bytes: u64,
    /// Deliveries of one job that may die with their worker before the
    /// rendition is failed (`KILN_MAX_RENDER_CRASHES`, default 3).
    pub max_crashes: u32,
    /// Health and metrics listener.
    pub listen: SocketAddr,
    pub render: crate::render::Settings,
    /// Job kinds this worker consumes (`KILN_WORKER_KINDS`, default `image,card,captcha`).
    pub kinds: Vec<JobKind>,
    pub cards: CardSettings,
    /// Set when the worker draws captchas.
    pub captcha: Option<CaptchaConfig>,
    pub db: DbConfig,
    pub amqp: AmqpConfig,
    pub s3: S3Config,
}

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let concurrency: usize = parse_or("KILN_WORKER_CONCURRENCY", cores)?;
        if concurrency == 0 {
            bail!("KILN_WORKER_CONCURRENCY must be at least 1");
        }
        // One more delivery than render slots keeps a job ready while others render.
        // Eight deliveries per render thread: fetches and uploads (tens of
        // milliseconds against S3) overlap renders; on-demand renders still
        // go first (the render pool's lanes).
        let default_prefetch = (concurrency * 8).min(u16::MAX as usize) as u16;
        let prefetch: u16 = parse_or("KILN_WORKER_PREFETCH", default_prefetch)?;
        if prefetch == 0 {
            bail!("KILN_WORKER_PREFETCH must be at least 1");
        }
        let avif_speed: u8 = parse_or("KILN_AVIF_SPEED", DEFAULT_AVIF_SPEED)?;
        if !(1..=10).contains(&avif_speed) {
            bail!("KILN_AVIF_SPEED must be 1 (slowest, smallest) to 10 (fastest)");
        }
        let listen = var_or("KILN_WORKER_LISTEN", DEFAULT_LISTEN);
        let mut kinds = Vec::new();
        for name in var_or("KILN_WORKER_KINDS", "image,card,captcha").split(',') {
            match name.trim() {
                "image" => kinds.push(JobKind::Image),
                "card" => kinds.push(JobKind::Card),
                "captcha" => kinds.push(JobKind::Captcha),
                "" => {}
                other => {
                    bail!("KILN_WORKER_KINDS: unknown job kind {other:?} (image, card, captcha)")
                }
            }
        }
        if kinds.is_empty() {
            bail!("KILN_WORKER_KINDS names no job kind");
        }
        let browsers: usize = parse_or("KILN_CARD_BROWSERS", cores)?;
        let jpeg_quality: u8 = parse_or("KILN_CARD_JPEG_QUALITY", 85)?;
        if browsers == 0 || !(1..=100).contains(&jpeg_quality) {
            bail!("KILN_CARD_BROWSERS must be at least 1 and KILN_CARD_JPEG_QUALITY 1..100");
        }
        let cards = CardSettings {
            templates_dir: var_or("KILN_TEMPLATES_DIR", "templates").into(),
            pool: PoolConfig {
                launch: Launch {
                    executable: var_or("KILN_CHROMIUM", "/usr/bin/chromium").into(),
                    timeout: millis_or("KILN_CHROMIUM_LAUNCH_TIMEOUT_MS", 20_000)?,
                    sandbox: {
                        let value = var_or("KILN_CHROMIUM_SANDBOX", "auto");
                        Sandbox::parse(&value).with_context(|| {
                            format!(
                                "KILN_CHROMIUM_SANDBOX={value:?}: expected auto, required or off"
                            )
                        })?
                    },
                    user: var_or("KILN_CHROMIUM_USER", "nobody"),
                },
                browsers,
                recycle_renders: parse_or("KILN_CARD_RECYCLE_RENDERS", 2000)?,
                recycle_age: Duration::from_secs(
                    60 * parse_or("KILN_CARD_RECYCLE_MINUTES", 30u64)?,
                ),
                max_timeouts: 2,
            },
            render_timeout: millis_or("KILN_CARD_RENDER_TIMEOUT_MS", 3000)?,
            jpeg_quality,
        };
        let limits = SourceLimits::from_env()?;
        let job_timeout = millis_or("KILN_JOB_TIMEOUT_MS", 60_000)?;
        let render_timeout = millis_or("KILN_RENDER_TIMEOUT_MS", 30_000)?;
        if render_timeout.is_zero() || render_timeout >= job_timeout {
            bail!("KILN_RENDER_TIMEOUT_MS must be above 0 and below KILN_JOB_TIMEOUT_MS");
        }
        let fetch_budget_bytes: u64 = parse_or("KILN_WORKER_FETCH_BUDGET_BYTES", 256 << 20)?;
        if fetch_budget_bytes < limits.max_bytes || fetch_budget_bytes > 4 << 40 {
            bail!("KILN_WORKER_FETCH_BUDGET_BYTES must be at least KILN_MAX_SOURCE_BYTES ({}) and at most 4 TiB", limits.max_bytes);
        }
        let max_crashes: u32 = parse_or("KILN_MAX_RENDER_CRASHES", 3)?;
        if max_crashes == 0 {
            bail!("KILN_MAX_RENDER_CRASHES must be at least 1");
        }
        Ok(Self {
            prefetch,
            concurrency,
            job_timeout,
            fetch_budget_bytes,
            max_crashes,
            listen: listen
                .parse()
                .with_context(|| format!("KILN_WORKER_LISTEN={listen:?} is not an address:port"))?,
            render: crate::render::Settings {
                limits,
                avif_speed,
                render_timeout,
            },
            captcha: if kinds.contains(&JobKind::Captcha) {
                Some(CaptchaConfig::from_env()?)
            } else {
                None
            },
            kinds,
            cards,
            db: DbConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            s3: S3Config::from_env()?,
        })
    }
}
