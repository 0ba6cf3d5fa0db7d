//! Bulk pre-render jobs (admin bearer key or a partner key).
//!
//! ```text
//! POST   /v1/jobs       {"items":[{"url":"/img/…"} | {"image":{"source","options"}}
//!                                 | {"card":{"template","id","format","params"}}, …]}
//!                       → 202 {"id","total","already_cached","refused"}
//! GET    /v1/jobs/{id}  → progress counts and the failed items
//! DELETE /v1/jobs/{id}  → cancels every item not yet handed to the queues
//! ```
//! Items are checked like the URLs they stand for (a `url` item's signature
//! too); one invalid item refuses the job with 400 and every reason, nothing
//! stored. An item whose original is missing or too large is kept as failed.
//! A partner's key must reach every original an item names by its prefixes:
//! an image's source and a card's `original` parameters alike.
//!
//! The caller is known before the body is read (the route's auth layer).
//! The body is parsed straight into a bounded list of raw items (at most
//! [`PARSE_MAX_ITEMS`], each at most [`MAX_ITEM_BYTES`]), then each item into
//! its typed form: no untyped JSON tree is ever built. A partner's items are
//! metered one by one (kind `job_item`) and held to its monthly quota and to
//! `KILN_BULK_MAX_PENDING_PER_PARTNER` items waiting at once.

use std::collections::BTreeMap;

use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::partners::partner_access::PartnerKey;
use crate::plumbing::body::{require_json, BodyBytes};
use kiln_core::cards::{CardSpec, CardTemplate, ParamKind};
use kiln_core::options::ImageOptions;
use kiln_core::source_key::SourceKey;
use kiln_infra::bulk::{self, Planned, PlannedItem};

use crate::miss::card_plan::plan_card;
use crate::miss::rendition::{plan_image, too_large};
use crate::partners::admin::Caller;
use crate::plumbing::error::ApiError;
use crate::routes::card::{authorised, split_card_path};
use crate::routes::img::checked_request;
use crate::state::{AppState, SharedState};

/// Items planned at once (each may HEAD its original).
const PLANNING_CONCURRENCY: usize = 16;
/// Invalid items listed in a 400 answer, at most.
const ERRORS_LISTED: usize = 50;

/// Items the parser accepts before it stops reading (the configured limit,
/// `KILN_BULK_MAX_ITEMS`, is checked after and may only be lower).
pub const PARSE_MAX_ITEMS: usize = 10_000;
/// Bytes of JSON one item may take.
const MAX_ITEM_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJob<'a> {
    #[serde(borrow, deserialize_with = "bounded_items")]
    items: Vec<&'a RawValue>,
}

/// The `items` list, kept as raw JSON slices of the body and cut off past
/// [`PARSE_MAX_ITEMS`]: `[0,0,0,…]` costs a counter, not a tree.
fn bounded_items<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<&'de RawValue>, D::Error> {
    struct Items;
    impl<'de> serde::de::Visitor<'de> for Items {
        type Value = Vec<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a list of at most {PARSE_MAX_ITEMS} items")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<&'de RawValue>()? {
                if items.len() == PARSE_MAX_ITEMS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {PARSE_MAX_ITEMS} items"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Items)
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum ItemSpec {
    /// A signed `/img/…` or `/card/…` URL (or its path).
    Url(String),
    Image(ImageItem),
    Card(CardItem),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageItem {
    source: String,
    options: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardItem {
    template: String,
    id: String,
    #[serde(default = "default_card_format")]
    format: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

fn default_card_format() -> String {
    "png".into()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Created {
    id: String,
    total: usize,
    already_cached: i32,
    /// Items kept as failed at once (missing or too large originals).
    refused: usize,
}

#[derive(Serialize)]
struct ItemError {
    item: usize,
    error: String,
}

/// What became of one item's planning.
enum Outcome {
    Planned(PlannedItem),
    Invalid(String),
    Unavailable(ApiError),
}

#[utoipa::path(
    post, path = "/v1/jobs", operation_id = "submitJob", tag = "jobs",
    summary = "Submit a bulk pre-render job",
    description = "`{\"items\": [...]}`, 1 to KILN_BULK_MAX_ITEMS items, each `{\"url\": signed /img or /card URL}`, `{\"image\": {source, options}}` or `{\"card\": {template, id, format, params}}`. Invalid items are listed in the problem's `items`; nothing is queued then.",
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses(
        (status = 202, description = "accepted", body = Created),
        (status = 400, description = "invalid items, listed in items", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 403, description = "a key that may not", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "body over 8 MiB", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 415, description = "not JSON", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "the partner's quota or pending cap", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn submit(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    require_json(&request)?;
    let BodyBytes(body) = BodyBytes::from_request(request, &state).await?;
    let job: NewJob<'_> = parse_json_borrowed(&body)?;
    let limit = state.config.bulk_max_items;
    if job.items.is_empty() || job.items.len() > limit {
        return Err(ApiError::BadRequest(format!(
            "a job holds 1 to {limit} items"
        )));
    }
    if let Caller::Partner(owner) = &caller {
        admit_items(&state, owner, job.items.len()).await?;
    }
    // Owned copies of the items' text (their total is bounded by the body):
    // planning runs concurrently and outlives no borrow of the body.
    let raw_items: Vec<String> = job.items.iter().map(|raw| raw.get().to_owned()).collect();
    drop(job);
    let outcomes: Vec<Outcome> = futures_util::stream::iter(raw_items)
        .map(|raw| plan_item(&state, &caller, raw))
        .buffered(PLANNING_CONCURRENCY)
        .collect()
        .await;
    let mut items = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Outcome::Planned(item) => items.push(item),
            Outcome::Invalid(error) => errors.push(ItemError { item: index, error }),
            Outcome::Unavailable(err) => return Err(err),
        }
    }
    if !errors.is_empty() {
        let count = errors.len();
        errors.truncate(ERRORS_LISTED);
        return Ok(crate::plumbing::problem::Problem::bad_request(format!(
            "{count} invalid item(s); nothing was queued"
        ))
        .with("items", errors)
        .into_response());
    }
    let id = format!("job_{}", &kiln_infra::links::random_token()[..22]);
    let cap = match caller {
        Caller::Partner(_) => Some(state.config.bulk_max_pending_per_partner),
        Caller::Admin => None,
    };
    let already_cached = match bulk::create(&state.db, &id, caller.partner_id(), cap, &items)
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?
    {
        Ok(cached) => cached,
        Err(bulk::OverCap { pending }) => {
            return Err(ApiError::RateLimitedMessage {
                retry_after: 60,
                message: format!(
                "{pending} items of this partner are still waiting; at most {} may wait at once",
                state.config.bulk_max_pending_per_partner
            ),
            })
        }
    };
    if let Caller::Partner(owner) = &caller {
        state
            .meter
            .record_items(owner.partner_id, "job_item", items.len() as u64);
    }
    state.waiters.any.notify_one();
    let refused = items
        .iter()
        .filter(|i| matches!(i, PlannedItem::Refused(_)))
        .count();
    let location = HeaderValue::from_str(&format!("/v1/jobs/{id}"))
        .map_err(|e| ApiError::dependency(anyhow::Error::new(e), 1))?;
    let created = Created {
        id,
        total: items.len(),
        already_cached,
        refused,
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// Holds a partner's items to its monthly quota, before any is planned.
async fn admit_items(state: &AppState, owner: &PartnerKey, items: usize) -> Result<(), ApiError> {
    match state
        .quotas
        .admit_many(&state.db, owner, items as i64)
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(retry_after)) => Err(ApiError::QuotaExceeded { retry_after }),
        Err(err) => Err(ApiError::dependency(err, state.config.retry_after_secs)),
    }
}

fn parse_json_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn plan_item(state: &AppState, caller: &Caller, raw: String) -> Outcome {
    if raw.len() > MAX_ITEM_BYTES {
        return Outcome::Invalid(format!("an item may take at most {MAX_ITEM_BYTES} bytes"));
    }
    let spec: ItemSpec = match serde_json::from_str(&raw) {
        Ok(spec) => spec,
        Err(err) => {
            return Outcome::Invalid(format!(
                "expected {{\"url\"}}, {{\"image\"}} or {{\"card\"}}: {err}"
            ))
        }
    };
    let planned = match spec {
        ItemSpec::Url(url) => plan_url(state, caller, &url).await,
        ItemSpec::Image(image) => plan_image_item(state, caller, &image).await,
        ItemSpec::Card(card) => plan_card_item(state, caller, &card).await,
    };
    match planned {
        Ok(item) => Outcome::Planned(item),
        Err(ApiError::NotFound) => {
            Outcome::Planned(PlannedItem::Refused("source not found".into()))
        }
        Err(err @ (ApiError::Dependency { .. } | ApiError::Overloaded { .. })) => {
            Outcome::Unavailable(err)
        }
        Err(err) => Outcome::Invalid(err.to_string()),
    }
}

async fn plan_url(state: &AppState, caller: &Caller, url: &str) -> Result<PlannedItem, ApiError> {
    // Absolute URLs: only the path and query matter.
    let path_and_query = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if path.starts_with("/img/") {
        let (source, options) = checked_request(state, path)?;
        return plan_checked_image(state, caller, &source, &options).await;
    }
    if let Some((dialect, rest)) = crate::routes::dialect::route(state, path) {
        let request = crate::routes::dialect::checked_request(state, dialect, rest)?;
        return plan_checked_image(state, caller, &request.source, &request.options).await;
    }
    if path.starts_with("/card/") {
        let card_path = split_card_path("/card/", path)
            .ok_or_else(|| ApiError::BadRequest("not a card URL".into()))?;
        let template = authorised(state, &card_path, query)?.clone();
        let query = card_path.signature.and(query);
        let spec = CardSpec::check(&template, card_path.id_and_ext, query)
            .map_err(|e| ApiError::BadRequest(format!("card: {e}")))?;
        check_card_originals(caller, &template, &spec)?;
        return card_outcome(plan_card(state, &template, spec).await?);
    }
    Err(ApiError::BadRequest(
        "only /img/, /card/ and thumbor or imgproxy URLs can be pre-rendered".into(),
    ))
}

async fn plan_image_item(
    state: &AppState,
    caller: &Caller,
    image: &ImageItem,
) -> Result<PlannedItem, ApiError> {
    let source =
        SourceKey::new(image.source.as_str()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let options = ImageOptions::parse_with(&image.options, &state.config.presets)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state
        .config
        .limits
        .check_output(options.width, options.height)
        .map_err(|over| ApiError::BadRequest(over.to_string()))?;
    plan_checked_image(state, caller, &source, &options).await
}

async fn plan_checked_image(
    state: &AppState,
    caller: &Caller,
    source: &SourceKey,
    options: &ImageOptions,
) -> Result<PlannedItem, ApiError> {
    if options.negotiates_format() {
        return Err(ApiError::BadRequest(
            "f:auto depends on each client's Accept header; name the formats to pre-render".into(),
        ));
    }
    if let Caller::Partner(owner) = caller {
        if !owner.allows(source.as_str()) {
            return Err(ApiError::BadRequest(
                "the key does not reach this source".into(),
            ));
        }
    }
    let (planned, size) = plan_image(state, source, options).await?;
    Ok(match too_large(state, size) {
        Some(message) => PlannedItem::Refused(message),
        None => PlannedItem::Render(planned),
    })
}

/// A partner's card may embed only originals its key reaches.
fn check_card_originals(
    caller: &Caller,
    template: &CardTemplate,
    spec: &CardSpec,
) -> Result<(), ApiError> {
    let Caller::Partner(owner) = caller else {
        return Ok(());
    };
    let outside = spec.params.iter().any(|(name, value)| {
        template.manifest.params.get(name).map(|p| p.kind) == Some(ParamKind::Original)
            && !owner.allows(value)
    });
    if outside {
        return Err(ApiError::BadRequest(
            "the key does not reach an original this card names".into(),
        ));
    }
    Ok(())
}

async fn plan_card_item(
    state: &AppState,
    caller: &Caller,
    card: &CardItem,
) -> Result<PlannedItem, ApiError> {
    let template = state
        .templates
        .get(&card.template)
        .ok_or(ApiError::UnknownTemplate)?
        .clone();
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let id_and_ext = format!("{}.{}", enc(&card.id), enc(&card.format));
    let query: Vec<String> = card
        .params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let query = query.join("&");
    let spec = CardSpec::check(&template, &id_and_ext, Some(&query))
        .map_err(|e| ApiError::BadRequest(format!("card: {e}")))?;
    check_card_originals(caller, &template, &spec)?;
    card_outcome(plan_card(state, &template, spec).await?)
}

fn card_outcome(planned: Option<Planned>) -> Result<PlannedItem, ApiError> {
    Ok(match planned {
        Some(planned) => PlannedItem::Render(planned),
        None => PlannedItem::Refused("an original the card names does not exist".into()),
    })
}

#[utoipa::path(
    get, path = "/v1/jobs/{id}", operation_id = "jobProgress", tag = "jobs",
    summary = "A job's progress and failed items",
    params(("id" = String, Path, description = "the job")),
    responses(
        (status = 200, description = "progress", body = kiln_infra::bulk::Progress),
        (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 404, description = "no such job (for this key)", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn progress(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    job_progress(&state, &caller, &id).await
}

#[utoipa::path(
    delete, path = "/v1/jobs/{id}", operation_id = "cancelJob", tag = "jobs",
    summary = "Cancel what has not been handed to the render queues",
    params(("id" = String, Path, description = "the job")),
    responses(
        (status = 200, description = "progress after cancelling", body = kiln_infra::bulk::Progress),
        (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 404, description = "no such job (for this key)", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn cancel(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = bulk::cancel(&state.db, &id, caller.partner_id())
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
    if !found {
        return Err(ApiError::NotFoundMessage("no such job".into()));
    }
    job_progress(&state, &caller, &id).await
}

async fn job_progress(state: &AppState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let progress = bulk::progress(&state.db, id, caller.partner_id())
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?
        .ok_or_else(|| ApiError::NotFoundMessage("no such job".into()))?;
    let mut response = Json(progress).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
