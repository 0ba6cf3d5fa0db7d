//! The api's configuration (`KILN_*` variables), validated at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::http::StatusCode;
use kiln_core::captcha::CaptchaConfig;
use kiln_core::limits::SourceLimits;
use kiln_core::nginx_link::SecureLinkExpr;
use kiln_core::options::{AutoFormats, Presets};
use kiln_core::signing::SigningConfig;
use kiln_infra::config::{
    bool_or, check_secret, millis_or, parse_or, var_opt, var_or, AmqpConfig, DbConfig,
    FromEnv as _, S3Config,
};
use kiln_infra::dialect_config::Dialects;

use crate::plumbing::client_addr::TrustedProxies;
use crate::plumbing::server::ServerLimits;

/// Where the process listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How a ready rendition reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// 302 to a presigned S3 URL.
    Redirect,
    /// Stream the object through the api (for deployments behind a CDN).
    Proxy,
}

/// nginx `secure_link` compatibility settings; `None` disables the routes.
#[derive(Clone, Debug)]
pub struct NginxCompat {
    pub expression: SecureLinkExpr,
    pub bad_hash_status: StatusCode,
    pub jpeg_quality: u8,
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub delivery: Delivery,
    pub presign_ttl: Duration,
    pub miss_wait: Duration,
    pub retry_after_secs: u64,
    pub max_waiting: usize,
    /// Originals uploaded at once (`PUT /v1/originals`); each holds one part.
    pub upload_concurrency: usize,
    /// Renditions not asked for in this many days are deleted (unset: kept).
    pub retention_days: Option<u32>,
    /// How often hit times are written (retention only).
    pub hit_flush: Duration,
    /// How often renditions past retention are looked for.
    pub retention_sweep: Duration,
    pub source_cache_ttl: Duration,
    pub stale_claim_secs: f64,
    pub migrate: bool,
    pub signing: SigningConfig,
    pub nginx: Option<NginxCompat>,
    /// thumbor/imagor and imgproxy URLs (`KILN_THUMBOR_*`, `KILN_IMGPROXY_*`).
    pub dialects: Dialects,
    /// Named option lists (`KILN_PRESETS_FILE`, `KILN_PRESETS_ONLY`).
    pub presets: Presets,
    pub limits: SourceLimits,
    /// What `f:auto` may choose, best first (`KILN_AUTO_FORMATS`, default `avif,webp`).
    pub auto_formats: AutoFormats,
    /// Where card templates live (`KILN_TEMPLATES_DIR`, default `templates`).
    pub templates_dir: std::path::PathBuf,
    /// `/card-preview/…` for template authors (`KILN_CARD_PREVIEW`, default off).
    pub card_preview: bool,
    /// Captcha codes, keys and pool size (`KILN_CAPTCHA_*`).
    pub captcha: CaptchaConfig,
    /// Per client address: captchas issued and answers checked per minute.
    pub captcha_rate: (u32, u32),
    pub verify_rate: (u32, u32),
    /// SHA-256 digests of the bearer keys for `/v1` administration
    /// (`KILN_ADMIN_KEYS`, comma-separated): compared digest to digest, so
    /// the comparison's time says nothing about a key's length.
    pub admin_key_digests: Vec<[u8; 32]>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` is believed
    /// (`KILN_TRUSTED_PROXIES`, CIDRs; empty: none).
    pub trusted_proxies: TrustedProxies,
    /// Connection limits and timeouts (`KILN_HTTP_*`).
    pub server: ServerLimits,
    /// A request body must arrive within this (`KILN_HTTP_BODY_TIMEOUT_MS`, 30 s).
    pub body_timeout: Duration,
    /// `/metrics` on a listener of its own (`KILN_METRICS_LISTEN`); unset:
    /// served on the main listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Per client: misses of unsigned (public) card URLs a minute, and burst
    /// (`KILN_PUBLIC_MISS_RATE_PER_MINUTE`, `KILN_PUBLIC_MISS_BURST`).
    pub public_miss_rate: (u32, u32),
    /// Per client: lookups of partner keys this process does not know, a
    /// minute, and burst (`KILN_UNKNOWN_KEY_RATE_PER_MINUTE`, `…_BURST`).
    pub unknown_key_rate: (u32, u32),
    /// Partner keys (known and unknown) remembered at once (`KILN_PARTNER_CACHE_CAPACITY`).
    pub partner_cache_capacity: usize,
    /// A failed card is tried again after this (`KILN_CARD_FAILURE_TTL_SECS`, 600).
    pub card_failure_ttl: Duration,
    /// Accept card signatures of the form before domain separation
    /// (`KILN_LEGACY_CARD_SIGNATURES`, off): for a transition only.
    pub legacy_card_signatures: bool,
    /// Items a partner may have waiting or rendering across its bulk jobs
    /// (`KILN_BULK_MAX_PENDING_PER_PARTNER`, 20000).
    pub bulk_max_pending_per_partner: i64,
    /// Base of URLs the api hands out (`KILN_PUBLIC_URL`; unset: the bound address).
    pub public_url: Option<String>,
    /// Lifetime of presigned download URLs (`KILN_DOWNLOAD_TTL_SECS`, 60).
    pub download_ttl: Duration,
    /// How long a resolved partner key is trusted (`KILN_PARTNER_CACHE_SECS`, 5):
    /// a key revoked elsewhere stops working within this.
    pub partner_cache_ttl: Duration,
    /// The answer to an unknown or revoked key (`KILN_PARTNER_DENY_STATUS`, 403 or 404).
    pub partner_deny_status: StatusCode,
    /// How often usage counts are written (`KILN_METER_FLUSH_MS`, 1000).
    pub meter_flush: Duration,
    /// Keep every metered access in `usage_audit` (`KILN_AUDIT`, off).
    pub audit: bool,
    /// Bulk items handed to the queues at once (`KILN_BULK_IN_FLIGHT`, 16).
    pub bulk_in_flight: i64,
    /// Items a bulk job may hold (`KILN_BULK_MAX_ITEMS`, 10000).
    pub bulk_max_items: usize,
    pub db: DbConfig,
    pub amqp: AmqpConfig,
    pub s3: S3Config,
}

impl ApiConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let delivery = match var_or("KILN_DELIVERY", "redirect").as_str() {
            "redirect" => Delivery::Redirect,
            "proxy" => Delivery::Proxy,
            other => bail!("KILN_DELIVERY={other:?} is invalid: expected redirect or proxy"),
        };
        let presign_ttl = Duration::from_secs(parse_or("KILN_PRESIGN_TTL_SECS", 3600u64)?);
        if presign_ttl < Duration::from_secs(60) || presign_ttl > Duration::from_secs(7 * 24 * 3600)
        {
            bail!("KILN_PRESIGN_TTL_SECS must be between 60 and 604800 (S3's limit)");
        }
        let nginx = match var_opt("KILN_NGINX_SECURE_LINK_MD5") {
            None => None,
            Some(expr) => {
                let expression = SecureLinkExpr::parse(&expr)
                    .map_err(|e| anyhow::anyhow!("KILN_NGINX_SECURE_LINK_MD5: {e}"))?;
                let code: u16 = parse_or("KILN_NGINX_BAD_HASH_STATUS", 403)?;
                if code != 403 && code != 404 {
                    bail!("KILN_NGINX_BAD_HASH_STATUS must be 403 or 404");
                }
                let jpeg_quality: u8 = parse_or("KILN_NGINX_JPEG_QUALITY", 95)?;
                if !(1..=100).contains(&jpeg_quality) {
                    bail!("KILN_NGINX_JPEG_QUALITY must be 1..100");
                }
                Some(NginxCompat {
                    expression,
                    bad_hash_status: StatusCode::from_u16(code).context("status code")?,
                    jpeg_quality,
                })
            }
        };
        let listen = var_or("KILN_LISTEN", DEFAULT_LISTEN);
        Ok(Self {
            listen: listen
                .parse()
                .with_context(|| format!("KILN_LISTEN={listen:?} is not an address:port"))?,
            delivery,
            presign_ttl,
            miss_wait: millis_or("KILN_MISS_WAIT_MS", 10_000)?,
            retry_after_secs: parse_or("KILN_RETRY_AFTER_SECS", 2)?,
            max_waiting: parse_or("KILN_MAX_WAITING", 2048)?,
            upload_concurrency: parse_or("KILN_UPLOAD_CONCURRENCY", 4)?,
            retention_days: match parse_or::<u32>("KILN_RETENTION_DAYS", 0)? {
                0 => None,
                days => Some(days),
            },
            hit_flush: Duration::from_secs(parse_or("KILN_HIT_FLUSH_SECS", 60)?),
            retention_sweep: Duration::from_secs(parse_or("KILN_RETENTION_SWEEP_SECS", 3600)?),
            source_cache_ttl: Duration::from_secs(parse_or("KILN_SOURCE_CACHE_TTL_SECS", 60u64)?),
            stale_claim_secs: parse_or("KILN_REQUEUE_AFTER_SECS", 120.0)?,
            migrate: bool_or("KILN_MIGRATE", true)?,
            signing: SigningConfig::from_env()?,
            nginx,
            dialects: dialects()?,
            presets: Presets::from_env()?,
            limits: SourceLimits::from_env()?,
            auto_formats: AutoFormats::parse(&var_or("KILN_AUTO_FORMATS", "avif,webp"))
                .map_err(|e| anyhow::anyhow!("KILN_AUTO_FORMATS: {e}"))?,
            templates_dir: var_or("KILN_TEMPLATES_DIR", "templates").into(),
            card_preview: bool_or("KILN_CARD_PREVIEW", false)?,
            captcha: CaptchaConfig::from_env()?,
            captcha_rate: (
                parse_or("KILN_CAPTCHA_RATE_PER_MINUTE", 60)?,
                parse_or("KILN_CAPTCHA_BURST", 20)?,
            ),
            verify_rate: (
                parse_or("KILN_VERIFY_RATE_PER_MINUTE", 20)?,
                parse_or("KILN_VERIFY_BURST", 10)?,
            ),
            download_ttl: Duration::from_secs(parse_or("KILN_DOWNLOAD_TTL_SECS", 60u64)?),
            partner_cache_ttl: Duration::from_secs(parse_or("KILN_PARTNER_CACHE_SECS", 5u64)?),
            partner_deny_status: deny_status()?,
            meter_flush: millis_or("KILN_METER_FLUSH_MS", 1000)?,
            audit: bool_or("KILN_AUDIT", false)?,
            bulk_in_flight: positive("KILN_BULK_IN_FLIGHT", 16)?,
            bulk_max_items: positive("KILN_BULK_MAX_ITEMS", 10_000)? as usize,
            admin_key_digests: admin_keys()?,
            trusted_proxies: TrustedProxies::parse(&var_or("KILN_TRUSTED_PROXIES", ""))
                .map_err(|e| anyhow::anyhow!("KILN_TRUSTED_PROXIES: {e}"))?,
            server: ServerLimits {
                header_timeout: millis_or("KILN_HTTP_HEADER_TIMEOUT_MS", 10_000)?,
                idle_timeout: millis_or("KILN_HTTP_IDLE_TIMEOUT_MS", 60_000)?,
                max_connections: positive("KILN_HTTP_MAX_CONNECTIONS", 4096)? as usize,
                max_connections_per_client: positive("KILN_HTTP_MAX_CONNECTIONS_PER_CLIENT", 256)?
                    as usize,
                drain_timeout: millis_or("KILN_HTTP_DRAIN_TIMEOUT_MS", 30_000)?,
            },
            body_timeout: millis_or("KILN_HTTP_BODY_TIMEOUT_MS", 30_000)?,
            metrics_listen: match var_opt("KILN_METRICS_LISTEN") {
                None => None,
                Some(addr) => Some(addr.parse().with_context(|| {
                    format!("KILN_METRICS_LISTEN={addr:?} is not an address:port")
                })?),
            },
            public_miss_rate: (
                parse_or("KILN_PUBLIC_MISS_RATE_PER_MINUTE", 60)?,
                parse_or("KILN_PUBLIC_MISS_BURST", 20)?,
            ),
            unknown_key_rate: (
                parse_or("KILN_UNKNOWN_KEY_RATE_PER_MINUTE", 60)?,
                parse_or("KILN_UNKNOWN_KEY_BURST", 20)?,
            ),
            partner_cache_capacity: positive("KILN_PARTNER_CACHE_CAPACITY", 10_000)? as usize,
            card_failure_ttl: Duration::from_secs(parse_or("KILN_CARD_FAILURE_TTL_SECS", 600u64)?),
            legacy_card_signatures: bool_or("KILN_LEGACY_CARD_SIGNATURES", false)?,
            bulk_max_pending_per_partner: positive("KILN_BULK_MAX_PENDING_PER_PARTNER", 20_000)?,
            public_url: var_opt("KILN_PUBLIC_URL"),
            db: DbConfig::from_env()?,
            amqp: AmqpConfig::from_env()?,
            s3: S3Config::from_env()?,
        })
    }
}

fn dialects() -> anyhow::Result<Dialects> {
    let dialects = Dialects::from_env()?;
    for (name, prefix) in dialects.prefixes() {
        let top = prefix.split('/').nth(1).unwrap_or_default();
        if crate::routes::NATIVE_TOP_SEGMENTS.contains(&top) {
            bail!(
                "{name}={prefix:?} collides with Kiln's own /{top} routes: choose another prefix"
            );
        }
    }
    Ok(dialects)
}

fn deny_status() -> anyhow::Result<StatusCode> {
    match parse_or("KILN_PARTNER_DENY_STATUS", 403u16)? {
        403 => Ok(StatusCode::FORBIDDEN),
        404 => Ok(StatusCode::NOT_FOUND),
        other => bail!("KILN_PARTNER_DENY_STATUS={other} is invalid: expected 403 or 404"),
    }
}

fn positive(name: &str, default: i64) -> anyhow::Result<i64> {
    let value: i64 = parse_or(name, default)?;
    if value < 1 {
        bail!("{name} must be at least 1");
    }
    Ok(value)
}

fn admin_keys() -> anyhow::Result<Vec<[u8; 32]>> {
    var_or("KILN_ADMIN_KEYS", "")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|key| {
            check_secret("KILN_ADMIN_KEYS", key)?;
            Ok(crate::partners::admin::digest(key))
        })
        .collect()
}
