//! `Surrogate-Key` (Fastly, Varnish) and `Cache-Tag` (Cloudflare, Akamai)
//! on every delivered rendition, naming its original and each folder above
//! it, so a CDN can purge the same set `/v1/purge` removes: one original
//! (`catalog/shoes/a.jpg`) or a prefix (`catalog/shoes/`, `catalog/`).
//! Tags are the URL-path form of the key (percent-encoded: no spaces or
//! commas, which separate tags).

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;

use kiln_core::source_key::SourceKey;

/// Folders named above the original, at most.
const MAX_FOLDERS: usize = 8;

static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// The tags of an original: itself, then its folders from the deepest.
pub fn tags(source: &SourceKey) -> Vec<String> {
    let path = source.to_url_path();
    let mut tags = vec![path.clone()];
    let mut end = path.len();
    while let Some(slash) = path[..end].rfind('/') {
        if tags.len() > MAX_FOLDERS {
            break;
        }
        tags.push(path[..=slash].to_owned());
        end = slash;
    }
    tags
}

/// Adds both headers to a delivered rendition (200, 302 or 304).
pub fn tag(mut response: Response, source: &SourceKey) -> Response {
    let status = response.status().as_u16();
    if !matches!(status, 200 | 302 | 304) {
        return response;
    }
    let tags = tags(source);
    if let (Ok(spaced), Ok(commas)) = (
        HeaderValue::from_str(&tags.join(" ")),
        HeaderValue::from_str(&tags.join(",")),
    ) {
        let headers = response.headers_mut();
        headers.insert(SURROGATE_KEY.clone(), spaced);
        headers.insert(CACHE_TAG.clone(), commas);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_original_is_tagged_with_itself_and_its_folders() {
        let source = SourceKey::new("catalog/shoes/red, big.jpg").unwrap();
        assert_eq!(
            tags(&source),
            [
                "catalog/shoes/red%2C%20big.jpg",
                "catalog/shoes/",
                "catalog/"
            ]
        );
        assert_eq!(tags(&SourceKey::new("a.jpg").unwrap()), ["a.jpg"]);
    }

    #[test]
    fn deep_paths_name_a_bounded_number_of_folders() {
        let deep = (0..30)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/")
            + "/x.jpg";
        assert_eq!(tags(&SourceKey::new(deep).unwrap()).len(), MAX_FOLDERS + 1);
    }
}
