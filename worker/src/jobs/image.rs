//! The image job: fetch the original (pinned to the ETag its cache key was
//! computed from), render it on the blocking pool, upload the rendition, then
//! mark the row ready — which notifies every waiting api.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use sqlx::PgPool;

use kiln_core::job::ImageJob;
use kiln_core::options::ImageOptions;
use kiln_infra::renditions;
use kiln_infra::storage::{Storage, StorageError};

use crate::jobs::{Delivered, JobError, JobHandler};
use crate::metrics as m;
use crate::render;
use crate::render_pool::RenderPool;

/// What every job handler needs.
pub struct JobContext {
    pub db: PgPool,
    pub storage: Storage,
    pub render: render::Settings,
    /// Runs renders, as many at once as the configured concurrency.
    pub pool: Arc<RenderPool>,
    /// Bytes of originals held at once, downloading or waiting for a render
    /// thread (`KILN_WORKER_FETCH_BUDGET_BYTES`), in KiB permits.
    pub fetch_budget: Arc<tokio::sync::Semaphore>,
    /// The fetch budget's size, in KiB.
    pub fetch_budget_kib: u32,
    /// Deliveries of one job that may kill their worker before it is failed.
    pub max_crashes: u32,
}

impl JobHandler for JobContext {
    type Job = ImageJob;
    const KIND: kiln_core::job::JobKind = kiln_core::job::JobKind::Image;

    fn cache_key(job: &ImageJob) -> &str {
        &job.cache_key
    }
    fn attempt(job: &mut ImageJob) -> &mut u32 {
        &mut job.attempt
    }
    fn enqueued_at_ms(job: &ImageJob) -> Option<u64> {
        job.enqueued_at_ms
    }
    async fn run(&self, job: &ImageJob, delivered: Delivered) -> Result<(), JobError> {
        run(self, job, delivered).await
    }
    async fn record_failure(
        &self,
        job: &ImageJob,
        http_status: u16,
        message: &str,
    ) -> anyhow::Result<()> {
        super::rendition_outcome::failed(&self.db, &job.cache_key, http_status, message).await
    }
    async fn give_up(&self, job: &ImageJob) -> anyhow::Result<()> {
        super::rendition_outcome::released(&self.db, &job.cache_key).await
    }
}

#[tracing::instrument(skip_all, fields(cache_key = %job.cache_key, source = %job.source_key, attempt = job.attempt, request_id = job.request_id.as_deref().unwrap_or("-")))]
pub async fn run(ctx: &JobContext, job: &ImageJob, delivered: Delivered) -> Result<(), JobError> {
    let start = super::rendition_outcome::Start {
        kind: "image",
        cache_key: &job.cache_key,
        object_key: &job.object_key,
        attempt: job.attempt,
        resumed: delivered.resumed,
        max_crashes: ctx.max_crashes,
    };
    if !super::rendition_outcome::begin(&ctx.db, &ctx.storage, start).await? {
        return Ok(());
    }
    let options = ImageOptions::parse(&job.options).map_err(|e| JobError::Permanent {
        http_status: 422,
        message: format!("invalid options in job: {e}"),
    })?;

    let started = Instant::now();
    let queued_ms = job
        .enqueued_at_ms
        .map(|at| kiln_core::job::now_ms().saturating_sub(at));
    // Room for the original is taken before it is downloaded, so deliveries
    // held ahead of a free render thread wait here, not in memory.
    let room = hold_room(ctx, job).await?;
    let source = match ctx
        .storage
        .get_original(
            &job.source_key,
            &job.source_etag,
            ctx.render.limits.max_bytes,
        )
        .await
    {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound | StorageError::Changed) => {
            // The original was replaced or deleted since the request: its
            // cache key is obsolete. Drop the claim; a new request starts over.
            renditions::release(&ctx.db, &job.cache_key)
                .await
                .context("releasing an obsolete claim")?;
            tracing::info!("original changed or vanished; claim released");
            return Ok(());
        }
        Err(err) => {
            return Err(JobError::Transient(
                anyhow::Error::new(err).context("fetching the original"),
            ))
        }
    };
    let fetched = started.elapsed();

    tracing::info!(bytes = source.len(), "rendering");
    let settings = ctx.render;
    let rendered = match ctx
        .pool
        .run_in(delivered.lane, move |abandoned| {
            let budget = render::Budget::start(settings.render_timeout, abandoned);
            render::render(&source, &options, &settings, &budget)
        })
        .await
    {
        Ok(rendered) => rendered.map_err(|e| JobError::Permanent {
            http_status: e.http_status(),
            message: e.to_string(),
        })?,
        // A panic is a bug on this input: it would happen again, so the
        // source is answered as undecodable instead of retried forever.
        Err(err) => {
            tracing::error!("render failed: {err:#}");
            return Err(JobError::Permanent {
                http_status: 422,
                message: "source image could not be processed".into(),
            });
        }
    };
    drop(room);
    let render_done = started.elapsed();

    let content_type = rendered.format.content_type();
    let size = rendered.bytes.len() as u64;
    super::rendition_outcome::store(
        &ctx.storage,
        &job.object_key,
        Bytes::from(rendered.bytes),
        content_type,
    )
    .await?;
    let uploaded = started.elapsed();
    super::rendition_outcome::record_ready(
        &ctx.db,
        &ctx.storage,
        &job.cache_key,
        &job.object_key,
        content_type,
        size,
    )
    .await?;

    metrics::histogram!(m::STAGE_SECONDS, "kind" => "image", "stage" => "fetch")
        .record(fetched.as_secs_f64());
    metrics::histogram!(m::STAGE_SECONDS, "kind" => "image", "stage" => "render")
        .record((render_done - fetched).as_secs_f64());
    metrics::histogram!(m::STAGE_SECONDS, "kind" => "image", "stage" => "upload")
        .record((uploaded - render_done).as_secs_f64());
    metrics::histogram!(m::RENDER_SECONDS, "kind" => "image")
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        queue_ms = queued_ms.unwrap_or(0),
        fetch_ms = fetched.as_millis() as u64,
        render_ms = (render_done - fetched).as_millis() as u64,
        upload_ms = (uploaded - render_done).as_millis() as u64,
        width = rendered.width,
        height = rendered.height,
        bytes = size,
        "rendition ready"
    );
    Ok(())
}

/// Takes the original's size (as the api saw it; the byte limit for older
/// messages) from the fetch budget until the render is done with it.
async fn hold_room<'a>(
    ctx: &'a JobContext,
    job: &ImageJob,
) -> Result<tokio::sync::SemaphorePermit<'a>, JobError> {
    let limit = ctx.render.limits.max_bytes;
    let bytes = job.source_bytes.unwrap_or(limit).min(limit);
    let kib = u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, ctx.fetch_budget_kib);
    ctx.fetch_budget
        .acquire_many(kib)
        .await
        .map_err(|_| JobError::Transient(anyhow::anyhow!("the worker is stopping")))
}
