//! The admin bearer key (`KILN_ADMIN_KEYS`) for `/v1` administration routes.

use axum::http::{header, HeaderMap};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;
use crate::state::AppState;

/// Admits a request carrying `Authorization: Bearer {one of the admin keys}`.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(ApiError::Unauthorized);
    };
    let known = state.config.admin_keys.iter().fold(false, |found, key| {
        found | bool::from(key.as_bytes().ct_eq(presented.trim().as_bytes()))
    });
    if known {
        Ok(())
    } else {
        Err(ApiError::NotAdmin)
    }
}
