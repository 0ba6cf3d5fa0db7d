//! What the dependencies answer right now, asked one way by every binary's
//! `/readyz`: PostgreSQL (`SELECT 1`), RabbitMQ (the publisher's connection)
//! and S3 (the buckets), in parallel, each within [`CHECK_TIMEOUT`]. The
//! answer is reused for [`REUSE`], one check at a time, so a flood of
//! `/readyz` costs the dependencies one check a second. What "ready" means
//! from these answers is each binary's own rule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::queue::Publisher;
use crate::storage::Storage;

pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
pub const REUSE: Duration = Duration::from_secs(1);

/// What each dependency answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub postgres: bool,
    pub rabbitmq: bool,
    pub s3: bool,
}

impl Readiness {
    /// Every dependency answered.
    pub fn all(self) -> bool {
        self.postgres && self.rabbitmq && self.s3
    }
}

/// The dependencies a process checks, and its last answer.
pub struct Dependencies {
    db: PgPool,
    publisher: Arc<Publisher>,
    storage: Storage,
    last: Mutex<Option<(Instant, Readiness)>>,
}

impl Dependencies {
    pub fn new(db: PgPool, publisher: Arc<Publisher>, storage: Storage) -> Self {
        Self {
            db,
            publisher,
            storage,
            last: Mutex::new(None),
        }
    }

    pub async fn check(&self) -> Readiness {
        // Everyone else waits for the check under way and shares its answer.
        let mut last = self.last.lock().await;
        if let Some((at, readiness)) = *last {
            if at.elapsed() < REUSE {
                return readiness;
            }
        }
        let (postgres, rabbitmq, s3) = tokio::join!(
            bounded(async { sqlx::query("SELECT 1").execute(&self.db).await.is_ok() }),
            bounded(self.publisher.is_connected()),
            bounded(async { self.storage.check().await.is_ok() }),
        );
        let readiness = Readiness {
            postgres,
            rabbitmq,
            s3,
        };
        *last = Some((Instant::now(), readiness));
        readiness
    }
}

async fn bounded<F: std::future::Future<Output = bool>>(check: F) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or(false)
}
