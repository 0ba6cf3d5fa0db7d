//! The worker's small HTTP side: `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use kiln_infra::queue::Publisher;
use kiln_infra::storage::Storage;

#[derive(Clone)]
pub struct Health {
    pub db: PgPool,
    pub storage: Storage,
    pub publisher: Arc<Publisher>,
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

async fn readyz(State(h): State<Health>) -> Response {
    let limit = Duration::from_secs(2);
    let (pg, mq, s3) = tokio::join!(
        tokio::time::timeout(limit, async {
            sqlx::query("SELECT 1").execute(&h.db).await.is_ok()
        }),
        tokio::time::timeout(limit, h.publisher.is_connected()),
        tokio::time::timeout(limit, async { h.storage.check().await.is_ok() }),
    );
    let ok = |r: Result<bool, _>| r.unwrap_or(false);
    if ok(pg) && ok(mq) && ok(s3) {
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
