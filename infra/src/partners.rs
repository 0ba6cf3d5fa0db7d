//! Partners and their API keys (`partners`, `partner_keys`). A key is random,
//! shown once, and stored only as its SHA-256 (it has 256 bits of entropy, so
//! a fast hash is enough); a key may be limited to path prefixes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

/// Every partner key starts with this, so it is recognisable in a header.
pub const KEY_PREFIX: &str = "kp_";

/// A fresh key: `kp_` and 43 base64url characters (256 random bits).
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", crate::links::random_token())
}

pub fn key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Looks like a partner key (before any lookup).
pub fn is_key_shaped(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 43
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The limits a partner is held to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Limits {
    pub rate_per_second: Option<i32>,
    pub burst: Option<i32>,
    pub monthly_quota: Option<i64>,
}

/// What a valid key resolves to.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyOwner {
    pub partner_id: i64,
    pub partner: String,
    pub path_prefixes: Vec<String>,
    #[sqlx(flatten)]
    pub limits: Limits,
}

impl KeyOwner {
    /// Whether this key may reach `path` (an object key or source path).
    /// Prefixes are whole path segments: `acme` reaches `acme/logo.png`
    /// (and `acme` itself), never `acme-internal/…`.
    pub fn allows(&self, path: &str) -> bool {
        self.path_prefixes.is_empty()
            || self
                .path_prefixes
                .iter()
                .any(|prefix| within_prefix(path, prefix))
    }
}

/// Whether `path` is `prefix` or below it, by whole segments.
pub fn within_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    !prefix.is_empty()
        && path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Resolves a presented key; `None` if unknown or revoked (key or partner).
pub async fn find_key(pool: &PgPool, key: &str) -> Result<Option<KeyOwner>, sqlx::Error> {
    if !is_key_shaped(key) {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT p.id AS partner_id, p.name AS partner, k.path_prefixes, \
         p.rate_per_second, p.burst, p.monthly_quota \
         FROM partner_keys k JOIN partners p ON p.id = k.partner_id \
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND p.revoked_at IS NULL",
    )
    .bind(key_hash(key))
    .fetch_optional(pool)
    .await
}

/// A partner as listed (keys by their hint only).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Partner {
    pub id: i64,
    pub name: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub limits: Limits,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub keys: Vec<KeyInfo>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    #[serde(skip)]
    pub partner_id: i64,
    pub hint: String,
    pub path_prefixes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A partner just created or given a new key: the key is in clear text here only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Serialize)]
pub struct Issued {
    pub id: i64,
    pub name: String,
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("a partner named {0:?} already exists")]
    Exists(String),
    #[error("no active partner named {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Checks a partner name and path prefixes as a user would type them.
pub fn validate(name: &str, path_prefixes: &[String], limits: &Limits) -> Result<(), PartnerError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Err(PartnerError::Invalid(
            "name must be 1-64 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    if path_prefixes
        .iter()
        .any(|p| p.is_empty() || p.len() > 512 || p.starts_with('/') || p.contains(".."))
    {
        return Err(PartnerError::Invalid(
            "path prefixes must be non-empty, relative (no leading '/') and without '..'".into(),
        ));
    }
    let positive = |v: Option<i64>| v.is_none_or(|v| v > 0);
    if !positive(limits.rate_per_second.map(i64::from))
        || !positive(limits.burst.map(i64::from))
        || !positive(limits.monthly_quota)
    {
        return Err(PartnerError::Invalid("limits must be positive".into()));
    }
    Ok(())
}

pub async fn create(
    pool: &PgPool,
    name: &str,
    path_prefixes: &[String],
    limits: &Limits,
) -> Result<Issued, PartnerError> {
    validate(name, path_prefixes, limits)?;
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO partners (name, rate_per_second, burst, monthly_quota) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(limits.rate_per_second)
    .bind(limits.burst)
    .bind(limits.monthly_quota)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| PartnerError::Exists(name.to_owned()))?;
    let key = insert_key(&mut tx, id, path_prefixes).await?;
    tx.commit().await?;
    Ok(Issued {
        id,
        name: name.to_owned(),
        key,
    })
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    partner_id: i64,
    path_prefixes: &[String],
) -> Result<String, sqlx::Error> {
    let key = new_key();
    sqlx::query(
        "INSERT INTO partner_keys (key_hash, partner_id, key_hint, path_prefixes) VALUES ($1, $2, $3, $4)",
    )
    .bind(key_hash(&key))
    .bind(partner_id)
    .bind(&key[..KEY_PREFIX.len() + 6])
    .bind(path_prefixes)
    .execute(&mut **tx)
    .await?;
    Ok(key)
}

/// Issues a new key and revokes the partner's current ones. `path_prefixes`
/// `None` keeps the prefixes of the newest current key.
pub async fn rotate_key(
    pool: &PgPool,
    name: &str,
    path_prefixes: Option<&[String]>,
) -> Result<Issued, PartnerError> {
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM partners WHERE name = $1 AND revoked_at IS NULL FOR UPDATE",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| PartnerError::Unknown(name.to_owned()))?;
    let kept: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT path_prefixes FROM partner_keys WHERE partner_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let prefixes = match path_prefixes {
        Some(p) => {
            validate(name, p, &Limits::default())?;
            p.to_vec()
        }
        None => kept.unwrap_or_default(),
    };
    sqlx::query(
        "UPDATE partner_keys SET revoked_at = now() WHERE partner_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let key = insert_key(&mut tx, id, &prefixes).await?;
    tx.commit().await?;
    Ok(Issued {
        id,
        name: name.to_owned(),
        key,
    })
}

/// Revokes a partner and every key it holds.
pub async fn revoke(pool: &PgPool, name: &str) -> Result<(), PartnerError> {
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE partners SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| PartnerError::Unknown(name.to_owned()))?;
    sqlx::query(
        "UPDATE partner_keys SET revoked_at = now() WHERE partner_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &PgPool) -> Result<Vec<Partner>, sqlx::Error> {
    let mut partners: Vec<Partner> = sqlx::query_as(
        "SELECT id, name, rate_per_second, burst, monthly_quota, created_at, revoked_at \
         FROM partners ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let keys: Vec<KeyInfo> = sqlx::query_as(
        "SELECT partner_id, key_hint AS hint, path_prefixes, created_at, revoked_at \
         FROM partner_keys ORDER BY created_at",
    )
    .fetch_all(pool)
    .await?;
    for partner in &mut partners {
        partner.keys = keys
            .iter()
            .filter(|k| k.partner_id == partner.id)
            .cloned()
            .collect();
    }
    Ok(partners)
}

/// Requests served (2xx and 3xx) this calendar month (UTC), from the flushed
/// rollups: what a monthly quota counts. Refusals and errors do not use it up.
pub async fn month_hits(pool: &PgPool, partner_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(hits), 0)::bigint FROM usage_day \
         WHERE partner_id = $1 AND status_class <= 3 \
         AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date",
    )
    .bind(partner_id)
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_shaped_and_hashed() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert!(is_key_shaped(&a), "{a}");
        assert!(!is_key_shaped("kp_short"));
        assert!(!is_key_shaped(&a.replace("kp_", "xx_")));
        assert_eq!(key_hash(&a).len(), 32);
        assert_ne!(key_hash(&a), key_hash(&b));
    }

    #[test]
    fn prefixes_limit_what_a_key_reaches() {
        let mut owner = KeyOwner {
            partner_id: 1,
            partner: "acme".into(),
            path_prefixes: vec![],
            limits: Limits::default(),
        };
        assert!(owner.allows("anything/at/all.jpg"));
        owner.path_prefixes = vec!["catalog/".into()];
        assert!(owner.allows("catalog/shoe.jpg"));
        assert!(!owner.allows("private/shoe.jpg"));
        owner.path_prefixes = vec!["acme".into()];
        assert!(owner.allows("acme/logo.png"));
        assert!(owner.allows("acme"));
        assert!(!owner.allows("acme-internal/payroll.pdf"));
        assert!(!owner.allows("acmeX"));
        owner.path_prefixes = vec!["brands/acme".into()];
        assert!(owner.allows("brands/acme/a/b.jpg"));
        assert!(!owner.allows("brands/acme2/a.jpg"));
    }

    #[test]
    fn names_prefixes_and_limits_are_checked() {
        let ok = Limits::default();
        assert!(validate("acme-photos", &[], &ok).is_ok());
        assert!(validate("", &[], &ok).is_err());
        assert!(validate("a b", &[], &ok).is_err());
        assert!(validate("acme", &["/abs".into()], &ok).is_err());
        assert!(validate("acme", &["a/../b".into()], &ok).is_err());
        let negative = Limits {
            monthly_quota: Some(0),
            ..Limits::default()
        };
        assert!(validate("acme", &[], &negative).is_err());
    }
}
