//! Retention (`KILN_RETENTION_DAYS`): renditions nobody asked for in that
//! many days are deleted, objects then rows, like a purge.
//!
//! When a rendition was last asked for is kept cheaply: a hit only puts its
//! cache key in an in-memory set (once per flush interval, however many hits
//! it gets); the set is written in one UPDATE every `KILN_HIT_FLUSH_SECS`,
//! and the UPDATE skips rows written in the last minute. Never a write per
//! hit. A sweep every `KILN_RETENTION_SWEEP_SECS` deletes in batches; every
//! api may sweep (deletes of the same rows are harmless).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use kiln_infra::purge;

use crate::state::SharedState;

/// Distinct renditions remembered between flushes, at most (a flood of
/// distinct keys cannot grow the set without bound; the rest are recorded
/// by their next hit).
const CAPACITY: usize = 200_000;
const UPDATE_CHUNK: usize = 5_000;
const SWEEP_BATCH: i64 = 500;

#[derive(Default)]
pub struct HitLog {
    enabled: bool,
    keys: Mutex<HashSet<String>>,
}

impl HitLog {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            keys: Mutex::default(),
        }
    }

    /// A rendition was delivered.
    pub fn record(&self, cache_key: &str) {
        if !self.enabled {
            return;
        }
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() < CAPACITY && !keys.contains(cache_key) {
                keys.insert(cache_key.to_owned());
            }
        }
    }

    fn take(&self) -> Vec<String> {
        self.keys
            .lock()
            .map(|mut keys| keys.drain().collect())
            .unwrap_or_default()
    }
}

async fn flush(state: &SharedState) {
    let keys = state.hits.take();
    for chunk in keys.chunks(UPDATE_CHUNK) {
        if let Err(err) = purge::record_hits(&state.db, chunk).await {
            // Lost hit times only make a rendition look older; the next
            // hit records it again.
            tracing::warn!(%err, keys = chunk.len(), "recording hit times failed");
            return;
        }
    }
}

async fn sweep(state: &SharedState, days: u32) {
    loop {
        let unused = match purge::unused(&state.db, days, SWEEP_BATCH).await {
            Ok(unused) => unused,
            Err(err) => {
                tracing::warn!(%err, "retention sweep failed");
                return;
            }
        };
        if unused.is_empty() {
            return;
        }
        let objects = unused.iter().map(|p| p.object_key.clone()).collect();
        if let Err(err) = state.storage.delete_renditions(objects).await {
            tracing::warn!(error = %err, "retention sweep: deleting objects failed");
            return;
        }
        let notice = purge::expired_notice(&unused);
        match purge::delete_rows(&state.db, &unused, &notice).await {
            Ok(deleted) => {
                state.hot.forget(&notice);
                metrics::counter!(crate::plumbing::metrics::RETENTION_DELETED).increment(deleted);
                tracing::info!(deleted, days, "renditions past retention deleted");
            }
            Err(err) => {
                tracing::warn!(%err, "retention sweep: deleting rows failed");
                return;
            }
        }
        if (unused.len() as i64) < SWEEP_BATCH {
            return;
        }
    }
}

/// Flushes hit times and sweeps until `cancel`; a last flush on the way out.
pub async fn run(state: SharedState, cancel: CancellationToken) {
    let Some(days) = state.config.retention_days else {
        return;
    };
    let mut flushes = tokio::time::interval(state.config.hit_flush);
    let mut sweeps = tokio::time::interval(state.config.retention_sweep);
    flushes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = flushes.tick() => flush(&state).await,
            _ = sweeps.tick() => {
                // Hits first: a rendition asked for since the last flush is not old.
                flush(&state).await;
                sweep(&state, days).await;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), flush(&state)).await;
}
