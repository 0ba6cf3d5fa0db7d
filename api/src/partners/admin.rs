//! Who may call a `/v1` route, decided before the request's body is read.
//!
//! The admin bearer key (`KILN_ADMIN_KEYS`) is compared as a SHA-256 digest,
//! in constant time, against every configured key's digest. Routes are
//! wrapped in [`admin_only`] or [`admin_or_partner`] (a partner key resolved
//! by the partner-access layer), so an unauthenticated request is refused
//! from its headers: no body byte is read, no JSON parsed.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::partners::partner_access::PartnerKey;
use crate::plumbing::error::ApiError;
use crate::state::{AppState, SharedState};

pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: `Authorization: Bearer KEY`, or HTTP Basic
/// with the key as the password (what a browser prompt sends).
fn presented(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(bearer) = value.strip_prefix("Bearer ") {
        return Some(bearer.trim().to_owned());
    }
    let basic = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// Admits a request carrying one of the admin keys.
pub fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = presented(headers) else {
        return Err(ApiError::Unauthorized);
    };
    if is_known(&state.config.admin_key_digests, &key) {
        Ok(())
    } else {
        Err(ApiError::NotAdmin)
    }
}

/// Whether `key` is one of the keys whose digests are `known`: digests of
/// equal length compared in constant time, every one of them, so neither
/// the key's length nor which key matched shows in the timing.
fn is_known(known: &[[u8; 32]], key: &str) -> bool {
    let presented = digest(key);
    known.iter().fold(0u8, |found, known| {
        found | known.ct_eq(&presented).unwrap_u8()
    }) == 1
}

/// Who is calling a `/v1` route.
#[derive(Clone, Debug)]
pub enum Caller {
    Admin,
    Partner(PartnerKey),
}

impl Caller {
    pub fn partner_id(&self) -> Option<i64> {
        match self {
            Self::Admin => None,
            Self::Partner(owner) => Some(owner.partner_id),
        }
    }
}

/// Routes for the admin key only.
pub async fn admin_only(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    match require_admin(&state, request.headers()) {
        Ok(()) => {
            request.extensions_mut().insert(Caller::Admin);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

/// Routes a partner may call with its own key, or the admin with theirs.
pub async fn admin_or_partner(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match request.extensions().get::<PartnerKey>() {
        Some(owner) => Caller::Partner(owner.clone()),
        None => match require_admin(&state, request.headers()) {
            Ok(()) => Caller::Admin,
            Err(err) => return err.into_response(),
        },
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_configured_keys_are_admitted() {
        let known = [
            digest("first-admin-key-0123456789abcdef"),
            digest("second-admin-key-0123456789abcdef"),
        ];
        assert!(is_known(&known, "first-admin-key-0123456789abcdef"));
        assert!(is_known(&known, "second-admin-key-0123456789abcdef"));
        for other in [
            "",
            "first-admin-key",
            "first-admin-key-0123456789abcdef ",
            "x",
        ] {
            assert!(!is_known(&known, other), "{other:?}");
        }
        assert!(!is_known(&[], "first-admin-key-0123456789abcdef"));
    }

    #[test]
    fn keys_come_as_bearer_or_basic_password() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc "),
        );
        assert_eq!(presented(&h).as_deref(), Some("abc"));
        // "author:s3cret:with:colons"
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YXV0aG9yOnMzY3JldDp3aXRoOmNvbG9ucw=="),
        );
        assert_eq!(presented(&h).as_deref(), Some("s3cret:with:colons"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!"));
        assert_eq!(presented(&h), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }
}
