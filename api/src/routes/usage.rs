//! Usage reports.
//!
//! ```text
//! GET /v1/usage?partner=&from=&to=&by=hour|day&format=json|csv
//! GET /usage?key=K            a partner's last 30 days, as a page with a chart
//! ```
//! Admins (bearer key) may ask for any partner or all of them; a partner key
//! sees its own usage only. `from`/`to` are RFC 3339 or dates (UTC); `to`
//! defaults to now and `from` to 24 hours (by hour) or 30 days (by day) before.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use kiln_infra::usage::{self, Period, UsageRow};

use crate::partners::admin::Caller;
use crate::plumbing::error::ApiError;
use crate::state::{AppState, SharedState};

mod page;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// A partner's name (admins; a partner key sees its own usage only).
    partner: Option<String>,
    /// RFC 3339 or YYYY-MM-DD (UTC); default 24 h or 30 days before `to`.
    from: Option<String>,
    /// RFC 3339 or YYYY-MM-DD (UTC), exclusive; default now.
    to: Option<String>,
    /// `hour` or `day` (default).
    by: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The partner a caller may report on: its own, or for admins the one named.
async fn scope(
    state: &AppState,
    caller: &Caller,
    named: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    match (caller, named) {
        (Caller::Partner(owner), None) => Ok(Some(owner.partner_id)),
        (Caller::Partner(owner), Some(name)) if name == owner.partner => Ok(Some(owner.partner_id)),
        (Caller::Partner(_), Some(_)) => Err(ApiError::NotAdmin),
        (Caller::Admin, None) => Ok(None),
        (Caller::Admin, Some(name)) => usage::partner_id(&state.db, name)
            .await
            .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))?
            .map(Some)
            .ok_or_else(|| ApiError::NotFoundMessage(format!("no partner named {name:?}"))),
    }
}

fn instant(value: Option<&str>, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            usage::parse_instant(v).ok_or_else(|| {
                ApiError::BadRequest(format!("{name} must be RFC 3339 or YYYY-MM-DD"))
            })
        })
        .transpose()
}

#[utoipa::path(
    get, path = "/v1/usage", operation_id = "usageReport", tag = "usage",
    summary = "Usage per partner, kind and hour or day",
    params(UsageQuery),
    responses(
        (status = 200, description = "rows ordered by period, partner, kind", content(
            (Vec<kiln_infra::usage::UsageRow> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "invalid range or parameter", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 401, description = "no key", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "a partner asking for another partner", body = crate::openapi::ProblemBody, content_type = "application/problem+json"), (status = 404, description = "no partner of that name", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "a dependency is unavailable", body = crate::openapi::ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = []), ("partner" = []), ("partnerHeader" = []))
)]
pub async fn report(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let period = Period::parse(query.by.as_deref().unwrap_or("day"))
        .ok_or_else(|| ApiError::BadRequest("by must be hour or day".into()))?;
    let csv = match query.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        _ => return Err(ApiError::BadRequest("format must be json or csv".into())),
    };
    let to = instant(query.to.as_deref(), "to")?.unwrap_or_else(Utc::now);
    let default_span = match period {
        Period::Hour => TimeDelta::hours(24),
        Period::Day => TimeDelta::days(30),
    };
    let from = instant(query.from.as_deref(), "from")?.unwrap_or(to - default_span);
    if from >= to || to - from > period.longest_range() {
        return Err(ApiError::BadRequest(format!(
            "from must be before to, at most {} days apart for by={}",
            period.longest_range().num_days(),
            query.by.as_deref().unwrap_or("day")
        )));
    }
    let partner = scope(&state, &caller, query.partner.as_deref()).await?;
    let rows = rows(&state, period, partner, from, to).await?;
    if csv {
        let mut response = usage::to_csv(&rows).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(rows).into_response())
}

async fn rows(
    state: &AppState,
    period: Period,
    partner: Option<i64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>, ApiError> {
    usage::report(&state.db, period, partner, from, to)
        .await
        .map_err(|e| ApiError::dependency(e, state.config.retry_after_secs))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    partner: Option<String>,
}

/// The usage page: daily requests of the last 30 days as a bar chart (inline
/// SVG, no scripts) and totals per kind.
pub async fn usage_page(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let partner = scope(&state, &caller, query.partner.as_deref()).await?;
    let title = match (&caller, query.partner.as_deref()) {
        (Caller::Partner(owner), _) => owner.partner.clone(),
        (Caller::Admin, Some(name)) => name.to_owned(),
        (Caller::Admin, None) => "all partners".to_owned(),
    };
    let to = Utc::now();
    let days = page::DAYS;
    let from = (to - TimeDelta::days(days - 1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or(to, |t| t.and_utc());
    let rows = rows(&state, Period::Day, partner, from, to + TimeDelta::days(1)).await?;
    let html = page::render(&title, from, &rows);
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
