//! nginx-compatible routes (seed 000), a drop-in for `image_filter` +
//! `secure_link`: `/resize/{W}x{H}/{name}`, `/resize/{W}/{name}` and
//! `/crop/{W}x{H}/{name}`, each with `?hash=` (and `&expires=` when the
//! configured expression uses `$secure_link_expires`).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Extension;
use percent_encoding::percent_decode_str;

use kiln_core::nginx_link::LinkRequest;
use kiln_core::options::{ImageOptions, ResizeMode};
use kiln_core::source_key::SourceKey;

use crate::config::NginxCompat;
use crate::miss::rendition::serve_image;
use crate::plumbing::client_addr::ClientAddr;
use crate::plumbing::error::ApiError;
use crate::routes::unix_now;
use crate::state::SharedState;

type LinkQuery = Query<HashMap<String, String>>;

pub async fn resize(
    state: State<SharedState>,
    client: Extension<ClientAddr>,
    uri: Uri,
    query: LinkQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    handle(state, client, uri, query, headers, "/resize/").await
}

pub async fn crop(
    state: State<SharedState>,
    client: Extension<ClientAddr>,
    uri: Uri,
    query: LinkQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    handle(state, client, uri, query, headers, "/crop/").await
}

/// Maps `{size}` to options the way `image_filter` reads it: `resize W H` fits
/// inside the box, `resize W -` keeps the aspect ratio, `crop W H` fills the
/// box from the centre.
fn options_for(prefix: &str, size: &str, nginx: &NginxCompat) -> Result<ImageOptions, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid size {size:?}: expected WxH or W"));
    let parse = |s: &str| -> Result<u32, ApiError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (width, height, mode) = match (prefix, size.split_once('x')) {
        ("/resize/", Some((w, h))) => (parse(w)?, parse(h)?, ResizeMode::Fit),
        ("/resize/", None) => (parse(size)?, 0, ResizeMode::Fit),
        (_, Some((w, h))) => (parse(w)?, parse(h)?, ResizeMode::Fill),
        (_, None) => return Err(bad()),
    };
    if width == 0 || (mode == ResizeMode::Fill && height == 0) {
        return Err(bad());
    }
    Ok(ImageOptions {
        width,
        height,
        mode,
        quality: Some(nginx.jpeg_quality),
        ..ImageOptions::default()
    })
}

async fn handle(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    uri: Uri,
    Query(query): LinkQuery,
    headers: HeaderMap,
    prefix: &str,
) -> Result<Response, ApiError> {
    let Some(nginx) = state.config.nginx.as_ref() else {
        return Err(ApiError::NotFound);
    };
    let raw_path = uri.path();
    let (size, name) = raw_path
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| ApiError::BadRequest(format!("expected {prefix}{{size}}/{{name}}")))?;
    let source = SourceKey::from_url_path(name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let options = options_for(prefix, size, nginx)?;

    let bad_link = ApiError::BadLink(nginx.bad_hash_status);
    let expires = query.get("expires").map(String::as_str);
    if nginx.expression.uses_expires() && expires.is_none() {
        return Err(bad_link);
    }
    // nginx's $uri is the decoded path.
    let decoded_uri = percent_decode_str(raw_path).decode_utf8_lossy();
    // The client as the trusted proxies reported it, as nginx's $remote_addr
    // would be behind the same proxies with the realip module.
    let remote_addr = client.to_string();
    let link = LinkRequest {
        uri: &decoded_uri,
        expires,
        remote_addr: &remote_addr,
    };
    let hash = query.get("hash").map(String::as_str).unwrap_or_default();
    if !nginx.expression.verify(&link, hash) {
        return Err(bad_link);
    }
    let mut options = options;
    if nginx.expression.uses_expires() {
        let expires: i64 = expires
            .unwrap_or_default()
            .parse()
            .map_err(|_| ApiError::BadLink(nginx.bad_hash_status))?;
        if expires < unix_now() {
            return Err(ApiError::Expired);
        }
        // Not in the cache key; it bounds how long the answer may be reused.
        options.expires = Some(expires);
    }
    state
        .config
        .limits
        .check_output(options.width, options.height)
        .map_err(|over| ApiError::BadRequest(over.to_string()))?;
    serve_image(&state, &source, &options, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use kiln_core::nginx_link::SecureLinkExpr;

    fn compat() -> NginxCompat {
        NginxCompat {
            expression: SecureLinkExpr::parse("$uri secret").unwrap(),
            bad_hash_status: StatusCode::FORBIDDEN,
            jpeg_quality: 95,
        }
    }

    #[test]
    fn sizes_map_to_image_filter_semantics() {
        let n = compat();
        let fit = options_for("/resize/", "100x50", &n).unwrap();
        assert_eq!(
            (fit.width, fit.height, fit.mode, fit.quality),
            (100, 50, ResizeMode::Fit, Some(95))
        );
        let aspect = options_for("/resize/", "100", &n).unwrap();
        assert_eq!((aspect.width, aspect.height), (100, 0));
        let crop = options_for("/crop/", "100x50", &n).unwrap();
        assert_eq!(crop.mode, ResizeMode::Fill);
        for bad in [
            ("/crop/", "100"),
            ("/resize/", "x5"),
            ("/resize/", "0"),
            ("/resize/", "1x-"),
            ("/crop/", "10x0"),
        ] {
            assert!(options_for(bad.0, bad.1, &n).is_err(), "{bad:?}");
        }
    }
}
