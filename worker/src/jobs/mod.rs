//! Job handlers, one module per kind, and how their failures are classified.

pub mod captcha;
pub mod card;
pub mod image;

use std::future::Future;

use kiln_core::job::JobKind;

use crate::render_pool::Lane;

/// What the consumer knows about a job's delivery.
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    /// An earlier attempt may have got part of the way (a retry, or a
    /// redelivery after a worker or the broker went away).
    pub resumed: bool,
    /// Where its render waits: on-demand before bulk.
    pub lane: Lane,
}

/// How a job ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The input can never render: remembered with this status and message.
    #[error("permanent failure ({http_status}): {message}")]
    Permanent { http_status: u16, message: String },
    /// A dependency failed (S3, Postgres): retried with backoff.
    #[error(transparent)]
    Transient(#[from] anyhow::Error),
}

/// One job kind as the consumer sees it: its message type and its handler.
pub trait JobHandler: Send + Sync + 'static {
    type Job: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static;
    const KIND: JobKind;

    fn cache_key(job: &Self::Job) -> &str;
    fn attempt(job: &mut Self::Job) -> &mut u32;
    fn enqueued_at_ms(job: &Self::Job) -> Option<u64>;
    fn run(
        &self,
        job: &Self::Job,
        delivered: Delivered,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
    /// Remembers a permanent failure (renditions: on the row, answered at once).
    fn record_failure(
        &self,
        job: &Self::Job,
        http_status: u16,
        message: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Retries are exhausted: undo whatever claim the job held.
    fn give_up(&self, job: &Self::Job) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// `record_failure` and `give_up` for jobs that render a `renditions` row.
pub(crate) mod rendition_outcome {
    use anyhow::Context as _;
    use kiln_infra::renditions;
    use kiln_infra::storage::Storage;
    use sqlx::PgPool;

    use super::JobError;
    use crate::metrics as m;

    /// Which rendition a job renders, and how it was delivered.
    pub struct Start<'a> {
        pub kind: &'static str,
        pub cache_key: &'a str,
        pub object_key: &'a str,
        pub attempt: u32,
        pub resumed: bool,
        pub max_crashes: u32,
    }

    /// Starts a rendition job: `false` when there is nothing to do (the
    /// rendition finished or its claim was released, or an earlier attempt
    /// of a resumed job had uploaded it already). A delivery that killed
    /// `max_crashes` workers already is failed here, before it can take
    /// down another: one file costs at most that many worker lives.
    pub async fn begin(db: &PgPool, storage: &Storage, start: Start<'_>) -> Result<bool, JobError> {
        if !check_crashes(
            db,
            start.kind,
            start.cache_key,
            start.attempt,
            start.max_crashes,
        )
        .await?
        {
            return Ok(false);
        }
        if start.resumed
            && recorded_if_stored(db, storage, start.cache_key, start.object_key).await?
        {
            return Ok(false);
        }
        Ok(true)
    }

    async fn check_crashes(
        db: &PgPool,
        kind: &'static str,
        cache_key: &str,
        attempt: u32,
        max_crashes: u32,
    ) -> Result<bool, JobError> {
        let crashes = renditions::begin_render(db, cache_key, attempt)
            .await
            .context("beginning the render")?;
        match crashes {
            None => {
                tracing::info!("rendition already finished or released; nothing to do");
                Ok(false)
            }
            Some(crashes) if crashes >= max_crashes => {
                tracing::error!(
                    crashes,
                    "this job's worker died {crashes} times: failing the rendition"
                );
                metrics::counter!(m::JOBS, "kind" => kind, "outcome" => "poison").increment(1);
                Err(JobError::Permanent {
                    http_status: 422,
                    message: "source image could not be processed".into(),
                })
            }
            Some(crashes) => {
                if crashes > 0 {
                    tracing::warn!(crashes, "a worker died on this job before; rendering again");
                }
                Ok(true)
            }
        }
    }

    /// For a resumed job: if an earlier attempt already uploaded the
    /// rendition (and then lost Postgres, the broker or its life before
    /// recording it), records it as ready instead of rendering it again.
    /// `true` means the job is done.
    async fn recorded_if_stored(
        db: &PgPool,
        storage: &Storage,
        cache_key: &str,
        object_key: &str,
    ) -> anyhow::Result<bool> {
        let Some(meta) = storage
            .rendition_meta(object_key)
            .await
            .context("looking for an earlier attempt's upload")?
        else {
            return Ok(false);
        };
        let content_type = meta
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        record_ready(db, storage, cache_key, object_key, content_type, meta.size).await?;
        tracing::info!(%cache_key, "an earlier attempt had stored the rendition; recorded it");
        Ok(true)
    }

    /// Records an uploaded rendition ready. If its row is gone, the original
    /// was purged while it rendered: the object is removed, so nothing is
    /// left that no row accounts for.
    pub async fn record_ready(
        db: &PgPool,
        storage: &Storage,
        cache_key: &str,
        object_key: &str,
        content_type: &str,
        size: u64,
    ) -> anyhow::Result<()> {
        let recorded = renditions::mark_ready(db, cache_key, content_type, size)
            .await
            .context("marking the rendition ready")?;
        if !recorded {
            storage
                .delete_rendition(object_key)
                .await
                .context("removing a rendition purged while it rendered")?;
            tracing::info!(%cache_key, "the rendition was purged while it rendered; its object is removed");
        }
        Ok(())
    }

    /// How long a finished render keeps trying to upload its bytes while
    /// S3 is away, before the job is given back (and rendered again later).
    const UPLOAD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

    /// Uploads a rendered object, retrying with backoff for up to
    /// [`UPLOAD_PATIENCE`]: a render is the expensive part, so a short S3
    /// outage costs a wait, not a second render.
    pub async fn store(
        storage: &Storage,
        object_key: &str,
        bytes: bytes::Bytes,
        content_type: &str,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + UPLOAD_PATIENCE;
        let mut pause = std::time::Duration::from_millis(250);
        loop {
            match storage
                .put_rendition(object_key, bytes.clone(), content_type)
                .await
            {
                Ok(()) => return Ok(()),
                Err(err) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(%err, "upload failed; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(4));
                }
                Err(err) => return Err(anyhow::Error::new(err).context("uploading the rendition")),
            }
        }
    }

    pub async fn failed(
        db: &PgPool,
        cache_key: &str,
        http_status: u16,
        message: &str,
    ) -> anyhow::Result<()> {
        renditions::mark_failed(db, cache_key, http_status, message)
            .await
            .context("recording the failure")
    }

    /// Not a property of the input: forget the claim so a later request tries afresh.
    pub async fn released(db: &PgPool, cache_key: &str) -> anyhow::Result<()> {
        renditions::release(db, cache_key)
            .await
            .context("releasing the claim")
    }
}
