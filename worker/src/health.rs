//! The worker's small HTTP side: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use kiln_infra::readiness::Dependencies;

#[derive(Clone)]
pub struct Health {
    pub dependencies: Arc<Dependencies>,
    pub metrics: Option<PrometheusHandle>,
}

pub async fn serve(listener: tokio::net::TcpListener, health: Health, cancel: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::warn!(%err, "health listener stopped");
    }
}

/// A worker is ready when it can do its whole job: fetch (S3), record
/// (PostgreSQL) and take and retry work (RabbitMQ).
async fn readyz(State(h): State<Health>) -> Response {
    if h.dependencies.check().await.all() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(h): State<Health>) -> Response {
    match h.metrics {
        Some(handle) => handle.render().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
