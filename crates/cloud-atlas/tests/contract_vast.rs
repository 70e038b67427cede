//! Vast.ai provider against Prism running Vast's spec with its documented corrections
//! (`fixtures/vast/PATCHES.md`; every request must validate), the `vastai` CLI's real
//! request shapes replayed against the published and the patched spec, and the
//! behaviours a static mock cannot show (offer gone → next offer, an outbid spot
//! instance, an ambiguous rent, 429s, paging over 1,000 instances) against a small
//! local server that speaks the shapes the CLI sees and records every request.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::config::{Config, ProviderSettings};
use cloud_atlas::http::RetryConfig;
use cloud_atlas::providers::vast::{OfferQuery, Vast, VastBuilder};
use cloud_atlas::{
    providers, AuthMode, Capability, Checked, ComputeRequest, ComputeStatus, ErrorKind, Gpu,
    ListFilter, Protocol, Provider, ProviderExt,
};
use serde_json::{json, Value};
use support::garble::{assert_nothing_created, Create, Garble};
use support::prism::Prism;
use support::vast_server::{self as fake, recs};

const PATCHED: &str = "vast/openapi.patched.yaml";
const PUBLISHED: &str = "vast/openapi.yaml";
/// Shaped like a real Vast key (64 hex chars), so the "never written" check applies.
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn fast_retry() -> RetryConfig {
    RetryConfig {
        init_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        max_retries: 4,
        ..RetryConfig::default()
    }
}

fn provider(base: &str) -> Vast {
    VastBuilder::default()
        .with_api_key(KEY)
        .with_base_url(base)
        .with_pacing(1000.0, 1000)
        .with_retry(fast_retry())
        .with_reconcile(3, Duration::from_millis(10))
        .with_spot_check(3, Duration::from_millis(10))
        .build()
        .unwrap()
}

fn request() -> ComputeRequest {
    ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("vllm/vllm-openai:latest")
        .port("8000/http")
        .env("MODEL_ID", "meta-llama/Llama-3-8B")
        .auth(AuthMode::Bearer)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- Prism, patched spec

#[tokio::test]
async fn lifecycle_conforms_to_the_patched_spec() {
    let prism = Prism::start(PATCHED);
    let vast = Checked::new(Arc::new(provider(&prism.base_url())));

    let gpus = vast.gpu_types().await.unwrap();
    let g = gpus.iter().find(|g| g.gpu == Some(Gpu::RTX_4090)).unwrap();
    assert!(g.price_on_demand.unwrap() > 0.0);
    assert!(g.price_spot.unwrap() > 0.0);

    let c = vast.spawn(&request()).await.unwrap();
    assert_eq!(c.provider, "vast");
    assert_eq!(c.id, "1234568", "the id is the rent's new_contract");
    assert!(c.auth.as_ref().unwrap().token.is_some());
    assert!(c.cost_per_hour.unwrap() > 0.0);

    let got = vast.get(&c.id).await.unwrap();
    assert_eq!(got.status, ComputeStatus::Running);
    assert_eq!(got.http_url(), Some("http://63.135.50.11:41234"));
    let all = vast.list(&ListFilter::all()).await.unwrap();
    assert!(!all.is_empty());
    vast.stop(&c.id).await.unwrap();
    vast.start(&c.id).await.unwrap();
    vast.terminate(&c.id).await.unwrap();

    let spot = ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("img")
        .spot(true)
        .build()
        .unwrap();
    vast.spawn(&spot).await.unwrap();

    let inner = provider(&prism.base_url());
    let q = OfferQuery::for_request(&request()).unwrap();
    let offers = inner.offer_entries(&q).await.unwrap();
    assert_eq!(offers[0].id, "12345678");
    prism.assert_no_violations();
    assert!(prism.request_count() >= 12, "{}", prism.log());
}

#[tokio::test]
async fn capabilities_are_honest() {
    let prism = Prism::start(PATCHED);
    let vast = Checked::new(Arc::new(provider(&prism.base_url())));
    let caps = vast.inner().capabilities();
    for c in [
        Capability::Stop,
        Capability::Start,
        Capability::GpuTypes,
        Capability::SpawnSpot,
    ] {
        assert!(caps.contains(c), "{c}");
    }
    let cpu = ComputeRequest::builder().image("i").build().unwrap();
    assert_eq!(
        vast.spawn(&cpu).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let e = vast.inner().spawn(&cpu).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().starts_with("gpu"), "{e}");
    let vol = ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("i")
        .volume_gb(20)
        .build()
        .unwrap();
    let e = vast.inner().spawn(&vol).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("container_disk_gb"), "{e}");
    let e = vast.get("not-a-number").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(prism.request_count(), 0, "rejected before any request");
    prism.assert_no_violations();
}

/// What `vastai` 1.9.1 sends (reference.md): trailing slashes, `type: on-demand`, one
/// `order` pair, `env` as an object. The published spec rejects these; the patched
/// spec accepts them. This is the evidence for patches P1, P2, P3 and P5.
#[tokio::test]
async fn cli_shapes_fail_the_published_spec_and_pass_the_patched_one() {
    let search = json!({"verified": {"eq": true}, "external": {"eq": false},
        "rentable": {"eq": true}, "rented": {"eq": false}, "order": [["score", "desc"]],
        "type": "on-demand", "allocated_storage": 5.0, "limit": 10});
    let rent = json!({"client_id": "me", "image": "vllm/vllm-openai:latest",
        "env": {"HF_TOKEN": "hf_xxx", "-p 8000:8000": "1"}, "disk": 50.0, "label": "x",
        "onstart": "vllm serve", "runtype": "ssh_direct", "python_utf8": false,
        "lang_utf8": false, "use_jupyter_lab": false, "force": false, "cancel_unavail": true});
    let replay = |base: String, slash: &'static str| {
        let (search, rent) = (search.clone(), rent.clone());
        async move {
            let c = reqwest::Client::new();
            let s = c
                .post(format!("{base}/api/v0/bundles{slash}"))
                .bearer_auth("k")
                .json(&search)
                .send()
                .await
                .unwrap();
            let r = c
                .put(format!("{base}/api/v0/asks/12345678{slash}"))
                .bearer_auth("k")
                .json(&rent)
                .send()
                .await
                .unwrap();
            let l = c
                .get(format!("{base}/api/v1/instances{slash}?limit=25"))
                .bearer_auth("k")
                .send()
                .await
                .unwrap();
            (
                s.status().as_u16(),
                r.status().as_u16(),
                l.status().as_u16(),
            )
        }
    };
    let published = Prism::start(PUBLISHED);
    let (s, r, _) = replay(published.base_url(), "").await;
    assert!(
        s >= 400 && r >= 400,
        "published spec accepted the CLI bodies: {s} {r}"
    );
    let v = published.violations().join("\n");
    for bad in ["type", "order", "env"] {
        assert!(
            v.contains(&format!("request.body.{bad}")),
            "{bad} not flagged:\n{v}"
        );
    }
    let (_, _, l) = replay(published.base_url(), "/").await;
    assert_eq!(l, 404, "the published spec has no trailing-slash paths");

    let patched = Prism::start(PATCHED);
    for slash in ["", "/"] {
        let (s, r, l) = replay(patched.base_url(), slash).await;
        assert_eq!(
            (s, r, l),
            (200, 200, 200),
            "slash {slash:?}: {}",
            patched.log()
        );
    }
    patched.assert_no_violations();
}

// ------------------------------------------------- local server with the CLI's shapes
// (tests/support/vast_server.rs)

#[tokio::test]
async fn requests_have_the_shapes_the_cli_sends() {
    let (base, s) = fake::start(|_| {});
    let vast = provider(&base);
    let req = request();
    let c = vast.spawn(&req).await.unwrap();
    assert_eq!(c.id, "9001");
    assert_eq!(c.name.as_deref(), Some(req.launch_name().as_str()));
    assert_eq!(c.http_url(), Some("http://198.51.100.7:40000"));
    assert_eq!(c.ports[0].protocol, Protocol::Http);

    let search = &recs(&s, "POST", "/api/v0/bundles/")[0];
    let b: Value = serde_json::from_str(&search.body).unwrap();
    assert_eq!(b["type"], "ondemand");
    assert_eq!(b["gpu_name"], json!({"in": ["RTX 4090"]}));
    assert_eq!(b["num_gpus"], json!({"eq": 1}));
    assert_eq!(b["order"][0], json!(["dph_total", "asc"]));

    let rents = recs(&s, "PUT", "/api/v0/asks/");
    assert_eq!(rents.len(), 1);
    assert_eq!(
        rents[0].path, "/api/v0/asks/101/",
        "the cheapest offer, trailing slash"
    );
    assert_eq!(rents[0].auth, format!("Bearer {KEY}"));
    let body: Value = serde_json::from_str(&rents[0].body).unwrap();
    assert_eq!(body["image"], "vllm/vllm-openai:latest");
    assert_eq!(body["label"], json!(req.launch_name()));
    assert!(
        body["env"].is_object(),
        "env is an object, as the CLI and docs send it"
    );
    assert_eq!(body["env"]["-p 8000:8000"], "1");
    assert_eq!(body["env"]["MODEL_ID"], "meta-llama/Llama-3-8B");
    // The minted browser-to-pod key is merged into the env, and is the one handed back.
    let minted = c.auth.as_ref().unwrap().token.as_ref().unwrap().expose();
    assert_eq!(body["env"]["ATLAS_PRESHARED_KEY"], minted);
    // The account API key is never written onto the machine.
    for r in s.lock().unwrap().recs.iter() {
        assert!(
            !r.body.contains(KEY),
            "{} {} carries the account key",
            r.method,
            r.path
        );
        assert!(!r.query.contains(KEY));
    }
    let shows = recs(&s, "GET", "/api/v0/instances/");
    assert_eq!(shows[0].path, "/api/v0/instances/9001/");
    assert_eq!(shows[0].query, "owner=me");
    assert!(
        s.lock().unwrap().unmatched.is_empty(),
        "{:?}",
        s.lock().unwrap().unmatched
    );
}

#[tokio::test]
async fn the_account_key_is_refused_in_env() {
    let (base, s) = fake::start(|_| {});
    let vast = provider(&base);
    let req = ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("img")
        .env("VAST_API_KEY", KEY)
        .build()
        .unwrap();
    let e = vast.spawn(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().starts_with("env"), "{e}");
    assert!(!e.to_string().contains(KEY));
    assert!(s.lock().unwrap().recs.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn lifecycle_against_the_cli_shaped_server() {
    let (base, s) = fake::start(|_| {});
    let vast = provider(&base);
    let c = vast.spawn(&request()).await.unwrap();
    vast.stop(&c.id).await.unwrap();
    assert_eq!(
        vast.get(&c.id).await.unwrap().status,
        ComputeStatus::Stopped
    );
    vast.start(&c.id).await.unwrap();
    let running = vast
        .wait_for(&c.id, ComputeStatus::Running, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(running.cost_per_hour.unwrap() > 0.0);
    let states: Vec<String> = recs(&s, "PUT", "/api/v0/instances/")
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(
        states,
        vec![r#"{"state":"stopped"}"#, r#"{"state":"running"}"#]
    );
    let mine = vast
        .list(&ListFilter::all().with_name(c.name.clone().unwrap()))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    vast.terminate(&c.id).await.unwrap();
    assert_eq!(
        vast.get(&c.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        vast.terminate(&c.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!vast.terminate_if_exists(&c.id).await.unwrap());
    assert!(s.lock().unwrap().unmatched.is_empty());
}

#[tokio::test]
async fn a_gone_offer_is_skipped_for_the_next() {
    let (base, s) = fake::start(|f| f.gone = vec![101, 102]);
    let c = provider(&base).spawn(&request()).await.unwrap();
    let paths: Vec<String> = recs(&s, "PUT", "/api/v0/asks/")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        paths,
        vec![
            "/api/v0/asks/101/",
            "/api/v0/asks/102/",
            "/api/v0/asks/103/"
        ]
    );
    assert_eq!(s.lock().unwrap().instances.len(), 1);
    assert_eq!(c.cost_per_hour, Some(0.50));
}

#[tokio::test]
async fn every_offer_gone_is_capacity_with_the_reasons() {
    let (base, s) = fake::start(|f| f.gone = vec![101, 102, 103, 104]);
    let e = provider(&base).spawn(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity);
    for id in [101, 102, 103] {
        assert!(e.message().contains(&format!("offer {id}: ")), "{e}");
    }
    assert!(!e.message().contains("104"), "bounded to 3 tries: {e}");
    assert_eq!(recs(&s, "PUT", "/api/v0/asks/").len(), 3);
    assert!(s.lock().unwrap().instances.is_empty());
}

#[tokio::test]
async fn no_matching_offer_is_capacity() {
    let (base, _s) = fake::start(|f| f.offers = vec![]);
    let e = provider(&base).spawn(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(e.message().contains("RTX 4090"), "{e}");
}

#[tokio::test]
async fn an_outbid_spot_instance_is_destroyed_and_reported_as_capacity() {
    let (base, s) = fake::start(|f| f.outbid_below = 1.0);
    let req = ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("img")
        .spot(true)
        .provider_opt("bid_price", "0.25")
        .build()
        .unwrap();
    let e = provider(&base).spawn(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity);
    assert!(e.message().contains("outbid"), "{e}");
    let search: Value =
        serde_json::from_str(&recs(&s, "POST", "/api/v0/bundles/")[0].body).unwrap();
    assert_eq!(search["type"], "bid");
    let rent: Value = serde_json::from_str(&recs(&s, "PUT", "/api/v0/asks/")[0].body).unwrap();
    assert_eq!(rent["price"], json!(0.25));
    assert_eq!(recs(&s, "DELETE", "/api/v0/instances/9001/").len(), 1);
    assert!(
        s.lock().unwrap().instances.is_empty(),
        "nothing left billing"
    );
}

#[tokio::test]
async fn a_winning_spot_bid_runs() {
    let (base, _s) = fake::start(|f| f.outbid_below = 0.1);
    let req = ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("img")
        .spot(true)
        .build()
        .unwrap();
    let c = provider(&base).spawn(&req).await.unwrap();
    assert_eq!(c.status, ComputeStatus::Running);
    // min_bid 0.20 + 10 %.
    assert!(
        (c.cost_per_hour.unwrap() - 0.22).abs() < 1e-9,
        "{:?}",
        c.cost_per_hour
    );
}

#[tokio::test]
async fn an_ambiguous_rent_is_reconciled_by_label_not_repeated() {
    let (base, s) = fake::start(|f| f.fail_after_create = true);
    let req = request();
    let c = provider(&base).spawn(&req).await.unwrap();
    assert_eq!(
        recs(&s, "PUT", "/api/v0/asks/").len(),
        1,
        "the rent was not replayed"
    );
    assert_eq!(s.lock().unwrap().instances.len(), 1, "one instance");
    assert_eq!(c.id, "9001");
    assert!(c.auth.is_some());
    let lists = recs(&s, "GET", "/api/v1/instances/");
    assert!(!lists.is_empty());
    let q: BTreeMap<String, String> = url::form_urlencoded::parse(lists[0].query.as_bytes())
        .into_owned()
        .collect();
    let f: Value = serde_json::from_str(&q["select_filters"]).unwrap();
    assert_eq!(f, json!({"label": {"eq": req.launch_name()}}));
}

#[tokio::test]
async fn an_undecodable_2xx_rent_is_adopted_from_the_listing() {
    let (upstream, s) = fake::start(|_| {});
    let proxy = Garble::start(&upstream, "PUT", "/api/v0/asks/", Create::Forwarded).await;
    let req = request();
    let c = provider(proxy.base_url()).spawn(&req).await.unwrap();
    assert_eq!(proxy.creates(), 1, "the rent was not replayed");
    assert_eq!(recs(&s, "PUT", "/api/v0/asks/").len(), 1);
    assert_eq!(s.lock().unwrap().instances.len(), 1, "exactly one instance");
    assert_eq!(c.id, "9001");
    assert_eq!(c.name.as_deref(), Some(req.launch_name().as_str()));
    assert!(c.auth.is_some(), "the minted credentials come back");
}

#[tokio::test]
async fn an_undecodable_2xx_rent_that_made_nothing_is_ambiguous() {
    let (upstream, s) = fake::start(|_| {});
    let proxy = Garble::start(&upstream, "PUT", "/api/v0/asks/", Create::Swallowed).await;
    let req = request();
    let e = provider(proxy.base_url()).spawn(&req).await.unwrap_err();
    assert_nothing_created(&e, &req);
    assert_eq!(proxy.creates(), 1, "the rent was sent exactly once");
    assert!(s.lock().unwrap().instances.is_empty());
}

#[tokio::test]
async fn a_2xx_rent_without_an_instance_id_is_reconciled() {
    let (base, s) = fake::start(|f| f.answer_without_id = true);
    let req = request();
    let c = provider(&base).spawn(&req).await.unwrap();
    assert_eq!(
        recs(&s, "PUT", "/api/v0/asks/").len(),
        1,
        "never a second rent"
    );
    assert_eq!(s.lock().unwrap().instances.len(), 1);
    assert_eq!(c.id, "9001", "found by its label");
}

#[tokio::test]
async fn an_ambiguous_rent_that_created_nothing_says_a_new_spawn_is_safe() {
    let (base, s) = fake::start(|f| f.fail_before_create = true);
    let e = provider(&base).spawn(&request()).await.unwrap_err();
    assert!(e.is_ambiguous());
    assert!(e.message().contains("new spawn is safe"), "{e}");
    assert_eq!(
        recs(&s, "PUT", "/api/v0/asks/").len(),
        1,
        "never a second rent"
    );
    assert_eq!(
        recs(&s, "GET", "/api/v1/instances/").len(),
        3,
        "three listings"
    );
}

#[tokio::test]
async fn an_ambiguous_rent_that_cannot_be_checked_never_claims_safety() {
    let (base, s) = fake::start(|f| {
        f.fail_after_create = true;
        f.fail_lists = true;
    });
    let e = provider(&base).spawn(&request()).await.unwrap_err();
    assert!(e.is_ambiguous());
    assert!(e.message().contains("may exist"), "{e}");
    assert!(!e.message().contains("safe"), "{e}");
    assert_eq!(
        recs(&s, "PUT", "/api/v0/asks/").len(),
        1,
        "never a second rent"
    );
}

#[tokio::test]
async fn too_frequent_answers_are_paced_and_retried() {
    let (base, s) = fake::start(|f| f.throttle = 2);
    let vast = provider(&base);
    // The search meets two 429s and is retried.
    let offers = vast.offers(&OfferQuery::catalog(false)).await.unwrap();
    assert_eq!(offers.len(), 4);
    assert_eq!(recs(&s, "POST", "/api/v0/bundles/").len(), 3);
    // A rent that meets a 429 was refused, not processed: it is sent again, once more.
    let (base, s) = fake::start(|f| f.throttle_rents = 1);
    let c = provider(&base).spawn(&request()).await.unwrap();
    assert_eq!(recs(&s, "PUT", "/api/v0/asks/").len(), 2);
    assert_eq!(s.lock().unwrap().instances.len(), 1);
    assert_eq!(c.id, "9001");
}

#[tokio::test]
async fn listing_returns_all_1000_instances_across_pages() {
    let (base, s) = fake::start(|f| {
        for i in 1..=1000u64 {
            f.instances.insert(
                i,
                json!({"id": i, "actual_status": "running",
                "intended_status": "running", "cur_state": "running",
                "label": format!("job-{i}"), "gpu_name": "RTX 4090", "num_gpus": 1,
                "dph_total": 0.4}),
            );
        }
    });
    let all = provider(&base).list(&ListFilter::all()).await.unwrap();
    assert_eq!(all.len(), 1000);
    let ids: std::collections::BTreeSet<String> = all.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), 1000, "no duplicates");
    let pages = recs(&s, "GET", "/api/v1/instances/");
    assert_eq!(pages.len(), 40, "25 per page");
    assert!(
        pages[1].query.contains("after_token=tok-25"),
        "{}",
        pages[1].query
    );
}

#[tokio::test]
async fn built_by_name_from_settings() {
    let (base, _s) = fake::start(|_| {});
    let mut settings = ProviderSettings::new("vast");
    settings.base_url = Some(base);
    let e = providers::build("vast", settings.clone(), &Config::empty(".")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("VAST_API_KEY"), "{e}");
    settings.api_key = Some(cloud_atlas::auth::Secret::new(KEY.to_string()));
    let p = providers::build("vast", settings, &Config::empty(".")).unwrap();
    assert_eq!(p.name(), "vast");
    assert!(p.list(&ListFilter::all()).await.unwrap().is_empty());
    assert!(!format!("{p:?}").contains(KEY), "Debug never shows the key");
}

// ------------------------------------------------ the GPU asked for, memory included

fn a100(id: u64, price: f64, gpu_ram: u64) -> Value {
    let mut o = fake::offer(id, price);
    o["gpu_name"] = json!("A100 SXM4");
    o["gpu_ram"] = json!(gpu_ram);
    o
}

#[tokio::test]
async fn an_80gb_ask_never_rents_a_40gb_card_even_when_the_market_ignores_the_bound() {
    // The server ignores every filter: the cheapest A100 SXM4 is a 40 GB card, and one
    // offer does not say its memory at all.
    let (base, s) = fake::start(|f| {
        f.offers = vec![
            a100(201, 0.60, 40_960),
            a100(202, 0.70, 40_960),
            {
                let mut o = a100(203, 0.80, 0);
                o.as_object_mut().unwrap().remove("gpu_ram");
                o
            },
            a100(204, 1.10, 81_920),
        ];
    });
    let vast = provider(&base);
    for gpu in [Gpu::A100_SXM4_80G, Gpu::A100_80G] {
        let req = ComputeRequest::builder()
            .gpu(gpu)
            .image("img")
            .build()
            .unwrap();
        let c = vast.spawn(&req).await.unwrap();
        assert!(c.gpu.is_some_and(|g| gpu.covers(g)), "{gpu}: {:?}", c.gpu);
        let got = vast.get(&c.id).await.unwrap();
        assert_eq!(got.gpu, Some(Gpu::A100_SXM4_80G), "by name and gpu_ram");
        let rents = recs(&s, "PUT", "/api/v0/asks/");
        assert_eq!(
            rents.last().unwrap().path,
            "/api/v0/asks/204/",
            "{gpu}: only the 80 GB offer may be rented"
        );
        assert!(
            rents.iter().all(|r| r.path == "/api/v0/asks/204/"),
            "{rents:?}"
        );
        let search: Value =
            serde_json::from_str(&recs(&s, "POST", "/api/v0/bundles/").last().unwrap().body)
                .unwrap();
        let lo = search["gpu_ram"]["gte"].as_u64().unwrap();
        let hi = search["gpu_ram"]["lte"].as_u64().unwrap();
        assert!(lo > 40_960 && lo <= 81_920 && hi >= 81_920, "{search}");
        assert!(
            search["gpu_name"]["in"]
                .as_array()
                .unwrap()
                .contains(&json!("A100 SXM4")),
            "{search}"
        );
    }
    // Only 40 GB cards on the market: nothing is rented.
    let (base, s) = fake::start(|f| f.offers = vec![a100(201, 0.60, 40_960)]);
    let req = ComputeRequest::builder()
        .gpu(Gpu::A100_SXM4_80G)
        .image("img")
        .build()
        .unwrap();
    let e = provider(&base).spawn(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
    assert!(recs(&s, "PUT", "/api/v0/asks/").is_empty());
}

#[tokio::test]
async fn the_gpu_ram_bound_and_a_native_name_validate_against_the_spec() {
    let prism = Prism::start(PATCHED);
    let inner = provider(&prism.base_url());
    for req in [
        ComputeRequest::builder()
            .gpu(Gpu::A100_SXM4_80G)
            .image("img")
            .build()
            .unwrap(),
        ComputeRequest::builder()
            .native_gpu("RTX 5880Ada")
            .image("img")
            .build()
            .unwrap(),
    ] {
        let q = OfferQuery::for_request(&req).unwrap();
        inner.offer_entries(&q).await.unwrap();
    }
    prism.assert_no_violations();
    let log = prism.log();
    assert!(log.contains("/api/v0/bundles"), "{log}");
}
