//! The captcha job: draw a new captcha into one pool slot. Queued by the api
//! when a verification consumes a slot; the refill loop covers the rest.

use std::sync::Arc;

use anyhow::Context as _;
use sqlx::PgPool;

use kiln_core::captcha::CaptchaConfig;
use kiln_core::job::{CaptchaJob, JobKind};
use kiln_infra::captcha_pool;

use crate::captcha::{generate, Fonts};
use crate::jobs::{Delivered, JobError, JobHandler};
use crate::metrics as m;
use crate::render_pool::RenderPool;

/// A slot claimed this long ago by a generator that never filled it is free again.
pub const STALE_CLAIM_SECS: f64 = 60.0;

pub struct CaptchaContext {
    pub db: PgPool,
    pub config: Arc<CaptchaConfig>,
    pub fonts: Arc<Fonts>,
    /// Drawing and PNG encoding run off the async runtime.
    pub encoders: Arc<RenderPool>,
}

impl CaptchaContext {
    /// Draws a captcha into a slot this worker has claimed.
    pub async fn fill_claimed(&self, slot: &str) -> anyhow::Result<()> {
        let (config, fonts) = (self.config.clone(), self.fonts.clone());
        let drawn = self
            .encoders
            .run(move |_| generate(&config, &fonts))
            .await
            .context("captcha thread")?;
        let result = match drawn {
            Ok((code, png)) => {
                let key = self.config.key(&code, slot);
                captcha_pool::fill(&self.db, slot, &key, &png)
                    .await
                    .map(|_| ())
                    .context("storing the captcha")
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => {
                metrics::counter!(m::CAPTCHAS_GENERATED).increment(1);
                Ok(())
            }
            Err(err) => {
                let _ = captcha_pool::unclaim(&self.db, slot).await;
                Err(err)
            }
        }
    }
}

impl JobHandler for CaptchaContext {
    type Job = CaptchaJob;
    const KIND: JobKind = JobKind::Captcha;

    fn cache_key(job: &CaptchaJob) -> &str {
        &job.slot
    }
    fn attempt(job: &mut CaptchaJob) -> &mut u32 {
        &mut job.attempt
    }
    fn enqueued_at_ms(job: &CaptchaJob) -> Option<u64> {
        job.enqueued_at_ms
    }
    async fn run(&self, job: &CaptchaJob, _delivered: Delivered) -> Result<(), JobError> {
        if !self.config.is_slot(&job.slot) {
            // Another pool size: nothing to do for this slot any more.
            return Ok(());
        }
        let claimed = captcha_pool::claim(&self.db, &job.slot, STALE_CLAIM_SECS)
            .await
            .context("claiming the slot")?;
        if claimed {
            self.fill_claimed(&job.slot).await?;
        }
        Ok(())
    }
    async fn record_failure(&self, job: &CaptchaJob, _: u16, _: &str) -> anyhow::Result<()> {
        captcha_pool::unclaim(&self.db, &job.slot)
            .await
            .context("giving the slot back")
    }
    async fn give_up(&self, job: &CaptchaJob) -> anyhow::Result<()> {
        captcha_pool::unclaim(&self.db, &job.slot)
            .await
            .context("giving the slot back")
    }
}
