//! Captchas from the pre-generated pool, and the seed's captcha-guarded download.
//!
//! ```text
//! GET  /captcha            {"image":"data:image/png;base64,…","key":"…","slot":"…"}
//! GET  /captcha/fragment   the same as <img> + hidden inputs, for SSI includes
//! POST /captcha/verify     {"slot","key","code"} → {"ok":true|false}
//! GET  /download?filename=&key=&code=&slot=   302 to the file, or 403
//! ```
//! Serving issues a captcha to one client only (leased from the pool, see
//! `captcha_issuer`) and never waits on generation: an exhausted pool
//! answers 503 with `Retry-After`. The `slot` a client gets carries the
//! lease; verifying consumes the slot whatever the code (one attempt per
//! captcha) in one conditional UPDATE that needs that lease, and queues the
//! slot's regeneration. `HEAD` issues and consumes nothing.

use std::net::IpAddr;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use kiln_core::captcha::CaptchaConfig;
use kiln_core::job::{now_ms, CaptchaJob, JobKind, PRIORITY_ON_DEMAND};
use kiln_infra::captcha_pool::{self, LeasedCaptcha};
use kiln_infra::storage::StorageError;

use crate::plumbing::body::ApiJson;
use crate::plumbing::client_addr::{limit_key, ClientAddr};
use crate::plumbing::error::ApiError;
use crate::plumbing::metrics as m;
use crate::plumbing::rate_limit::RateLimiter;
use crate::state::{AppState, SharedState};

#[derive(Serialize)]
struct CaptchaJson {
    image: String,
    key: String,
    slot: String,
}

pub async fn captcha_json(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
) -> Result<Response, ApiError> {
    let captcha = issue(&state, client).await?;
    Ok(no_store(
        Json(CaptchaJson {
            image: data_url(&captcha.image),
            slot: CaptchaConfig::issued_slot(&captcha.slot, &captcha.lease),
            key: captcha.captcha_key,
        })
        .into_response(),
    ))
}

/// `HEAD /captcha…`: a link checker learns the route works; nothing is issued.
pub async fn head_ok() -> Response {
    no_store(StatusCode::OK.into_response())
}

pub async fn captcha_fragment(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
) -> Result<Response, ApiError> {
    let captcha = issue(&state, client).await?;
    let slot = CaptchaConfig::issued_slot(&captcha.slot, &captcha.lease);
    let (w, h) = (state.config.captcha.width, state.config.captcha.height);
    // Key and slot are base64url and hex: nothing to escape.
    let html = format!(
        "<img src=\"{}\" width=\"{w}\" height=\"{h}\" alt=\"captcha\">\
         <input type=\"hidden\" name=\"key\" value=\"{}\">\
         <input type=\"hidden\" name=\"slot\" value=\"{}\">",
        data_url(&captcha.image),
        captcha.captcha_key,
        slot
    );
    Ok(no_store(Html(html).into_response()))
}

#[derive(Deserialize)]
pub struct Answer {
    slot: String,
    key: String,
    code: String,
}

#[derive(Serialize)]
struct Verdict {
    ok: bool,
}

pub async fn verify(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    ApiJson(answer): ApiJson<Answer>,
) -> Result<Response, ApiError> {
    limit(&state.captcha_verify_limit, client)?;
    let ok = check_answer(&state, &answer).await?;
    Ok(no_store(Json(Verdict { ok }).into_response()))
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    filename: Option<String>,
    key: Option<String>,
    code: Option<String>,
    slot: Option<String>,
}

pub async fn download(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    limit(&state.captcha_verify_limit, client)?;
    let (Some(filename), Some(key), Some(code), Some(slot)) =
        (query.filename, query.key, query.code, query.slot)
    else {
        return Err(ApiError::BadRequest(
            "expected ?filename=&key=&code=&slot=".into(),
        ));
    };
    if !valid_filename(&filename) {
        return Err(ApiError::BadRequest(
            "filename must be 1-255 letters, digits, '.', '_', '-' or spaces, without '..'".into(),
        ));
    }
    let object = format!("files/{filename}");
    let retry_after = state.config.retry_after_secs;
    // A missing file is found before the captcha is spent.
    match state.storage.head_original(&object).await {
        Ok(_) => {}
        Err(StorageError::NotFound) => return Err(ApiError::NotFound),
        Err(err) => return Err(ApiError::dependency(err, retry_after)),
    }
    let answer = Answer { slot, key, code };
    if !check_answer(&state, &answer).await? {
        return Ok(no_store(
            (StatusCode::FORBIDDEN, "captcha check failed\n").into_response(),
        ));
    }
    let url = state
        .storage
        .presign_download(&object, &filename, state.config.download_ttl)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    let location = HeaderValue::try_from(url).map_err(|e| ApiError::dependency(e, retry_after))?;
    Ok(no_store(
        (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
    ))
}

/// `HEAD /download`: whether the file exists; no captcha is checked or spent.
pub async fn download_head(
    State(state): State<SharedState>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let Some(filename) = query.filename.filter(|f| valid_filename(f)) else {
        return Err(ApiError::BadRequest("expected a valid ?filename=".into()));
    };
    match state
        .storage
        .head_original(&format!("files/{filename}"))
        .await
    {
        Ok(_) => Ok(no_store(StatusCode::OK.into_response())),
        Err(StorageError::NotFound) => Err(ApiError::NotFound),
        Err(err) => Err(ApiError::dependency(err, state.config.retry_after_secs)),
    }
}

/// Consumes the slot if the key is its current captcha, issued under the
/// lease the answer carries; true only if the code also matches. A replayed,
/// unknown or expired answer, or one for a captcha issued to someone else,
/// consumes nothing.
async fn check_answer(state: &AppState, answer: &Answer) -> Result<bool, ApiError> {
    let config = &state.config.captcha;
    let issued = config.parse_issued(&answer.slot);
    let Some((slot, lease)) = issued.filter(|_| !answer.key.is_empty() && answer.key.len() <= 64)
    else {
        metrics::counter!(m::CAPTCHA_VERIFICATIONS, "outcome" => "stale").increment(1);
        return Ok(false);
    };
    let retry_after = state.config.retry_after_secs;
    let ttl = config.issue_ttl.as_secs_f64();
    let consumed = captcha_pool::consume(&state.db, slot, lease, &answer.key, ttl)
        .await
        .map_err(|e| ApiError::dependency(e, retry_after))?;
    if !consumed {
        metrics::counter!(m::CAPTCHA_VERIFICATIONS, "outcome" => "stale").increment(1);
        return Ok(false);
    }
    regenerate(state, slot).await;
    let ok = config.matches(&answer.code, slot, &answer.key);
    let outcome = if ok { "passed" } else { "failed" };
    metrics::counter!(m::CAPTCHA_VERIFICATIONS, "outcome" => outcome).increment(1);
    Ok(ok)
}

/// Queues a new captcha for a consumed slot. If the queue is down the
/// workers' refill loop still finds the empty slot.
async fn regenerate(state: &AppState, slot: &str) {
    let job = CaptchaJob {
        slot: slot.to_owned(),
        attempt: 1,
        enqueued_at_ms: Some(now_ms()),
    };
    let queue = state.publisher.topology().work_queue(JobKind::Captcha);
    match state
        .publisher
        .publish(&queue, &job.to_json(), PRIORITY_ON_DEMAND)
        .await
    {
        Ok(()) => metrics::counter!(m::JOBS_QUEUED, "kind" => "captcha").increment(1),
        Err(err) => tracing::warn!("captcha regeneration not queued (refill will): {err:#}"),
    }
}

async fn issue(state: &AppState, client: IpAddr) -> Result<LeasedCaptcha, ApiError> {
    limit(&state.captcha_issue_limit, client)?;
    let retry_after = state.config.retry_after_secs;
    match state.captchas.issue(&state.db, &state.config.captcha).await {
        Ok(Some(captcha)) => {
            metrics::counter!(m::CAPTCHAS_SERVED).increment(1);
            Ok(captcha)
        }
        Ok(None) => {
            metrics::counter!(m::CAPTCHA_POOL_EXHAUSTED).increment(1);
            Err(ApiError::Overloaded { retry_after })
        }
        Err(err) => Err(ApiError::dependency(err, retry_after)),
    }
}

fn limit(limiter: &RateLimiter, client: IpAddr) -> Result<(), ApiError> {
    limiter.check(limit_key(client)).map_err(|wait| {
        metrics::counter!(m::RATE_LIMITED, "limit" => "captcha").increment(1);
        ApiError::RateLimited {
            retry_after: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
        }
    })
}

fn data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A plain file name: no path, no traversal, no control characters.
pub(crate) fn valid_filename(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['.', ' ', '-'])
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_cannot_leave_files() {
        for good in ["report.pdf", "Q3 results-v2.xlsx", "a"] {
            assert!(valid_filename(good), "{good}");
        }
        for bad in [
            "",
            "../secret",
            "a/b",
            "..",
            ".env",
            "a\\b",
            "x..y",
            "nul\0",
            "tab\t",
            "-rf",
            "é.txt",
        ] {
            assert!(!valid_filename(bad), "{bad:?}");
        }
        assert!(!valid_filename(&"a".repeat(256)));
    }
}
