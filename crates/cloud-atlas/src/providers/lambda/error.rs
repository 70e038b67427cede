//! Lambda error bodies (`{"error":{"code","message","suggestion"}}`) → error kinds.
//!
//! Lambda asks clients to branch on `code`, never on `message` or `suggestion`
//! (both may change), so the kind comes from the code, then from the status.
//! The suggestion is kept in the message because it says what to do.

use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::error::{Error, ErrorKind};

#[derive(Debug, Deserialize)]
struct Envelope {
    error: Body,
}

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    suggestion: Option<String>,
}

/// The error kind for a Lambda error `code` (`None` when the code says nothing beyond the status).
///
/// - `instance-operations/launch/insufficient-capacity` → `Capacity` (fail over);
/// - `global/invalid-api-key` → `Unauthorized`;
/// - `global/account-inactive`, `global/invalid-address`, `global/quota-exceeded` → `Forbidden`
///   (permanent until the account changes);
/// - `global/object-does-not-exist` → `NotFound`;
/// - `global/invalid-parameters`, `global/duplicate`, `…/file-system-in-wrong-region`,
///   `…-in-use` → `Validation`;
/// - `global/internal-error` and upstream `provider/…` codes → `Provider`.
pub fn kind_for_code(code: &str) -> Option<ErrorKind> {
    Some(match code {
        "instance-operations/launch/insufficient-capacity" => ErrorKind::Capacity,
        "global/invalid-api-key" => ErrorKind::Unauthorized,
        "global/account-inactive" | "global/invalid-address" | "global/quota-exceeded" => {
            ErrorKind::Forbidden
        }
        "global/object-does-not-exist" => ErrorKind::NotFound,
        "global/invalid-parameters"
        | "global/duplicate"
        | "instance-operations/launch/file-system-in-wrong-region"
        | "filesystems/filesystem-in-use"
        | "firewall-rulesets/firewall-ruleset-in-use" => ErrorKind::Validation,
        "global/internal-error" => ErrorKind::Provider,
        c if c.starts_with("provider/") => ErrorKind::Provider,
        c if c.contains("capacity") => ErrorKind::Capacity,
        _ => return None,
    })
}

/// Map a Lambda error response to an [`Error`].
///
/// The message is `"<message> (<code>). <suggestion>"`, plus a hint where cloud-atlas
/// knows one (the env var for a bad key, fail-over for capacity). A 429 stays
/// `RateLimited` whatever the code, so the HTTP layer honours its `Retry-After`.
pub fn parse_error(status: u16, _headers: &HeaderMap, body: &str) -> Error {
    let parsed = serde_json::from_str::<Envelope>(body).ok().map(|e| e.error);
    let (code, message, suggestion) = match parsed {
        Some(b) => (b.code, b.message, b.suggestion),
        None => (None, None, None),
    };
    let kind = if status == 429 {
        ErrorKind::RateLimited
    } else {
        code.as_deref()
            .and_then(kind_for_code)
            .unwrap_or_else(|| ErrorKind::from_status(status))
    };
    let mut msg = message.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| {
        let t = body.trim();
        if t.is_empty() || code.is_some() {
            format!("HTTP {status}")
        } else {
            t.chars().take(300).collect()
        }
    });
    if let Some(c) = &code {
        msg.push_str(&format!(" ({c})"));
    }
    if let Some(s) = suggestion.filter(|s| !s.trim().is_empty()) {
        let s = s.trim();
        msg.push_str(". ");
        msg.push_str(s);
    }
    let hint = match kind {
        ErrorKind::Unauthorized => {
            " Check LAMBDA_API_KEY (create a key at https://cloud.lambda.ai/api-keys)."
        }
        ErrorKind::Capacity => " Try another region (--region) or GPU, or another provider.",
        ErrorKind::RateLimited => {
            " Lambda allows about 1 request/s and 1 launch per 12 s; wait and try again."
        }
        _ => "",
    };
    msg.push_str(hint);
    Error::new(kind, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Error {
        parse_error(status, &HeaderMap::new(), body)
    }

    #[test]
    fn capacity_keeps_the_suggestion() {
        let e = parse(
            400,
            r#"{"error":{"code":"instance-operations/launch/insufficient-capacity","message":"Not enough capacity to fulfill launch request.","suggestion":"Choose an instance type with more availability, or try again later."}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Capacity);
        assert!(
            e.message()
                .contains("Choose an instance type with more availability"),
            "{e}"
        );
        assert!(e.message().contains("insufficient-capacity"), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn invalid_key_is_unauthorized_with_the_env_var() {
        let e = parse(
            401,
            r#"{"error":{"code":"global/invalid-api-key","message":"API key was invalid, expired, or deleted.","suggestion":"Check your API key or create a new one, then try again."}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(e.message().contains("create a new one"), "{e}");
        assert!(e.message().contains("LAMBDA_API_KEY"), "{e}");
    }

    #[test]
    fn codes_beat_statuses() {
        let cases = [
            (404, "global/object-does-not-exist", ErrorKind::NotFound),
            (400, "global/object-does-not-exist", ErrorKind::NotFound),
            (400, "global/invalid-parameters", ErrorKind::Validation),
            (400, "global/quota-exceeded", ErrorKind::Forbidden),
            (403, "global/account-inactive", ErrorKind::Forbidden),
            (
                400,
                "instance-operations/launch/file-system-in-wrong-region",
                ErrorKind::Validation,
            ),
            (503, "provider/internal-unavailable", ErrorKind::Provider),
            (500, "global/internal-error", ErrorKind::Provider),
            (429, "global/invalid-parameters", ErrorKind::RateLimited),
        ];
        for (status, code, kind) in cases {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
            assert_eq!(parse(status, &body).kind(), kind, "{status} {code}");
        }
    }

    #[test]
    fn non_json_bodies_fall_back_to_the_status() {
        let e = parse(502, "<html>bad gateway</html>");
        assert_eq!(e.kind(), ErrorKind::Provider);
        assert!(e.message().contains("bad gateway"));
        assert_eq!(parse(404, "").kind(), ErrorKind::NotFound);
        assert_eq!(parse(404, "").message(), "HTTP 404");
    }
}
