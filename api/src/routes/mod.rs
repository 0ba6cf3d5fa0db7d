//! The router: one module per area.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::metrics as m;
use crate::state::SharedState;

mod captcha;
mod card;
mod card_preview;
mod health;
mod img;
mod links;
mod nginx;

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
        .route("/resize/{*rest}", get(nginx::resize))
        .route("/crop/{*rest}", get(nginx::crop))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
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
