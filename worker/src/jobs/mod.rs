//! Job handlers, one module per kind, and how their failures are classified.

pub mod image;

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
