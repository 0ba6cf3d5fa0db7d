//! One-time download links (`download_links`). Tokens are random, shown
//! once, and stored only as their SHA-256; a use is taken in one conditional
//! `UPDATE … RETURNING`, so concurrent uses can never exceed the count.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

pub struct NewLink<'a> {
    pub object_key: &'a str,
    pub filename: &'a str,
    pub uses: i32,
    pub strict: bool,
    pub ttl_secs: i64,
}

/// What a successful use hands out.
#[derive(Debug, sqlx::FromRow)]
pub struct LinkUse {
    pub object_key: String,
    pub filename: String,
    pub strict: bool,
    pub expires_at: DateTime<Utc>,
}

/// Why a use was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No such token.
    Unknown,
    /// Spent or expired.
    Gone,
}

/// 256 random bits (a CSPRNG seeded by the OS) as 43 base64url characters.
pub fn random_token() -> String {
    use base64::Engine as _;
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Stores a link under `token`'s hash; returns its expiry.
pub async fn create(
    pool: &PgPool,
    token: &str,
    link: &NewLink<'_>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO download_links (token_hash, object_key, filename, uses_left, uses, strict, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5, now() + make_interval(secs => $6)) RETURNING expires_at",
    )
    .bind(token_hash(token))
    .bind(link.object_key)
    .bind(link.filename)
    .bind(link.uses)
    .bind(link.strict)
    .bind(link.ttl_secs as f64)
    .fetch_one(pool)
    .await
}

/// Whether the link would give a use now, taking none (HEAD requests:
/// link checkers and chat unfurlers must not spend one-use links).
pub async fn peek(pool: &PgPool, token: &str) -> Result<Result<(), Refused>, sqlx::Error> {
    let usable: Option<bool> = sqlx::query_scalar(
        "SELECT uses_left > 0 AND expires_at > now() FROM download_links WHERE token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(pool)
    .await?;
    Ok(match usable {
        Some(true) => Ok(()),
        Some(false) => Err(Refused::Gone),
        None => Err(Refused::Unknown),
    })
}

/// Takes one use of the link, atomically.
pub async fn take(pool: &PgPool, token: &str) -> Result<Result<LinkUse, Refused>, sqlx::Error> {
    let hash = token_hash(token);
    let used: Option<LinkUse> = sqlx::query_as(
        "UPDATE download_links SET uses_left = uses_left - 1 \
         WHERE token_hash = $1 AND uses_left > 0 AND expires_at > now() \
         RETURNING object_key, filename, strict, expires_at",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    if let Some(used) = used {
        return Ok(Ok(used));
    }
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM download_links WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(pool)
            .await?;
    Ok(Err(if exists.is_some() {
        Refused::Gone
    } else {
        Refused::Unknown
    }))
}
