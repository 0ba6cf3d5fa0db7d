//! The worker's configuration (`KILN_*` variables), validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use kiln_core::config::{
    millis_or, parse_or, var_or, AmqpConfig, DbConfig, S3Config, SourceLimits,
};

/// rav1e speed for AVIF output; see the README's benchmark for how it compares
/// with sharp's default AVIF effort.
const DEFAULT_AVIF_SPEED: u8 = 8;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Unacknowledged deliveries held at once (RabbitMQ prefetch).
    pub prefetch: u16,
    /// Images rendered in parallel (CPU-bound work on the blocking pool).
    pub concurrency: usize,
    pub job_timeout: Duration,
    /// Health and metrics listener.
    pub listen: SocketAddr,
    pub render: crate::render::Settings,
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
        let prefetch: u16 = parse_or("KILN_WORKER_PREFETCH", (concurrency + 1) as u16)?;
        if prefetch == 0 {
            bail!("KILN_WORKER_PREFETCH must be at least 1");
        }
        let avif_speed: u8 = parse_or("KILN_AVIF_SPEED", DEFAULT_AVIF_SPEED)?;
        if !(1..=10).contains(&avif_speed) {
            bail!("KILN_AVIF_SPEED must be 1 (slowest, smallest) to 10 (fastest)");
        }
        let listen = var_or("KILN_WORKER_LISTEN", "127.0.0.1:9091");
        Ok(Self {
            prefetch,
            concurrency,
            job_timeout: millis_or("KILN_JOB_TIMEOUT_MS", 60_000)?,
            listen: listen
                .parse()
                .with_context(|| format!("KILN_WORKER_LISTEN={listen:?} is not an address:port"))?,
            render: crate::render::Settings {
                limits: SourceLimits::from_env()?,
                avif_speed,
            },
            db: DbConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            s3: S3Config::from_env()?,
        })
    }
}
