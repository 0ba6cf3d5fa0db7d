//! Request ids: a client's `x-request-id` is kept when it is well formed (1-64
//! characters of `A-Z a-z 0-9 - _ . :`), otherwise one is made up. It is
//! answered in `x-request-id`, named in every log line of the request (a
//! tracing span), in problem+json bodies, and in the job message a miss
//! queues, so the worker's log lines for that render carry it too.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// The request's id, in its extensions (for the trace span).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The id of the request this task is serving, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Whether a client's id may be kept: short, and only characters that are
/// safe in a header, a log line and a JSON string.
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn generate() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_valid(id))
        .map_or_else(generate, str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

/// The span every log line of a request is written in (tower-http's
/// `TraceLayer`): the id, the method and the path without its query
/// (partner keys travel in `?key=`).
pub fn span_for<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("-", |id| id.0.as_str());
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(is_valid("req-42"));
        assert!(is_valid("01HZX3:edge.7_b"));
        assert!(is_valid(&"a".repeat(64)));
        assert!(!is_valid(&"a".repeat(65)));
        assert!(!is_valid(""));
        assert!(!is_valid("two words"));
        assert!(!is_valid("line\nbreak"));
        assert!(!is_valid("quote\""));
        assert!(!is_valid("ünicode"));
    }

    #[test]
    fn made_up_ids_are_valid_and_differ() {
        let (a, b) = (generate(), generate());
        assert!(is_valid(&a) && a.len() == 32);
        assert_ne!(a, b);
    }
}
