//! The one error type of cloud-atlas: a kind callers match on, plus context.
//!
//! Every failure, from any provider, is an [`Error`] with an [`ErrorKind`]. The
//! kind is what callers branch on (fail over on [`ErrorKind::Capacity`], back off
//! on [`ErrorKind::RateLimited`], fix config on [`ErrorKind::Unauthorized`]);
//! the message says what to do. The provider's raw response body is kept
//! (redacted, truncated) for debugging and shows only in `{:?}` and [`Error::raw`].

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarse enough to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Credentials missing or rejected (HTTP 401).
    Unauthorized,
    /// Credentials valid but not allowed, or a permanent quota (HTTP 403).
    Forbidden,
    /// The resource does not exist (HTTP 404), or a local binary/file is missing.
    NotFound,
    /// The provider asked us to slow down (HTTP 429) and retries ran out.
    RateLimited,
    /// A deadline passed before an answer came.
    Timeout,
    /// The provider cannot do this operation (undeclared capability).
    Unsupported,
    /// Bad input: the message names the field and what is allowed.
    Validation,
    /// No machine of the requested kind is available right now; fail over.
    Capacity,
    /// The provider answered with an error we could not classify further (5xx, bad body).
    Provider,
    /// The network failed: connect, reset, TLS, DNS.
    Transport,
    /// Another live owner holds the record (HTTP 409): act through it, or retry later.
    Conflict,
    /// Anything else.
    Unknown,
}

impl ErrorKind {
    /// Stable lower-case name, used in JSON output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Validation => "validation",
            ErrorKind::Capacity => "capacity",
            ErrorKind::Provider => "provider",
            ErrorKind::Transport => "transport",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// The kind for an HTTP status code, before any provider-specific refinement.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 | 410 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            400 | 409 | 422 => ErrorKind::Validation,
            500..=599 => ErrorKind::Provider,
            _ => ErrorKind::Unknown,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::RateLimited => "RateLimited",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::Validation => "Validation",
            ErrorKind::Capacity => "Capacity",
            ErrorKind::Provider => "Provider",
            ErrorKind::Transport => "Transport",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Unknown => "Unknown",
        };
        f.write_str(s)
    }
}

/// Most bytes of a raw provider body kept on an error.
pub const RAW_BODY_LIMIT: usize = 8 * 1024;

/// A cloud-atlas error: kind, context and a message that says what to do.
///
/// Fields are private; read them through accessors so new context can be added
/// without breaking callers. The error is one pointer wide.
pub struct Error(Box<ErrorInner>);

struct ErrorInner {
    kind: ErrorKind,
    provider: Option<Cow<'static, str>>,
    operation: Option<&'static str>,
    status: Option<u16>,
    message: String,
    raw: Option<String>,
    retry_after: Option<Duration>,
    ambiguous: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` with a message that says what happened and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(ErrorInner {
            kind,
            provider: None,
            operation: None,
            status: None,
            message: message.into(),
            raw: None,
            retry_after: None,
            ambiguous: false,
            source: None,
        }))
    }

    /// Shorthand for a [`ErrorKind::Validation`] error naming `field`.
    pub fn validation(field: &str, message: impl fmt::Display) -> Error {
        Error::new(ErrorKind::Validation, format!("{field}: {message}"))
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error naming provider and operation.
    pub fn unsupported(provider: &str, operation: &'static str, why: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!("{provider} does not support {operation}: {why}"),
        )
        .with_provider(provider.to_string())
        .with_operation(operation)
    }

    /// Shorthand for a [`ErrorKind::NotFound`] error.
    pub fn not_found(what: impl fmt::Display) -> Error {
        Error::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    /// Set the provider name (kept if already set).
    pub fn with_provider(mut self, provider: impl Into<Cow<'static, str>>) -> Error {
        if self.0.provider.is_none() {
            self.0.provider = Some(provider.into());
        }
        self
    }

    /// Set the operation (`spawn`, `get`, …) (kept if already set).
    pub fn with_operation(mut self, operation: &'static str) -> Error {
        if self.0.operation.is_none() {
            self.0.operation = Some(operation);
        }
        self
    }

    /// Set the HTTP status.
    pub fn with_status(mut self, status: u16) -> Error {
        self.0.status = Some(status);
        self
    }

    /// Keep the provider's raw body. The caller redacts it first
    /// ([`crate::http::redact_text`]); it is truncated to [`RAW_BODY_LIMIT`].
    pub fn with_raw(mut self, raw: impl Into<String>) -> Error {
        let mut raw = raw.into();
        if raw.len() > RAW_BODY_LIMIT {
            let mut cut = RAW_BODY_LIMIT;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            raw.truncate(cut);
            raw.push_str("…[truncated]");
        }
        self.0.raw = Some(raw);
        self
    }

    /// Set how long the provider asked us to wait.
    pub fn with_retry_after(mut self, d: Duration) -> Error {
        self.0.retry_after = Some(d);
        self
    }

    /// Mark that the request may have reached the provider and its effect is unknown
    /// (a timeout or 5xx after a create was sent). Callers reconcile before retrying.
    pub fn with_ambiguous(mut self) -> Error {
        self.0.ambiguous = true;
        self
    }

    /// Whether the failed request may still have taken effect upstream.
    pub fn is_ambiguous(&self) -> bool {
        self.0.ambiguous
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.0.source = Some(Box::new(source));
        self
    }

    /// Replace the message, keeping everything else.
    pub fn with_message(mut self, message: impl Into<String>) -> Error {
        self.0.message = message.into();
        self
    }

    /// Change the kind, keeping everything else (used by provider `parse_error` refinements).
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.0.kind = kind;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    /// Which provider, when known.
    pub fn provider(&self) -> Option<&str> {
        self.0.provider.as_deref()
    }
    /// Which operation, when known.
    pub fn operation(&self) -> Option<&'static str> {
        self.0.operation
    }
    /// The HTTP status, when the error came from a response.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }
    /// The message, without kind and context.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The provider's raw body, redacted and truncated.
    pub fn raw(&self) -> Option<&str> {
        self.0.raw.as_deref()
    }
    /// How long the provider asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// Whether trying the same call again later may succeed.
    ///
    /// Capacity, validation and auth errors are permanent: retrying them as-is is pointless.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.0.kind,
            ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Transport
        ) || (self.0.kind == ErrorKind::Provider && self.0.status.is_some_and(|s| s >= 500))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.kind)?;
        if let Some(p) = &self.0.provider {
            write!(f, " from {p}")?;
        }
        if let Some(op) = self.0.operation {
            write!(f, " during {op}")?;
        }
        if let Some(s) = self.0.status {
            write!(f, " (HTTP {s})")?;
        }
        write!(f, ": {}", self.0.message)?;
        if let Some(src) = &self.0.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("provider", &self.0.provider)
            .field("operation", &self.0.operation)
            .field("status", &self.0.status)
            .field("message", &self.0.message)
            .field("raw", &self.0.raw)
            .field("retry_after", &self.0.retry_after)
            .field("ambiguous", &self.0.ambiguous)
            .field("source", &self.0.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::new(ErrorKind::Provider, "could not decode JSON").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_orders_context() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_provider("runpod")
            .with_operation("spawn")
            .with_status(429);
        assert_eq!(
            e.to_string(),
            "RateLimited from runpod during spawn (HTTP 429): slow down"
        );
        assert!(e.is_retryable());
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn raw_is_truncated_on_char_boundary() {
        let e = Error::new(ErrorKind::Provider, "x").with_raw("é".repeat(RAW_BODY_LIMIT));
        assert!(e.raw().unwrap().len() <= RAW_BODY_LIMIT + 20);
        assert!(!e.to_string().contains('é'));
    }
}
