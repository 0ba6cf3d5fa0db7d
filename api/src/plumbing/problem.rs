//! One error model for `/v1`: every error is `application/problem+json`
//! (RFC 9457) with `type`, `title`, `status`, `detail` and `request_id`.
//!
//! Handlers build errors through the constructors here (or return an
//! [`ApiError`](crate::plumbing::error::ApiError), which describes itself the same
//! way); [`v1_problems`] answers every `/v1` error as a problem, including
//! the ones the framework writes itself (a malformed JSON body, a body over
//! its limit, a method the route does not have, an unknown path). Image and
//! card routes keep their short plain-text bodies: browsers and `<img>` tags
//! read those, not scripts.
//!
//! `type` is a URN naming the kind of problem (`urn:kiln:problem:rate-limited`):
//! stable, machine-readable, and no promise of a web page behind it.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// The most of a framework-written error body kept as the detail.
const DETAIL_LIMIT: usize = 1024;

/// What an error response says, carried in its extensions so that `/v1`
/// can answer it as a problem without parsing its text.
#[derive(Clone, Debug)]
pub struct Described {
    pub kind: &'static str,
    pub detail: String,
}

/// A problem about to be answered.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    members: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            members: Map::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// A problem for a response this module did not build: its kind from the
    /// status alone.
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::new(status, kind_of_status(status), detail)
    }

    /// An extension member (e.g. the invalid items of a bulk job).
    pub fn with(mut self, name: &str, value: impl serde::Serialize) -> Self {
        self.members.insert(
            name.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    fn body(self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            format!("urn:kiln:problem:{}", self.kind).into(),
        );
        body.insert("title".into(), title(self.kind).into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.into());
        if let Some(id) = crate::plumbing::request_id::current() {
            body.insert("request_id".into(), id.into());
        }
        for (name, value) in self.members {
            body.entry(name).or_insert(value);
        }
        Value::Object(body)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, self.body().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn kind_of_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "request-timeout",
        409 => "conflict",
        410 => "gone",
        413 => "too-large",
        415 => "unsupported-media-type",
        422 => "unprocessable",
        429 => "rate-limited",
        503 => "unavailable",
        s if s >= 500 => "server-error",
        _ => "client-error",
    }
}

/// `rate-limited` → `Rate limited`.
fn title(kind: &str) -> String {
    let words = kind.replace('-', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Answers every `/v1` error as problem+json, keeping the response's
/// headers (`Retry-After`, `WWW-Authenticate`, …).
pub async fn v1_problems(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes() == CONTENT_TYPE.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let problem = match parts.extensions.get::<Described>() {
        Some(described) => Problem::new(status, described.kind, described.detail.clone()),
        None => {
            // Written by the framework (a rejected body, an unknown route):
            // short text of its own, never internal state.
            let text = axum::body::to_bytes(body, DETAIL_LIMIT)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .unwrap_or_default();
            let detail = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            Problem::for_status(status, detail)
        }
    };
    let mut answer = problem.into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

/// A plain error response that also describes itself for `/v1`.
pub fn plain(status: StatusCode, kind: &'static str, detail: String) -> Response {
    let mut response = (status, format!("{detail}\n")).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.extensions_mut().insert(Described { kind, detail });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_kind_status_and_detail() {
        let body = Problem::bad_request("3 invalid item(s)")
            .with("items", [1, 2, 3])
            .body();
        assert_eq!(body["type"], "urn:kiln:problem:bad-request");
        assert_eq!(body["title"], "Bad request");
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "3 invalid item(s)");
        assert_eq!(body["items"], serde_json::json!([1, 2, 3]));
    }

    #[test]
    fn members_cannot_overwrite_the_standard_ones() {
        let body = Problem::new(StatusCode::CONFLICT, "conflict", "taken")
            .with("status", 200)
            .body();
        assert_eq!(body["status"], 409);
    }

    #[test]
    fn statuses_have_kinds() {
        assert_eq!(
            kind_of_status(StatusCode::TOO_MANY_REQUESTS),
            "rate-limited"
        );
        assert_eq!(
            kind_of_status(StatusCode::METHOD_NOT_ALLOWED),
            "method-not-allowed"
        );
        assert_eq!(kind_of_status(StatusCode::IM_A_TEAPOT), "client-error");
        assert_eq!(title("method-not-allowed"), "Method not allowed");
    }
}
