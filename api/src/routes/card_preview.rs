//! `GET /card-preview/{template}/{id}.{ext}?k=v…` — for template authors, and
//! only routed when `KILN_CARD_PREVIEW=true`.
//!
//! The template is read from disk on every request (edit, reload the page),
//! rendered by the workers like any card, answered with the image itself and
//! `Cache-Control: no-store`, and then its object and row are deleted: nothing
//! is cached. A check that fails is explained with a 4xx instead of being
//! covered by the default image. It takes the admin key (bearer, or as the
//! password of HTTP Basic so a browser can ask for it): a preview can embed
//! any original, a partner's unwatermarked ones too.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use kiln_core::cards::{CardSpec, CardTemplate, Templates};
use kiln_infra::renditions::{self, Status};

use crate::miss::card_plan::{card_job, card_miss, pin_originals};
use crate::miss::rendition::render_uncached;
use crate::plumbing::error::ApiError;
use crate::routes::card::split_card_path;
use crate::state::{AppState, SharedState};

pub async fn preview(State(state): State<SharedState>, uri: Uri) -> Response {
    match checked_preview(&state, &uri).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn checked_preview(state: &AppState, uri: &Uri) -> Result<Response, ApiError> {
    let path = split_card_path("/card-preview/", uri.path())
        .filter(|p| p.signature.is_none())
        .ok_or_else(|| {
            ApiError::BadRequest("expected /card-preview/{template}/{id}.{ext}?k=v…".into())
        })?;
    let template = load_from_disk(state, path.template).await?;
    let spec = CardSpec::check(&template, path.id_and_ext, uri.query()).map_err(|invalid| {
        ApiError::BadRequest(format!("{invalid} for template {}", template.name))
    })?;
    let originals = pin_originals(state, &template, &spec)
        .await?
        .ok_or_else(|| ApiError::BadRequest("a parameter names a missing original".into()))?;

    let cache_key = format!("preview-{:032x}", rand::random::<u128>());
    let object_key = format!("{}previews/{cache_key}", state.config.s3.cache_prefix);
    let canonical = spec.canonical();
    let source = format!("card:{}", template.name);
    let content_type = spec.format.content_type();
    let job = card_job(&template, spec, originals, &cache_key, &object_key);
    let miss = card_miss(&job, &source, &template.hash, &canonical);
    let rendered = render_uncached(state, &miss).await;
    let answer = match rendered {
        Ok(row) => match row.status {
            Status::Ready => fetch(state, &object_key, content_type).await,
            Status::Failed { message, .. } => Err(ApiError::Unprocessable(message)),
            Status::Pending => Err(ApiError::NotReadyYet {
                retry_after: state.config.retry_after_secs,
            }),
        },
        // Renders that time out are retried by the workers; a preview says so.
        Err(ApiError::NotReadyYet { .. }) => Ok((
            StatusCode::GATEWAY_TIMEOUT,
            "the card did not render within the wait (a slow or looping template?)\n",
        )
            .into_response()),
        Err(err) => Err(err),
    };
    forget(state, cache_key, object_key);
    answer.map(no_store)
}

async fn load_from_disk(state: &AppState, name: &str) -> Result<CardTemplate, ApiError> {
    let root = state.config.templates_dir.clone();
    let name = name.to_owned();
    let loaded = tokio::task::spawn_blocking(move || Templates::load_template(&root, &name))
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?;
    match loaded {
        Ok(Some(template)) => Ok(template),
        Ok(None) => Err(ApiError::UnknownTemplate),
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "card template does not load");
            Err(ApiError::Unprocessable(
                "the template does not load; the api log says why".into(),
            ))
        }
    }
}

async fn fetch(
    state: &AppState,
    object_key: &str,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let retry_after = state.config.retry_after_secs;
    let object = state
        .storage
        .get_rendition(object_key)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?
        .into_bytes();
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response())
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-kiln-card"),
        HeaderValue::from_static("preview"),
    );
    response
}

/// Previews are never cached: drop the object and the row in the background.
fn forget(state: &AppState, cache_key: String, object_key: String) {
    let db = state.db.clone();
    let storage = state.storage.clone();
    tokio::spawn(async move {
        if let Err(err) = storage.delete_rendition(&object_key).await {
            tracing::debug!(%err, "preview object not deleted");
        }
        if let Err(err) = renditions::forget(&db, &cache_key).await {
            tracing::debug!(%err, "preview row not deleted");
        }
    });
}
