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

/// What replaces an environment variable's value in native JSON (`raw`) and `Debug`.
pub const ENV_REDACTED: &str = "[redacted]";

/// Field names that hold a container's environment in the providers' native JSON:
/// RunPod pods/templates/endpoints and Fly machine configs (`env`, an object), Vast
/// instances (`extra_env`, `[[k, v], …]` or `["K=V", …]`) and templates (`env`, Docker
/// flags `-e K=V -p …`).
const ENV_FIELDS: &[&str] = &["env", "extra_env", "environment", "env_vars"];

/// A provider's native JSON made safe to print: every environment variable keeps its
/// name but loses its value ([`ENV_REDACTED`]), and string values of secret-looking
/// fields (`jupyter_token`, `api_key`, …) become [`REDACTED`]. Used for every `raw`
/// a provider hands out, so `atlas get -o json` never prints `ATLAS_PRESHARED_KEY`.
pub fn redact_raw(mut v: serde_json::Value) -> serde_json::Value {
    redact_env_fields(&mut v);
    redact_value(&mut v);
    v
}

fn redact_env_fields(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if ENV_FIELDS.iter().any(|f| k.eq_ignore_ascii_case(f)) {
                    redact_env(val);
                } else {
                    redact_env_fields(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_env_fields),
        _ => {}
    }
}

/// Redact the values of one environment in any of the shapes providers use.
fn redact_env(env: &mut serde_json::Value) {
    use serde_json::Value;
    let hidden = || Value::String(ENV_REDACTED.into());
    match env {
        // {"K": "v"}
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                // Kubernetes-style {"name": K, "value": v} items keep their name.
                if !k.eq_ignore_ascii_case("name") && !k.eq_ignore_ascii_case("key") {
                    *val = hidden();
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    // ["K", "v"]
                    Value::Array(pair) => {
                        for val in pair.iter_mut().skip(1) {
                            *val = hidden();
                        }
                    }
                    // "K=v"
                    Value::String(s) => *s = redact_env_pair(s),
                    Value::Object(_) => redact_env(item),
                    other => *other = hidden(),
                }
            }
        }
        // Docker flags: "-e K=v --env K2=v2 -p 8000:8000"
        Value::String(s) => *s = redact_env_flags(s),
        Value::Null | Value::Bool(_) => {}
        other => *other = hidden(),
    }
}

fn redact_env_pair(s: &str) -> String {
    match s.split_once('=') {
        Some((k, _)) => format!("{k}={ENV_REDACTED}"),
        None => s.to_string(),
    }
}

fn redact_env_flags(s: &str) -> String {
    let mut out = Vec::new();
    let mut words = s.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-e" || w == "--env" {
            out.push(w.to_string());
            if let Some(pair) = words.next() {
                out.push(redact_env_pair(pair));
            }
        } else if let Some(pair) = w.strip_prefix("--env=") {
            out.push(format!("--env={}", redact_env_pair(pair)));
        } else if w.starts_with('-') {
            out.push(w.to_string());
        } else if w.contains('=') {
            // "K=v K2=v2" without flags.
            out.push(redact_env_pair(w));
        } else {
            out.push(w.to_string());
        }
    }
    out.join(" ")
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

    #[test]
    fn env_values_go_keys_stay_in_every_shape() {
        let raw = serde_json::json!({
            "id": "p1",
            "env": {"ATLAS_PRESHARED_KEY": "canary-1", "MODEL": "canary-2"},
            "config": {"env": {"A": "canary-3"}},
            "extra_env": [["HF", "canary-4"], "B=canary-5", ["-p 8000:8000", "1"]],
            "template": {"env": "-e X=canary-6 --env Y=canary-7 -p 8000:8000"},
            "jupyter_token": "canary-8",
            "environment": [{"name": "Z", "value": "canary-9"}],
        });
        let out = redact_raw(raw).to_string();
        assert!(!out.contains("canary"), "{out}");
        for key in [
            "ATLAS_PRESHARED_KEY",
            "MODEL",
            "\"A\"",
            "HF",
            "B=",
            "X=",
            "Y=",
            "-p 8000:8000",
            "\"Z\"",
        ] {
            assert!(out.contains(key), "{key} missing from {out}");
        }
        assert!(out.contains(ENV_REDACTED));
    }
}
