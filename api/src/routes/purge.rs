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
use serde_json::json;

use kiln_core::partners::within_prefix;
use kiln_core::purge::{self, Scope};
use kiln_core::source_key::SourceKey;

use crate::admin::Caller;
use crate::body::ApiJson;
use crate::error::ApiError;
use crate::state::{AppState, SharedState};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    source: Option<String>,
    prefix: Option<String>,
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
    Ok(Json(json!({
        "key": source.as_str(),
        "original_deleted": existed,
        "renditions": renditions,
    }))
    .into_response())
}

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
    let (field, value) = match &scope {
        Scope::Source(source) => ("source", source.clone()),
        Scope::Prefix(prefix) => ("prefix", prefix.clone()),
    };
    Ok(Json(json!({ field: value, "renditions": renditions })).into_response())
}
