//! Answers with a ready rendition: a 302 to a presigned URL (reused for half
//! its lifetime, so the hit path does no signing per request), or in proxy
//! mode the object itself with a strong ETag and 304 on `If-None-Match`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use kiln_infra::storage::{StorageError, RENDITION_CACHE_CONTROL};

use crate::config::Delivery;
use crate::miss::hot_cache::ReadyUrl;
use crate::plumbing::error::ApiError;
use crate::routes::unix_now;
use crate::state::AppState;

/// Answers with a ready rendition. `expires` (a URL's `exp:`, UNIX
/// seconds) bounds how long the answer may be reused: neither the redirect's
/// `max-age` nor the presigned URL outlives it.
pub async fn deliver(
    state: &AppState,
    cache_key: &str,
    object_key: &str,
    request_headers: &HeaderMap,
    expires: Option<i64>,
) -> Result<Response, ApiError> {
    let left = expires.map(|at| Duration::from_secs((at - unix_now()).max(1) as u64));
    state.hits.record(cache_key);
    match state.config.delivery {
        Delivery::Redirect => redirect(state, cache_key, object_key, left).await,
        Delivery::Proxy => proxy(state, cache_key, object_key, request_headers, left).await,
    }
}

async fn redirect(
    state: &AppState,
    cache_key: &str,
    object_key: &str,
    left: Option<Duration>,
) -> Result<Response, ApiError> {
    let ttl = state.config.presign_ttl;
    let cached = state.hot.ready_url(cache_key);
    // A URL about to expire gets a presigned URL of its own remaining life
    // (not cached: other URLs of the same rendition may live longer).
    let short = left.filter(|left| *left < ttl);
    let ready = match (cached, short) {
        (_, Some(left)) => {
            let url = state
                .storage
                .presign_rendition(object_key, left)
                .await
                .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
            ReadyUrl {
                url,
                reuse_until: Instant::now() + left,
            }
        }
        (Some(ready), None) => ready,
        (None, None) => {
            let ttl = state.config.presign_ttl;
            let url = state
                .storage
                .presign_rendition(object_key, ttl)
                .await
                .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
            let ready = ReadyUrl {
                url,
                reuse_until: Instant::now() + ttl / 2,
            };
            state.hot.put_ready_url(cache_key, ready.clone());
            ready
        }
    };
    // A cached redirect must not outlive the URL: it is handed out until
    // `reuse_until`, and stays valid for at least half its lifetime after
    // that; nor the link's own expiry.
    let max_age = ready
        .reuse_until
        .saturating_duration_since(Instant::now())
        .min(left.unwrap_or(Duration::MAX))
        .as_secs();
    let location = HeaderValue::from_str(&ready.url)
        .map_err(|e| ApiError::dependency(anyhow::Error::new(e), state.config.retry_after_secs))?;
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("no-cache")),
    );
    Ok(response)
}

fn etag_matches(request_headers: &HeaderMap, etag: &str) -> bool {
    request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

async fn proxy(
    state: &AppState,
    cache_key: &str,
    object_key: &str,
    request_headers: &HeaderMap,
    left: Option<Duration>,
) -> Result<Response, ApiError> {
    // The cache key determines the bytes, so it is a strong validator.
    let etag = format!("\"{cache_key}\"");
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let cache_control = match left {
        Some(left) => HeaderValue::from_str(&format!("public, max-age={}", left.as_secs()))
            .unwrap_or(HeaderValue::from_static("no-store")),
        None => HeaderValue::from_static(RENDITION_CACHE_CONTROL),
    };
    if etag_matches(request_headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag_value);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cache_control);
        return Ok(response);
    }
    let object = match state.storage.get_rendition(object_key).await {
        Ok(object) => object,
        Err(StorageError::NotFound) => {
            return Err(ApiError::dependency(
                anyhow::anyhow!("rendition {object_key} is marked ready but missing from S3"),
                state.config.retry_after_secs,
            ))
        }
        Err(err) => return Err(ApiError::dependency(err, state.config.retry_after_secs)),
    };
    let mut response = Response::new(Body::new(object.body.into_inner()));
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag_value);
    headers.insert(header::CACHE_CONTROL, cache_control);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    if let Some(ct) = object
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"abc\""),
        );
        assert!(etag_matches(&h, "\"abc\""));
        assert!(!etag_matches(&h, "\"ab\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&h, "\"x\""));
        assert!(!etag_matches(&HeaderMap::new(), "\"x\""));
    }
}
