//! `GET /img/{signature}/{options}/{source}`: native signed image URLs.
//!
//! Checks run in this order, each before anything is fetched: the path's shape
//! and the source key (400), the signature over the raw `{options}/{source}`
//! (403), the options (400), the expiry (410).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};

use kiln_core::options::ImageOptions;
use kiln_core::signing::Verdict;
use kiln_core::source_key::SourceKey;

use crate::miss::rendition::serve_image;
use crate::plumbing::error::ApiError;
use crate::routes::unix_now;
use crate::state::{AppState, SharedState};

/// The three parts of a native image path, still percent-encoded.
#[derive(Debug, PartialEq, Eq)]
struct ImagePath<'a> {
    signature: &'a str,
    options: &'a str,
    /// `{options}/{source}`: what the signature covers.
    signed: &'a str,
    source: &'a str,
}

fn split_path(path: &str) -> Option<ImagePath<'_>> {
    let rest = path.strip_prefix("/img/")?;
    let (signature, signed) = rest.split_once('/')?;
    let (options, source) = signed.split_once('/')?;
    Some(ImagePath {
        signature,
        options,
        signed,
        source,
    })
}

/// `f:auto` URLs answer by the client's `Accept`: every answer says so with
/// `Vary: Accept`, and the negotiated format is part of the cache key.
pub async fn image(State(state): State<SharedState>, uri: Uri, headers: HeaderMap) -> Response {
    let mut negotiated = false;
    let mut response = checked_image(&state, &uri, &headers, &mut negotiated)
        .await
        .into_response();
    if negotiated {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Accept"));
    }
    response
}

async fn checked_image(
    state: &SharedState,
    uri: &Uri,
    headers: &HeaderMap,
    negotiated: &mut bool,
) -> Result<Response, ApiError> {
    let (source, mut options) = checked_request(state, uri.path())?;
    if options.negotiates_format() {
        *negotiated = true;
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        options.resolve_format(accept, &state.config.auto_formats);
    }
    serve_image(state, &source, &options, headers).await
}

/// Checks an image path in order — shape and source (400), signature (403),
/// options (400), size limit (400), expiry (410) — before anything is fetched.
pub(crate) fn checked_request(
    state: &AppState,
    path: &str,
) -> Result<(SourceKey, ImageOptions), ApiError> {
    let path = split_path(path).ok_or_else(|| {
        ApiError::BadRequest("expected /img/{signature}/{options}/{source}".into())
    })?;
    let source =
        SourceKey::from_url_path(path.source).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if state.config.signing.verify(path.signature, path.signed) == Verdict::Invalid {
        return Err(ApiError::BadSignature);
    }
    let options = ImageOptions::parse_with(path.options, &state.config.presets)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    admit(state, &options)?;
    Ok((source, options))
}

/// The checks after the options parse, in every URL form: the output size
/// limit (400), then the expiry (410).
pub(crate) fn admit(state: &AppState, options: &ImageOptions) -> Result<(), ApiError> {
    state
        .config
        .limits
        .check_output(options.width, options.height)
        .map_err(|over| ApiError::BadRequest(over.to_string()))?;
    if options.expires.is_some_and(|exp| exp < unix_now()) {
        return Err(ApiError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_signature_options_and_nested_source() {
        let p = split_path("/img/abc/800x600,f:webp/photos/2024/a%20b.jpg").unwrap();
        assert_eq!(p.signature, "abc");
        assert_eq!(p.options, "800x600,f:webp");
        assert_eq!(p.signed, "800x600,f:webp/photos/2024/a%20b.jpg");
        assert_eq!(p.source, "photos/2024/a%20b.jpg");
        assert!(split_path("/img/abc/800x600").is_none());
        assert!(split_path("/img/abc").is_none());
    }
}
