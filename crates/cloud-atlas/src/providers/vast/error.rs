//! Vast.ai error bodies → error kinds.
//!
//! Vast answers errors in three shapes: `{"success": false, "error": "invalid_args",
//! "msg": "error 404/3603: no_such_ask Instance type by id 1234567 is not available.",
//! "ask_id": 1234567}`, `{"error": "...", "msg": "..."}`, and for rate limits
//! `{"detail": "API requests too frequent endpoint threshold=4.5"}`.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// Pause before the next request after a 429 that names no `Retry-After`.
pub const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// Whether an error says the offer is gone (rented by someone else, delisted, or
/// unable to start now): the rent loop moves on to the next offer.
pub fn is_offer_gone(e: &Error) -> bool {
    e.kind() == ErrorKind::Capacity
}

/// Map a Vast error response to an [`Error`].
///
/// - `no_such_ask` / "not available" / "no longer available" (404 or 410 on rent) →
///   `Capacity`: the offer is gone, rent another;
/// - 401, `auth_error`, "Invalid user key" (Vast answers an unknown key with 404 on
///   search) → `Unauthorized`, naming `VAST_API_KEY`;
/// - 429 → `RateLimited` with a 1 s pause hint ([`RATE_LIMIT_PAUSE`]) when the server
///   gives no `Retry-After`; except `search_quota_exceeded`, which is a quota, not a
///   burst, and is `Forbidden` so it is not retried (as the `vastai` client does);
/// - `invalid_args`, `invalid_price` → `Validation`;
/// - otherwise by status (403 Forbidden, 404 NotFound, 5xx Provider).
pub fn parse_error(status: u16, _headers: &HeaderMap, body: &str) -> Error {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        v.as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let code = field("error").unwrap_or_default();
    let msg = field("msg")
        .or_else(|| field("detail"))
        .or_else(|| field("message"))
        .or_else(|| (!code.is_empty()).then(|| code.clone()))
        .unwrap_or_else(|| {
            let t = body.trim();
            if t.is_empty() {
                format!("HTTP {status}")
            } else {
                t.chars().take(300).collect()
            }
        });
    let lower = format!("{code} {msg}").to_ascii_lowercase();
    let (kind, hint) = if lower.contains("search_quota_exceeded") {
        (
            ErrorKind::Forbidden,
            "; Vast's search quota is used up: wait before searching offers again",
        )
    } else if status == 429 || lower.contains("too frequent") {
        (ErrorKind::RateLimited, "")
    } else if lower.contains("no_such_ask")
        || lower.contains("no longer available")
        || lower.contains("is not available")
        || status == 410
    {
        (ErrorKind::Capacity, "; the offer was taken, try another")
    } else if status == 401 || code == "auth_error" || lower.contains("invalid user key") {
        (
            ErrorKind::Unauthorized,
            "; check VAST_API_KEY (cloud.vast.ai → Account → API keys)",
        )
    } else if status == 403 {
        (ErrorKind::Forbidden, "")
    } else if matches!(
        code.as_str(),
        "invalid_args" | "invalid_price" | "invalid_request"
    ) && status < 500
    {
        (ErrorKind::Validation, "")
    } else if code == "not_found" {
        (ErrorKind::NotFound, "")
    } else {
        (ErrorKind::from_status(status), "")
    };
    let mut e = Error::new(kind, format!("{msg}{hint}"));
    if kind == ErrorKind::RateLimited {
        e = e.with_retry_after(RATE_LIMIT_PAUSE);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(status: u16, body: &str) -> Error {
        parse_error(status, &HeaderMap::new(), body)
    }

    #[test]
    fn spec_bodies_map_to_kinds() {
        // createInstance 404 and 410 examples.
        let gone = p(
            404,
            r#"{"success": false, "error": "invalid_args", "msg": "error 404/3603: no_such_ask Instance type by id 1234567 is not available.", "ask_id": 1234567}"#,
        );
        assert_eq!(gone.kind(), ErrorKind::Capacity);
        assert!(is_offer_gone(&gone));
        let gone = p(
            410,
            r#"{"success": false, "error": "no_such_ask", "msg": "error 410/3907: no_such_ask Instance type 1234567 is no longer available.", "ask_id": 1234567}"#,
        );
        assert_eq!(gone.kind(), ErrorKind::Capacity);
        // createInstance 400 and 403.
        let bad = p(
            400,
            r#"{"success": false, "error": "invalid_args", "msg": "error 400/3467: Invalid args: 'id' is required and must be a valid offer ID", "ask_id": 1234567}"#,
        );
        assert_eq!(bad.kind(), ErrorKind::Validation);
        let own = p(
            403,
            r#"{"success": false, "error": "invalid_args", "msg": "error 403/3586: Offer 1234567 is not your own. Hosts can only rent their own machines.", "ask_id": 1234567}"#,
        );
        assert_eq!(own.kind(), ErrorKind::Forbidden);
        // showInstance 401; searchOffers answers a bad key with 404 "Invalid user key".
        let e = p(
            401,
            r#"{"success": false, "error": "auth_error", "msg": "Invalid user key"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(e.message().contains("VAST_API_KEY"));
        assert_eq!(
            p(404, r#"{"error": "", "msg": "Invalid user key"}"#).kind(),
            ErrorKind::Unauthorized
        );
        // destroyInstance 404.
        assert_eq!(
            p(
                404,
                r#"{"success": false, "error": "not_found", "msg": "Instance not found"}"#
            )
            .kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn rate_limits() {
        for body in [
            r#"{"detail": "API requests too frequent endpoint threshold=4.5"}"#,
            r#"{"success": false, "error": "rate_limit_exceeded", "msg": "API requests too frequent endpoint threshold=3.0"}"#,
        ] {
            let e = p(429, body);
            assert_eq!(e.kind(), ErrorKind::RateLimited, "{body}");
            assert!(e.message().contains("too frequent"));
            assert_eq!(e.retry_after(), Some(RATE_LIMIT_PAUSE));
        }
        let q = p(429, r#"{"error": "search_quota_exceeded"}"#);
        assert_eq!(q.kind(), ErrorKind::Forbidden);
        assert!(q.message().contains("quota"));
    }

    #[test]
    fn odd_bodies() {
        assert_eq!(p(502, "").message(), "HTTP 502");
        assert_eq!(
            p(502, "<html>bad gateway</html>").kind(),
            ErrorKind::Provider
        );
        assert_eq!(p(404, "").kind(), ErrorKind::NotFound);
    }
}
