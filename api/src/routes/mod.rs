//! The router: one module per area.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;

use crate::plumbing::metrics as m;
use crate::state::SharedState;

mod captcha;
pub(crate) mod card;
mod card_preview;
pub(crate) mod dialect;
pub(crate) mod health;
pub(crate) mod img;
pub(crate) mod jobs;
pub(crate) mod links;
mod nginx;
mod originals;
pub(crate) mod partners;
pub(crate) mod purge;
pub(crate) mod upload;
pub(crate) mod usage;

/// The first path segments of Kiln's own routes: a dialect prefix may not
/// start with one of them.
pub const NATIVE_TOP_SEGMENTS: &[&str] = &[
    "img",
    "captcha",
    "download",
    "dl",
    "card",
    "card-preview",
    "originals",
    "resize",
    "crop",
    "healthz",
    "readyz",
    "metrics",
    "usage",
    "v1",
];

/// A bulk job of 10 000 card items with parameters fits in this (typed
/// parsing keeps its memory within a small multiple of it).
const BULK_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// Every other request body: links, partners, captcha answers.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: SharedState) -> Router {
    // Authenticated before any body byte is read: the layer runs before the
    // handlers' extractors.
    let mut admin = Router::new()
        .route("/v1/links", post(links::create))
        .route("/v1/partners", post(partners::create).get(partners::list))
        .route("/v1/partners/{name}/rotate-key", post(partners::rotate_key))
        .route("/v1/partners/{name}/revoke", post(partners::revoke));
    if state.config.card_preview {
        admin = admin.route("/card-preview/{*rest}", get(card_preview::preview));
    }
    let admin = admin.route_layer(middleware::from_fn_with_state(
        state.clone(),
        crate::partners::admin::admin_only,
    ));
    let admin_or_partner = Router::new()
        .route(
            "/v1/jobs",
            post(jobs::submit).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT)),
        )
        .route("/v1/jobs/{id}", get(jobs::progress).delete(jobs::cancel))
        .route(
            "/v1/originals/{*key}",
            put(upload::put).delete(purge::delete_original),
        )
        .route("/v1/purge", post(purge::purge))
        .route("/v1/usage", get(usage::report))
        .route("/usage", get(usage::usage_page))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::partners::admin::admin_or_partner,
        ));
    let mut router = Router::new()
        .route("/img/{*rest}", get(img::image))
        .route(
            "/captcha",
            get(captcha::captcha_json).head(captcha::head_ok),
        )
        .route(
            "/captcha/fragment",
            get(captcha::captcha_fragment).head(captcha::head_ok),
        )
        .route("/captcha/verify", post(captcha::verify))
        .route(
            "/download",
            get(captcha::download).head(captcha::download_head),
        )
        .route("/dl/{token}", get(links::take).head(links::peek))
        .route("/card/{*rest}", get(card::card))
        .route("/originals/{*rest}", get(originals::original))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/resize/{*rest}", get(nginx::resize))
        .route("/crop/{*rest}", get(nginx::crop))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(admin)
        .merge(admin_or_partner);
    if state.config.metrics_listen.is_none() {
        router = router.route("/metrics", get(health::metrics));
    }
    for (_, prefix) in state.config.dialects.prefixes() {
        router = if prefix.is_empty() {
            // A root mount answers whatever no native route took.
            router.fallback(dialect::image)
        } else {
            router.route(&format!("{prefix}/{{*rest}}"), get(dialect::image))
        };
    }
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::partners::partner_access::partner_access,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::plumbing::client_addr::client_addr,
        ))
        .layer(middleware::from_fn(crate::plumbing::problem::v1_problems))
        .layer(middleware::from_fn(track))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(crate::plumbing::request_id::span_for::<axum::body::Body>),
        )
        .layer(middleware::from_fn(crate::plumbing::request_id::request_id))
        .with_state(state)
}

/// `/metrics` alone, for `KILN_METRICS_LISTEN`.
pub fn metrics_router(state: SharedState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

/// Counts requests by route pattern (never the raw path: bounded label values).
async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(m::HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// Seconds since the UNIX epoch, for expiry checks.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
