//! Job handlers, one module per kind, and how their failures are classified.

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
}
