//! Fly Machines provider against Prism running Fly's published Machines spec (every
//! request must validate), plus behaviours a static contract server cannot show
//! (reconciling an ambiguous create, pacing, auth header kinds) against small local servers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use cloud_atlas::providers::fly_machines::{FlyLimits, FlyMachines, FlyMachinesBuilder};
use cloud_atlas::{AuthMode, Checked, ComputeRequest, ErrorKind, Gpu, ListFilter, Provider};
use serde_json::{json, Value};
use support::garble::{assert_nothing_created, Create, Garble};
use support::prism::Prism;

const SPEC: &str = "fly/machines-openapi3.json";

fn provider(base: &str) -> FlyMachines {
    FlyMachinesBuilder::default()
        .with_api_key("fm2_placeholder-macaroon")
        .with_base_url(base)
        .with_app("my-app")
        .with_limits(FlyLimits {
            action_interval: Duration::from_millis(10),
            action_burst: 10,
            get_interval: Duration::from_millis(10),
            get_burst: 10,
        })
        .with_reconcile(3, Duration::from_millis(20))
        .build()
        .unwrap()
}

fn request() -> ComputeRequest {
    ComputeRequest::builder()
        .cpus(2)
        .memory_gb(4)
        .image("registry.fly.io/img:latest")
        .port("8080/http")
        .region("ams")
        .env("A", "1")
        .auth(AuthMode::Bearer)
        .provider_opt("app", "my-app")
        .build()
        .unwrap()
}

#[tokio::test]
async fn lifecycle_conforms_to_the_spec() {
    let prism = Prism::start(SPEC);
    let fly = Checked::new(Arc::new(provider(&prism.base_url())));
    let c = fly.spawn(&request()).await.unwrap();
    assert_eq!(c.provider, "fly");
    assert!(c.auth.as_ref().unwrap().token.is_some());
    let id = c.id.clone();
    fly.get(&id).await.unwrap();
    fly.list(&ListFilter::all()).await.unwrap();
    fly.stop(&id).await.unwrap();
    fly.start(&id).await.unwrap();
    let inner = provider(&prism.base_url());
    inner.suspend(&id).await.unwrap();
    inner
        .wait_state(&id, "started", Duration::from_secs(5))
        .await
        .unwrap();
    fly.terminate(&id).await.unwrap();
    // An id in another app is addressed as APP/MACHINE_ID.
    fly.get("other-app/d8d9").await.unwrap();
    prism.assert_no_violations();
    assert!(prism.request_count() >= 9, "{}", prism.log());
}

#[tokio::test]
async fn creates_the_app_when_asked() {
    let prism = Prism::start(SPEC);
    let fly = provider(&prism.base_url());
    let req = ComputeRequest::builder()
        .image("img")
        .provider_opt("app", "fresh-app")
        .provider_opt("create_app", true)
        .provider_opt("org", "personal")
        .build()
        .unwrap();
    let c = fly.spawn(&req).await.unwrap();
    assert!(c.id.starts_with("fresh-app/"), "{}", c.id);
    prism.assert_no_violations();
}

#[tokio::test]
async fn honest_capabilities() {
    let prism = Prism::start(SPEC);
    let fly = Checked::new(Arc::new(provider(&prism.base_url())));
    assert_eq!(
        fly.gpu_types().await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let gpu = ComputeRequest::builder()
        .gpu(Gpu::A100_40G)
        .image("i")
        .build()
        .unwrap();
    let e = fly.spawn(&gpu).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = fly.inner().spawn(&gpu).await.unwrap_err();
    assert!(e.message().contains("retired GPU"), "{e}");
    let no_app = ComputeRequest::builder().image("i").build().unwrap();
    let fly_no_default = FlyMachinesBuilder::default()
        .with_api_key("t")
        .with_base_url(prism.base_url())
        .build()
        .unwrap();
    let e = fly_no_default.spawn(&no_app).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("app"));
    assert_eq!(prism.request_count(), 0, "rejected before any request");
}

#[derive(Default)]
struct Fake {
    machines: Vec<Value>,
    /// Answer a create 200 with the machine instead of 500.
    ok: bool,
    creates: usize,
    lists: usize,
    auth: Vec<String>,
    action_times: Vec<Instant>,
}

type Shared = Arc<Mutex<Fake>>;

async fn create(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(_app): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().unwrap();
    f.creates += 1;
    f.auth.push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
    );
    let m = json!({"id": format!("m{}", f.creates), "name": body["name"], "state": "created",
        "region": "ams", "created_at": "2026-11-27T00:00:00Z", "config": body["config"]});
    f.machines.push(m.clone());
    if f.ok {
        return (StatusCode::OK, Json(m));
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal error"})),
    )
}

async fn list(State(s): State<Shared>) -> Json<Value> {
    let mut f = s.lock().unwrap();
    f.lists += 1;
    // Eventually consistent: the first listing does not show the new machine yet.
    if f.lists == 1 {
        return Json(json!([]));
    }
    Json(Value::Array(f.machines.clone()))
}

async fn action(State(s): State<Shared>) -> StatusCode {
    s.lock().unwrap().action_times.push(Instant::now());
    StatusCode::OK
}

async fn fake_server() -> (String, Shared) {
    fake_server_answering(false).await
}

async fn fake_server_answering(ok: bool) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Fake {
        ok,
        ..Fake::default()
    }));
    let app = Router::new()
        .route("/apps/{app}/machines", post(create).get(list))
        .route("/apps/{app}/machines/{id}/start", post(action))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn ambiguous_create_is_reconciled_to_one_machine() {
    let (base, state) = fake_server().await;
    let fly = provider(&base);
    let req = request();
    let c = fly.spawn(&req).await.unwrap();
    let f = state.lock().unwrap();
    assert_eq!(f.creates, 1, "the create was not replayed");
    assert_eq!(f.machines.len(), 1);
    assert_eq!(c.id, "m1");
    assert_eq!(c.name.as_deref(), Some(req.launch_name().as_str()));
    assert!(f.lists >= 2, "listing lag was allowed for");
    assert!(
        c.auth.is_some(),
        "the minted credentials are still handed back"
    );
}

#[tokio::test]
async fn an_undecodable_2xx_create_is_adopted_from_the_listing() {
    let (upstream, state) = fake_server_answering(true).await;
    let proxy = Garble::start(
        &upstream,
        "POST",
        "/apps/my-app/machines",
        Create::Forwarded,
    )
    .await;
    let req = request();
    let c = provider(proxy.base_url()).spawn(&req).await.unwrap();
    assert_eq!(proxy.creates(), 1, "the create was not replayed");
    let f = state.lock().unwrap();
    assert_eq!(f.machines.len(), 1, "exactly one machine exists");
    assert_eq!(c.id, "m1");
    assert_eq!(c.name.as_deref(), Some(req.launch_name().as_str()));
    assert!(c.auth.is_some(), "the minted credentials come back");
}

#[tokio::test]
async fn an_undecodable_2xx_create_that_made_nothing_is_ambiguous() {
    let (upstream, state) = fake_server().await;
    let proxy = Garble::start(
        &upstream,
        "POST",
        "/apps/my-app/machines",
        Create::Swallowed,
    )
    .await;
    let req = request();
    let e = provider(proxy.base_url()).spawn(&req).await.unwrap_err();
    assert_nothing_created(&e, &req);
    assert_eq!(proxy.creates(), 1, "the create was sent exactly once");
    let f = state.lock().unwrap();
    assert!(f.machines.is_empty());
    assert_eq!(f.lists, 3, "listed after the pauses");
}

#[tokio::test]
async fn macaroons_are_sent_as_flyv1_and_user_tokens_as_bearer() {
    let (base, state) = fake_server().await;
    let req = request();
    let _ = provider(&base).spawn(&req).await;
    let user = FlyMachinesBuilder::default()
        .with_api_key("plain-user-token")
        .with_base_url(&base)
        .with_reconcile(1, Duration::from_millis(1))
        .build()
        .unwrap();
    let _ = user.spawn(&req.relaunch()).await;
    let f = state.lock().unwrap();
    assert_eq!(f.auth[0], "FlyV1 fm2_placeholder-macaroon");
    assert_eq!(f.auth[1], "Bearer plain-user-token");
}

#[tokio::test]
async fn actions_on_one_machine_are_paced() {
    let (base, state) = fake_server().await;
    let fly = FlyMachinesBuilder::default()
        .with_api_key("t")
        .with_base_url(&base)
        .with_app("my-app")
        .with_limits(FlyLimits {
            action_interval: Duration::from_millis(150),
            action_burst: 1,
            ..FlyLimits::default()
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        fly.start("m1").await.unwrap();
    }
    let f = state.lock().unwrap();
    let t = &f.action_times;
    assert_eq!(t.len(), 3);
    for w in t.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(140),
            "{:?}",
            w[1] - w[0]
        );
    }
}

// ------------------------------------------------------- no app: the whole organisation

fn org_provider(base: &str) -> FlyMachinesBuilder {
    FlyMachinesBuilder::default()
        .with_api_key("fm2_placeholder-macaroon")
        .with_base_url(base)
}

#[tokio::test]
async fn without_an_app_list_covers_the_org_and_conforms_to_the_spec() {
    let prism = Prism::start(SPEC);
    let fly = Checked::new(Arc::new(org_provider(&prism.base_url()).build().unwrap()));
    let all = fly.list(&ListFilter::all()).await.unwrap();
    prism.settle();
    let log = prism.log();
    let received: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Request received"))
        .collect();
    // `org_slug` is required by the spec: a listing without it is a violation (checked
    // below); its value is checked on the local server.
    assert!(
        received.iter().any(|l| l.contains("get /apps ")),
        "the org's apps: {log}"
    );
    assert!(
        received.iter().any(|l| l.contains("/machines")),
        "then each app's machines: {log}"
    );
    for c in &all {
        let (app, mid) = c.id.split_once('/').unwrap();
        assert!(!app.is_empty() && !mid.is_empty(), "{}", c.id);
        // The id names the app: get/stop/terminate need no configured app.
        fly.get(&c.id).await.unwrap();
    }
    let org = org_provider(&prism.base_url())
        .with_org("acme-corp")
        .build()
        .unwrap();
    org.list(&ListFilter::all()).await.unwrap();
    prism.assert_no_violations();
    let e = org_provider(&prism.base_url())
        .with_org("Acme Corp")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().starts_with("org"), "{e}");
}

#[derive(Default)]
struct Org {
    apps: usize,
    org_slugs: Vec<String>,
    in_flight: usize,
    peak: usize,
    lists: usize,
    calls: Vec<String>,
}

type SharedOrg = Arc<Mutex<Org>>;

async fn org_apps(
    State(s): State<SharedOrg>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let mut f = s.lock().unwrap();
    f.org_slugs
        .push(q.get("org_slug").cloned().unwrap_or_default());
    let apps: Vec<Value> = (0..f.apps)
        .map(|i| json!({"id": format!("id{i}"), "name": format!("app-{i}"), "machine_count": 1}))
        .chain([json!({"id": "gone", "name": "deleted-meanwhile", "machine_count": 0})])
        .collect();
    Json(json!({"apps": apps, "total_apps": f.apps + 1}))
}

async fn org_machines(
    State(s): State<SharedOrg>,
    Path(app): Path<String>,
) -> (StatusCode, Json<Value>) {
    if app == "deleted-meanwhile" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "app not found"})),
        );
    }
    {
        let mut f = s.lock().unwrap();
        f.in_flight += 1;
        f.lists += 1;
        f.peak = f.peak.max(f.in_flight);
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    s.lock().unwrap().in_flight -= 1;
    let n = app.trim_start_matches("app-");
    (
        StatusCode::OK,
        Json(json!([
            {"id": format!("m{n}"), "name": format!("atlas-{n}"), "state": "started",
             "region": "ams", "created_at": "2026-11-27T00:00:00Z", "config": {}},
            {"id": format!("gone{n}"), "name": "old", "state": "destroyed",
             "region": "ams", "created_at": "2026-11-27T00:00:00Z", "config": {}}
        ])),
    )
}

async fn org_machine(
    State(s): State<SharedOrg>,
    method: axum::http::Method,
    Path((app, id)): Path<(String, String)>,
) -> Json<Value> {
    s.lock().unwrap().calls.push(format!("{method} {app}/{id}"));
    Json(
        json!({"id": id, "name": "atlas-x", "state": "started", "region": "ams",
        "created_at": "2026-11-27T00:00:00Z", "config": {}}),
    )
}

async fn org_action(
    State(s): State<SharedOrg>,
    Path((app, id, action)): Path<(String, String, String)>,
) -> StatusCode {
    s.lock().unwrap().calls.push(format!("{action} {app}/{id}"));
    StatusCode::OK
}

async fn org_server(apps: usize) -> (String, SharedOrg) {
    let state: SharedOrg = Arc::new(Mutex::new(Org {
        apps,
        ..Org::default()
    }));
    let app = Router::new()
        .route("/apps", axum::routing::get(org_apps))
        .route("/apps/{app}/machines", axum::routing::get(org_machines))
        .route(
            "/apps/{app}/machines/{id}",
            axum::routing::get(org_machine).delete(org_machine),
        )
        .route("/apps/{app}/machines/{id}/{action}", post(org_action))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn the_org_is_listed_concurrently_with_a_bound_and_ids_name_the_app() {
    let (base, state) = org_server(20).await;
    let fly = org_provider(&base).with_org("acme").build().unwrap();
    let started = Instant::now();
    let all = fly.list(&ListFilter::all()).await.unwrap();
    let took = started.elapsed();
    let ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    let want: Vec<String> = (0..20).map(|i| format!("app-{i}/m{i}")).collect();
    assert_eq!(
        ids, want,
        "every app's live machines, in app order, as APP/MACHINE_ID"
    );
    {
        let f = state.lock().unwrap();
        assert_eq!(f.org_slugs, vec!["acme".to_string()]);
        assert_eq!(
            f.lists, 20,
            "one listing per app (the deleted one answered 404)"
        );
        assert!(f.peak >= 2, "concurrent: peak {}", f.peak);
        assert!(
            f.peak <= cloud_atlas::providers::fly_machines::LIST_CONCURRENCY,
            "bounded: peak {}",
            f.peak
        );
    }
    // 20 apps × 60 ms one after another would be 1.2 s.
    assert!(took < Duration::from_millis(900), "{took:?}");

    // APP/MACHINE_ID works for every call without a configured app.
    fly.get("app-3/m3").await.unwrap();
    fly.stop("app-3/m3").await.unwrap();
    fly.start("app-4/m4").await.unwrap();
    fly.terminate("app-5/m5").await.unwrap();
    let calls = state.lock().unwrap().calls.clone();
    assert_eq!(
        calls,
        vec![
            "GET app-3/m3",
            "stop app-3/m3",
            "start app-4/m4",
            "DELETE app-5/m5"
        ]
    );
    // A bare machine id names no app.
    let e = fly.get("m3").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("APP/MACHINE_ID"), "{e}");

    // With a configured app only that app is listed, ids stay bare.
    let one = org_provider(&base).with_app("app-7").build().unwrap();
    let listed = one.list(&ListFilter::all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "m7");
    assert_eq!(state.lock().unwrap().org_slugs.len(), 1, "no org listing");

    // No org configured: the personal one.
    org_provider(&base)
        .build()
        .unwrap()
        .list(&ListFilter::all())
        .await
        .unwrap();
    assert_eq!(state.lock().unwrap().org_slugs, vec!["acme", "personal"]);
}
