//! Removing renditions: every rendition of an original (or of every
//! original under a prefix) when it is replaced or deleted, and renditions
//! nobody asked for during the retention period. The objects go first, then
//! the rows, in one statement that also NOTIFYs [`CHANNEL`], so every api
//! drops what it holds in memory within the notification's round trip. A
//! purge that fails half-way leaves rows whose objects are gone: asking
//! again finishes it (a hit in between is a 302 to nothing, never a wrong
//! image).
//!
//! The notification carries the purged cache keys when they fit in one
//! payload (PostgreSQL allows 8000 bytes), else `{"all": true}`: the apis
//! then forget every ready rendition they hold, which costs one lookup per
//! key afterwards and is never a wrong answer.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::partners::within_prefix;

pub const CHANNEL: &str = "kiln_purge";

/// Most cache keys named in one notification.
const KEYS_PER_NOTIFICATION: usize = 64;

/// What one purge covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Renditions of one original.
    Source(String),
    /// Renditions of every original at or below a prefix (whole segments:
    /// `catalog` covers `catalog/a.jpg`, never `catalog-old/…`).
    Prefix(String),
}

impl Scope {
    /// Whether an original's renditions fall under this purge.
    pub fn covers(&self, source_key: &str) -> bool {
        match self {
            Self::Source(source) => source == source_key,
            Self::Prefix(prefix) => within_prefix(source_key, prefix),
        }
    }
}

/// A purged rendition: its object is deleted after its row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Purged {
    pub cache_key: String,
    pub object_key: String,
}

/// What an api hears: which renditions to forget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Originals whose cached metadata (ETag, size) is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Notice {
    /// A payload as heard; one that does not parse means "forget everything".
    pub fn parse(payload: &str) -> Self {
        serde_json::from_str(payload).unwrap_or(Self {
            all: true,
            ..Self::default()
        })
    }

    pub fn for_keys(keys: &[String], source: Option<&str>) -> Self {
        let fits = keys.len() <= KEYS_PER_NOTIFICATION;
        Self {
            keys: if fits { keys.to_vec() } else { Vec::new() },
            all: !fits,
            source: source.map(str::to_owned),
        }
    }
}

/// `LIKE` pattern matching what is strictly below `prefix`.
fn below(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.trim_end_matches('/').chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("/%");
    pattern
}

/// Every rendition in `scope`, pending ones too (a render in flight for a
/// purged original then records nothing).
pub async fn find(pool: &PgPool, scope: &Scope) -> Result<Vec<Purged>, sqlx::Error> {
    match scope {
        Scope::Source(source) => {
            sqlx::query_as("SELECT cache_key, object_key FROM renditions WHERE source_key = $1")
                .bind(source)
                .fetch_all(pool)
                .await
        }
        Scope::Prefix(prefix) => {
            sqlx::query_as(
                "SELECT cache_key, object_key FROM renditions \
                 WHERE source_key = $1 OR source_key LIKE $2",
            )
            .bind(prefix.trim_end_matches('/'))
            .bind(below(prefix))
            .fetch_all(pool)
            .await
        }
    }
}

impl Scope {
    /// What the apis are told once this scope's `purged` rows are gone.
    pub fn notice(&self, purged: &[Purged]) -> Notice {
        match self {
            Self::Source(source) => Notice::for_keys(&keys_of(purged), Some(source)),
            // Every original below the prefix may have changed.
            Self::Prefix(_) => Notice {
                all: true,
                ..Notice::default()
            },
        }
    }
}

fn keys_of(purged: &[Purged]) -> Vec<String> {
    purged.iter().map(|p| p.cache_key.clone()).collect()
}

/// Deletes these rows and tells every api (the notice is delivered when
/// the deletion commits). Returns how many rows went.
pub async fn delete_rows(
    pool: &PgPool,
    purged: &[Purged],
    notice: &Notice,
) -> Result<u64, sqlx::Error> {
    let payload = serde_json::to_string(notice).unwrap_or_else(|_| r#"{"all":true}"#.into());
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM renditions WHERE cache_key = ANY($1)")
        .bind(keys_of(purged))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// The notice for renditions dropped by retention.
pub fn expired_notice(purged: &[Purged]) -> Notice {
    Notice::for_keys(&keys_of(purged), None)
}

/// Records that these renditions were asked for now (one statement for a
/// whole batch of hits).
pub async fn record_hits(pool: &PgPool, cache_keys: &[String]) -> Result<u64, sqlx::Error> {
    if cache_keys.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE renditions SET last_hit_at = now() WHERE cache_key = ANY($1) \
         AND last_hit_at < now() - interval '1 minute'",
    )
    .bind(cache_keys)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Up to `batch` finished renditions not asked for in `days` days (their
/// objects are deleted, then [`delete_rows`]).
pub async fn unused(pool: &PgPool, days: u32, batch: i64) -> Result<Vec<Purged>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cache_key, object_key FROM renditions \
         WHERE status <> 'pending' AND last_hit_at < now() - make_interval(days => $1) \
         ORDER BY last_hit_at LIMIT $2",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .bind(batch)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_whole_segments() {
        let scope = Scope::Prefix("catalog/".into());
        assert!(scope.covers("catalog/a.jpg"));
        assert!(scope.covers("catalog/deep/b.png"));
        assert!(!scope.covers("catalog-old/a.jpg"));
        assert!(Scope::Source("a.jpg".into()).covers("a.jpg"));
        assert!(!Scope::Source("a.jpg".into()).covers("a.jpg.png"));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(below("cat%_\\"), "cat\\%\\_\\\\/%");
        assert_eq!(below("a/"), "a/%");
    }

    #[test]
    fn notices_name_keys_or_everything() {
        let few: Vec<String> = (0..3).map(|i| format!("k{i}")).collect();
        let notice = Notice::for_keys(&few, Some("a.jpg"));
        assert_eq!((notice.keys.len(), notice.all), (3, false));
        let many: Vec<String> = (0..500).map(|i| format!("{i:064}")).collect();
        let notice = Notice::for_keys(&many, None);
        assert!(notice.all && notice.keys.is_empty());
        let payload = serde_json::to_string(&Notice::for_keys(&few, None)).unwrap();
        assert!(payload.len() < 8000);
        let back: Notice = serde_json::from_str(&payload).unwrap();
        assert_eq!(back.keys, few);
    }
}
