//! The router: one module per area.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::metrics as m;
use crate::state::SharedState;

mod captcha;
pub(crate) mod card;
mod card_preview;
mod health;
pub(crate) mod img;
mod jobs;
mod links;
mod nginx;
mod originals;
pub(crate) mod partners;
mod usage;

/// A bulk job of 10 000 card items with parameters fits in this.
const BULK_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub fn router(state: SharedState) -> Router {
    let mut router = Router::new();
    if state.config.card_preview {
        router = router.route("/card-preview/{*rest}", get(card_preview::preview));
    }
    router
        .route("/img/{*rest}", get(img::image))
        .route("/captcha", get(captcha::captcha_json))
        .route("/captcha/fragment", get(captcha::captcha_fragment))
        .route("/captcha/verify", post(captcha::verify))
        .route("/download", get(captcha::download))
        .route("/v1/links", post(links::create))
        .route("/dl/{token}", get(links::take))
        .route("/card/{*rest}", get(card::card))
        .route("/originals/{*rest}", get(originals::original))
        .route("/v1/partners", post(partners::create).get(partners::list))
        .route("/v1/partners/{name}/rotate-key", post(partners::rotate_key))
        .route("/v1/partners/{name}/revoke", post(partners::revoke))
        .route(
            "/v1/jobs",
            post(jobs::submit).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT)),
        )
        .route("/v1/jobs/{id}", get(jobs::progress).delete(jobs::cancel))
        .route("/v1/usage", get(usage::report))
        .route("/v1/openapi.json", get(health::openapi))
        .route("/usage", get(usage::usage_page))
        .route("/resize/{*rest}", get(nginx::resize))
        .route("/crop/{*rest}", get(nginx::crop))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::partner_access::partner_access,
        ))
        .layer(middleware::from_fn(track))
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
