//! Fly app logs: the HTTP client ([`LogsClient`]) and a shared poller ([`LogStreamer`]).
//!
//! Fly's logs API is `GET https://api.fly.io/api/v1/apps/{app}/logs` with
//! `next_token` (a nanosecond Unix-time cursor), `region` and `instance`. It answers
//! with a JSON:API page: `{"data":[{"id", "attributes": {timestamp, message, level,
//! instance, region, meta}}], "meta":{"next_token"}}`. Attribute keys are matched
//! case-insensitively (flyctl decodes them into Go structs without tags). Older
//! servers answer with NDJSON, one attributes object per line; that is accepted too,
//! with the cursor taken as the newest timestamp + 1 ns.
//!
//! Entries come in two shapes, both read wherever an entry can appear (page
//! attributes, NDJSON lines, a single object): the flat one above, and the nested one
//! of Fly's NATS log messages and ExAtlas's NDJSON — `{"timestamp", "message", "fly":
//! {"app": {"instance", "name"}, "region"}, "log": {"level"}, "event": {"provider"}}`.
//!
//! Malformed entries (no object, no message, no parseable timestamp) are skipped and
//! counted in [`LogPage::skipped`]; they never fail a page.

mod client;
mod streamer;

pub use client::{LogsClient, LogsClientBuilder, DEFAULT_LOGS_URL, LOGS_URL_ENV};
pub use streamer::{
    LogEvent, LogStreamer, PollerEvent, StopReason, StreamerOptions, SubscribeOptions, Subscription,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// One log line of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LogEntry {
    /// The entry id (JSON:API `data[].id`), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the line was written.
    pub timestamp: DateTime<Utc>,
    /// The line.
    pub message: String,
    /// Log level (`info`, `error`, …); empty when not given.
    pub level: String,
    /// Region code (`ord`).
    pub region: String,
    /// Machine id.
    pub instance: String,
    /// The app the line belongs to.
    pub app: String,
    /// Who emitted it (`app`, `runner`, `proxy`), from `meta.event.provider`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl LogEntry {
    /// The entry's time as nanoseconds since the Unix epoch (the API's cursor unit).
    pub fn timestamp_nanos(&self) -> i64 {
        self.timestamp.timestamp_nanos_opt().unwrap_or(i64::MAX)
    }
}

/// What to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct LogQuery {
    /// The app.
    pub app: String,
    /// Only this region.
    pub region: Option<String>,
    /// Only this Machine.
    pub instance: Option<String>,
    /// The cursor (`next_token`): nanosecond Unix time; empty = most recent 100 lines.
    pub next_token: Option<String>,
}

impl LogQuery {
    /// All logs of `app`, starting with the most recent page.
    pub fn new(app: impl Into<String>) -> LogQuery {
        LogQuery {
            app: app.into(),
            ..LogQuery::default()
        }
    }
    /// Only lines from `region`.
    pub fn region(mut self, region: impl Into<String>) -> LogQuery {
        self.region = Some(region.into());
        self
    }
    /// Only lines from Machine `instance`.
    pub fn instance(mut self, instance: impl Into<String>) -> LogQuery {
        self.instance = Some(instance.into());
        self
    }
    /// Start after this cursor.
    pub fn next_token(mut self, token: impl Into<String>) -> LogQuery {
        self.next_token = Some(token.into());
        self
    }
    /// Start at this time (the cursor is nanoseconds since the epoch).
    pub fn since(self, t: DateTime<Utc>) -> LogQuery {
        let n = t.timestamp_nanos_opt().unwrap_or(0);
        self.next_token(n.to_string())
    }
}

/// One page of logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogPage {
    /// Entries in the order the server gave them.
    pub entries: Vec<LogEntry>,
    /// The cursor for the next page, when the server gave one.
    pub next_token: Option<String>,
    /// Entries skipped as malformed.
    pub skipped: usize,
}

/// Parse a logs response body: a JSON:API page, or NDJSON (one entry per line).
///
/// Never fails: an unreadable body is a page with nothing in it and `skipped` set.
pub fn parse_page(app: &str, body: &str) -> LogPage {
    let trimmed = body.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(trimmed) {
            if get_ci(&doc, "data").is_some() || get_ci(&doc, "meta").is_some() {
                return parse_jsonapi(app, &doc);
            }
            // One entry: a single NDJSON line, or one pretty-printed object.
            let mut page = LogPage::default();
            match ndjson_entry(app, &doc) {
                Some(e) => {
                    page.next_token = Some(e.timestamp_nanos().saturating_add(1).to_string());
                    page.entries.push(e);
                }
                None => page.skipped = 1,
            }
            return page;
        }
    }
    parse_ndjson(app, body)
}

fn parse_jsonapi(app: &str, doc: &Map<String, Value>) -> LogPage {
    let mut page = LogPage::default();
    match get_ci(doc, "data") {
        Some(Value::Array(items)) => {
            for item in items {
                let parsed = item.as_object().and_then(|o| {
                    let id = get_ci(o, "id").and_then(scalar_string);
                    let attrs = get_ci(o, "attributes")?.as_object()?;
                    entry_from_attributes(app, attrs, id)
                });
                match parsed {
                    Some(e) => page.entries.push(e),
                    None => page.skipped += 1,
                }
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => page.skipped += 1,
    }
    page.next_token = get_ci(doc, "meta")
        .and_then(Value::as_object)
        .and_then(|m| get_ci(m, "next_token"))
        .and_then(scalar_string)
        .filter(|s| !s.is_empty());
    page
}

fn parse_ndjson(app: &str, body: &str) -> LogPage {
    let mut page = LogPage::default();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| ndjson_entry(app, v.as_object()?));
        match parsed {
            Some(e) => page.entries.push(e),
            None => page.skipped += 1,
        }
    }
    page.next_token = page
        .entries
        .iter()
        .map(LogEntry::timestamp_nanos)
        .max()
        .map(|n| n.saturating_add(1).to_string());
    page
}

/// One NDJSON object: `{"attributes": …}` wrappers as well as bare attribute objects.
fn ndjson_entry(app: &str, o: &Map<String, Value>) -> Option<LogEntry> {
    match get_ci(o, "attributes").and_then(Value::as_object) {
        Some(a) => entry_from_attributes(app, a, get_ci(o, "id").and_then(scalar_string)),
        None => entry_from_attributes(app, o, None),
    }
}

/// Build an entry from a JSON:API `attributes` object (keys matched case-insensitively).
///
/// Two shapes are read: the flat one (`level`, `region`, `instance` at the top, or
/// `region`/`instance` under `meta`, provider under `meta.event`) and the nested one of
/// Fly's NATS log messages (`log.level`, `fly.region`, `fly.app.instance`, provider
/// under `event`). A non-empty flat field wins over a nested one.
fn entry_from_attributes(
    app: &str,
    a: &Map<String, Value>,
    id: Option<String>,
) -> Option<LogEntry> {
    let message = get_ci(a, "message")?.as_str()?.to_string();
    let ts = get_ci(a, "timestamp")?.as_str()?;
    let timestamp = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    // The first non-empty string or number found at one of `paths`.
    let first = |paths: &[&[&str]]| {
        paths.iter().find_map(|p| {
            at_path(a, p)
                .and_then(scalar_string)
                .filter(|s| !s.is_empty())
        })
    };
    Some(LogEntry {
        id,
        timestamp,
        message,
        level: first(&[&["level"], &["log", "level"]]).unwrap_or_default(),
        region: first(&[&["region"], &["meta", "region"], &["fly", "region"]]).unwrap_or_default(),
        instance: first(&[
            &["instance"],
            &["meta", "instance"],
            &["fly", "app", "instance"],
        ])
        .unwrap_or_default(),
        app: app.to_string(),
        provider: first(&[&["meta", "event", "provider"], &["event", "provider"]]),
    })
}

/// The value at `path` through nested objects (keys matched case-insensitively).
fn at_path<'a>(o: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = o;
    for k in parents {
        cur = get_ci(cur, k)?.as_object()?;
    }
    get_ci(cur, last)
}

fn get_ci<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str =
        include_str!("../../../tests/fixtures/fly/samples/logs-api-response.constructed.json");
    const NDJSON: &str = include_str!(
        "../../../tests/fixtures/fly/samples/logs-ndjson-normalized.constructed.ndjson"
    );

    #[test]
    fn jsonapi_sample() {
        let p = parse_page("my-app", PAGE);
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.skipped, 0);
        assert_eq!(p.next_token.as_deref(), Some("1779235201987654322"));
        let e = &p.entries[0];
        assert_eq!(e.message, "Listening on 0.0.0.0:8080");
        assert_eq!(e.region, "ord");
        assert_eq!(e.instance, "3d8d9014b32d89");
        assert_eq!(e.provider.as_deref(), Some("app"));
        assert_eq!(e.id.as_deref(), Some("1779235200123456789"));
        assert_eq!(e.timestamp_nanos(), 1779235200123456789);
        assert_eq!(p.entries[1].provider.as_deref(), Some("runner"));
    }

    #[test]
    fn ndjson_sample_and_cursor() {
        let p = parse_page("my-app", NDJSON);
        assert_eq!(p.entries.len(), 4);
        assert_eq!(p.entries[3].level, "error");
        assert_eq!(p.entries[2].region, "ams");
        // Newest is 2026-05-20T00:00:03Z.
        let newest = DateTime::parse_from_rfc3339("2026-05-20T00:00:03Z")
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        assert_eq!(p.next_token, Some((newest + 1).to_string()));
    }

    const NESTED: &str =
        include_str!("../../../tests/fixtures/fly/samples/nats-log-message.constructed.json");

    fn assert_nested_fields(e: &LogEntry) {
        assert_eq!(e.message, "Listening on 0.0.0.0:8080");
        assert_eq!(e.level, "info");
        assert_eq!(e.region, "ord");
        assert_eq!(e.instance, "3d8d9014b32d89");
        assert_eq!(e.provider.as_deref(), Some("app"));
        assert_eq!(e.timestamp_nanos(), 1779235200123456789);
    }

    #[test]
    fn nested_shape_as_a_document_as_ndjson_and_inside_a_jsonapi_page() {
        // The sample as it is: one pretty-printed object.
        let p = parse_page("my-app", NESTED);
        assert_eq!((p.entries.len(), p.skipped), (1, 0), "{p:?}");
        assert_nested_fields(&p.entries[0]);

        // NDJSON: nested lines, flat lines and a bad line mixed.
        let line: Value = serde_json::from_str(NESTED).unwrap();
        let flat = r#"{"timestamp":"2026-05-20T00:00:01Z","message":"flat","level":"warn","region":"ams","instance":"m2"}"#;
        let body = format!("{line}\n{flat}\nnot json\n{line}\n");
        let p = parse_page("my-app", &body);
        assert_eq!((p.entries.len(), p.skipped), (3, 1), "{p:?}");
        assert_nested_fields(&p.entries[0]);
        assert_nested_fields(&p.entries[2]);
        assert_eq!(
            (p.entries[1].level.as_str(), p.entries[1].region.as_str()),
            ("warn", "ams")
        );

        // A JSON:API page whose attributes have the nested shape.
        let page = format!(
            r#"{{"data":[{{"id":"1779235200123456789","attributes":{line}}}],"meta":{{"next_token":"1779235200123456790"}}}}"#
        );
        let p = parse_page("my-app", &page);
        assert_eq!((p.entries.len(), p.skipped), (1, 0), "{p:?}");
        assert_nested_fields(&p.entries[0]);
        assert_eq!(p.next_token.as_deref(), Some("1779235200123456790"));
    }

    #[test]
    fn flat_fields_win_over_nested_ones_and_odd_nesting_is_ignored() {
        let body = r#"{"timestamp":"2026-05-20T00:00:00Z","message":"m","level":"error","region":"fra","instance":"i1","fly":{"app":{"instance":"other"},"region":"ord"},"log":{"level":"info"}}
{"timestamp":"2026-05-20T00:00:00Z","message":"m","fly":"not an object","log":7}
{"timestamp":"2026-05-20T00:00:00Z","message":"m","fly":{"app":[1],"region":{"x":1}},"log":{"level":null}}"#;
        let p = parse_page("a", body);
        assert_eq!(p.entries.len(), 3, "{p:?}");
        let e = &p.entries[0];
        assert_eq!(
            (e.level.as_str(), e.region.as_str(), e.instance.as_str()),
            ("error", "fra", "i1")
        );
        for e in &p.entries[1..] {
            assert_eq!(
                (e.level.as_str(), e.region.as_str(), e.instance.as_str()),
                ("", "", "")
            );
        }
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let body = r#"{"data":[
            {"id":"1","attributes":{"Timestamp":"2026-05-20T00:00:00Z","Message":"caps ok","Level":"info","Meta":{"Region":"ams","Instance":"m1","Event":{"Provider":"app"}}}},
            {"id":"2"},
            {"id":"3","attributes":{"timestamp":"yesterday","message":"bad time"}},
            {"id":"4","attributes":{"timestamp":"2026-05-20T00:00:00Z"}},
            7,
            {"id":"5","attributes":"nope"}
        ],"meta":{"next_token":"5"}}"#;
        let p = parse_page("a", body);
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.skipped, 5);
        assert_eq!(p.entries[0].region, "ams");
        assert_eq!(p.entries[0].provider.as_deref(), Some("app"));
        assert_eq!(parse_page("a", "not json\n{\"x\":1}\n").skipped, 2);
        assert_eq!(parse_page("a", "").entries.len(), 0);
        let empty = parse_page("a", r#"{"data":[],"meta":{"next_token":""}}"#);
        assert!(empty.entries.is_empty() && empty.next_token.is_none());
    }
}
