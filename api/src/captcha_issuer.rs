//! Issues captchas, each to one client only.
//!
//! Ready captchas are leased from the pool in batches (one UPDATE per
//! batch) and kept here for a few seconds; every request takes one from the
//! batch, so no captcha is shown to two clients while it can be answered,
//! and serving needs no database round trip while the batch lasts. The batch
//! grows while requests drain it quickly (up to [`MAX_BATCH`]) and shrinks
//! when they do not, so a quiet api holds at most a captcha or two. Leases
//! the api did not hand out within [`HOLD`] go back to the pool, and on
//! shutdown too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Mutex;

use kiln_core::captcha::{new_lease, CaptchaConfig};
use kiln_infra::captcha_pool::{self, LeasedCaptcha};

/// Most captchas leased at once.
const MAX_BATCH: usize = 64;
/// How long a leased captcha waits here for a client before it is returned.
const HOLD: Duration = Duration::from_secs(5);

struct Held {
    captcha: LeasedCaptcha,
    leased_at: Instant,
}

struct State {
    held: VecDeque<Held>,
    batch: usize,
    last_lease: Option<Instant>,
}

pub struct CaptchaIssuer {
    state: Mutex<State>,
}

impl Default for CaptchaIssuer {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                held: VecDeque::new(),
                batch: 1,
                last_lease: None,
            }),
        }
    }
}

impl CaptchaIssuer {
    /// A captcha leased to the caller alone; `None` when the pool has no
    /// ready captcha.
    pub async fn issue(
        &self,
        db: &PgPool,
        config: &CaptchaConfig,
    ) -> Result<Option<LeasedCaptcha>, sqlx::Error> {
        let mut state = self.state.lock().await;
        let stale = take_stale(&mut state.held);
        if !stale.is_empty() {
            captcha_pool::release(db, &stale).await?;
        }
        if let Some(held) = state.held.pop_front() {
            return Ok(Some(held.captcha));
        }
        // Drained within a second of the last lease: lease more next time.
        let now = Instant::now();
        state.batch = match state.last_lease {
            Some(at) if now.duration_since(at) < Duration::from_secs(1) => {
                (state.batch * 2).min(MAX_BATCH)
            }
            _ => (state.batch / 2).max(1),
        };
        state.last_lease = Some(now);
        let leases: Vec<String> = (0..state.batch).map(|_| new_lease()).collect();
        let from = config.slot_name(rand::random::<u32>() % config.slots());
        let mut leased = captcha_pool::lease(db, &from, &leases).await?.into_iter();
        let first = leased.next();
        state.held.extend(leased.map(|captcha| Held {
            captcha,
            leased_at: now,
        }));
        Ok(first)
    }

    /// Returns every captcha leased but not handed out (at shutdown).
    pub async fn release_all(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let mut state = self.state.lock().await;
        let held: Vec<(String, String)> = state
            .held
            .drain(..)
            .map(|h| (h.captcha.slot, h.captcha.lease))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        captcha_pool::release(db, &held).await
    }
}

/// Leases held longer than [`HOLD`], taken out to be returned.
fn take_stale(held: &mut VecDeque<Held>) -> Vec<(String, String)> {
    let mut stale = Vec::new();
    while held.front().is_some_and(|h| h.leased_at.elapsed() > HOLD) {
        if let Some(h) = held.pop_front() {
            stale.push((h.captcha.slot, h.captcha.lease));
        }
    }
    stale
}
