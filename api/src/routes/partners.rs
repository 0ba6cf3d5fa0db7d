//! Partner administration (admin bearer key), the same as `kiln partner …`.
//!
//! ```text
//! POST /v1/partners                    {"name","path_prefixes","rate_per_second","burst","monthly_quota"}
//!                                      → 201 {"id","name","key"} (the key is shown this once)
//! GET  /v1/partners                    → [{"id","name",…,"keys":[{"hint",…}]}]
//! POST /v1/partners/{name}/rotate-key  {"path_prefixes"?} → {"id","name","key"}; old keys revoked
//! POST /v1/partners/{name}/revoke      → 204; the partner and its keys revoked
//! ```

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use kiln_core::partners::{self, Limits, PartnerError};

use crate::admin::require_admin;
use crate::error::ApiError;
use crate::state::{AppState, SharedState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    name: String,
    #[serde(default)]
    path_prefixes: Vec<String>,
    rate_per_second: Option<i32>,
    burst: Option<i32>,
    monthly_quota: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    path_prefixes: Option<Vec<String>>,
}

fn partner_error(state: &AppState, err: PartnerError) -> ApiError {
    match err {
        PartnerError::Exists(_) => ApiError::Conflict(err.to_string()),
        PartnerError::Unknown(_) => ApiError::NotFoundMessage(err.to_string()),
        PartnerError::Invalid(message) => ApiError::BadRequest(message),
        PartnerError::Db(err) => ApiError::dependency(err, state.config.retry_after_secs),
    }
}

pub(crate) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(t)| t)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Result<Json<NewPartner>, JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let new = json_body(body)?;
    let limits = Limits {
        rate_per_second: new.rate_per_second,
        burst: new.burst,
        monthly_quota: new.monthly_quota,
    };
    let issued = partners::create(&state.db, &new.name, &new.path_prefixes, &limits)
        .await
        .map_err(|e| partner_error(&state, e))?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

pub async fn list(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let all = partners::list(&state.db)
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
    Ok(Json(all).into_response())
}

pub async fn rotate_key(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    };
    let issued = partners::rotate_key(&state.db, &name, rotation.path_prefixes.as_deref())
        .await
        .map_err(|e| partner_error(&state, e))?;
    state.partner_keys.clear();
    Ok(Json(issued).into_response())
}

pub async fn revoke(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    partners::revoke(&state.db, &name)
        .await
        .map_err(|e| partner_error(&state, e))?;
    state.partner_keys.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
