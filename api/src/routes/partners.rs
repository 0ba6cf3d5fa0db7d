//! Partner administration (admin bearer key, checked by the route's auth
//! layer before any body is read), the same as `kiln partner …`.
//!
//! ```text
//! POST /v1/partners                    {"name","path_prefixes","rate_per_second","burst","monthly_quota"}
//!                                      → 201 {"id","name","key"} (the key is shown this once)
//! GET  /v1/partners                    → [{"id","name",…,"keys":[{"hint",…}]}]
//! POST /v1/partners/{name}/rotate-key  {"path_prefixes"?} → {"id","name","key"}; old keys revoked
//! POST /v1/partners/{name}/revoke      → 204; the partner and its keys revoked
//! ```

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use kiln_infra::partners::{self, Limits, PartnerError};

use crate::plumbing::body::{parse_json, ApiJson, BodyBytes};
use crate::plumbing::error::ApiError;
use crate::state::{AppState, SharedState};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPartner {
    name: String,
    #[serde(default)]
    path_prefixes: Vec<String>,
    rate_per_second: Option<i32>,
    burst: Option<i32>,
    monthly_quota: Option<i64>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
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

#[utoipa::path(
    post, path = "/v1/partners", operation_id = "createPartner", tag = "partners",
    summary = "Create a partner and its first key (shown this once)",
    request_body = NewPartner,
    responses(
        (status = 201, description = "created", body = kiln_infra::partners::Issued),
        (status = 400, description = "invalid request", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 401, description = "no admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 403, description = "not an admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "the name is taken", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 413, description = "body over 64 KiB", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 415, description = "not JSON", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []))
)]
pub async fn create(
    State(state): State<SharedState>,
    ApiJson(new): ApiJson<NewPartner>,
) -> Result<Response, ApiError> {
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

#[utoipa::path(
    get, path = "/v1/partners", operation_id = "listPartners", tag = "partners",
    summary = "List partners (keys by hint only)",
    responses(
        (status = 200, description = "partners", body = Vec<kiln_infra::partners::Partner>),
        (status = 401, description = "no admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 403, description = "not an admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []))
)]
pub async fn list(State(state): State<SharedState>) -> Result<Response, ApiError> {
    let all = partners::list(&state.db)
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
    Ok(Json(all).into_response())
}

#[utoipa::path(
    post, path = "/v1/partners/{name}/rotate-key", operation_id = "rotatePartnerKey", tag = "partners",
    summary = "Issue a new key and revoke the partner's current ones",
    params(("name" = String, Path, description = "the partner")),
    request_body(content = Option<Rotation>, description = "new prefixes (optional; an empty body keeps them)"),
    responses(
        (status = 200, description = "the new key (shown this once)", body = kiln_infra::partners::Issued),
        (status = 400, description = "invalid request", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 401, description = "no admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 403, description = "not an admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "no active partner of that name", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []))
)]
pub async fn rotate_key(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    let rotation: Rotation = if body.iter().all(u8::is_ascii_whitespace) {
        Rotation::default()
    } else {
        parse_json(&body)?
    };
    let issued = partners::rotate_key(&state.db, &name, rotation.path_prefixes.as_deref())
        .await
        .map_err(|e| partner_error(&state, e))?;
    state.partner_keys.clear();
    Ok(Json(issued).into_response())
}

#[utoipa::path(
    post, path = "/v1/partners/{name}/revoke", operation_id = "revokePartner", tag = "partners",
    summary = "Revoke a partner and every key it holds",
    params(("name" = String, Path, description = "the partner")),
    responses(
        (status = 204, description = "revoked"),
        (status = 401, description = "no admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 403, description = "not an admin key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "no active partner of that name", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []))
)]
pub async fn revoke(
    State(state): State<SharedState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    partners::revoke(&state.db, &name)
        .await
        .map_err(|e| partner_error(&state, e))?;
    state.partner_keys.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
