//! Partners' un-watermarked originals (seed 001).
//!
//! ```text
//! GET /originals/{path}?key=K
//! GET /originals/{K}/{path}
//! ```
//! The key is checked and the access metered by [`crate::partners::partner_access`];
//! this handler then checks the key's path prefixes and answers 302 to a
//! short-lived presigned URL that serves the object with its media type. No
//! other route reaches the originals bucket unsigned.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use crate::partners::partner_access::PartnerKey;
use kiln_core::source_key::SourceKey;
use kiln_infra::storage::content_type_of;

use crate::miss::rendition::source_meta;
use crate::partners::partner_access::{deny, DeliveredBytes};
use crate::plumbing::error::ApiError;
use crate::state::SharedState;

pub async fn original(
    State(state): State<SharedState>,
    owner: Option<Extension<PartnerKey>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Some(Extension(owner)) = owner else {
        return Ok(deny(&state));
    };
    let path = uri
        .path()
        .strip_prefix("/originals/")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::BadRequest("expected /originals/{path}?key=K".into()))?;
    let source = SourceKey::from_url_path(path).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !owner.allows(source.as_str()) {
        return Ok(deny(&state));
    }
    let meta = source_meta(&state, &source).await?;
    let content_type = content_type_of(source.as_str(), meta.content_type.as_deref());
    let url = state
        .storage
        .presign_original(source.as_str(), &content_type, state.config.download_ttl)
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
    let location = HeaderValue::from_str(&url)
        .map_err(|e| ApiError::dependency(anyhow::Error::new(e), state.config.retry_after_secs))?;
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(DeliveredBytes(meta.size));
    Ok(response)
}
