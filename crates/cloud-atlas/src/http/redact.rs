//! Redaction of secrets in URLs, headers and bodies before they reach logs, errors or metrics.

use url::Url;

/// What replaces a secret.
pub const REDACTED: &str = "REDACTED";

const SECRET_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "sig",
    "signature",
    "auth",
    "credential",
];

/// Whether a parameter or field name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// The URL with secret-looking query values (and any userinfo password) replaced.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some(REDACTED));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    REDACTED.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// `text` with every known secret value replaced, plus credentials after
/// `Bearer `/`FlyV1 ` and in JSON fields whose names look secret.
pub fn redact_text(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 {
            out = out.replace(s, REDACTED);
        }
    }
    for scheme in ["Bearer ", "bearer ", "FlyV1 "] {
        out = redact_after(&out, scheme);
    }
    redact_json_fields(&out)
}

fn redact_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        let after = &rest[i + marker.len()..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        if end > 0 {
            out.push_str(REDACTED);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn redact_json_fields(text: &str) -> String {
    // Cheap pass: only parse when it looks like JSON and mentions a secret word.
    let t = text.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return text.to_string();
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            if redact_value(&mut v) {
                v.to_string()
            } else {
                text.to_string()
            }
        }
        Err(_) => text.to_string(),
    }
}

/// Replace string values of secret-looking keys in a JSON value; true when anything changed.
pub fn redact_value(v: &mut serde_json::Value) -> bool {
    let mut changed = false;
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_name(k) && val.is_string() && !k.eq_ignore_ascii_case("token_type") {
                    *val = serde_json::Value::String(REDACTED.into());
                    changed = true;
                } else {
                    changed |= redact_value(val);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                changed |= redact_value(i);
            }
        }
        _ => {}
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_query_keys() {
        let u = Url::parse("https://h/p?api_key=abc&x=1&token=t").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("abc") && !r.contains("=t"), "{r}");
        assert!(r.contains("x=1"));
    }

    #[test]
    fn redacts_text() {
        let r = redact_text(
            r#"{"error":"bad key canary-123","api_key":"zzz","n":1}"#,
            &["canary-123"],
        );
        assert!(!r.contains("canary-123") && !r.contains("zzz"), "{r}");
        let r = redact_text("Authorization: Bearer abc.def rest", &[]);
        assert_eq!(r, "Authorization: Bearer REDACTED rest");
    }
}
