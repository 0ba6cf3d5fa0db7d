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

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use kiln_core::cache_key::object_key;
use kiln_core::cards::{CardSpec, CardTemplate, ParamKind};
use kiln_core::job::{now_ms, CardJob, JobKind};
use kiln_core::signing::{card_payload, Verdict};
use kiln_core::source_key::SourceKey;
use kiln_infra::bulk::Planned;
use kiln_infra::renditions::NewRendition;

use crate::client_addr::{limit_key, ClientAddr};
use crate::error::ApiError;
use crate::metrics as m;
use crate::rendition::{deliver_if_known_ready, find_or_render, source_meta, Miss, Rendered};
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

/// What a checked card request names: its cache key pins the template's
/// content hash and the ETag of every original the card embeds.
struct CardTarget {
    version: String,
    originals: BTreeMap<String, String>,
    cache_key: String,
}

/// The card's cache key; `None` when a parameter names an original that
/// does not exist.
async fn card_target(
    state: &AppState,
    template: &CardTemplate,
    spec: &CardSpec,
) -> Result<Option<CardTarget>, ApiError> {
    let Some(originals) = pin_originals(state, template, spec).await? else {
        return Ok(None);
    };
    let mut version = template.hash.clone();
    for (key, etag) in &originals {
        version.push_str(&format!(";{key}={etag}"));
    }
    let cache_key = spec.cache_key(&version);
    Ok(Some(CardTarget {
        version,
        originals,
        cache_key,
    }))
}

/// The row and job message of a card (built only on a miss: the hit path
/// never serialises a job).
fn planned_card(
    state: &AppState,
    template: &CardTemplate,
    spec: CardSpec,
    target: CardTarget,
) -> Planned {
    let CardTarget {
        version,
        originals,
        cache_key,
    } = target;
    let object_key = object_key(&state.config.s3.cache_prefix, &cache_key);
    let options = spec.canonical();
    let job = card_job(template, spec, originals, &cache_key, &object_key);
    Planned {
        kind: JobKind::Card,
        source_key: format!("card:{}", template.name),
        source_etag: version,
        options,
        payload: job.to_json(),
        cache_key,
        object_key,
    }
}

/// The rendition a checked card request names; `None` when a parameter
/// names an original that does not exist.
pub(crate) async fn plan_card(
    state: &AppState,
    template: &CardTemplate,
    spec: CardSpec,
) -> Result<Option<Planned>, ApiError> {
    Ok(card_target(state, template, &spec)
        .await?
        .map(|target| planned_card(state, template, spec, target)))
}

/// The ETag of every original the card embeds (replacing one renders a new
/// card); `None` when a parameter names an original that does not exist.
pub(crate) async fn pin_originals(
    state: &AppState,
    template: &CardTemplate,
    spec: &CardSpec,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let mut originals = BTreeMap::new();
    for (name, value) in &spec.params {
        if template.manifest.params.get(name).map(|p| p.kind) != Some(ParamKind::Original) {
            continue;
        }
        let Ok(key) = SourceKey::new(value.as_str()) else {
            return Ok(None);
        };
        match source_meta(state, &key).await {
            Ok(meta) => originals.insert(value.clone(), meta.etag),
            Err(ApiError::NotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
    }
    Ok(Some(originals))
}

pub(crate) fn card_job(
    template: &CardTemplate,
    spec: CardSpec,
    originals: BTreeMap<String, String>,
    cache_key: &str,
    object_key: &str,
) -> CardJob {
    CardJob {
        cache_key: cache_key.to_owned(),
        object_key: object_key.to_owned(),
        template: template.name.clone(),
        template_hash: template.hash.clone(),
        id: spec.id,
        params: spec.params,
        originals,
        format: spec.format,
        attempt: 1,
        enqueued_at_ms: Some(now_ms()),
        request_id: crate::request_id::current(),
    }
}

/// The rendition row and job message of a card.
pub(crate) fn card_miss<'a>(
    job: &'a CardJob,
    source: &'a str,
    version: &'a str,
    canonical: &'a str,
) -> Miss<'a> {
    Miss {
        new: NewRendition {
            cache_key: &job.cache_key,
            object_key: &job.object_key,
            kind: JobKind::Card.name(),
            source_key: source,
            source_etag: version,
            options: canonical,
        },
        kind: JobKind::Card,
        job: job.to_json(),
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
