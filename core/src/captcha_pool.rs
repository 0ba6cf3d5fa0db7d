//! The `captcha_slots` table: a pool of 16^n slots kept full by workers.
//! Serving reads a ready slot (never waits on generation); verification
//! empties it in one conditional UPDATE, so a captcha is answered once.

use sqlx::PgPool;

/// A captcha as served: its slot, key and PNG.
#[derive(Debug, sqlx::FromRow)]
pub struct ReadyCaptcha {
    pub slot: String,
    pub captcha_key: String,
    pub image: Vec<u8>,
}

/// Creates the slots of a pool of `slots` names (idempotent) and drops slots
/// of another width (the pool size changed).
pub async fn ensure_slots(pool: &PgPool, digits: u32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO captcha_slots (slot) \
         SELECT lpad(to_hex(g), $1, '0') FROM generate_series(0, (16 ^ $1)::int - 1) g \
         ON CONFLICT DO NOTHING",
    )
    .bind(digits as i32)
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM captcha_slots WHERE length(slot) <> $1")
        .bind(digits as i32)
        .execute(pool)
        .await?;
    Ok(())
}

/// A ready captcha at or after `from` (wrapping around), or `None` when the
/// pool is exhausted.
pub async fn ready_from(pool: &PgPool, from: &str) -> Result<Option<ReadyCaptcha>, sqlx::Error> {
    sqlx::query_as(
        "(SELECT slot, captcha_key, image FROM captcha_slots \
           WHERE state = 'ready' AND slot >= $1 ORDER BY slot LIMIT 1) \
         UNION ALL \
         (SELECT slot, captcha_key, image FROM captcha_slots \
           WHERE state = 'ready' AND slot < $1 ORDER BY slot LIMIT 1) \
         LIMIT 1",
    )
    .bind(from)
    .fetch_optional(pool)
    .await
}

/// Consumes the captcha `key` in `slot` if it is still there: true exactly
/// once per captcha, whatever code the client typed.
pub async fn consume(pool: &PgPool, slot: &str, key: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE captcha_slots SET state = 'empty', captcha_key = NULL, image = NULL, \
         claimed_at = NULL, ready_at = NULL, generation = generation + 1 \
         WHERE slot = $1 AND state = 'ready' AND captcha_key = $2 RETURNING slot",
    )
    .bind(slot)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Claims one slot for generation if it is empty (or its generator vanished
/// `stale_secs` ago).
pub async fn claim(pool: &PgPool, slot: &str, stale_secs: f64) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE captcha_slots SET state = 'generating', claimed_at = now() \
         WHERE slot = $1 AND (state = 'empty' OR (state = 'generating' \
           AND claimed_at < now() - make_interval(secs => $2))) RETURNING slot",
    )
    .bind(slot)
    .bind(stale_secs)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Claims up to `limit` slots needing a captcha, in random order.
pub async fn claim_batch(
    pool: &PgPool,
    limit: i64,
    stale_secs: f64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE captcha_slots SET state = 'generating', claimed_at = now() WHERE slot IN ( \
           SELECT slot FROM captcha_slots WHERE state = 'empty' OR (state = 'generating' \
             AND claimed_at < now() - make_interval(secs => $2)) \
           ORDER BY random() LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING slot",
    )
    .bind(limit)
    .bind(stale_secs)
    .fetch_all(pool)
    .await
}

/// Stores a generated captcha in a slot this generator claimed.
pub async fn fill(pool: &PgPool, slot: &str, key: &str, png: &[u8]) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE captcha_slots SET state = 'ready', captcha_key = $2, image = $3, \
         ready_at = now(), claimed_at = NULL WHERE slot = $1 AND state = 'generating'",
    )
    .bind(slot)
    .bind(key)
    .bind(png)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a claimed slot back (generation failed).
pub async fn unclaim(pool: &PgPool, slot: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE captcha_slots SET state = 'empty', claimed_at = NULL \
         WHERE slot = $1 AND state = 'generating'",
    )
    .bind(slot)
    .execute(pool)
    .await?;
    Ok(())
}

/// (ready, total) slots.
pub async fn counts(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as("SELECT count(*) FILTER (WHERE state = 'ready'), count(*) FROM captcha_slots")
        .fetch_one(pool)
        .await
}
