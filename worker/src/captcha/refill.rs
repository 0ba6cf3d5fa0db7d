//! Keeps the captcha pool full: creates the 16^n slots, then every worker
//! that handles captchas claims empty slots in small batches (`FOR UPDATE
//! SKIP LOCKED`, so workers never collide) and draws them, until none is
//! left; then checks again shortly. Each round also returns captchas whose
//! lease expired unanswered to the pool.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use kiln_infra::captcha_pool;

use crate::jobs::captcha::{CaptchaContext, STALE_CLAIM_SECS};
use crate::metrics as m;

const IDLE_CHECK: Duration = Duration::from_secs(1);

pub async fn run(ctx: Arc<CaptchaContext>, batch: usize, cancel: CancellationToken) {
    // The slots are created here, not at start-up: the table may not exist
    // yet (the api migrates) or Postgres may be down; keep trying.
    while let Err(err) = captcha_pool::ensure_slots(&ctx.db, ctx.config.slot_digits).await {
        tracing::warn!(%err, "captcha refill: cannot create the pool's slots yet");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(IDLE_CHECK) => {}
        }
    }
    loop {
        // Captchas issued and never answered go back to the pool (their old
        // lease answers nothing).
        let ttl = ctx.config.issue_ttl.as_secs_f64();
        if let Err(err) = captcha_pool::expire_leases(&ctx.db, ttl).await {
            tracing::warn!(%err, "captcha refill: cannot expire old leases");
        }
        let claimed = match captcha_pool::claim_batch(&ctx.db, batch as i64, STALE_CLAIM_SECS).await
        {
            Ok(slots) => slots,
            Err(err) => {
                tracing::warn!(%err, "captcha refill: cannot claim slots");
                Vec::new()
            }
        };
        let fills = claimed.iter().map(|slot| ctx.fill_claimed(slot));
        for result in futures_util::future::join_all(fills).await {
            if let Err(err) = result {
                tracing::warn!("captcha refill: {err:#}");
            }
        }
        if let Ok((ready, total)) = captcha_pool::counts(&ctx.db).await {
            metrics::gauge!(m::CAPTCHA_POOL_READY).set(ready as f64);
            metrics::gauge!(m::CAPTCHA_POOL_SLOTS).set(total as f64);
        }
        if claimed.is_empty() {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(IDLE_CHECK) => {}
            }
        } else if cancel.is_cancelled() {
            return;
        }
    }
}
