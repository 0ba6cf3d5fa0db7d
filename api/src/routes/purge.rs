//! Purging: `DELETE /v1/originals/{key}` removes an original and every
//! rendition of it; `POST /v1/purge` with `{"source": key}` or
//! `{"prefix": folder}` removes renditions (the originals stay). Both
//! answer how many renditions went. The admin key may purge anything, a
//! partner key what its prefixes reach.
//!
//! Order: the original (so no new miss renders it again), the rendition
//! objects, then their rows with a NOTIFY that makes every api forget them
//! at once. A hit arriving after the answer is a miss (and renders the
//! current original), never a redirect to a deleted object.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use kiln_core::source_key::SourceKey;
use kiln_infra::partners::within_prefix;
use kiln_infra::purge::{self, Scope};

use crate::partners::admin::Caller;
use crate::plumbing::body::ApiJson;
use crate::plumbing::error::ApiError;
use crate::state::{AppState, SharedState};

/// Exactly one of `source` and `prefix`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// One original's key.
    source: Option<String>,
    /// A folder: every original at or below it (whole segments).
    prefix: Option<String>,
}

/// What a purge removed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Purged {
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    /// Renditions deleted.
    renditions: u64,
}

/// What deleting an original removed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeletedOriginal {
    key: String,
    original_deleted: bool,
    renditions: u64,
}

fn key(raw: &str) -> Result<SourceKey, ApiError> {
    SourceKey::new(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn may_reach(caller: &Caller, path: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Partner(owner) if !owner.allows(path) => Err(ApiError::Forbidden(
            "this key does not reach that path (its prefixes)".into(),
        )),
        _ => Ok(()),
    }
}

/// A partner may purge a prefix only inside one of its own.
fn may_reach_prefix(caller: &Caller, prefix: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Partner(owner)
            if !owner.path_prefixes.is_empty()
                && !owner
                    .path_prefixes
                    .iter()
                    .any(|own| within_prefix(prefix, own)) =>
        {
            Err(ApiError::Forbidden(
                "this key does not reach that prefix (its prefixes)".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Deletes the renditions in `scope`: objects, then rows (and the NOTIFY).
async fn purge_renditions(state: &AppState, scope: &Scope) -> Result<u64, ApiError> {
    let retry_after = state.config.retry_after_secs;
    let found = purge::find(&state.db, scope)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    state
        .storage
        .delete_renditions(found.iter().map(|p| p.object_key.clone()).collect())
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    let notice = scope.notice(&found);
    let deleted = purge::delete_rows(&state.db, &found, &notice)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    // This api forgets at once; the others when the notice arrives.
    state.hot.forget(&notice);
    tracing::info!(?scope, renditions = deleted, "purged");
    Ok(deleted)
}

#[utoipa::path(
    delete, path = "/v1/originals/{key}", operation_id = "deleteOriginal", tag = "originals",
    summary = "Delete an original and every rendition of it",
    params(("key" = String, Path, description = "the original's key (slashes allowed)")),
    responses(
        (status = 200, description = "deleted", body = DeletedOriginal),
        (status = 400, description = "a bad key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "outside the key's prefixes", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "neither the original nor a rendition of it exists", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "S3 or PostgreSQL unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn delete_original(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let source = key(&raw)?;
    may_reach(&caller, source.as_str())?;
    let retry_after = state.config.retry_after_secs;
    let existed = state
        .storage
        .original_exists(source.as_str())
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    if existed {
        state
            .storage
            .delete_original(source.as_str())
            .await
            .map_err(|e| ApiError::dependency(e, retry_after))?;
    }
    let renditions = purge_renditions(&state, &Scope::Source(source.as_str().to_owned())).await?;
    if !existed && renditions == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(Json(DeletedOriginal {
        key: source.as_str().to_owned(),
        original_deleted: existed,
        renditions,
    })
    .into_response())
}

#[utoipa::path(
    post, path = "/v1/purge", operation_id = "purge", tag = "originals",
    summary = "Delete the renditions of an original, or of every original under a prefix",
    request_body = PurgeRequest,
    responses(
        (status = 200, description = "purged", body = Purged),
        (status = 400, description = "not exactly one of source and prefix, or a bad key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "outside the key's prefixes", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "body over 64 KiB", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "not JSON", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "S3 or PostgreSQL unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn purge(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(request): ApiJson<PurgeRequest>,
) -> Result<Response, ApiError> {
    let scope = match (request.source, request.prefix) {
        (Some(source), None) => {
            let source = key(&source)?;
            may_reach(&caller, source.as_str())?;
            Scope::Source(source.as_str().to_owned())
        }
        (None, Some(prefix)) => {
            let trimmed = prefix.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(ApiError::BadRequest(
                    "an empty prefix would purge everything; name a folder".into(),
                ));
            }
            let folder = key(trimmed)?;
            may_reach_prefix(&caller, folder.as_str())?;
            Scope::Prefix(format!("{}/", folder.as_str()))
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of \"source\" and \"prefix\"".into(),
            ))
        }
    };
    let renditions = purge_renditions(&state, &scope).await?;
    let (source, prefix) = match scope {
        Scope::Source(source) => (Some(source), None),
        Scope::Prefix(prefix) => (None, Some(prefix)),
    };
    Ok(Json(Purged {
        source,
        prefix,
        renditions,
    })
    .into_response())
}
