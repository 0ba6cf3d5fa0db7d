//! Cache keys: a digest of everything that determines a rendition's bytes —
//! renderer version, canonical options, source key, and the source object's
//! ETag (so replacing an original never serves a stale rendition).

use sha2::{Digest, Sha256};

/// Hex SHA-256 over length-prefixed fields, so no two field lists collide.
pub fn rendition_key(
    renderer_version: &str,
    canonical_options: &str,
    source_key: &str,
    source_etag: &str,
) -> String {
    let mut hasher = Sha256::new();
    for field in [renderer_version, canonical_options, source_key, source_etag] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Where a rendition lives in the cache bucket: `{prefix}{aa}/{key}`, the first
/// byte fanning objects out over 256 prefixes.
pub fn object_key(prefix: &str, cache_key: &str) -> String {
    format!(
        "{prefix}{}/{cache_key}",
        &cache_key[..2.min(cache_key.len())]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_key() {
        let base = rendition_key("img-1", "800x600", "a.jpg", "\"e1\"");
        assert_eq!(base.len(), 64);
        assert_eq!(base, rendition_key("img-1", "800x600", "a.jpg", "\"e1\""));
        for other in [
            rendition_key("img-2", "800x600", "a.jpg", "\"e1\""),
            rendition_key("img-1", "800x601", "a.jpg", "\"e1\""),
            rendition_key("img-1", "800x600", "b.jpg", "\"e1\""),
            rendition_key("img-1", "800x600", "a.jpg", "\"e2\""),
            // Moving a character across a field boundary must not collide.
            rendition_key("img-1", "800x600a", ".jpg", "\"e1\""),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn object_keys_fan_out_by_first_byte() {
        assert_eq!(object_key("r/", "abcdef"), "r/ab/abcdef");
    }
}
