//! Request bodies: read within the route's byte limit (`DefaultBodyLimit`)
//! and the body timeout, so a slow or endless upload ends as 408 or 413
//! instead of holding memory and a connection; JSON is parsed straight into
//! the route's typed request, never into an untyped tree first.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::plumbing::error::ApiError;
use crate::state::SharedState;

/// A request body, read in full within its limits.
pub struct BodyBytes(pub Bytes);

impl FromRequest<SharedState> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, ApiError> {
        let timeout = state.config.body_timeout;
        match tokio::time::timeout(timeout, Bytes::from_request(request, state)).await {
            Err(_) => Err(ApiError::BodyTimeout),
            Ok(Ok(bytes)) => Ok(Self(bytes)),
            Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                ApiError::TooLarge("the request body is larger than this route takes".into()),
            ),
            Ok(Err(_)) => Err(ApiError::BadRequest(
                "the request body could not be read".into(),
            )),
        }
    }
}

/// A JSON body (`Content-Type: application/json`) parsed into `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &SharedState) -> Result<Self, ApiError> {
        require_json(&request)?;
        let BodyBytes(bytes) = BodyBytes::from_request(request, state).await?;
        parse_json(&bytes).map(Self)
    }
}

/// Refuses a body that is not declared as JSON (415).
pub fn require_json(request: &Request) -> Result<(), ApiError> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        ))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}
