//! One-time download links.
//!
//! ```text
//! POST /v1/links   (Authorization: Bearer ADMIN_KEY)
//!      {"object":"files/report.pdf","filename":"report.pdf","ttl":3600,"uses":1,"strict":false}
//!      → 201 {"url":"…/dl/{token}","expires_at":"…","uses":1}
//! GET  /dl/{token} → 302 to a short-lived presigned URL (attachment), or the
//!      file itself when the link is strict; spent or expired 410; unknown 404
//! ```
//! A presigned URL can be reused while it lives (at most
//! `KILN_DOWNLOAD_TTL_SECS`); a strict link streams the object through the
//! api instead, so each use is exactly one download.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use kiln_core::source_key::SourceKey;
use kiln_infra::links::{self, NewLink, Refused};
use kiln_infra::storage::{attachment, StorageError};

use crate::plumbing::body::ApiJson;
use crate::plumbing::error::ApiError;
use crate::routes::captcha::valid_filename;
use crate::state::{AppState, SharedState};

const LONGEST_TTL_SECS: i64 = 30 * 24 * 3600;
const MOST_USES: i32 = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLink {
    object: String,
    filename: Option<String>,
    ttl: Option<i64>,
    uses: Option<i32>,
    #[serde(default)]
    strict: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedLink {
    url: String,
    expires_at: String,
    uses: i32,
}

#[utoipa::path(
    post, path = "/v1/links", operation_id = "createLink", tag = "links",
    summary = "Create a one-time download link",
    request_body = CreateLink,
    responses(
        (status = 201, description = "created", body = CreatedLink),
        (status = 400, description = "invalid request", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 401, description = "no admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 403, description = "not an admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "no such object", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 413, description = "body over 64 KiB", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 415, description = "not JSON", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []))
)]
/// Admin only (the route's auth layer runs before the body is read).
pub async fn create(
    State(state): State<SharedState>,
    ApiJson(request): ApiJson<CreateLink>,
) -> Result<Response, ApiError> {
    let object = SourceKey::new(&request.object)
        .map_err(|e| ApiError::BadRequest(format!("object: {e}")))?;
    let filename = match request.filename {
        Some(name) => name,
        None => request
            .object
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    if !valid_filename(&filename) {
        return Err(ApiError::BadRequest(
            "filename must be 1-255 letters, digits, '.', '_', '-' or spaces, without '..'".into(),
        ));
    }
    let ttl = request.ttl.unwrap_or(3600);
    let uses = request.uses.unwrap_or(1);
    if !(1..=LONGEST_TTL_SECS).contains(&ttl) || !(1..=MOST_USES).contains(&uses) {
        return Err(ApiError::BadRequest(format!(
            "ttl must be 1..={LONGEST_TTL_SECS} seconds and uses 1..={MOST_USES}"
        )));
    }
    let retry_after = state.config.retry_after_secs;
    match state.storage.head_original(object.as_str()).await {
        Ok(_) => {}
        Err(StorageError::NotFound) => return Err(ApiError::NotFound),
        Err(err) => return Err(ApiError::dependency(err, retry_after)),
    }
    let token = links::random_token();
    let expires_at = links::create(
        &state.db,
        &token,
        &NewLink {
            object_key: object.as_str(),
            filename: &filename,
            uses,
            strict: request.strict,
            ttl_secs: ttl,
        },
    )
    .await
    .map_err(|e| ApiError::dependency(e, retry_after))?;
    let created = CreatedLink {
        url: format!("{}/dl/{token}", state.public_url.trim_end_matches('/')),
        expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        uses,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Tokens are 43 base64url characters; anything else is not one of ours.
fn token_shaped(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `HEAD /dl/{token}`: 200 while the link has a use left, 410/404 as GET
/// would answer; spends nothing and hands out no URL.
pub async fn peek(
    State(state): State<SharedState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    if !token_shaped(&token) {
        return Err(ApiError::NotFound);
    }
    match links::peek(&state.db, &token)
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?
    {
        Ok(()) => Ok((
            StatusCode::OK,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        )
            .into_response()),
        Err(Refused::Unknown) => Err(ApiError::NotFound),
        Err(Refused::Gone) => Err(ApiError::Gone("this link is spent or expired".into())),
    }
}

pub async fn take(
    State(state): State<SharedState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let retry_after = state.config.retry_after_secs;
    if !token_shaped(&token) {
        return Err(ApiError::NotFound);
    }
    let used = match links::take(&state.db, &token)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?
    {
        Ok(used) => used,
        Err(Refused::Unknown) => return Err(ApiError::NotFound),
        Err(Refused::Gone) => return Err(ApiError::Gone("this link is spent or expired".into())),
    };
    let response = if used.strict {
        stream(&state, &used.object_key, &used.filename).await?
    } else {
        let left = (used.expires_at - chrono::Utc::now()).num_seconds().max(1) as u64;
        let ttl = state
            .config
            .download_ttl
            .min(std::time::Duration::from_secs(left));
        let url = state
            .storage
            .presign_download(&used.object_key, &used.filename, ttl)
            .await
            .map_err(|e| ApiError::dependency(e, retry_after))?;
        let location =
            HeaderValue::try_from(url).map_err(|e| ApiError::dependency(e, retry_after))?;
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
    };
    let mut response = response;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn stream(state: &AppState, key: &str, filename: &str) -> Result<Response, ApiError> {
    let object = match state.storage.open_original(key).await {
        Ok(object) => object,
        // The use is spent either way: the object was deleted after linking.
        Err(StorageError::NotFound) => return Err(ApiError::Gone("the file is gone".into())),
        Err(err) => return Err(ApiError::dependency(err, state.config.retry_after_secs)),
    };
    let mut response = Response::new(Body::new(object.body.into_inner()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    let content_type = object
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(disposition) = HeaderValue::from_str(&attachment(filename)) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
