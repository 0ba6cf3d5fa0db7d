//! Bulk pre-render jobs (`bulk_jobs`, `bulk_items`). Items are planned by the
//! api (cache key and job message, as for an on-demand miss), stored, and
//! handed to the render queues a few at a time by a feeder: an item is
//! `waiting`, then `queued` (its rendition claimed and its job published at
//! low priority), then `finished` when the rendition is ready or failed.
//! Items already rendered at submission are `cached`; items refused before
//! rendering are `failed` with a reason; cancelling a job turns its `waiting`
//! items `cancelled`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};

use crate::renditions::NewRendition;

/// Priority of bulk items: below on-demand misses.
pub const PRIORITY_BULK: u8 = 1;

/// Only one api process feeds the queues at a time (a transaction lock).
const FEEDER_LOCK: i64 = 0x6b69_6c6e_6275_6c6b; // "kilnbulk"
/// First key of the per-partner submission locks (the second is the partner).
const PARTNER_LOCK_SPACE: i32 = 0x6b62_6a70; // "kbjp"

/// A planned item: what to render, or why it cannot be.
#[derive(Clone, Debug)]
pub enum PlannedItem {
    Render(Planned),
    Refused(String),
}

/// A rendition to render: its row and its job message.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Planned {
    #[sqlx(try_from = "String")]
    pub kind: kiln_core::job::JobKind,
    pub cache_key: String,
    pub object_key: String,
    pub source_key: String,
    pub source_etag: String,
    pub options: String,
    pub payload: Vec<u8>,
}

impl Planned {
    pub fn new_rendition(&self) -> NewRendition<'_> {
        NewRendition {
            cache_key: &self.cache_key,
            object_key: &self.object_key,
            kind: self.kind.name(),
            source_key: &self.source_key,
            source_etag: &self.source_etag,
            options: &self.options,
        }
    }
}

/// A partner already has this many items waiting or rendering: over its cap.
#[derive(Debug)]
pub struct OverCap {
    pub pending: i64,
}

/// Stores a job and its items; items whose rendition is already ready are
/// `cached` at once. Returns how many were. With `cap`, the partner's items
/// waiting or rendering across all its jobs, these included, may not exceed
/// it (checked under a per-partner lock, so concurrent submissions cannot
/// both slip under it).
pub async fn create(
    pool: &PgPool,
    id: &str,
    partner_id: Option<i64>,
    cap: Option<i64>,
    items: &[PlannedItem],
) -> Result<Result<i32, OverCap>, sqlx::Error> {
    let n = items.len();
    let mut index = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut cache_key: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut object_key: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut source_key: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut source_etag: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut options: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut payload: Vec<Option<&[u8]>> = Vec::with_capacity(n);
    let mut error: Vec<Option<&str>> = Vec::with_capacity(n);
    for (i, item) in items.iter().enumerate() {
        index.push(i as i32);
        match item {
            PlannedItem::Render(p) => {
                kind.push(p.kind.name());
                cache_key.push(Some(&p.cache_key));
                object_key.push(Some(&p.object_key));
                source_key.push(Some(&p.source_key));
                source_etag.push(Some(&p.source_etag));
                options.push(Some(&p.options));
                payload.push(Some(&p.payload));
                error.push(None);
            }
            PlannedItem::Refused(reason) => {
                kind.push("refused");
                cache_key.push(None);
                object_key.push(None);
                source_key.push(None);
                source_etag.push(None);
                options.push(None);
                payload.push(None);
                error.push(Some(reason));
            }
        }
    }
    let mut tx = pool.begin().await?;
    if let (Some(partner), Some(cap)) = (partner_id, cap) {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2::int4)")
            .bind(PARTNER_LOCK_SPACE)
            .bind(partner as i32)
            .execute(&mut *tx)
            .await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bulk_items b JOIN bulk_jobs j ON j.id = b.job_id \
             WHERE j.partner_id = $1 AND b.state IN ('waiting', 'queued')",
        )
        .bind(partner)
        .fetch_one(&mut *tx)
        .await?;
        if pending + n as i64 > cap {
            return Ok(Err(OverCap { pending }));
        }
    }
    sqlx::query(
        "INSERT INTO bulk_jobs (id, partner_id, total, already_cached) VALUES ($1, $2, $3, 0)",
    )
    .bind(id)
    .bind(partner_id)
    .bind(n as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO bulk_items (job_id, n, state, kind, cache_key, object_key, source_key, source_etag, options, payload, error) \
         SELECT $1, i.n, \
           CASE WHEN i.error IS NOT NULL THEN 'failed' \
                WHEN EXISTS (SELECT 1 FROM renditions r WHERE r.cache_key = i.cache_key AND r.status = 'ready') THEN 'cached' \
                ELSE 'waiting' END, \
           i.kind, i.cache_key, i.object_key, i.source_key, i.source_etag, i.options, i.payload, i.error \
         FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::text[]) \
           AS i(n, kind, cache_key, object_key, source_key, source_etag, options, payload, error)",
    )
    .bind(id)
    .bind(index)
    .bind(kind)
    .bind(cache_key)
    .bind(object_key)
    .bind(source_key)
    .bind(source_etag)
    .bind(options)
    .bind(payload)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    let cached: i32 = sqlx::query_scalar(
        "UPDATE bulk_jobs SET already_cached = (SELECT count(*) FROM bulk_items WHERE job_id = $1 AND state = 'cached') \
         WHERE id = $1 RETURNING already_cached",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(cached))
}

/// A job's progress as `GET /v1/jobs/{id}` reports it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub id: String,
    /// `running`, `done`, or `cancelled` (nothing left to run).
    pub state: &'static str,
    pub total: i32,
    pub already_cached: i32,
    /// Rendered or already cached.
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Not finished yet: waiting for the queue or rendering.
    pub pending: i64,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The first failed items (by position in the submitted list).
    pub failed_items: Vec<FailedItem>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct FailedItem {
    pub item: i32,
    pub status: i16,
    pub error: String,
}

/// Failed items listed at most.
const FAILED_LISTED: i64 = 100;

/// The job's progress; `None` if there is no such job (for this partner,
/// when `partner_id` is given).
pub async fn progress(
    pool: &PgPool,
    id: &str,
    partner_id: Option<i64>,
) -> Result<Option<Progress>, sqlx::Error> {
    type JobRow = (i32, i32, DateTime<Utc>, Option<DateTime<Utc>>);
    let job: Option<JobRow> = sqlx::query_as(
        "SELECT total, already_cached, created_at, cancelled_at FROM bulk_jobs \
         WHERE id = $1 AND ($2::int8 IS NULL OR partner_id = $2)",
    )
    .bind(id)
    .bind(partner_id)
    .fetch_optional(pool)
    .await?;
    let Some((total, already_cached, created_at, cancelled_at)) = job else {
        return Ok(None);
    };
    let (done, failed, cancelled, pending): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT \
           count(*) FILTER (WHERE b.state = 'cached' OR (b.state = 'finished' AND r.status = 'ready')), \
           count(*) FILTER (WHERE b.state = 'failed' OR (b.state = 'finished' AND r.status = 'failed')), \
           count(*) FILTER (WHERE b.state = 'cancelled'), \
           count(*) FILTER (WHERE b.state IN ('waiting', 'queued') OR (b.state = 'finished' AND r.status IS NULL)) \
         FROM bulk_items b LEFT JOIN renditions r ON r.cache_key = b.cache_key AND b.state = 'finished' \
         WHERE b.job_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let failed_items: Vec<FailedItem> = sqlx::query_as(
        "SELECT b.n AS item, COALESCE(r.error_status, 400)::int2 AS status, \
           COALESCE(b.error, r.error_message, 'render failed') AS error \
         FROM bulk_items b LEFT JOIN renditions r ON r.cache_key = b.cache_key AND b.state = 'finished' \
         WHERE b.job_id = $1 AND (b.state = 'failed' OR (b.state = 'finished' AND r.status = 'failed')) \
         ORDER BY b.n LIMIT $2",
    )
    .bind(id)
    .bind(FAILED_LISTED)
    .fetch_all(pool)
    .await?;
    let state = if pending > 0 {
        "running"
    } else if cancelled > 0 {
        "cancelled"
    } else {
        "done"
    };
    Ok(Some(Progress {
        id: id.to_owned(),
        state,
        total,
        already_cached,
        done,
        failed,
        cancelled,
        pending,
        created_at,
        cancelled_at,
        failed_items,
    }))
}

/// Cancels every item not yet handed to the queues. `false`: no such job.
pub async fn cancel(pool: &PgPool, id: &str, partner_id: Option<i64>) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found: Option<String> = sqlx::query_scalar(
        "UPDATE bulk_jobs SET cancelled_at = COALESCE(cancelled_at, now()) \
         WHERE id = $1 AND ($2::int8 IS NULL OR partner_id = $2) RETURNING id",
    )
    .bind(id)
    .bind(partner_id)
    .fetch_optional(&mut *tx)
    .await?;
    if found.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE bulk_items SET state = 'cancelled' WHERE job_id = $1 AND state = 'waiting'",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// One feeder round, holding the feeder lock: `None` if another process holds it.
pub struct FeederRound {
    tx: Transaction<'static, Postgres>,
}

/// The columns of a [`Handover`], from `bulk_items b` (a macro so queries
/// can `concat!` it into one static string).
macro_rules! select_handover {
    () => {
        "SELECT b.job_id, b.n, b.kind, b.cache_key, b.object_key, b.source_key, \
         b.source_etag, b.options, b.payload"
    };
}

/// An item to hand over.
#[derive(Debug, sqlx::FromRow)]
pub struct Handover {
    pub job_id: String,
    pub n: i32,
    #[sqlx(flatten)]
    pub planned: Planned,
}

impl FeederRound {
    pub async fn begin(pool: &PgPool) -> Result<Option<Self>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(FEEDER_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        Ok(locked.then_some(Self { tx }))
    }

    /// Queued items whose rendition finished become `finished`; those whose
    /// claim was given back (a failed publish) wait again. Returns how many
    /// items are still in flight.
    pub async fn settle(&mut self) -> Result<i64, sqlx::Error> {
        sqlx::query(
            "UPDATE bulk_items b SET state = 'finished' FROM renditions r \
             WHERE b.state = 'queued' AND r.cache_key = b.cache_key AND r.status <> 'pending'",
        )
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "UPDATE bulk_items b SET state = 'waiting' WHERE b.state = 'queued' \
             AND NOT EXISTS (SELECT 1 FROM renditions r WHERE r.cache_key = b.cache_key)",
        )
        .execute(&mut *self.tx)
        .await?;
        sqlx::query_scalar("SELECT count(*) FROM bulk_items WHERE state = 'queued'")
            .fetch_one(&mut *self.tx)
            .await
    }

    /// In-flight items whose rendition has been pending longer than
    /// `stale_secs` (their job was lost): the caller re-queues them.
    pub async fn stale(&mut self, stale_secs: f64) -> Result<Vec<Handover>, sqlx::Error> {
        sqlx::query_as(concat!(
            select_handover!(),
            " FROM bulk_items b JOIN renditions r ON r.cache_key = b.cache_key \
             WHERE b.state = 'queued' AND r.status = 'pending' \
             AND r.queued_at < now() - make_interval(secs => $1) LIMIT 100",
        ))
        .bind(stale_secs)
        .fetch_all(&mut *self.tx)
        .await
    }

    /// The next `limit` waiting items, shared fairly between submitters:
    /// slots go round-robin over the partners (the admin counts as one)
    /// with waiting items, starting at a different one each round (`turn`),
    /// and within a partner to its oldest job first. One partner's
    /// 10 000-item job does not hold back another's ten.
    pub async fn next_waiting(
        &mut self,
        limit: i64,
        turn: usize,
    ) -> Result<Vec<Handover>, sqlx::Error> {
        let jobs: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT j.id, j.partner_id FROM bulk_jobs j \
             WHERE j.cancelled_at IS NULL AND EXISTS \
               (SELECT 1 FROM bulk_items b WHERE b.job_id = j.id AND b.state = 'waiting') \
             ORDER BY j.created_at, j.id",
        )
        .fetch_all(&mut *self.tx)
        .await?;
        let shares = fair_shares(&jobs, limit, turn);
        let mut out = Vec::new();
        for (job_id, take) in shares {
            let mut items: Vec<Handover> = sqlx::query_as(concat!(
                select_handover!(),
                " FROM bulk_items b WHERE b.job_id = $1 AND b.state = 'waiting' \
                 ORDER BY b.n LIMIT $2 FOR UPDATE SKIP LOCKED",
            ))
            .bind(job_id)
            .bind(take)
            .fetch_all(&mut *self.tx)
            .await?;
            out.append(&mut items);
        }
        Ok(out)
    }

    pub async fn mark_queued(&mut self, item: &Handover) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE bulk_items SET state = 'queued' WHERE job_id = $1 AND n = $2")
            .bind(&item.job_id)
            .bind(item.n)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// How many items to take from which job: `limit` slots dealt one at a time
/// to the submitters (in turn, starting at `turn`), each submitter's slots
/// going to its jobs oldest first. `jobs` are ordered oldest first.
fn fair_shares(jobs: &[(String, Option<i64>)], limit: i64, turn: usize) -> Vec<(String, i64)> {
    let mut submitters: Vec<Option<i64>> = Vec::new();
    for (_, partner) in jobs {
        if !submitters.contains(partner) {
            submitters.push(*partner);
        }
    }
    if submitters.is_empty() || limit <= 0 {
        return Vec::new();
    }
    let mut per_submitter = vec![0i64; submitters.len()];
    for slot in 0..limit as usize {
        per_submitter[(turn + slot) % submitters.len()] += 1;
    }
    // A submitter's share is taken from its oldest job; what that job cannot
    // fill is fetched next round (the job list is read again each round).
    submitters
        .iter()
        .zip(per_submitter)
        .filter(|(_, share)| *share > 0)
        .filter_map(|(submitter, share)| {
            jobs.iter()
                .find(|(_, partner)| partner == submitter)
                .map(|(id, _)| (id.clone(), share))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, partner: Option<i64>) -> (String, Option<i64>) {
        (id.to_owned(), partner)
    }

    #[test]
    fn slots_go_round_robin_over_submitters() {
        let jobs = [
            job("big", Some(1)),
            job("later", Some(1)),
            job("small", Some(2)),
            job("admin", None),
        ];
        // Three submitters, 16 slots: 6, 5, 5 from the starting turn.
        let shares = fair_shares(&jobs, 16, 0);
        assert_eq!(
            shares,
            vec![("big".into(), 6), ("small".into(), 5), ("admin".into(), 5)]
        );
        // Fewer slots than submitters: the turn decides who waits this round.
        assert_eq!(fair_shares(&jobs, 1, 0), vec![("big".into(), 1)]);
        assert_eq!(fair_shares(&jobs, 1, 1), vec![("small".into(), 1)]);
        assert_eq!(fair_shares(&jobs, 1, 2), vec![("admin".into(), 1)]);
        assert!(fair_shares(&[], 16, 0).is_empty());
    }
}
