//! Shared state handed to every handler.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use kiln_core::cards::Templates;
use kiln_infra::queue::Publisher;
use kiln_infra::readiness::Dependencies;
use kiln_infra::storage::Storage;

use crate::captcha_issuer::CaptchaIssuer;
use crate::config::ApiConfig;
use crate::miss::hot_cache::HotCache;
use crate::miss::waiters::Waiters;
use crate::partners::metering::Meter;
use crate::partners::partner_access::{KeyCache, QuotaBook};
use crate::plumbing::rate_limit::RateLimiter;

pub struct AppState {
    pub config: ApiConfig,
    pub db: PgPool,
    pub storage: Storage,
    pub publisher: Arc<Publisher>,
    pub waiters: Arc<Waiters>,
    pub hot: Arc<HotCache>,
    /// Renditions delivered since the last flush of hit times (retention).
    pub hits: crate::miss::retention::HitLog,
    /// Bounds how many requests may wait for renders at once.
    pub wait_slots: Semaphore,
    /// Bounds how many originals are uploaded at once (each holds a part).
    pub upload_slots: Semaphore,
    pub metrics: Option<PrometheusHandle>,
    /// Card templates, loaded once at start-up.
    pub templates: Templates,
    /// Base of URLs handed out (`/dl/…` links).
    pub public_url: String,
    pub captcha_issue_limit: RateLimiter,
    pub captcha_verify_limit: RateLimiter,
    /// Issues each captcha to one client.
    pub captchas: CaptchaIssuer,
    /// Per client: misses of unsigned card URLs.
    pub public_miss_limit: RateLimiter,
    /// Per client: lookups of partner keys not in the cache.
    pub unknown_key_limit: RateLimiter,
    /// What PostgreSQL, RabbitMQ and S3 answer (`/readyz`).
    pub dependencies: Dependencies,
    /// Partner keys, usage counts and limits.
    pub partner_keys: KeyCache,
    pub meter: Meter,
    pub quotas: QuotaBook,
    pub partner_rate: RateLimiter<i64>,
}

pub type SharedState = Arc<AppState>;
