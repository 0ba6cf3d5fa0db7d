//! The api's error type. Handlers return `Result<_, ApiError>`; each variant is
//! one status code with a short plain-text body written for the client, and
//! describes itself (kind and detail) so that `/v1` answers it as
//! problem+json (`crate::plumbing::problem`).
//! Dependency failures are logged with their cause chain and answered 503 with
//! `Retry-After`; internal error text never reaches a response body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid signature")]
    BadSignature,
    /// nginx-compatible routes answer a bad hash with a configurable status.
    #[error("invalid link")]
    BadLink(StatusCode),
    #[error("link expired")]
    Expired,
    #[error("{0}")]
    Gone(String),
    #[error("an admin bearer key is required")]
    Unauthorized,
    #[error("not an admin key")]
    NotAdmin,
    #[error("{0}")]
    Forbidden(String),
    #[error("source not found")]
    NotFound,
    #[error("{0}")]
    NotFoundMessage(String),
    #[error("{0}")]
    Conflict(String),
    #[error("unknown card template")]
    UnknownTemplate,
    #[error("{0}")]
    TooLarge(String),
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("rendition is not ready yet, retry shortly")]
    NotReadyYet { retry_after: u64 },
    #[error("server is busy, retry shortly")]
    Overloaded { retry_after: u64 },
    #[error("too many requests, retry later")]
    RateLimited { retry_after: u64 },
    #[error("{message}")]
    RateLimitedMessage { retry_after: u64, message: String },
    #[error("monthly quota used up")]
    QuotaExceeded { retry_after: u64 },
    #[error("service temporarily unavailable, retry shortly")]
    Dependency {
        retry_after: u64,
        #[source]
        cause: anyhow::Error,
    },
}

impl ApiError {
    pub fn dependency(cause: impl Into<anyhow::Error>, retry_after: u64) -> Self {
        Self::Dependency {
            retry_after,
            cause: cause.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BadSignature => StatusCode::FORBIDDEN,
            Self::BadLink(code) => *code,
            Self::Expired | Self::Gone(_) => StatusCode::GONE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotAdmin | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::NotFoundMessage(_) | Self::UnknownTemplate => {
                StatusCode::NOT_FOUND
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotReadyYet { .. } | Self::Overloaded { .. } | Self::Dependency { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::RateLimited { .. }
            | Self::RateLimitedMessage { .. }
            | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The problem kind `/v1` names in `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad-request",
            Self::BadSignature => "invalid-signature",
            Self::BadLink(_) => "invalid-link",
            Self::Expired => "expired",
            Self::Gone(_) => "gone",
            Self::Unauthorized => "unauthorized",
            Self::NotAdmin | Self::Forbidden(_) => "forbidden",
            Self::NotFound | Self::NotFoundMessage(_) => "not-found",
            Self::UnknownTemplate => "unknown-template",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "too-large",
            Self::BodyTimeout => "request-timeout",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Unprocessable(_) => "unprocessable",
            Self::NotReadyYet { .. } => "not-ready",
            Self::Overloaded { .. } => "overloaded",
            Self::RateLimited { .. } | Self::RateLimitedMessage { .. } => "rate-limited",
            Self::QuotaExceeded { .. } => "quota-exceeded",
            Self::Dependency { .. } => "unavailable",
        }
    }

    /// A remembered permanent failure, answered with its recorded status.
    pub fn from_failure(http_status: u16, message: String) -> Self {
        match http_status {
            413 => Self::TooLarge(message),
            404 => Self::NotFound,
            _ => Self::Unprocessable(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::NotReadyYet { retry_after }
            | Self::Overloaded { retry_after }
            | Self::RateLimited { retry_after }
            | Self::RateLimitedMessage { retry_after, .. }
            | Self::QuotaExceeded { retry_after } => Some(*retry_after),
            Self::Dependency { retry_after, cause } => {
                tracing::warn!(error = format!("{cause:#}"), "dependency failure");
                Some(*retry_after)
            }
            _ => None,
        };
        let mut response =
            crate::plumbing::problem::plain(self.status(), self.kind(), self.to_string());
        let headers = response.headers_mut();
        if matches!(self, Self::Unauthorized) {
            // Basic lets a browser prompt for the key (card previews).
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"kiln\""),
            );
        }
        if matches!(self, Self::BodyTimeout) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_errors_hide_their_cause() {
        let err = ApiError::dependency(anyhow::anyhow!("connection refused at 10.0.0.7:5432"), 3);
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn remembered_failures_keep_their_status() {
        assert_eq!(
            ApiError::from_failure(413, "big".into()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ApiError::from_failure(422, "bad".into()).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
