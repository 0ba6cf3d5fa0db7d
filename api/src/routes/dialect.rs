//! thumbor/imagor URLs under `KILN_THUMBOR_PREFIX` (default `/t`) and
//! imgproxy URLs under `KILN_IMGPROXY_PREFIX` (default `/p`). Each is read
//! into a source key and Kiln's canonical options by `kiln_core::dialects`
//! and then served exactly as a native URL: same limits, expiry, cache key,
//! single render across api processes, failure memory and metering.

use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;

use kiln_core::dialects::{self, DialectError, DialectRequest};

use crate::miss::rendition::serve_image;
use crate::plumbing::error::ApiError;
use crate::routes::img::admit;
use crate::state::{AppState, SharedState};

/// Which dialect a request path is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Thumbor,
    Imgproxy,
}

impl From<DialectError> for ApiError {
    fn from(err: DialectError) -> Self {
        match err {
            DialectError::BadSignature => ApiError::BadSignature,
            DialectError::Malformed(message) | DialectError::Unsupported(message) => {
                ApiError::BadRequest(message)
            }
        }
    }
}

/// Reads a dialect path (what follows its prefix and slash) into a
/// request, checked in the native order.
pub(crate) fn checked_request(
    state: &AppState,
    dialect: Dialect,
    path: &str,
) -> Result<DialectRequest, ApiError> {
    let bucket = &state.config.s3.originals_bucket;
    let presets = &state.config.presets;
    let request = match (dialect, &state.config.dialects) {
        (Dialect::Thumbor, d) => match &d.thumbor {
            Some(t) => dialects::thumbor::parse_with(path, &t.signing, bucket, presets)?,
            None => return Err(ApiError::NotFound),
        },
        (Dialect::Imgproxy, d) => match &d.imgproxy {
            Some(i) => dialects::imgproxy::parse_with(path, &i.signing, bucket, presets)?,
            None => return Err(ApiError::NotFound),
        },
    };
    admit(state, &request.options)?;
    Ok(request)
}

/// The dialect a request path belongs to, by the configured prefixes, and
/// the rest of the path after it. The longest matching prefix wins, so a
/// root mount takes only what the other dialect's prefix does not.
pub(crate) fn route<'a>(state: &AppState, path: &'a str) -> Option<(Dialect, &'a str)> {
    let d = &state.config.dialects;
    let mounted = [
        (
            Dialect::Thumbor,
            d.thumbor.as_ref().map(|t| t.prefix.as_str()),
        ),
        (
            Dialect::Imgproxy,
            d.imgproxy.as_ref().map(|i| i.prefix.as_str()),
        ),
    ];
    mounted
        .into_iter()
        .filter_map(|(dialect, prefix)| {
            let rest = path.strip_prefix(prefix?)?.strip_prefix('/')?;
            Some((prefix?.len(), dialect, rest))
        })
        .max_by_key(|(len, ..)| *len)
        .map(|(_, dialect, rest)| (dialect, rest))
}

/// Every dialect route (and, for a root mount, every path no native route
/// took).
pub async fn image(
    State(state): State<SharedState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::NotFound);
    }
    let (dialect, rest) = route(&state, uri.path()).ok_or(ApiError::NotFound)?;
    let request = checked_request(&state, dialect, rest)?;
    serve_image(&state, &request.source, &request.options, &headers).await
}
