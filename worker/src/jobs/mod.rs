//! Job handlers, one module per kind, and how their failures are classified.

pub mod captcha;
pub mod card;
pub mod image;

use std::future::Future;

use kiln_core::job::JobKind;

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
    fn run(&self, job: &Self::Job) -> impl Future<Output = Result<(), JobError>> + Send;
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
    use kiln_core::renditions;
    use sqlx::PgPool;

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
