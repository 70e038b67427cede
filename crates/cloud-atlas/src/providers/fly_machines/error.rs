//! Fly Machines error bodies (`{"error": "..."}`) → error kinds.

use reqwest::header::HeaderMap;

use crate::error::{Error, ErrorKind};

/// Map a Fly Machines error response to an [`Error`].
///
/// Status decides first (401 → Unauthorized, 404 → NotFound, 408 → Timeout, 422 →
/// Validation, 429 → RateLimited, 5xx → Provider); the message refines it: Fly's
/// "insufficient resources"/"no capacity" answers are `Capacity`, so callers fail over.
pub fn parse_error(status: u16, _headers: &HeaderMap, body: &str) -> Error {
    let msg = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            let t = body.trim();
            if t.is_empty() {
                format!("HTTP {status}")
            } else {
                t.chars().take(300).collect()
            }
        });
    let lower = msg.to_ascii_lowercase();
    let kind = if lower.contains("insufficient resources")
        || lower.contains("no capacity")
        || lower.contains("capacity")
    {
        ErrorKind::Capacity
    } else if status == 401 {
        ErrorKind::Unauthorized
    } else {
        ErrorKind::from_status(status)
    };
    let hint = match kind {
        ErrorKind::Unauthorized => {
            "; check FLY_API_TOKEN (a deploy or org token, `fly tokens create`)"
        }
        ErrorKind::Capacity => "; try another region (--region) or machine size",
        _ => "",
    };
    Error::new(kind, format!("{msg}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kinds() {
        let h = HeaderMap::new();
        assert_eq!(
            parse_error(404, &h, r#"{"error":"machine not found"}"#).kind(),
            ErrorKind::NotFound
        );
        let e = parse_error(
            412,
            &h,
            r#"{"error":"insufficient resources to create new machine"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Capacity);
        assert!(e.message().contains("region"));
        assert_eq!(parse_error(401, &h, "").kind(), ErrorKind::Unauthorized);
        assert_eq!(
            parse_error(422, &h, r#"{"error":"invalid"}"#).kind(),
            ErrorKind::Validation
        );
    }
}
