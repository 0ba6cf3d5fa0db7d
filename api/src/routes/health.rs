//! `/healthz` (the process is up), `/readyz` (it can serve) and `/metrics`
//! (Prometheus text format).
//!
//! Readiness is what a load balancer asks: should requests come here? Every
//! api shares the same PostgreSQL, RabbitMQ and S3, so an outage of one of
//! them is never a reason to prefer another api, and taking every api out of
//! the Service would turn "misses wait" into "nothing answers". So `/readyz`
//! is 503 only when this process can serve nothing at all: PostgreSQL is
//! unreachable *and* it holds no ready rendition in memory (a fresh pod
//! during a database outage). RabbitMQ and S3 only matter to misses; their
//! state is in the body (`"misses": "unavailable"`). `/readyz?strict=true`
//! is 503 unless every dependency answers (start-up scripts, monitoring).
//!
//! The checks themselves are `kiln_infra::readiness`, shared with the worker
//! (and reused for a second).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use kiln_infra::readiness::Readiness;

use crate::state::SharedState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ReadyQuery {
    #[serde(default)]
    strict: bool,
}

pub async fn readyz(
    State(state): State<SharedState>,
    axum::extract::Query(query): axum::extract::Query<ReadyQuery>,
) -> Response {
    let readiness = state.dependencies.check().await;
    let Readiness {
        postgres,
        rabbitmq,
        s3,
    } = readiness;
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let hits = postgres || state.hot.knows_renditions();
    // Misses need every dependency: the worker's readiness rule.
    let misses = readiness.all();
    let body = serde_json::json!({
        "hits": word(hits),
        "misses": word(misses),
        "postgres": word(postgres),
        "rabbitmq": word(rabbitmq),
        "s3": word(s3),
    });
    let ready = if query.strict { misses } else { hits };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<SharedState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The OpenAPI description of `/v1`, generated from the handlers
/// (`crate::openapi`) and checked against the router by the end-to-end tests.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses((status = 200, description = "this document", content_type = "application/json"))
)]
pub async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        crate::openapi::json(),
    )
}
