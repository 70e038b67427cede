//! Lambda Cloud provider against Prism running Lambda's published 1.8.3 spec (every
//! request must validate: `prism.assert_no_violations()` in each test), plus behaviours a
//! static contract server cannot show, each against a tiny local server that answers
//! one scripted way and records what it received:
//! - no region has capacity (the spec's only catalog example has capacity in us-west-1,
//!   so the published samples' catalog is served instead) and a launch answered with
//!   Lambda's insufficient-capacity error;
//! - an ambiguous launch (5xx after sending) reconciled by listing;
//! - pacing: spacing of requests and of launches, and 429 + `Retry-After`.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::Router;
use cloud_atlas::http::RetryConfig;
use cloud_atlas::providers::lambda::{Lambda, LambdaBuilder, LambdaLimits};
use cloud_atlas::spec::LAUNCH_ID_LABEL;
use cloud_atlas::{
    AuthMode, Checked, ComputeRequest, ComputeStatus, ErrorKind, Gpu, ListFilter, Provider,
};
use serde_json::{json, Value};
use support::garble::{assert_nothing_created, Create, Garble};
use support::prism::{fixture, Prism};

const SPEC: &str = "lambda/cloud-api-1.8.3.openapi.json";
/// The id every instance example in the spec carries.
const EXAMPLE_ID: &str = "0920582c7ff041399e34823a0be62549";

fn builder(base: &str) -> LambdaBuilder {
    LambdaBuilder::default()
        .with_api_key("lambda-test-key-0123456789")
        .with_base_url(base)
        .with_limits(LambdaLimits::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
        ))
        .with_reconcile(3, Duration::from_millis(20))
}

fn provider(base: &str) -> Lambda {
    builder(base).build().unwrap()
}

fn a10() -> cloud_atlas::spec::ComputeRequestBuilder {
    ComputeRequest::builder()
        .gpu(Gpu::A10)
        .image("ghcr.io/acme/infer:1")
        .provider_opt("ssh_key", "my-public-key")
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("lambda/samples/{name}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

// ---------------------------------------------------------------- Prism (the spec)

#[tokio::test]
async fn catalog_lists_instance_types_with_live_regions() {
    let prism = Prism::start(SPEC);
    let lambda = Checked::new(Arc::new(provider(&prism.base_url())));
    let types = lambda.gpu_types().await.unwrap();
    assert_eq!(types.len(), 1, "{types:?}");
    let gh = &types[0];
    assert_eq!(gh.id, "gpu_1x_gh200");
    assert_eq!(gh.gpu, Some(Gpu::GH200));
    assert_eq!(gh.price_on_demand, Some(1.49));
    assert_eq!(gh.regions, vec!["us-west-1"]);
    // Cached: a second call within the TTL sends nothing.
    let before = prism.request_count();
    lambda.gpu_types().await.unwrap();
    assert_eq!(prism.request_count(), before);
    prism.assert_no_violations();
}

#[tokio::test]
async fn spawn_a10_with_ssh_key_ports_and_auth() {
    let prism = Prism::start(SPEC);
    let lambda = Checked::new(Arc::new(provider(&prism.base_url())));
    // The spec's catalog example lists only gpu_1x_gh200, so gpu_1x_a10 is unlisted
    // there: it is launched in the region named explicitly.
    let req = a10()
        .region("us-west-1")
        .port("8000/http")
        .env("MODEL", "llama")
        .label("team", "ml")
        .auth(AuthMode::Bearer)
        .build()
        .unwrap();
    let c = lambda.spawn(&req).await.unwrap();
    assert_eq!(c.id, EXAMPLE_ID);
    assert_eq!(c.provider, "lambda");
    assert_eq!(c.status, ComputeStatus::Provisioning);
    assert_eq!(c.region.as_deref(), Some("us-west-1"));
    assert_eq!(c.gpu, Some(Gpu::A10));
    assert_eq!(c.name, Some(req.launch_name()));
    assert_eq!(c.labels.get(LAUNCH_ID_LABEL), Some(&req.launch_id));
    assert!(c.auth.as_ref().unwrap().token.is_some());
    let log = prism.log();
    // catalog, firewall read + write (8000/tcp is not open in the example rules), launch
    assert!(
        log.contains("[HTTP SERVER] put /api/v1/firewall-rules"),
        "{log}"
    );
    assert!(
        log.contains("[HTTP SERVER] post /api/v1/instance-operations/launch"),
        "{log}"
    );
    prism.assert_no_violations();
}

#[tokio::test]
async fn spawn_picks_the_region_with_capacity() {
    let prism = Prism::start(SPEC);
    // The SSH key comes from configuration here, not from the request.
    let lambda = builder(&prism.base_url())
        .with_ssh_keys(["my-public-key"])
        .build()
        .unwrap();
    let req = ComputeRequest::builder()
        .gpu(Gpu::GH200)
        .image("lambda-stack")
        .build()
        .unwrap();
    let c = lambda.spawn(&req).await.unwrap();
    assert_eq!(c.region.as_deref(), Some("us-west-1"));
    assert_eq!(c.cost_per_hour, Some(1.49));
    prism.assert_no_violations();
}

#[tokio::test]
async fn capacity_error_names_the_ask_and_what_is_available() {
    let prism = Prism::start(SPEC);
    let lambda = provider(&prism.base_url());
    let req = ComputeRequest::builder()
        .gpu(Gpu::GH200)
        .image("img")
        .region("us-east-1")
        .provider_opt("ssh_key", "my-public-key")
        .build()
        .unwrap();
    let e = lambda.spawn(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(e.message().contains("1 x gh200"), "{e}");
    assert!(e.message().contains("us-east-1"), "{e}");
    assert!(e.message().contains("gpu_1x_gh200 in us-west-1"), "{e}");
    assert!(
        !prism
            .log()
            .contains("[HTTP SERVER] post /api/v1/instance-operations/launch"),
        "no launch was attempted"
    );
    prism.assert_no_violations();
}

#[tokio::test]
async fn list_get_restart_terminate() {
    let prism = Prism::start(SPEC);
    let lambda = Checked::new(Arc::new(provider(&prism.base_url())));
    let all = lambda.list(&ListFilter::all()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, EXAMPLE_ID);
    assert_eq!(all[0].gpu, Some(Gpu::H100_SXM));
    let none = lambda
        .list(&ListFilter::all().with_name("atlas-nothing"))
        .await
        .unwrap();
    assert!(none.is_empty());
    let c = lambda.get(EXAMPLE_ID).await.unwrap();
    assert_eq!(c.status, ComputeStatus::Starting);
    assert_eq!(c.public_ip.as_deref(), Some("198.51.100.2"));
    assert!(!c
        .raw
        .to_string()
        .contains("03b7d30d9d3e4d8fa41657bc0d478c1b"));
    let inner = provider(&prism.base_url());
    let r = inner.restart(EXAMPLE_ID).await.unwrap();
    assert_eq!(r.id, EXAMPLE_ID);
    inner
        .instances()
        .rename(EXAMPLE_ID, "renamed")
        .await
        .unwrap();
    lambda.terminate(EXAMPLE_ID).await.unwrap();
    prism.assert_no_violations();
}

#[tokio::test]
async fn ssh_keys_file_systems_and_firewall() {
    let prism = Prism::start(SPEC);
    let lambda = provider(&prism.base_url());
    let keys = lambda.ssh_keys().list().await.unwrap();
    assert_eq!(keys[0].name, "my-public-key");
    let added = lambda
        .ssh_keys()
        .add(
            "laptop",
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN noname"),
        )
        .await
        .unwrap();
    assert!(!added.name.is_empty());
    lambda.ssh_keys().delete(&keys[0].id).await.unwrap();
    let fs = lambda.file_systems().list().await.unwrap();
    assert_eq!(fs[0].name, "my-filesystem");
    lambda
        .file_systems()
        .create("scratch", "us-west-1")
        .await
        .unwrap();
    lambda.file_systems().delete(&fs[0].id).await.unwrap();
    let rules = lambda.firewall().list().await.unwrap();
    assert_eq!(rules[0].port_range, Some([22, 22]));
    let added = lambda
        .firewall()
        .open_ports(&["22/tcp".parse().unwrap()], "0.0.0.0/0")
        .await
        .unwrap();
    assert!(added.is_empty(), "SSH is open already");
    prism.assert_no_violations();
}

#[tokio::test]
async fn stop_and_start_are_unsupported() {
    let prism = Prism::start(SPEC);
    let lambda = Checked::new(Arc::new(provider(&prism.base_url())));
    let e = lambda.stop(EXAMPLE_ID).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = lambda.inner().stop(EXAMPLE_ID).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("Lambda cannot pause instances"), "{e}");
    assert_eq!(
        lambda.start(EXAMPLE_ID).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(prism.request_count(), 0);
    prism.assert_no_violations();
}

#[tokio::test]
async fn bad_input_fails_before_any_request() {
    let prism = Prism::start(SPEC);
    let lambda = Checked::new(Arc::new(provider(&prism.base_url())));
    let no_key = ComputeRequest::builder()
        .gpu(Gpu::A10)
        .image("img")
        .build()
        .unwrap();
    let e = lambda.spawn(&no_key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("--provider-opt ssh_key=NAME"), "{e}");
    assert!(e.message().contains("[providers.lambda]"), "{e}");
    let not_offered = a10().gpu(Gpu::RTX_4090).build().unwrap();
    let e = lambda.spawn(&not_offered).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("a10"), "{e}");
    let spot = a10().spot(true).build().unwrap();
    assert_eq!(
        lambda.spawn(&spot).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let too_many = a10().gpu_count(16).build().unwrap();
    assert_eq!(
        lambda.spawn(&too_many).await.unwrap_err().kind(),
        ErrorKind::Validation
    );
    assert_eq!(prism.request_count(), 0);
    prism.assert_no_violations();
}

// ------------------------------------------------- local servers (one behaviour each)

/// Status, extra headers and JSON body of a scripted answer.
type Reply = (u16, Vec<(&'static str, String)>, Value);

type Responder = dyn Fn(&Method, &str, usize) -> Reply + Send + Sync;

#[derive(Clone)]
struct Local {
    log: Arc<Mutex<Vec<(Instant, String, Value)>>>,
    respond: Arc<Responder>,
}

impl Local {
    fn hits(&self, route: &str) -> Vec<(Instant, Value)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r, _)| r == route)
            .map(|(t, _, b)| (*t, b.clone()))
            .collect()
    }
}

async fn handle(
    State(s): State<Local>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let route = format!("{method} {}", uri.path());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = {
        let mut log = s.log.lock().unwrap();
        log.push((Instant::now(), route.clone(), body));
        log.iter().filter(|(_, r, _)| *r == route).count()
    };
    let (status, headers, body) = (s.respond)(&method, uri.path(), n);
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in headers {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), h, body.to_string())
}

async fn local(
    respond: impl Fn(&Method, &str, usize) -> Reply + Send + Sync + 'static,
) -> (String, Local) {
    let state = Local {
        log: Arc::new(Mutex::new(Vec::new())),
        respond: Arc::new(respond),
    };
    let app = Router::new().fallback(handle).with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (base, state)
}

/// The published samples' catalog: gpu_1x_a10 has capacity in us-east-1 and us-west-1,
/// gpu_1x_gh200 has none anywhere.
fn samples_server(
    launch: impl Fn(usize) -> Reply + Send + Sync + 'static,
    instances: Value,
) -> impl Fn(&Method, &str, usize) -> Reply + Send + Sync + 'static {
    let types = sample("m_instance_types_response.json");
    move |_m, path, n| match path {
        "/api/v1/instance-types" => (200, vec![], types.clone()),
        "/api/v1/instance-operations/launch" => launch(n),
        "/api/v1/instances" => (200, vec![], instances.clone()),
        "/api/v1/instance-operations/terminate" => {
            (200, vec![], json!({"data": {"terminated_instances": []}}))
        }
        _ => (
            404,
            vec![],
            json!({"error": {"code": "global/object-does-not-exist", "message": "no route"}}),
        ),
    }
}

fn launched(id: &str) -> Reply {
    (200, vec![], json!({"data": {"instance_ids": [id]}}))
}

#[tokio::test]
async fn capacity_when_no_region_has_it() {
    let (base, server) = local(samples_server(|_| launched("x"), json!({"data": []}))).await;
    let lambda = provider(&base);
    let req = ComputeRequest::builder()
        .gpu(Gpu::GH200)
        .image("img")
        .provider_opt("ssh_key", "k")
        .build()
        .unwrap();
    let e = lambda.spawn(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(
        e.message()
            .contains("1 x gh200 (gpu_1x_gh200) in any region"),
        "{e}"
    );
    assert!(e.message().contains("available now instead"), "{e}");
    assert!(server
        .hits("POST /api/v1/instance-operations/launch")
        .is_empty());
}

#[tokio::test]
async fn launch_capacity_error_keeps_lambdas_suggestion() {
    let (base, server) = local(samples_server(
        |_| {
            (400, vec![], json!({"error": {
                "code": "instance-operations/launch/insufficient-capacity",
                "message": "Not enough capacity to fulfill launch request.",
                "suggestion": "Choose an instance type with more availability, or try again later."}}))
        },
        json!({"data": []}),
    ))
    .await;
    let lambda = provider(&base);
    let e = lambda.spawn(&a10().build().unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(e.message().contains("gpu_1x_a10 in us-east-1"), "{e}");
    assert!(
        e.message()
            .contains("Choose an instance type with more availability"),
        "{e}"
    );
    assert_eq!(
        server.hits("POST /api/v1/instance-operations/launch").len(),
        1
    );
    // The catalog is refetched after a launch met no capacity.
    lambda.gpu_types().await.unwrap();
    assert_eq!(server.hits("GET /api/v1/instance-types").len(), 2);
}

#[tokio::test]
async fn ambiguous_launch_is_reconciled_by_listing_never_twice() {
    let req = a10().build().unwrap();
    let mut inst = sample("m_instance_get_response.json")["data"].clone();
    inst["id"] = json!("found-by-name");
    inst["name"] = json!(req.launch_name());
    inst["status"] = json!("booting");
    let (base, server) = local(samples_server(
        |_| (502, vec![], json!({"error": {"code": "provider/internal-unavailable", "message": "Provider unavailable"}})),
        json!({"data": [inst]}),
    ))
    .await;
    let c = provider(&base).spawn(&req).await.unwrap();
    assert_eq!(c.id, "found-by-name");
    assert_eq!(
        server.hits("POST /api/v1/instance-operations/launch").len(),
        1
    );

    let (base, server) = local(samples_server(
        |_| (503, vec![], json!({"error": {"code": "provider/internal-unavailable", "message": "Provider unavailable"}})),
        json!({"data": []}),
    ))
    .await;
    let e = provider(&base).spawn(&req).await.unwrap_err();
    assert!(e.is_ambiguous());
    assert!(e.message().contains("nothing was created"), "{e}");
    assert_eq!(
        server.hits("POST /api/v1/instance-operations/launch").len(),
        1
    );
    assert_eq!(server.hits("GET /api/v1/instances").len(), 3);
}

#[tokio::test]
async fn an_undecodable_2xx_launch_is_adopted_from_the_listing() {
    let req = a10().auth(AuthMode::Bearer).build().unwrap();
    let mut inst = sample("m_instance_get_response.json")["data"].clone();
    inst["id"] = json!("made-by-the-launch");
    inst["name"] = json!(req.launch_name());
    inst["status"] = json!("booting");
    let (upstream, server) = local(samples_server(
        |_| launched("made-by-the-launch"),
        json!({"data": [inst]}),
    ))
    .await;
    let proxy = Garble::start(
        &upstream,
        "POST",
        "/api/v1/instance-operations/launch",
        Create::Forwarded,
    )
    .await;
    let c = provider(proxy.base_url()).spawn(&req).await.unwrap();
    assert_eq!(c.id, "made-by-the-launch");
    assert!(c.auth.is_some(), "the minted credentials come back");
    assert_eq!(proxy.creates(), 1, "the launch was not replayed");
    assert_eq!(
        server.hits("POST /api/v1/instance-operations/launch").len(),
        1,
        "exactly one instance was launched"
    );
    assert!(server
        .hits("POST /api/v1/instance-operations/terminate")
        .is_empty());
}

#[tokio::test]
async fn an_undecodable_2xx_launch_that_made_nothing_is_ambiguous() {
    let req = a10().build().unwrap();
    let (upstream, server) =
        local(samples_server(|_| launched("never"), json!({"data": []}))).await;
    let proxy = Garble::start(
        &upstream,
        "POST",
        "/api/v1/instance-operations/launch",
        Create::Swallowed,
    )
    .await;
    let e = provider(proxy.base_url()).spawn(&req).await.unwrap_err();
    assert_nothing_created(&e, &req);
    assert_eq!(proxy.creates(), 1, "the launch was sent exactly once");
    assert_eq!(server.hits("GET /api/v1/instances").len(), 3);
}

#[tokio::test]
async fn a_failed_listing_after_an_ambiguous_launch_keeps_the_launch_error() {
    let req = a10().build().unwrap();
    let (base, _server) = local(move |m, path, n| {
        if path == "/api/v1/instances" {
            return (503, vec![], json!({"error": {"code": "provider/internal-unavailable", "message": "listing down"}}));
        }
        samples_server(
            |_| (502, vec![], json!({"error": {"code": "provider/internal-unavailable", "message": "launch gateway error"}})),
            json!({"data": []}),
        )(m, path, n)
    })
    .await;
    let fast = RetryConfig {
        init_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_retries: 1,
        ..RetryConfig::default()
    };
    let e = builder(&base)
        .with_retry(fast)
        .build()
        .unwrap()
        .spawn(&req)
        .await
        .unwrap_err();
    assert!(e.is_ambiguous(), "never safe to retry: {e:?}");
    assert_eq!(e.status(), Some(502), "the launch error is kept: {e:?}");
    let m = e.message();
    assert!(m.contains("launch gateway error"), "{m}");
    assert!(m.contains("is unknown"), "{m}");
    assert!(m.contains(&req.launch_name()), "{m}");
    assert!(!m.contains("safe"), "{m}");
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn requests_are_paced() {
    let (base, server) = local(samples_server(|_| launched("x"), json!({"data": []}))).await;
    let interval = Duration::from_millis(150);
    let lambda = builder(&base)
        .with_limits(LambdaLimits::new(interval, Duration::from_millis(5)))
        .build()
        .unwrap();
    for _ in 0..4 {
        lambda.list(&ListFilter::all()).await.unwrap();
    }
    let times: Vec<Instant> = server
        .hits("GET /api/v1/instances")
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(times.len(), 4);
    for g in gaps(&times) {
        assert!(g >= interval.mul_f64(0.8), "requests only {g:?} apart");
    }
}

#[tokio::test]
async fn launches_are_paced_separately() {
    let (base, server) = local(samples_server(
        |n| launched(&format!("i{n}")),
        json!({"data": []}),
    ))
    .await;
    let launch_interval = Duration::from_millis(600);
    let lambda = builder(&base)
        .with_limits(LambdaLimits::new(Duration::from_millis(5), launch_interval))
        .build()
        .unwrap();
    for _ in 0..3 {
        lambda.spawn(&a10().build().unwrap()).await.unwrap();
    }
    let launches: Vec<Instant> = server
        .hits("POST /api/v1/instance-operations/launch")
        .into_iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(launches.len(), 3);
    for g in gaps(&launches) {
        assert!(
            g >= launch_interval.mul_f64(0.8),
            "launches only {g:?} apart"
        );
    }
    // Other requests are not held to the launch interval.
    let t0 = Instant::now();
    lambda.list(&ListFilter::all()).await.unwrap();
    lambda.list(&ListFilter::all()).await.unwrap();
    let lists = server.hits("GET /api/v1/instances");
    assert!(
        lists[1].0 - lists[0].0 < launch_interval,
        "lists were held like launches"
    );
    assert!(lists[0].0 >= t0);
}

#[tokio::test]
async fn rate_limited_launch_and_reads_honour_retry_after() {
    let (base, server) = local(move |m, path, n| {
        if *m == Method::GET && path == "/api/v1/instances" && n == 1 {
            return (
                429,
                vec![("retry-after", "1".to_string())],
                json!({"error": {"code": "global/rate-limited", "message": "Too many requests"}}),
            );
        }
        if path == "/api/v1/instance-operations/launch" && n == 1 {
            return (
                429,
                vec![("retry-after", "1".to_string())],
                json!({"error": {"code": "global/rate-limited", "message": "Too many requests"}}),
            );
        }
        samples_server(|_| launched("after-429"), json!({"data": []}))(m, path, n)
    })
    .await;
    let lambda = builder(&base)
        .with_retry(RetryConfig::default())
        .build()
        .unwrap();
    lambda.list(&ListFilter::all()).await.unwrap();
    let lists = server.hits("GET /api/v1/instances");
    assert_eq!(lists.len(), 2);
    assert!(lists[1].0 - lists[0].0 >= Duration::from_millis(900));
    let c = lambda.spawn(&a10().build().unwrap()).await.unwrap();
    assert_eq!(c.id, "after-429");
    let launches = server.hits("POST /api/v1/instance-operations/launch");
    assert_eq!(
        launches.len(),
        2,
        "a 429 means nothing was created, so launch is retried once"
    );
    assert!(launches[1].0 - launches[0].0 >= Duration::from_millis(900));
}

#[tokio::test]
async fn invalid_key_is_unauthorized() {
    let (base, _server) = local(|_, _, _| {
        (401, vec![], json!({"error": {"code": "global/invalid-api-key", "message": "API key was invalid, expired, or deleted.", "suggestion": "Check your API key or create a new one, then try again."}}))
    })
    .await;
    let e = provider(&base).gpu_types().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("create a new one"), "{e}");
    assert!(!format!("{e:?}").contains("lambda-test-key-0123456789"));
}

#[tokio::test]
async fn terminating_twice_is_not_found() {
    let mut inst = sample("m_instance_get_response.json");
    inst["data"]["status"] = json!("terminating");
    let (base, server) = local(move |_, path, _| match path {
        "/api/v1/instances/gone" => (200, vec![], inst.clone()),
        _ => (404, vec![], json!({"error": {"code": "global/object-does-not-exist", "message": "Specified instance does not exist."}})),
    })
    .await;
    let lambda = provider(&base);
    let e = lambda.terminate("gone").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("already terminating"), "{e}");
    let e = lambda.terminate("never-was").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(server
        .hits("POST /api/v1/instance-operations/terminate")
        .is_empty());
    // get of a terminating instance reports it terminated; listings leave it out.
    let c = lambda.get("gone").await.unwrap();
    assert_eq!(c.status, ComputeStatus::Terminated);
}
