//! `GET /v1/events` through a real server: resume with `Last-Event-ID` loses nothing,
//! a client too far behind is told so, filters hold.

mod support;

use std::time::Duration;

use cloud_atlas::orchestrator::OrchestratorConfig;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use support::{Server, TOKEN};

type Events = std::pin::Pin<Box<dyn Stream<Item = (String, Value)> + Send>>;

async fn open(s: &Server, query: &str, last: Option<&str>) -> Events {
    let mut rb = s
        .http
        .get(s.url(&format!("/v1/events{query}")))
        .bearer_auth(TOKEN);
    if let Some(l) = last {
        rb = rb.header("Last-Event-ID", l);
    }
    let r = rb.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    Box::pin(r.bytes_stream().eventsource().filter_map(|e| async move {
        let e = e.ok()?;
        let v: Value = serde_json::from_str(&e.data).ok()?;
        assert_eq!(v["id"], e.id.as_str(), "data.id is the SSE id");
        Some((e.id, v))
    }))
}

async fn next(es: &mut Events) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(10), es.next())
        .await
        .expect("an event within 10s")
        .expect("stream open")
}

fn seq(id: &str) -> u64 {
    id.rsplit(':').next().unwrap().parse().unwrap()
}

/// Read events until `pred` holds for one (returns everything read, in order).
async fn until(es: &mut Events, pred: impl Fn(&Value) -> bool) -> Vec<(String, Value)> {
    let mut got = Vec::new();
    loop {
        let e = next(es).await;
        let done = pred(&e.1);
        got.push(e);
        if done {
            return got;
        }
    }
}

#[tokio::test]
async fn resume_with_last_event_id_loses_nothing() {
    let mut cfg = OrchestratorConfig::default();
    cfg.heartbeat_flush_interval = Duration::from_millis(50);
    let s = Server::start_with(|b| b.allow_destructive(true), cfg).await;
    let list: Value = s.get("/v1/sessions").await.json().await.unwrap();
    let start = list["event_id"].as_str().unwrap().to_string();
    // A reference subscriber that never disconnects.
    let mut reference = open(&s, "", Some(&start)).await;
    // The client under test reads a little, then goes away.
    let mut client = open(&s, "", Some(&start)).await;
    let a = s.spawn("u1", json!({})).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = until(&mut client, |v| v["type"] == "spawned").await;
    let last_seen = first.last().unwrap().0.clone();
    drop(client);
    // While it is away: more sessions, touches (heartbeats), a stop.
    let b = s.spawn("u2", json!({})).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post_empty(&format!("/v1/sessions/{a}/touch")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.post_empty(&format!("/v1/sessions/{b}/stop"))
            .await
            .status(),
        200
    );
    let mut resumed = open(&s, "", Some(&last_seen)).await;
    let rest = until(&mut resumed, |v| {
        v["type"] == "terminated" && v["session_id"] == b.as_str()
    })
    .await;
    let all_ref = until(&mut reference, |v| {
        v["type"] == "terminated" && v["session_id"] == b.as_str()
    })
    .await;
    let client_ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|(id, _)| id.clone())
        .collect();
    let ref_ids: Vec<String> = all_ref.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        client_ids, ref_ids,
        "the resumed client saw exactly what the reference saw"
    );
    let seqs: Vec<u64> = ref_ids.iter().map(|i| seq(i)).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "ids count up without holes: {seqs:?}"
    );
    let types: Vec<&str> = all_ref
        .iter()
        .map(|(_, v)| v["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"heartbeat") && types.contains(&"terminating"),
        "{types:?}"
    );
    // Events carry the user.
    assert!(all_ref
        .iter()
        .filter(|(_, v)| v["session_id"] == a.as_str())
        .all(|(_, v)| v["user_id"] == "u1"));
    // The query parameter works for clients that cannot set headers.
    let mut q = open(
        &s,
        &format!("?last_event_id={}", urlencode(&last_seen)),
        None,
    )
    .await;
    assert_eq!(next(&mut q).await.0, rest[0].0);
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
}

#[tokio::test]
async fn a_client_too_far_behind_is_told_so_and_a_foreign_id_is_reset() {
    let mut cfg = OrchestratorConfig::default();
    cfg.heartbeat_flush_interval = Duration::from_millis(20);
    let s = Server::start_with(|b| b.allow_destructive(true).replay_buffer(16), cfg).await;
    let start = s.get("/v1/sessions").await.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut live = open(&s, "", Some(&start)).await;
    // More than 16 events while the client is away.
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            s.spawn(&format!("u{i}"), json!({})).await["session"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for id in &ids {
        assert_eq!(
            s.post_empty(&format!("/v1/sessions/{id}/stop"))
                .await
                .status(),
            200
        );
    }
    let seen = until(&mut live, |v| {
        v["type"] == "terminated" && v["session_id"] == ids[9].as_str()
    })
    .await;
    let head = seq(&seen.last().unwrap().0);
    assert!(head > 16);
    let mut behind = open(&s, "", Some(&start)).await;
    let (id, first) = next(&mut behind).await;
    assert_eq!(first["type"], "lagged", "{first}");
    let missed = first["missed"].as_u64().unwrap();
    assert!(
        missed >= head - 16,
        "at least what fell out of the buffer: {missed} vs {head}"
    );
    assert_eq!(
        seq(&id),
        missed,
        "the lagged event stands for the last missed id"
    );
    let (id2, _) = next(&mut behind).await;
    assert_eq!(
        seq(&id2),
        missed + 1,
        "then everything still held, in order"
    );
    // An id from another server process.
    let mut other = open(&s, "", Some("deadbeef:3")).await;
    assert_eq!(next(&mut other).await.1["type"], "reset");
    s.stop().await;
}

#[tokio::test]
async fn filters_by_session_and_user() {
    let s = Server::start().await;
    let start = s.get("/v1/sessions").await.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = s.spawn("ann", json!({})).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = s.spawn("ben", json!({})).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post_empty(&format!("/v1/sessions/{a}/stop")).await;
    s.post_empty(&format!("/v1/sessions/{b}/stop")).await;
    let mut by_user = open(&s, "?user=ben", Some(&start)).await;
    let got = until(&mut by_user, |v| v["type"] == "terminated").await;
    assert!(
        got.iter()
            .all(|(_, v)| v["user_id"] == "ben" && v["session_id"] == b.as_str()),
        "{got:?}"
    );
    let mut by_session = open(&s, &format!("?session={a}"), Some(&start)).await;
    let got = until(&mut by_session, |v| v["type"] == "terminated").await;
    assert!(
        got.iter().all(|(_, v)| v["session_id"] == a.as_str()),
        "{got:?}"
    );
    s.stop().await;
}
