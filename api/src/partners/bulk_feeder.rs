//! Hands bulk items to the render queues, a few at a time: at most
//! `KILN_BULK_IN_FLIGHT` items are queued or rendering at once, at a priority
//! below on-demand misses. So a 10 000-item job never stands in front of a
//! visitor's miss (the worker's prefetch holds at most a few bulk messages),
//! and cancelling a job stops everything not yet handed over. Room is shared
//! round-robin between partners (`FeederRound::next_waiting`). Every api
//! process runs a feeder; a transaction lock lets one work at a time. It
//! wakes on every finished rendition and at least every 250 ms.

use std::time::Duration;

use kiln_infra::bulk::{FeederRound, PRIORITY_BULK};
use kiln_infra::renditions;
use tokio_util::sync::CancellationToken;

use crate::miss::rendition::{publish, Miss};
use crate::plumbing::metrics as m;
use crate::state::SharedState;

const TICK: Duration = Duration::from_millis(250);

pub async fn run(state: SharedState, cancel: CancellationToken) {
    let mut turn = 0usize;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = state.waiters.any.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
        turn = turn.wrapping_add(1);
        if let Err(err) = round(&state, turn).await {
            tracing::warn!(error = format!("{err:#}"), "bulk feeder round failed");
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn round(state: &SharedState, turn: usize) -> anyhow::Result<()> {
    let Some(mut round) = FeederRound::begin(&state.db).await? else {
        return Ok(());
    };
    let in_flight = round.settle().await?;
    for item in round.stale(state.config.stale_claim_secs).await? {
        if renditions::reclaim_stale(
            &state.db,
            &item.planned.cache_key,
            state.config.stale_claim_secs,
        )
        .await?
        {
            tracing::warn!(cache_key = %item.planned.cache_key, "re-queueing a stale bulk item");
            publish(state, &Miss::of(&item.planned), PRIORITY_BULK).await?;
        }
    }
    let room = state.config.bulk_in_flight - in_flight;
    if room > 0 {
        for item in round.next_waiting(room, turn).await? {
            if renditions::claim(&state.db, &item.planned.new_rendition()).await? {
                // A failed publish gives the claim back; the item waits for the next round.
                if let Err(err) = publish(state, &Miss::of(&item.planned), PRIORITY_BULK).await {
                    round.commit().await?;
                    return Err(anyhow::Error::new(err).context("publishing a bulk item"));
                }
            }
            round.mark_queued(&item).await?;
            metrics::counter!(m::BULK_ITEMS_QUEUED).increment(1);
        }
    }
    round.commit().await?;
    Ok(())
}
