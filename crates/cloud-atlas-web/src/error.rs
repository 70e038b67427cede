//! The one error body every route answers with, and how library errors map to it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cloud_atlas::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON body of every error: `{"kind", "message", "field"}`.
///
/// `kind` is stable and machine-readable; `message` says what happened and what to do;
/// `field` names the request field at fault, when one is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One of `validation`, `unauthorized`, `forbidden`, `csrf`, `not_found`,
    /// `rate_limited`, `timeout`, `unsupported`, `capacity`, `provider`, `transport`,
    /// `payload_too_large`, `unsupported_media_type`, `unknown`.
    #[schema(example = "validation")]
    pub kind: String,
    /// What happened and what to do.
    #[schema(example = "idle_ttl: \"soon\" is not a duration (e.g. 15m, 2h)")]
    pub message: String,
    /// The request field at fault (body field or query parameter), when one is.
    #[schema(example = "idle_ttl")]
    pub field: Option<String>,
}

/// An error answer: a status plus an [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                kind: kind.to_string(),
                message: message.into(),
                field: None,
            },
            retry_after: None,
        }
    }

    /// 400 naming `field`.
    pub fn validation(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "validation", message).with_field(field)
    }

    /// 401: the admin token is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Name the field at fault.
    pub fn with_field(mut self, field: &str) -> ApiError {
        self.body.field = Some(field.to_string());
        self
    }

    /// Rename the field at fault through `rename` (library names → API names).
    pub(crate) fn map_field(mut self, rename: impl Fn(&str) -> &str) -> ApiError {
        if let Some(f) = self.body.field.take() {
            let new = rename(&f).to_string();
            if new != f {
                self.body.message = self.body.message.replacen(&f, &new, 1);
            }
            self.body.field = Some(new);
        }
        self
    }
}

/// The field a library `Validation` message names (`"field: what is allowed"`).
fn field_of(message: &str) -> Option<&str> {
    let (f, _) = message.split_once(": ")?;
    let ok = !f.is_empty()
        && f.len() <= 64
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    ok.then_some(f)
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let (status, kind) = match e.kind() {
            ErrorKind::Validation => (StatusCode::BAD_REQUEST, "validation"),
            ErrorKind::Unauthorized => (StatusCode::BAD_GATEWAY, "provider"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ErrorKind::Unsupported => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported"),
            ErrorKind::Capacity => (StatusCode::SERVICE_UNAVAILABLE, "capacity"),
            ErrorKind::Provider => (StatusCode::BAD_GATEWAY, "provider"),
            ErrorKind::Transport => (StatusCode::BAD_GATEWAY, "transport"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "unknown"),
        };
        // A provider rejecting *our* key is a server configuration problem, not the
        // caller's credentials: say so instead of answering 401 to a valid admin token.
        let message = if e.kind() == ErrorKind::Unauthorized {
            format!(
                "the provider rejected the server's credentials: {}",
                e.message()
            )
        } else {
            e.message().to_string()
        };
        let mut out = ApiError::new(status, kind, message);
        if e.kind() == ErrorKind::Validation {
            out.body.field = field_of(e.message()).map(str::to_string);
        }
        out.retry_after = e.retry_after().map(|d| d.as_secs().max(1));
        out
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// Result of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_name_their_field() {
        let e: ApiError = Error::validation("idle_ttl", "must be greater than zero").into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body.field.as_deref(), Some("idle_ttl"));
        let e = e.map_field(|f| if f == "idle_ttl" { "ttl" } else { f });
        assert_eq!(e.body.field.as_deref(), Some("ttl"));
        assert!(e.body.message.starts_with("ttl: "));
    }

    #[test]
    fn free_text_is_not_taken_for_a_field() {
        assert_eq!(field_of("session x is not tracked: gone"), None);
        assert_eq!(field_of("gpu: \"h9\" is not a GPU"), Some("gpu"));
    }
}
