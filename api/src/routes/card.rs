//! Social cards.
//!
//! ```text
//! GET /card/{template}/{id}.{ext}                 templates whose ids are public
//! GET /card/{signature}/{template}/{id}.{ext}?…   signed, query included
//! ```
//! Checks, in order: the path's shape (400), the template (404), the signature
//! or the template's public flag (403). After that a request always gets an
//! image: an id or parameter the manifest does not allow, a render that failed
//! or timed out, all answer the template's default image with 200 — never a
//! 404, never the input reflected — and count `kiln_card_defaults_total`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use kiln_core::cards::{CardSpec, CardTemplate};
use kiln_core::signing::{card_payload, Verdict};

use crate::miss::card_plan::{card_target, planned_card};
use crate::miss::rendition::{deliver_if_known_ready, find_or_render, Miss, Rendered};
use crate::plumbing::client_addr::{limit_key, ClientAddr};
use crate::plumbing::error::ApiError;
use crate::plumbing::metrics as m;
use crate::state::{AppState, SharedState};

/// A card path split into its parts, still percent-encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CardPath<'a> {
    pub signature: Option<&'a str>,
    pub template: &'a str,
    pub id_and_ext: &'a str,
    /// `{template}/{id}.{ext}`: with the query, what a signature covers.
    pub signed: &'a str,
}

pub(crate) fn split_card_path<'a>(prefix: &str, path: &'a str) -> Option<CardPath<'a>> {
    let rest = path.strip_prefix(prefix)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (signature, template, id_and_ext) = match parts.as_slice() {
        [template, id] => (None, *template, *id),
        [signature, template, id] => (Some(*signature), *template, *id),
        _ => return None,
    };
    if template.is_empty() || id_and_ext.is_empty() {
        return None;
    }
    let signed = &rest[rest.len() - template.len() - 1 - id_and_ext.len()..];
    Some(CardPath {
        signature,
        template,
        id_and_ext,
        signed,
    })
}

/// The payload card signatures covered before domain separation:
/// `{template}/{id}.{ext}[?query]`, accepted only with
/// `KILN_LEGACY_CARD_SIGNATURES=true`.
fn legacy_payload(signed_path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{signed_path}?{q}"),
        _ => signed_path.to_owned(),
    }
}

/// Resolves the template and checks the signature (or the public flag).
pub(crate) fn authorised<'s>(
    state: &'s AppState,
    path: &CardPath<'_>,
    query: Option<&str>,
) -> Result<&'s Arc<CardTemplate>, ApiError> {
    let template = state
        .templates
        .get(path.template)
        .ok_or(ApiError::UnknownTemplate)?;
    match path.signature {
        Some(signature) => {
            let signing = &state.config.signing;
            let payload = card_payload(path.signed, query);
            let valid = signing.verify(signature, &payload) != Verdict::Invalid
                || (state.config.legacy_card_signatures
                    && signing.verify(signature, &legacy_payload(path.signed, query))
                        != Verdict::Invalid);
            if !valid {
                return Err(ApiError::BadSignature);
            }
        }
        None if template.manifest.public => {}
        None => return Err(ApiError::BadSignature),
    }
    Ok(template)
}

pub async fn card(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match checked_card(&state, client, &uri, &headers).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn checked_card(
    state: &AppState,
    client: IpAddr,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let path = split_card_path("/card/", uri.path()).ok_or_else(|| {
        ApiError::BadRequest(
            "expected /card/{template}/{id}.{ext} or /card/{signature}/{template}/{id}.{ext}"
                .into(),
        )
    })?;
    let template = authorised(state, &path, uri.query())?;
    // Public URLs take no parameters: a query never reaches the cache key.
    let query = path.signature.and(uri.query());
    let spec = match CardSpec::check(template, path.id_and_ext, query) {
        Ok(spec) => spec,
        Err(invalid) => return Ok(default_image(template, invalid.label(), true)),
    };
    let Some(target) = card_target(state, template, &spec).await? else {
        return Ok(default_image(template, "param", true));
    };
    if let Some(response) = deliver_if_known_ready(state, &target.cache_key, headers, None).await? {
        metrics::counter!(m::CACHE_HITS, "kind" => "card").increment(1);
        return Ok(response);
    }
    // Anyone can make up a public id: each new one is a render, so a
    // client's misses of unsigned URLs are rate-limited (hits are not).
    if path.signature.is_none() && state.public_miss_limit.check(limit_key(client)).is_err() {
        metrics::counter!(m::RATE_LIMITED, "limit" => "public_card_misses").increment(1);
        return Ok(default_image(template, "rate_limited", false));
    }
    let planned = planned_card(state, template, spec, target);
    match find_or_render(state, &Miss::of(&planned), headers, None).await {
        Ok(Rendered::Delivered(response)) => Ok(response),
        Ok(Rendered::Failed { .. }) => Ok(default_image(template, "render_failed", false)),
        // Not rendered within the wait: still an image, but not one to keep.
        Err(ApiError::NotReadyYet { .. }) => Ok(default_image(template, "wait_timeout", false)),
        // The queue is full or too many requests wait: the same.
        Err(ApiError::Overloaded { .. }) => Ok(default_image(template, "overloaded", false)),
        Err(err) => Err(err),
    }
}

/// The template's default image, 200. Invalid input may be cached by clients
/// for a while; a failed or slow render must not be.
pub(crate) fn default_image(
    template: &CardTemplate,
    reason: &'static str,
    cacheable: bool,
) -> Response {
    metrics::counter!(m::CARD_DEFAULTS, "template" => template.name.clone(), "reason" => reason)
        .increment(1);
    let cache_control = if cacheable {
        "public, max-age=300"
    } else {
        "no-store"
    };
    let image = &template.default_image;
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(image.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
            (
                header::HeaderName::from_static("x-kiln-card"),
                HeaderValue::from_static("default"),
            ),
        ],
        image.bytes.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_public_and_signed_paths() {
        let public = split_card_path("/card/", "/card/stats/12-34-10.jpg").unwrap();
        assert_eq!(public.signature, None);
        assert_eq!(
            (public.template, public.id_and_ext),
            ("stats", "12-34-10.jpg")
        );
        assert_eq!(public.signed, "stats/12-34-10.jpg");
        let signed = split_card_path("/card/", "/card/SIG/article/hello.png").unwrap();
        assert_eq!(signed.signature, Some("SIG"));
        assert_eq!(signed.signed, "article/hello.png");
        assert!(split_card_path("/card/", "/card/stats").is_none());
        assert!(split_card_path("/card/", "/card/a/b/c/d.png").is_none());
        assert!(split_card_path("/card/", "/card//x.png").is_none());
    }

    #[test]
    fn the_legacy_payload_is_the_path_and_query() {
        assert_eq!(legacy_payload("a/b.png", Some("t=1")), "a/b.png?t=1");
        assert_eq!(legacy_payload("a/b.png", Some("")), "a/b.png");
        assert_eq!(legacy_payload("a/b.png", None), "a/b.png");
    }
}
