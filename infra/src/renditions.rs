//! The `renditions` table: one row per cache key, claimed by the first request
//! that misses, so exactly one render is queued per key across every api
//! process. State changes NOTIFY [`CHANNEL`] with the cache key as payload, so
//! waiting requests wake without polling.

use sqlx::{PgPool, Row as _};

pub const CHANNEL: &str = "kiln_rendition";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Ready,
    /// Permanent failure with the HTTP status and client-safe message to answer.
    Failed {
        http_status: u16,
        message: String,
    },
}

#[derive(Clone, Debug)]
pub struct Rendition {
    pub cache_key: String,
    pub object_key: String,
    pub status: Status,
    /// Seconds since the row was (re)queued.
    pub queued_for_secs: f64,
    /// Seconds since the rendition finished (0 while pending).
    pub finished_for_secs: f64,
}

/// What a new rendition row records.
pub struct NewRendition<'a> {
    pub cache_key: &'a str,
    pub object_key: &'a str,
    pub kind: &'a str,
    pub source_key: &'a str,
    pub source_etag: &'a str,
    pub options: &'a str,
}

fn from_row(row: &sqlx::postgres::PgRow) -> Result<Rendition, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let status = match status.as_str() {
        "ready" => Status::Ready,
        "failed" => Status::Failed {
            http_status: row
                .try_get::<Option<i16>, _>("error_status")?
                .unwrap_or(422) as u16,
            message: row
                .try_get::<Option<String>, _>("error_message")?
                .unwrap_or_default(),
        },
        _ => Status::Pending,
    };
    Ok(Rendition {
        cache_key: row.try_get("cache_key")?,
        object_key: row.try_get("object_key")?,
        status,
        queued_for_secs: row.try_get("queued_for_secs")?,
        finished_for_secs: row.try_get("finished_for_secs")?,
    })
}

pub async fn find(pool: &PgPool, cache_key: &str) -> Result<Option<Rendition>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT cache_key, object_key, status, error_status, error_message, \
         EXTRACT(EPOCH FROM now() - queued_at)::float8 AS queued_for_secs, \
         COALESCE(EXTRACT(EPOCH FROM now() - finished_at), 0)::float8 AS finished_for_secs \
         FROM renditions WHERE cache_key = $1",
    )
    .bind(cache_key)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Marks a pending rendition as begun by a worker for job attempt
/// `attempt`, and returns how many deliveries of that attempt were begun
/// before without being settled (each one's worker died mid-job). `None`:
/// the rendition is not pending (finished, or its claim released).
/// Retries carry the next attempt number, so only crashes (and the rare
/// redelivery after a lost broker connection) count.
pub async fn begin_render(
    pool: &PgPool,
    cache_key: &str,
    attempt: u32,
) -> Result<Option<u32>, sqlx::Error> {
    let crashes: Option<i32> = sqlx::query_scalar(
        "UPDATE renditions SET \
           crashes = crashes + CASE WHEN render_attempt = $2 THEN 1 ELSE 0 END, \
           render_attempt = $2 \
         WHERE cache_key = $1 AND status = 'pending' RETURNING crashes",
    )
    .bind(cache_key)
    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
    .fetch_optional(pool)
    .await?;
    Ok(crashes.map(|c| c.max(0) as u32))
}

/// Inserts a pending row. `true` means this caller won the claim and must queue the job.
pub async fn claim(pool: &PgPool, new: &NewRendition<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO renditions (cache_key, object_key, kind, source_key, source_etag, options, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT (cache_key) DO NOTHING",
    )
    .bind(new.cache_key)
    .bind(new.object_key)
    .bind(new.kind)
    .bind(new.source_key)
    .bind(new.source_etag)
    .bind(new.options)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Re-claims a row still pending after `stale_secs` (its job was lost, e.g. the
/// api died between claim and publish). `true` means the caller must re-queue it.
pub async fn reclaim_stale(
    pool: &PgPool,
    cache_key: &str,
    stale_secs: f64,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE renditions SET queued_at = now() WHERE cache_key = $1 AND status = 'pending' \
         AND queued_at < now() - make_interval(secs => $2)",
    )
    .bind(cache_key)
    .bind(stale_secs)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Removes a pending claim (its job could not be queued) so a later request can claim again.
pub async fn release(pool: &PgPool, cache_key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH d AS (DELETE FROM renditions WHERE cache_key = $1 AND status = 'pending' RETURNING cache_key) \
         SELECT pg_notify($2, cache_key) FROM d",
    )
    .bind(cache_key)
    .bind(CHANNEL)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a rendition ready; `false` when its row is gone (purged while
/// it rendered).
pub async fn mark_ready(
    pool: &PgPool,
    cache_key: &str,
    content_type: &str,
    bytes: u64,
) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query(
        "WITH u AS (UPDATE renditions SET status = 'ready', content_type = $2, bytes = $3, \
         finished_at = now(), error_status = NULL, error_message = NULL \
         WHERE cache_key = $1 RETURNING cache_key) SELECT pg_notify($4, cache_key) FROM u",
    )
    .bind(cache_key)
    .bind(content_type)
    .bind(bytes as i64)
    .bind(CHANNEL)
    .execute(pool)
    .await?;
    Ok(marked.rows_affected() > 0)
}

pub async fn mark_failed(
    pool: &PgPool,
    cache_key: &str,
    http_status: u16,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH u AS (UPDATE renditions SET status = 'failed', error_status = $2, error_message = $3, \
         finished_at = now() WHERE cache_key = $1 AND status <> 'ready' RETURNING cache_key) \
         SELECT pg_notify($4, cache_key) FROM u",
    )
    .bind(cache_key)
    .bind(http_status as i16)
    .bind(message)
    .bind(CHANNEL)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a permanent failure found before any job was queued (e.g. the
/// source is over the byte limit), so the next request answers at once.
pub async fn insert_failed(
    pool: &PgPool,
    new: &NewRendition<'_>,
    http_status: u16,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO renditions (cache_key, object_key, kind, source_key, source_etag, options, status, \
         error_status, error_message, finished_at) VALUES ($1, $2, $3, $4, $5, $6, 'failed', $7, $8, now()) \
         ON CONFLICT (cache_key) DO NOTHING",
    )
    .bind(new.cache_key)
    .bind(new.object_key)
    .bind(new.kind)
    .bind(new.source_key)
    .bind(new.source_etag)
    .bind(new.options)
    .bind(http_status as i16)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes a failed row, so the next request claims and renders it afresh.
pub async fn forget_failed(pool: &PgPool, cache_key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM renditions WHERE cache_key = $1 AND status = 'failed'")
        .bind(cache_key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes a row whatever its state (previews, which are never cached).
pub async fn forget(pool: &PgPool, cache_key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM renditions WHERE cache_key = $1")
        .bind(cache_key)
        .execute(pool)
        .await?;
    Ok(())
}
