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

/// Who is calling a `/v1` route that partners may use too.
#[derive(Clone, Debug)]
pub enum Caller {
    Admin,
    Partner(crate::partner_access::PartnerKey),
}

impl Caller {
    /// A partner key (checked by the partner-access layer, which put its owner
    /// in the request) or else an admin bearer key.
    pub fn identify(
        state: &AppState,
        headers: &HeaderMap,
        owner: Option<axum::Extension<crate::partner_access::PartnerKey>>,
    ) -> Result<Self, ApiError> {
        match owner {
            Some(axum::Extension(owner)) => Ok(Self::Partner(owner)),
            None => require_admin(state, headers).map(|()| Self::Admin),
        }
    }

    pub fn partner_id(&self) -> Option<i64> {
        match self {
            Self::Admin => None,
            Self::Partner(owner) => Some(owner.partner_id),
        }
    }
}
