//! In-process caches that keep the hit path free of network round-trips.
//!
//! A ready rendition never changes, so once seen its presigned URL can be
//! reused for half of the URL's lifetime; an original's ETag is cached for a
//! short TTL (replacing an original shows up within that TTL). Both maps are
//! bounded: past their capacity they are cleared, which costs one extra
//! lookup per key, never a wrong answer.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use kiln_infra::storage::ObjectMeta;

const CAPACITY: usize = 100_000;

/// A presigned URL and when it stops being handed out.
#[derive(Clone, Debug)]
pub struct ReadyUrl {
    pub url: String,
    pub reuse_until: Instant,
}

#[derive(Default)]
pub struct HotCache {
    sources: RwLock<HashMap<String, (ObjectMeta, Instant)>>,
    ready: RwLock<HashMap<String, ReadyUrl>>,
    /// Ready renditions seen (proxy mode needs no URL, only the fact).
    ready_keys: RwLock<HashMap<String, String>>,
}

fn insert_bounded<V>(map: &RwLock<HashMap<String, V>>, key: String, value: V) {
    if let Ok(mut map) = map.write() {
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, value);
    }
}

/// Removes the notice's cache keys from `map`, or everything.
fn forget_keys<V>(map: &RwLock<HashMap<String, V>>, notice: &kiln_infra::purge::Notice) {
    if let Ok(mut map) = map.write() {
        if notice.all {
            map.clear();
        } else {
            for key in &notice.keys {
                map.remove(key);
            }
        }
    }
}

impl HotCache {
    pub fn source(&self, key: &str, ttl: Duration) -> Option<ObjectMeta> {
        let map = self.sources.read().ok()?;
        let (meta, at) = map.get(key)?;
        (at.elapsed() < ttl).then(|| meta.clone())
    }

    /// Forgets what a purge removed (every api hears it through NOTIFY).
    pub fn forget(&self, notice: &kiln_infra::purge::Notice) {
        if let Some(source) = &notice.source {
            self.forget_source(source);
        }
        forget_keys(&self.ready, notice);
        forget_keys(&self.ready_keys, notice);
        if notice.all {
            if let Ok(mut map) = self.sources.write() {
                map.clear();
            }
        }
    }

    /// Drops what is known of an original (it was replaced or deleted).
    pub fn forget_source(&self, key: &str) {
        if let Ok(mut map) = self.sources.write() {
            map.remove(key);
        }
    }

    pub fn put_source(&self, key: &str, meta: ObjectMeta) {
        insert_bounded(&self.sources, key.to_owned(), (meta, Instant::now()));
    }

    pub fn ready_url(&self, cache_key: &str) -> Option<ReadyUrl> {
        let map = self.ready.read().ok()?;
        let entry = map.get(cache_key)?;
        (Instant::now() < entry.reuse_until).then(|| entry.clone())
    }

    pub fn put_ready_url(&self, cache_key: &str, url: ReadyUrl) {
        insert_bounded(&self.ready, cache_key.to_owned(), url);
    }

    /// Whether this process holds any ready rendition it can answer without
    /// PostgreSQL.
    pub fn knows_renditions(&self) -> bool {
        let held = |len: Option<usize>| len.is_some_and(|len| len > 0);
        held(self.ready.read().ok().map(|map| map.len()))
            || held(self.ready_keys.read().ok().map(|map| map.len()))
    }

    /// The object key of a rendition known to be ready.
    pub fn ready_object(&self, cache_key: &str) -> Option<String> {
        self.ready_keys.read().ok()?.get(cache_key).cloned()
    }

    pub fn put_ready_object(&self, cache_key: &str, object_key: &str) {
        insert_bounded(
            &self.ready_keys,
            cache_key.to_owned(),
            object_key.to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_not_returned() {
        let cache = HotCache::default();
        let meta = ObjectMeta {
            etag: "\"e\"".into(),
            size: 1,
            content_type: None,
        };
        cache.put_source("a.jpg", meta);
        assert!(cache.source("a.jpg", Duration::from_secs(60)).is_some());
        assert!(cache.source("a.jpg", Duration::ZERO).is_none());
        cache.put_ready_url(
            "k",
            ReadyUrl {
                url: "u".into(),
                reuse_until: Instant::now(),
            },
        );
        assert!(cache.ready_url("k").is_none());
        cache.put_ready_url(
            "k",
            ReadyUrl {
                url: "u".into(),
                reuse_until: Instant::now() + Duration::from_secs(5),
            },
        );
        assert_eq!(cache.ready_url("k").unwrap().url, "u");
    }
}
