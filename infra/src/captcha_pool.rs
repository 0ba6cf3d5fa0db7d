//! The `captcha_slots` table: a pool of 16^n slots kept full by workers.
//!
//! A captcha is issued to one client at a time: serving leases ready slots
//! (`issued`, each with a random lease token the client gets back as part of
//! its slot) and never waits on generation. Verification empties a slot in
//! one conditional UPDATE that needs the lease, so a captcha is answered
//! once, and only by the client it was issued to. Unanswered leases expire
//! after the issue TTL: the slot is ready again and the old lease answers
//! nothing.

use sqlx::PgPool;

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

/// A leased captcha: issued to whoever receives it, and to nobody else.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LeasedCaptcha {
    pub slot: String,
    pub lease: String,
    pub captcha_key: String,
    pub image: Vec<u8>,
}

/// Leases up to `leases.len()` ready captchas, starting at slot `from`
/// (wrapping around), one lease token each. Fewer (or none) come back when
/// the pool has no more ready.
pub async fn lease(
    pool: &PgPool,
    from: &str,
    leases: &[String],
) -> Result<Vec<LeasedCaptcha>, sqlx::Error> {
    sqlx::query_as(
        // Two apis may pick the same rows: the UPDATE re-checks `state` on
        // each locked row, so the later one skips what the first issued.
        "WITH picked AS ( \
           (SELECT slot FROM captcha_slots WHERE state = 'ready' AND slot >= $1 \
             ORDER BY slot LIMIT $2) \
           UNION ALL \
           (SELECT slot FROM captcha_slots WHERE state = 'ready' AND slot < $1 \
             ORDER BY slot LIMIT $2)), \
         numbered AS (SELECT slot, row_number() OVER (ORDER BY slot >= $1 DESC, slot) AS i FROM picked) \
         UPDATE captcha_slots c SET state = 'issued', issued_at = now(), lease = t.lease \
         FROM numbered n JOIN unnest($3::text[]) WITH ORDINALITY AS t(lease, i) ON t.i = n.i \
         WHERE c.slot = n.slot AND c.state = 'ready' \
         RETURNING c.slot, c.lease, c.captcha_key, c.image",
    )
    .bind(from)
    .bind(leases.len() as i64)
    .bind(leases)
    .fetch_all(pool)
    .await
}

/// Gives leased captchas that were never handed out back to the pool.
pub async fn release(pool: &PgPool, leased: &[(String, String)]) -> Result<(), sqlx::Error> {
    let (slots, leases): (Vec<&str>, Vec<&str>) = leased
        .iter()
        .map(|(slot, lease)| (slot.as_str(), lease.as_str()))
        .unzip();
    sqlx::query(
        "UPDATE captcha_slots c SET state = 'ready', lease = NULL, issued_at = NULL \
         FROM unnest($1::text[], $2::text[]) AS t(slot, lease) \
         WHERE c.slot = t.slot AND c.lease = t.lease AND c.state = 'issued'",
    )
    .bind(slots)
    .bind(leases)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes leases older than `ttl_secs` ready again (their captchas were
/// never answered); returns how many.
pub async fn expire_leases(pool: &PgPool, ttl_secs: f64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE captcha_slots SET state = 'ready', lease = NULL, issued_at = NULL \
         WHERE state = 'issued' AND issued_at < now() - make_interval(secs => $1)",
    )
    .bind(ttl_secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Consumes the captcha `key` in `slot` if it is still issued under
/// `lease` (and the lease is younger than `ttl_secs`): true exactly once per
/// issued captcha, whatever code the client typed.
pub async fn consume(
    pool: &PgPool,
    slot: &str,
    lease: &str,
    key: &str,
    ttl_secs: f64,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE captcha_slots SET state = 'empty', captcha_key = NULL, image = NULL, lease = NULL, \
         issued_at = NULL, claimed_at = NULL, ready_at = NULL, generation = generation + 1 \
         WHERE slot = $1 AND state = 'issued' AND lease = $2 AND captcha_key = $3 \
           AND issued_at > now() - make_interval(secs => $4) RETURNING slot",
    )
    .bind(slot)
    .bind(lease)
    .bind(key)
    .bind(ttl_secs)
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
