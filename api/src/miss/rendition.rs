//! From a validated image request to a response: look the rendition up (in
//! process, then in Postgres), claim and queue it on a miss, wait for the
//! worker within the configured bound, then deliver it.

use std::time::Instant;

use axum::http::HeaderMap;
use axum::response::Response;

use kiln_core::cache_key::{object_key, rendition_key};
use kiln_core::job::{ImageJob, JobKind, PRIORITY_ON_DEMAND};
use kiln_core::options::ImageOptions;
use kiln_core::source_key::SourceKey;
use kiln_core::IMAGE_RENDERER_VERSION;
use kiln_infra::bulk::Planned;
use kiln_infra::queue::QueueFull;
use kiln_infra::renditions::{self, NewRendition, Rendition, Status};
use kiln_infra::storage::{ObjectMeta, StorageError};

use crate::miss::delivery::deliver;
use crate::plumbing::error::ApiError;
use crate::plumbing::metrics as m;
use crate::state::AppState;

pub async fn serve_image(
    state: &AppState,
    source: &SourceKey,
    options: &ImageOptions,
    request_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let target = image_target(state, source, options).await?;
    let expires = options.expires;
    if let Some(response) =
        deliver_if_known_ready(state, &target.cache_key, request_headers, expires).await?
    {
        metrics::counter!(m::CACHE_HITS, "kind" => "image").increment(1);
        return Ok(crate::miss::cache_tags::tag(response, source));
    }
    let source_size = target.meta.size;
    let planned = planned_image(state, source, target);
    if let Some(message) = too_large(state, source_size) {
        renditions::insert_failed(&state.db, &planned.new_rendition(), 413, &message)
            .await
            .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
        return Err(ApiError::TooLarge(message));
    }
    match find_or_render(state, &Miss::of(&planned), request_headers, expires).await? {
        Rendered::Delivered(response) => Ok(crate::miss::cache_tags::tag(response, source)),
        Rendered::Failed {
            http_status,
            message,
        } => Err(ApiError::from_failure(http_status, message)),
    }
}

/// Why a source of `size` bytes is refused, if it is.
pub fn too_large(state: &AppState, size: u64) -> Option<String> {
    let limit = state.config.limits.max_bytes;
    (size > limit).then(|| format!("source is larger than {limit} bytes"))
}

/// What an image request names: its cache key pins the original's ETag.
pub struct ImageTarget {
    canonical: String,
    meta: ObjectMeta,
    cache_key: String,
}

async fn image_target(
    state: &AppState,
    source: &SourceKey,
    options: &ImageOptions,
) -> Result<ImageTarget, ApiError> {
    let canonical = options.canonical();
    let meta = source_meta(state, source).await?;
    let cache_key = rendition_key(
        IMAGE_RENDERER_VERSION,
        &canonical,
        source.as_str(),
        &meta.etag,
    );
    Ok(ImageTarget {
        canonical,
        meta,
        cache_key,
    })
}

/// The rendition an image request names, with the original's size.
pub async fn plan_image(
    state: &AppState,
    source: &SourceKey,
    options: &ImageOptions,
) -> Result<(Planned, u64), ApiError> {
    let target = image_target(state, source, options).await?;
    let size = target.meta.size;
    Ok((planned_image(state, source, target), size))
}

/// The row and job message of an image rendition (built only on a miss: the
/// hit path never serialises a job).
fn planned_image(state: &AppState, source: &SourceKey, target: ImageTarget) -> Planned {
    let ImageTarget {
        canonical,
        meta,
        cache_key,
    } = target;
    let object_key = object_key(&state.config.s3.cache_prefix, &cache_key);
    let job = ImageJob {
        cache_key: cache_key.clone(),
        object_key: object_key.clone(),
        source_key: source.as_str().to_owned(),
        source_etag: meta.etag.clone(),
        options: canonical.clone(),
        source_bytes: Some(meta.size),
        attempt: 1,
        enqueued_at_ms: Some(kiln_core::job::now_ms()),
        request_id: crate::plumbing::request_id::current(),
    };
    Planned {
        kind: JobKind::Image,
        cache_key,
        object_key,
        source_key: source.as_str().to_owned(),
        source_etag: meta.etag,
        options: canonical,
        payload: job.to_json(),
    }
}

/// A rendition that may have to be rendered: its row and its job message.
pub struct Miss<'a> {
    pub new: NewRendition<'a>,
    pub kind: JobKind,
    pub job: Vec<u8>,
}

impl<'a> Miss<'a> {
    pub fn of(planned: &'a Planned) -> Self {
        Self {
            new: planned.new_rendition(),
            kind: planned.kind,
            job: planned.payload.clone(),
        }
    }
}

/// How a rendition lookup ended, short of an error.
pub enum Rendered {
    Delivered(Response),
    /// Remembered permanent failure, with the status and client-safe message.
    Failed {
        http_status: u16,
        message: String,
    },
}

/// Looks the rendition up in Postgres; on a miss claims it (exactly one api
/// process queues the job), then waits for the worker within the bound.
pub async fn find_or_render(
    state: &AppState,
    miss: &Miss<'_>,
    request_headers: &HeaderMap,
    expires: Option<i64>,
) -> Result<Rendered, ApiError> {
    let kind = miss.kind.name();
    let (cache_key, object_key) = (miss.new.cache_key, miss.new.object_key);
    let retry_after = state.config.retry_after_secs;
    let db_err = |e: sqlx::Error| ApiError::dependency(e, retry_after);
    let mut existing = renditions::find(&state.db, cache_key)
        .await
        .map_err(db_err)?;
    // A failed card is tried again once its failure is old enough: cards
    // fail for reasons of their moment (a slow render, a busy browser).
    if let Some(row) = &existing {
        let expired = miss.kind == JobKind::Card
            && matches!(row.status, Status::Failed { .. })
            && row.finished_for_secs >= state.config.card_failure_ttl.as_secs_f64();
        if expired {
            renditions::forget_failed(&state.db, cache_key)
                .await
                .map_err(db_err)?;
            existing = None;
        }
    }
    match existing.map(|r| r.status) {
        Some(Status::Ready) => {
            metrics::counter!(m::CACHE_HITS, "kind" => kind).increment(1);
            state.hot.put_ready_object(cache_key, object_key);
            return deliver(state, cache_key, object_key, request_headers, expires)
                .await
                .map(Rendered::Delivered);
        }
        Some(Status::Failed {
            http_status,
            message,
        }) => {
            return Ok(Rendered::Failed {
                http_status,
                message,
            })
        }
        Some(Status::Pending) | None => {}
    }
    metrics::counter!(m::CACHE_MISSES, "kind" => kind).increment(1);

    let Ok(_slot) = state.wait_slots.try_acquire() else {
        return Err(ApiError::Overloaded { retry_after });
    };
    // Subscribe before claiming, so a render finishing at once still wakes us.
    let subscription = state.waiters.subscribe(cache_key);
    if renditions::claim(&state.db, &miss.new)
        .await
        .map_err(db_err)?
    {
        publish(state, miss, PRIORITY_ON_DEMAND).await?;
    }
    let rendition = wait_for(state, &subscription.notify, miss).await?;
    match rendition.status {
        Status::Ready => {
            state.hot.put_ready_object(cache_key, object_key);
            deliver(state, cache_key, object_key, request_headers, expires)
                .await
                .map(Rendered::Delivered)
        }
        Status::Failed {
            http_status,
            message,
        } => Ok(Rendered::Failed {
            http_status,
            message,
        }),
        Status::Pending => Err(ApiError::NotReadyYet { retry_after }),
    }
}

/// Renders a rendition whose key is new (previews): claim, queue, wait, and
/// hand back the finished row without delivering or remembering it.
pub async fn render_uncached(state: &AppState, miss: &Miss<'_>) -> Result<Rendition, ApiError> {
    let retry_after = state.config.retry_after_secs;
    let Ok(_slot) = state.wait_slots.try_acquire() else {
        return Err(ApiError::Overloaded { retry_after });
    };
    let subscription = state.waiters.subscribe(miss.new.cache_key);
    if renditions::claim(&state.db, &miss.new)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?
    {
        publish(state, miss, PRIORITY_ON_DEMAND).await?;
    }
    let rendition = wait_for(state, &subscription.notify, miss).await?;
    match rendition.status {
        Status::Pending => Err(ApiError::NotReadyYet { retry_after }),
        _ => Ok(rendition),
    }
}

/// The hit path: no network round-trip when the rendition is known ready.
pub async fn deliver_if_known_ready(
    state: &AppState,
    cache_key: &str,
    request_headers: &HeaderMap,
    expires: Option<i64>,
) -> Result<Option<Response>, ApiError> {
    match state.hot.ready_object(cache_key) {
        Some(object_key) => deliver(state, cache_key, &object_key, request_headers, expires)
            .await
            .map(Some),
        None => Ok(None),
    }
}

/// The original's ETag and size, from the in-process cache or a HEAD.
pub(crate) async fn source_meta(
    state: &AppState,
    source: &SourceKey,
) -> Result<ObjectMeta, ApiError> {
    let ttl = state.config.source_cache_ttl;
    if let Some(meta) = state.hot.source(source.as_str(), ttl) {
        return Ok(meta);
    }
    match state.storage.head_original(source.as_str()).await {
        Ok(meta) => {
            state.hot.put_source(source.as_str(), meta.clone());
            Ok(meta)
        }
        Err(StorageError::NotFound) => Err(ApiError::NotFound),
        Err(err) => Err(ApiError::dependency(err, state.config.retry_after_secs)),
    }
}

/// Publishes a claimed rendition's job; on failure gives the claim back.
pub async fn publish(state: &AppState, miss: &Miss<'_>, priority: u8) -> Result<(), ApiError> {
    let queue = state.publisher.topology().work_queue(miss.kind);
    match state.publisher.publish(&queue, &miss.job, priority).await {
        Ok(()) => {
            metrics::counter!(m::JOBS_QUEUED, "kind" => miss.kind.name()).increment(1);
            Ok(())
        }
        Err(err) => {
            // Give the claim back so the next request can queue it again.
            if let Err(release_err) = renditions::release(&state.db, miss.new.cache_key).await {
                tracing::warn!(%release_err, "could not release a rendition claim");
            }
            let retry_after = state.config.retry_after_secs;
            if err.downcast_ref::<QueueFull>().is_some() {
                metrics::counter!(m::QUEUE_FULL, "kind" => miss.kind.name()).increment(1);
                return Err(ApiError::Overloaded { retry_after });
            }
            metrics::counter!(m::PUBLISH_FAILURES).increment(1);
            Err(ApiError::dependency(err, retry_after))
        }
    }
}

/// Waits until the rendition leaves `pending` or the bound passes. The row
/// is read once, then again only when a notification for this key arrives
/// (or the listener reconnected and may have missed one): waiting costs
/// Postgres nothing while nothing happens.
async fn wait_for(
    state: &AppState,
    notify: &tokio::sync::Notify,
    miss: &Miss<'_>,
) -> Result<Rendition, ApiError> {
    let cache_key = miss.new.cache_key;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + state.config.miss_wait;
    let retry_after = state.config.retry_after_secs;
    let mut first = true;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let row = renditions::find(&state.db, cache_key)
            .await
            .map_err(|e| ApiError::dependency(e, retry_after))?;
        match row {
            Some(r) if r.status != Status::Pending => {
                metrics::histogram!(m::MISS_WAIT).record(started.elapsed().as_secs_f64());
                return Ok(r);
            }
            Some(r) if first && r.queued_for_secs > state.config.stale_claim_secs => {
                // The job behind this claim was lost; queue it again.
                if renditions::reclaim_stale(&state.db, cache_key, state.config.stale_claim_secs)
                    .await
                    .map_err(|e| ApiError::dependency(e, retry_after))?
                {
                    tracing::warn!(%cache_key, "re-queueing a stale rendition claim");
                    publish(state, miss, PRIORITY_ON_DEMAND).await?;
                }
            }
            Some(_) => {}
            // The claim was released (its publish failed): answer "retry", not a hang.
            None => return Err(ApiError::NotReadyYet { retry_after }),
        }
        first = false;
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            metrics::counter!(m::WAIT_TIMEOUTS).increment(1);
            return Err(ApiError::NotReadyYet { retry_after });
        }
    }
}
