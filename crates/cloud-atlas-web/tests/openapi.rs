//! The OpenAPI document validates against the OpenAPI 3.1 schema, every `$ref` in it
//! resolves, and every route in it answers as documented: each documented operation is
//! called through a real server, its status must be one the document lists for it, and
//! its JSON body must validate against the documented schema.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::{Server, TOKEN};

fn doc() -> Value {
    serde_json::to_value(cloud_atlas_web::openapi()).unwrap()
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let d = doc();
    assert!(
        d["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        d["openapi"]
    );
    let schema: Value = serde_json::from_str(include_str!("fixtures/oas-3.1-schema.json")).unwrap();
    let v = jsonschema::validator_for(&schema).expect("the OAS 3.1 schema compiles");
    let errors: Vec<String> = v
        .iter_errors(&d)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not a valid OpenAPI 3.1 document:\n{}",
        errors.join("\n")
    );
    // Every $ref points at something that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        out.push(x.as_str().unwrap().to_string());
                    }
                    refs(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&d, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let ptr = r.strip_prefix('#').expect("local refs only");
        assert!(d.pointer(ptr).is_some(), "dangling $ref {r}");
    }
    // The schemas really constrain bodies (the route checks below are not vacuous).
    let mut list = json!({"$ref": "#/components/schemas/SessionList"});
    list["components"] = d["components"].clone();
    let v = jsonschema::validator_for(&list).unwrap();
    assert!(
        v.is_valid(&json!({"sessions": [], "event_id": "e:0", "as_of": "2026-01-01T00:00:00Z"}))
    );
    assert!(!v.is_valid(
        &json!({"sessions": "many", "event_id": "e:0", "as_of": "2026-01-01T00:00:00Z"})
    ));
    assert!(!v.is_valid(
        &json!({"sessions": [{"id": 3}], "event_id": "e:0", "as_of": "2026-01-01T00:00:00Z"})
    ));
    assert!(!v.is_valid(&json!({"event_id": "e:0"})));
    // Every operation declares auth and the 401 it answers without it.
    for (path, item) in d["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            assert!(op.get("security").is_some(), "{m} {path} has no security");
            assert!(
                op["responses"].get("401").is_some(),
                "{m} {path} documents no 401"
            );
        }
    }
}

/// Check one answer against the document: its status is documented for (method, path),
/// and a JSON body validates against the documented schema.
async fn check(
    d: &Value,
    seen: &mut BTreeSet<(String, String, u16)>,
    method: &str,
    path: &str,
    r: reqwest::Response,
) -> Value {
    let status = r.status().as_u16();
    let op = &d["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let resp = &op["responses"][status.to_string()];
    assert!(
        resp.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    seen.insert((method.to_string(), path.to_string(), status));
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let Some(content) = resp.get("content") else {
        assert!(
            text.is_empty(),
            "{method} {path} {status}: undocumented body {text}"
        );
        return Value::Null;
    };
    let (media, spec) = content.as_object().unwrap().iter().next().unwrap();
    assert!(
        ct.starts_with(media.as_str()),
        "{method} {path} {status}: content-type {ct}, documented {media}"
    );
    if media != "application/json" {
        return Value::Null;
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let mut schema = spec["schema"].clone();
    schema["components"] = d["components"].clone();
    let v = jsonschema::validator_for(&schema).expect("response schema compiles");
    let errors: Vec<String> = v
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: body does not match the document:\n{}\n{body}",
        errors.join("\n")
    );
    body
}

#[tokio::test]
async fn every_route_answers_as_documented() {
    let s = Server::start().await;
    let d = doc();
    // The served document is this one.
    let served: Value = s.get("/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(served, d);
    let mut seen = BTreeSet::new();
    let post = |p: &str, b: Value| {
        s.http
            .post(s.url(&format!("/v1{p}")))
            .bearer_auth(TOKEN)
            .json(&b)
    };
    let get = |p: &str| s.http.get(s.url(&format!("/v1{p}"))).bearer_auth(TOKEN);

    let body = json!({"user": "doc", "gpu": "l4", "image": "ghcr.io/acme/app:1", "ports": ["8000/http"], "auth": "bearer", "idle_ttl": "10m"});
    let created = check(
        &d,
        &mut seen,
        "post",
        "/sessions",
        post("/sessions", body).send().await.unwrap(),
    )
    .await;
    let id = created["session"]["id"].as_str().unwrap().to_string();
    check(
        &d,
        &mut seen,
        "post",
        "/sessions",
        post(
            "/sessions",
            json!({"user": "doc", "image": "x", "idle_ttl": "?"}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let r = s
        .http
        .post(s.url("/v1/sessions"))
        .bearer_auth(TOKEN)
        .body("x")
        .send()
        .await
        .unwrap();
    check(&d, &mut seen, "post", "/sessions", r).await;
    let r = s
        .http
        .post(s.url("/v1/sessions"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    check(&d, &mut seen, "post", "/sessions", r).await;
    let r = post(
        "/sessions",
        json!({"user": "doc", "image": "x", "gpu": "mi300x"}),
    )
    .send()
    .await
    .unwrap();
    check(&d, &mut seen, "post", "/sessions", r).await;

    check(
        &d,
        &mut seen,
        "get",
        "/sessions",
        get("/sessions").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/sessions",
        get("/sessions?user=doc&status=active")
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/sessions",
        get("/sessions?status=zzz").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/sessions",
        s.http.get(s.url("/v1/sessions")).send().await.unwrap(),
    )
    .await;

    let one = format!("/sessions/{id}");
    check(
        &d,
        &mut seen,
        "get",
        "/sessions/{id}",
        get(&one).send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/sessions/{id}",
        get("/sessions/nope").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/sessions/{id}",
        s.http
            .get(s.url(&format!("/v1{one}")))
            .send()
            .await
            .unwrap(),
    )
    .await;

    check(
        &d,
        &mut seen,
        "post",
        "/sessions/{id}/touch",
        post(&format!("{one}/touch"), json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "post",
        "/sessions/{id}/touch",
        post("/sessions/nope/touch", json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "post",
        "/sessions/{id}/touch",
        s.http
            .post(s.url(&format!("/v1{one}/touch")))
            .send()
            .await
            .unwrap(),
    )
    .await;

    check(
        &d,
        &mut seen,
        "get",
        "/providers",
        get("/providers").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/providers",
        s.http.get(s.url("/v1/providers")).send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/gpus",
        get("/gpus").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/gpus",
        get("/gpus?gpu=nope").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/gpus",
        s.http.get(s.url("/v1/gpus")).send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/spend",
        get("/spend").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/spend",
        get("/spend?who=x").send().await.unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "get",
        "/spend",
        s.http.get(s.url("/v1/spend")).send().await.unwrap(),
    )
    .await;

    // The event stream: documented content type (its body is a stream, checked in events.rs).
    let r = get("/events").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        d["paths"]["/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            .is_object()
    );
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    seen.insert(("get".into(), "/events".into(), 200));
    drop(r);
    check(
        &d,
        &mut seen,
        "get",
        "/events",
        s.http.get(s.url("/v1/events")).send().await.unwrap(),
    )
    .await;

    check(
        &d,
        &mut seen,
        "post",
        "/sessions/{id}/stop",
        post(&format!("{one}/stop"), json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "post",
        "/sessions/{id}/stop",
        post(&format!("{one}/stop"), json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check(
        &d,
        &mut seen,
        "post",
        "/sessions/{id}/stop",
        s.http
            .post(s.url(&format!("/v1{one}/stop")))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Every documented operation was called and answered with a documented success.
    for (path, item) in d["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            assert!(
                seen.iter()
                    .any(|(sm, sp, st)| sm == m && sp == path && *st < 300),
                "{m} {path} was never exercised with success"
            );
        }
    }
    s.stop().await;
}
