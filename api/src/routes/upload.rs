//! `PUT /v1/originals/{key}`: uploads an original (the admin key, or a
//! partner key within its prefixes).
//!
//! The body is streamed to S3: held one 8 MiB part at a time (a multipart
//! upload past the first part), its byte limit (`KILN_MAX_SOURCE_BYTES`)
//! enforced as it arrives, each read bounded by the body timeout. Before any
//! byte is stored, the first part must be an image Kiln decodes — the type
//! sniffed from the bytes, not taken from `Content-Type` — whose header is
//! within the pixel limits (keys under `files/` hold downloads: any type).
//! An existing key is `409` unless `?overwrite=true`; nothing is read then.
//! Uploads at once are bounded (`KILN_UPLOAD_CONCURRENCY`): the rest get 503.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::BytesMut;
use http_body_util::BodyExt as _;

use kiln_core::image_header::{self, Header};
use kiln_core::limits::SourceLimits;
use kiln_core::source_key::SourceKey;
use kiln_infra::storage::{OriginalUpload, StorageError};

use crate::partners::admin::Caller;
use crate::plumbing::error::ApiError;
use crate::state::SharedState;

/// Bytes sent to S3 per part (S3's minimum is 5 MiB but for the last).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Keys under this prefix are files for download links, of any type.
const FILES_PREFIX: &str = "files/";

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Replace an original stored under this key.
    #[serde(default)]
    overwrite: bool,
}

/// What an upload stored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    key: String,
    etag: String,
    bytes: u64,
    content_type: &'static str,
    /// The image's stored size (none for a download file that is not an image).
    width: Option<u32>,
    height: Option<u32>,
    /// Whether an original was replaced (`?overwrite=true`).
    replaced: bool,
}

#[utoipa::path(
    put, path = "/v1/originals/{key}", operation_id = "uploadOriginal", tag = "originals",
    summary = "Upload an original",
    description = "Streamed to S3 in 8 MiB parts. The type is sniffed from the bytes (JPEG, PNG, GIF, WebP; any type under `files/`); the byte limit holds while it streams, the pixel limits are checked from the header before anything is stored.",
    params(("key" = String, Path, description = "the original's key (slashes allowed)"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "stored", body = Uploaded),
        (status = 200, description = "replaced (?overwrite=true)", body = Uploaded),
        (status = 400, description = "a bad key, query or an empty body", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "outside the key's prefixes", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 408, description = "the body stalled", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "the key exists and overwriting was not asked for", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "over KILN_MAX_SOURCE_BYTES", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "not an image Kiln decodes, or over the pixel limits", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "too many uploads at once, or S3 unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn put(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let key = SourceKey::new(&key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if key.as_str().ends_with('/') {
        return Err(ApiError::BadRequest("the key names a folder".into()));
    }
    if let Caller::Partner(owner) = &caller {
        if !owner.allows(key.as_str()) {
            return Err(ApiError::Forbidden(
                "this key does not reach that path (its prefixes)".into(),
            ));
        }
    }
    let limits = &state.config.limits;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|bytes| bytes > limits.max_bytes) {
        return Err(too_many_bytes(limits));
    }
    let _slot = state
        .upload_slots
        .try_acquire()
        .map_err(|_| ApiError::Overloaded {
            retry_after: state.config.retry_after_secs,
        })?;
    let unavailable = |err: StorageError| ApiError::dependency(err, state.config.retry_after_secs);
    let existed = state
        .storage
        .original_exists(key.as_str())
        .await
        .map_err(unavailable)?;
    if existed && !query.overwrite {
        return Err(ApiError::Conflict(format!(
            "{key} exists; PUT with ?overwrite=true to replace it"
        )));
    }

    let mut body = Reader::new(request.into_body(), &state, limits.max_bytes);
    let first = body.fill(PART_BYTES).await?;
    if first.is_empty() {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    let (content_type, header) = admit(key.as_str(), &first, limits)?;
    let stored = if body.finished() {
        state
            .storage
            .store_original(key.as_str(), first, content_type)
            .await
            .map_err(unavailable)?
    } else {
        let mut upload = state
            .storage
            .begin_original_upload(key.as_str(), content_type)
            .await
            .map_err(unavailable)?;
        match send_parts(&mut upload, first, &mut body).await {
            Ok(()) => upload.finish().await.map_err(unavailable)?,
            Err(err) => {
                upload.abort().await;
                return Err(err.into_api(&state));
            }
        }
    };
    state.hot.forget_source(key.as_str());
    tracing::info!(key = %key, bytes = body.read, existed, "original uploaded");
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let answer = Uploaded {
        key: key.as_str().to_owned(),
        etag: stored,
        bytes: body.read,
        content_type,
        width: header.map(|h| h.width),
        height: header.map(|h| h.height),
        replaced: existed,
    };
    Ok((status, Json(answer)).into_response())
}

fn too_many_bytes(limits: &SourceLimits) -> ApiError {
    ApiError::TooLarge(format!(
        "originals are limited to {} bytes (KILN_MAX_SOURCE_BYTES)",
        limits.max_bytes
    ))
}

/// What the first part says: the stored type, and the image header (none for
/// a download file that is not an image).
fn admit(
    key: &str,
    first: &[u8],
    limits: &SourceLimits,
) -> Result<(&'static str, Option<Header>), ApiError> {
    let header = image_header::read(first);
    if let Some(header) = header {
        limits
            .check_source(header.width, header.height)
            .map_err(|over| ApiError::Unprocessable(over.to_string()))?;
        return Ok((header.kind.content_type(), Some(header)));
    }
    if key.starts_with(FILES_PREFIX) {
        return Ok(("application/octet-stream", None));
    }
    Err(ApiError::Unprocessable(
        if image_header::sniff(first).is_some() {
            "the image header is damaged or cut short"
        } else {
            "not an image Kiln decodes (JPEG, PNG, GIF, WebP); files for download go under files/"
        }
        .into(),
    ))
}

async fn send_parts(
    upload: &mut OriginalUpload,
    first: Bytes,
    body: &mut Reader<'_>,
) -> Result<(), UploadError> {
    upload.part(first).await.map_err(UploadError::Storage)?;
    while !body.finished() {
        let part = body.fill(PART_BYTES).await.map_err(UploadError::Body)?;
        if part.is_empty() {
            break;
        }
        upload.part(part).await.map_err(UploadError::Storage)?;
    }
    Ok(())
}

enum UploadError {
    Body(ApiError),
    Storage(StorageError),
}

impl UploadError {
    fn into_api(self, state: &SharedState) -> ApiError {
        match self {
            Self::Body(err) => err,
            Self::Storage(err) => ApiError::dependency(err, state.config.retry_after_secs),
        }
    }
}

/// The request body, read a part at a time within the byte limit; each wait
/// for data bounded by the body timeout.
struct Reader<'a> {
    body: Body,
    state: &'a SharedState,
    limit: u64,
    read: u64,
    done: bool,
    carry: Option<Bytes>,
}

impl<'a> Reader<'a> {
    fn new(body: Body, state: &'a SharedState, limit: u64) -> Self {
        Self {
            body,
            state,
            limit,
            read: 0,
            done: false,
            carry: None,
        }
    }

    /// Whether every byte of the body has been handed out.
    fn finished(&self) -> bool {
        self.done && self.carry.is_none()
    }

    /// Up to `size` bytes (fewer only at the end of the body).
    async fn fill(&mut self, size: usize) -> Result<Bytes, ApiError> {
        let mut part = BytesMut::new();
        if let Some(carry) = self.carry.take() {
            part.extend_from_slice(&carry);
        }
        while part.len() < size && !self.done {
            let frame = tokio::time::timeout(self.state.config.body_timeout, self.body.frame())
                .await
                .map_err(|_| ApiError::BodyTimeout)?;
            match frame {
                None => self.done = true,
                Some(Err(_)) => {
                    return Err(ApiError::BadRequest(
                        "the request body could not be read".into(),
                    ))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.read += data.len() as u64;
                        if self.read > self.limit {
                            return Err(too_many_bytes(&self.state.config.limits));
                        }
                        part.extend_from_slice(&data);
                    }
                }
            }
        }
        if part.len() > size {
            self.carry = Some(part.split_off(size).freeze());
        }
        Ok(part.freeze())
    }
}
