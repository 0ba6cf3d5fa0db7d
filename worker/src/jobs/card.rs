//! The card job: render the template's HTML, load it in a warm browser,
//! capture it, encode, upload, mark ready. A render past its timeout, a
//! browser that crashed or lost its connection: all transient, so the job is
//! retried with backoff (on a fresh page or a restarted browser) and never
//! remembered as failed because of a busy moment; while it waits, the api
//! answers the default image without letting it be cached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use sqlx::PgPool;

use kiln_core::cards::{Asset, CardTemplate, Templates};
use kiln_core::format::OutputFormat;
use kiln_core::job::{CardJob, JobKind};
use kiln_infra::storage::{Storage, StorageError};

use crate::card_html;
use crate::chromium::{BrowserPool, Capture, PageContent, TabError};
use crate::jobs::{Delivered, JobError, JobHandler};
use crate::metrics as m;
use crate::render_pool::RenderPool;

/// WebP cards: Chromium's encoder at the quality images default to.
const WEBP_QUALITY: u8 = 80;
/// Largest original a card may embed.
const LARGEST_ORIGINAL: u64 = 16 * 1024 * 1024;

pub struct CardContext {
    pub db: PgPool,
    pub storage: Storage,
    /// Loaded at start-up; one is read again when a job names another version.
    pub templates: RwLock<Templates>,
    pub templates_dir: PathBuf,
    pub browsers: Arc<BrowserPool>,
    /// CPU work (PNG and WebP encoding) off the async runtime.
    pub encoders: Arc<RenderPool>,
    pub render_timeout: Duration,
    pub jpeg_quality: u8,
    /// Deliveries of one card that may kill their worker before it is failed.
    pub max_crashes: u32,
}

impl JobHandler for CardContext {
    type Job = CardJob;
    const KIND: JobKind = JobKind::Card;

    fn cache_key(job: &CardJob) -> &str {
        &job.cache_key
    }
    fn attempt(job: &mut CardJob) -> &mut u32 {
        &mut job.attempt
    }
    fn enqueued_at_ms(job: &CardJob) -> Option<u64> {
        job.enqueued_at_ms
    }
    async fn run(&self, job: &CardJob, delivered: Delivered) -> Result<(), JobError> {
        run(self, job, delivered.resumed).await
    }
    async fn record_failure(
        &self,
        job: &CardJob,
        http_status: u16,
        message: &str,
    ) -> anyhow::Result<()> {
        super::rendition_outcome::failed(&self.db, &job.cache_key, http_status, message).await
    }
    async fn give_up(&self, job: &CardJob) -> anyhow::Result<()> {
        super::rendition_outcome::released(&self.db, &job.cache_key).await
    }
}

#[tracing::instrument(skip_all, fields(cache_key = %job.cache_key, template = %job.template, attempt = job.attempt, request_id = job.request_id.as_deref().unwrap_or("-")))]
async fn run(ctx: &CardContext, job: &CardJob, resumed: bool) -> Result<(), JobError> {
    let start = super::rendition_outcome::Start {
        kind: "card",
        cache_key: &job.cache_key,
        object_key: &job.object_key,
        attempt: job.attempt,
        resumed,
        max_crashes: ctx.max_crashes,
    };
    if !super::rendition_outcome::begin(&ctx.db, &ctx.storage, start).await? {
        return Ok(());
    }
    tracing::info!("rendering card");
    let started = Instant::now();
    let bytes = render(ctx, job).await?;
    let rendered = started.elapsed();
    let content_type = job.format.content_type();
    let size = bytes.len() as u64;
    super::rendition_outcome::store(
        &ctx.storage,
        &job.object_key,
        Bytes::from(bytes),
        content_type,
    )
    .await?;
    super::rendition_outcome::record_ready(
        &ctx.db,
        &ctx.storage,
        &job.cache_key,
        &job.object_key,
        content_type,
        size,
    )
    .await?;
    metrics::histogram!(m::STAGE_SECONDS, "kind" => "card", "stage" => "render")
        .record(rendered.as_secs_f64());
    metrics::histogram!(m::RENDER_SECONDS, "kind" => "card")
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        render_ms = rendered.as_millis() as u64,
        bytes = size,
        "card ready"
    );
    Ok(())
}

/// Renders a card to encoded bytes (also what previews answer with).
pub async fn render(ctx: &CardContext, job: &CardJob) -> Result<Vec<u8>, JobError> {
    let template = template_version(ctx, &job.template, &job.template_hash).await?;
    let html = card_html::render(&template, &job.id, &job.params, &job.originals).map_err(|e| {
        tracing::warn!("template error: {e:#}");
        JobError::Permanent {
            http_status: 422,
            message: "card template failed to render".into(),
        }
    })?;
    let content = Arc::new(PageContent {
        template,
        originals: fetch_originals(ctx, job).await?,
    });
    capture(
        &ctx.browsers,
        &ctx.encoders,
        content,
        html,
        job.format,
        ctx.jpeg_quality,
        ctx.render_timeout,
    )
    .await
}

/// Loads the page in a warm browser and returns the encoded card. JPEG and
/// WebP come from Chromium's encoders (the fastest paths); PNG is captured
/// fast and large, then compressed here.
pub async fn capture(
    browsers: &BrowserPool,
    encoders: &RenderPool,
    content: Arc<PageContent>,
    html: String,
    format: OutputFormat,
    jpeg_quality: u8,
    timeout: Duration,
) -> Result<Vec<u8>, JobError> {
    let capture = match format {
        OutputFormat::Jpeg => Capture::Jpeg(jpeg_quality),
        OutputFormat::Webp => Capture::Webp(WEBP_QUALITY),
        _ => Capture::Png,
    };
    let shot = match browsers.render(content, html, capture, timeout).await {
        Ok(shot) => shot,
        Err(TabError::Timeout) => {
            return Err(JobError::Transient(anyhow::anyhow!(
                "card render timed out after {timeout:?}"
            )))
        }
        Err(TabError::Broken(err)) => return Err(JobError::Transient(err)),
    };
    match capture {
        Capture::Png => recompress_png(encoders, shot).await,
        _ => Ok(shot),
    }
}

/// The template at the version the api hashed. When the job names another
/// version (an edited template being previewed, or a deploy in progress) the
/// template is read from disk again; if the files still differ the job is
/// retried, so a worker never caches a card from files the api did not see.
async fn template_version(
    ctx: &CardContext,
    name: &str,
    hash: &str,
) -> Result<Arc<CardTemplate>, JobError> {
    let known = ctx
        .templates
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(name)
        .cloned();
    if let Some(template) = known.filter(|t| t.hash == hash) {
        return Ok(template);
    }
    let root = ctx.templates_dir.clone();
    let owned = name.to_owned();
    let loaded = tokio::task::spawn_blocking(move || Templates::load_template(&root, &owned))
        .await
        .context("template loader thread")?;
    match loaded {
        Ok(Some(template)) if template.hash == hash => Ok(ctx
            .templates
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(template)),
        Ok(Some(_)) => Err(JobError::Transient(anyhow::anyhow!(
            "template {name} differs from the api's version"
        ))),
        Ok(None) => Err(JobError::Permanent {
            http_status: 422,
            message: "unknown card template".into(),
        }),
        Err(err) => Err(JobError::Transient(
            err.context("reloading a card template"),
        )),
    }
}

/// Chromium's fast PNG is large; the worker's encoders make the delivered file.
async fn recompress_png(encoders: &RenderPool, png: Vec<u8>) -> Result<Vec<u8>, JobError> {
    let encoded = encoders
        .run(move |_| {
            let capture = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                .context("decoding the capture")?;
            // Cards are opaque: no alpha channel to compress.
            card_png(&image::DynamicImage::ImageRgb8(capture.into_rgb8()))
        })
        .await
        .context("encoder thread")?;
    encoded.map_err(JobError::Transient)
}

/// Cards are flat colour and text: zlib level 2 with adaptive filters makes
/// files within ~20 % of Chromium's own PNGs in half its time (`bench/cards.sh`);
/// the fastest setting is quicker still but files double.
fn card_png(image: &image::DynamicImage) -> anyhow::Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder as _;
    let mut out = Vec::with_capacity(256 * 1024);
    PngEncoder::new_with_quality(&mut out, CompressionType::Level(2), FilterType::Adaptive)
        .write_image(
            image.as_bytes(),
            image.width(),
            image.height(),
            image.color().into(),
        )
        .context("encoding the card PNG")?;
    Ok(out)
}

async fn fetch_originals(
    ctx: &CardContext,
    job: &CardJob,
) -> Result<HashMap<String, Asset>, JobError> {
    let mut out = HashMap::new();
    for (key, etag) in &job.originals {
        match ctx.storage.get_original(key, etag, LARGEST_ORIGINAL).await {
            Ok(bytes) => {
                let content_type = match image::guess_format(&bytes) {
                    Ok(image::ImageFormat::Png) => "image/png",
                    Ok(image::ImageFormat::Jpeg) => "image/jpeg",
                    Ok(image::ImageFormat::WebP) => "image/webp",
                    Ok(image::ImageFormat::Gif) => "image/gif",
                    // Not an image: the page gets nothing for it.
                    _ => continue,
                };
                out.insert(
                    key.clone(),
                    Asset {
                        bytes,
                        content_type,
                    },
                );
            }
            // Replaced or deleted since the request: the card renders without it.
            Err(StorageError::NotFound | StorageError::Changed) => {}
            Err(err) => {
                return Err(JobError::Transient(
                    anyhow::Error::new(err).context("fetching an original for a card"),
                ))
            }
        }
    }
    Ok(out)
}
