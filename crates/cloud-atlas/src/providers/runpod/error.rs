//! RunPod error bodies → error kinds.
//!
//! REST v2 answers errors as RFC 9457 problem documents
//! (`{"title", "status", "detail", "errors": [..]}`, `application/problem+json`); the
//! serverless runtime answers `{"error": "..."}`. Status decides first, the body refines:
//! a `400` whose `detail` says the GPU could not be placed is [`ErrorKind::Capacity`]
//! (REST v2 documents that capacity exhaustion "currently carries no machine-readable
//! code of its own — only a human-readable `detail`"), and `402` (insufficient balance)
//! is a permanent [`ErrorKind::Forbidden`].

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// Phrases RunPod uses when no machine of the requested kind is free.
const CAPACITY_PHRASES: &[&str] = &[
    "no capacity",
    "capacity",
    "could not be placed",
    "could not find any pods",
    "no longer any instances available",
    "no instances available",
    "not enough",
    "no available",
    "out of stock",
    "insufficient resources",
    "no gpus available",
    "no machines available",
];

/// The message RunPod put in an error body (`detail` + `errors`, or `error`, or the text).
pub fn error_message(status: u16, body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let from_json = v.as_ref().and_then(|v| {
        let detail = v
            .get("detail")
            .and_then(Value::as_str)
            .or_else(|| v.get("error").and_then(Value::as_str))
            .or_else(|| v.get("message").and_then(Value::as_str))
            .or_else(|| v.get("title").and_then(Value::as_str))?;
        let errors: Vec<&str> = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Some(if errors.is_empty() {
            detail.to_string()
        } else {
            format!("{detail} ({})", errors.join("; "))
        })
    });
    from_json.unwrap_or_else(|| {
        let t = body.trim();
        if t.is_empty() {
            format!("HTTP {status}")
        } else {
            t.chars().take(300).collect()
        }
    })
}

/// Whether a message says there is no capacity for the request.
pub fn is_capacity_message(msg: &str) -> bool {
    let lower = msg.to_ascii_lowercase();
    CAPACITY_PHRASES.iter().any(|p| lower.contains(p))
}

/// Map a RunPod error response to an [`Error`] (status first, then the body).
pub fn parse_error(status: u16, _headers: &HeaderMap, body: &str) -> Error {
    let msg = error_message(status, body);
    let kind = match status {
        400 | 409 | 500..=599 if is_capacity_message(&msg) => ErrorKind::Capacity,
        402 => ErrorKind::Forbidden,
        s => ErrorKind::from_status(s),
    };
    let hint = match (kind, status) {
        (ErrorKind::Unauthorized, _) => {
            "; check RUNPOD_API_KEY (or api_key under [providers.runpod] in atlas.toml)"
        }
        (ErrorKind::Forbidden, 402) => "; add credit to the RunPod account",
        (ErrorKind::Forbidden, _) => "; the API key lacks access to this resource or pool",
        (ErrorKind::Capacity, _) => {
            "; try another GPU (--gpu), data centre (--region) or cloud type (--cloud)"
        }
        (ErrorKind::Validation, 409) => "; the pod's current status does not allow this action",
        _ => "",
    };
    Error::new(kind, format!("{msg}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Value {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/runpod/rest-v2.openapi.json"
        ))
        .unwrap()
    }

    #[test]
    fn spec_problem_examples_map_to_kinds() {
        let spec = spec();
        let h = HeaderMap::new();
        for (name, example, want) in [
            (
                "UnauthorizedError",
                "missingBearerToken",
                ErrorKind::Unauthorized,
            ),
            ("ForbiddenError", "insufficientAccess", ErrorKind::Forbidden),
            ("BadRequestError", "badRequest", ErrorKind::Validation),
            ("NotFoundError", "notFound", ErrorKind::NotFound),
            (
                "UnprocessableEntityError",
                "validationFailed",
                ErrorKind::Validation,
            ),
            (
                "TooManyRequestsError",
                "rateLimited",
                ErrorKind::RateLimited,
            ),
        ] {
            let v = spec
                .pointer(&format!(
                    "/components/responses/{name}/content/application~1problem+json/examples/{example}/value"
                ))
                .unwrap_or_else(|| panic!("{name} example"));
            let status = v["status"].as_u64().unwrap() as u16;
            let e = parse_error(status, &h, &v.to_string());
            assert_eq!(e.kind(), want, "{name}: {e}");
            assert!(e.message().starts_with(v["detail"].as_str().unwrap()));
        }
    }

    #[test]
    fn capacity_and_balance() {
        let h = HeaderMap::new();
        let body = r#"{"title":"Bad Request","status":400,"detail":"There are no longer any instances available with the requested specifications. Please refresh and try again."}"#;
        let e = parse_error(400, &h, body);
        assert_eq!(e.kind(), ErrorKind::Capacity);
        assert!(e.message().contains("--region"));
        let e = parse_error(
            402,
            &h,
            r#"{"title":"Payment Required","status":402,"detail":"insufficient balance"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        let e = parse_error(
            422,
            &h,
            r#"{"title":"Unprocessable Entity","status":422,"detail":"Request validation failed.","errors":["$: additional properties 'bogus' not allowed"]}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("bogus"), "{e}");
        let e = parse_error(
            409,
            &h,
            r#"{"title":"Conflict","status":409,"detail":"action start not valid for RUNNING"}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Validation);
    }

    #[test]
    fn serverless_bodies_and_text() {
        let h = HeaderMap::new();
        let e = parse_error(404, &h, r#"{"error":"endpoint not found"}"#);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.message(), "endpoint not found");
        assert_eq!(parse_error(500, &h, "").message(), "HTTP 500");
        assert_eq!(
            parse_error(503, &h, "upstream down").kind(),
            ErrorKind::Provider
        );
        assert!(parse_error(401, &h, "")
            .message()
            .contains("RUNPOD_API_KEY"));
    }
}
