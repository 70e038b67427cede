//! `atlas` against Vast.ai through `ATLAS_VAST_BASE_URL`: the done-when commands
//! and `atlas vast offers` on Prism running Vast's patched spec (no request may violate
//! it), `atlas ls --provider vast -o json` returning all of 1,000 instances from a paging
//! server, and `atlas vast offers` sorting and filtering against the CLI-shaped server.

#[path = "../../cloud-atlas/tests/support/prism.rs"]
#[allow(unreachable_pub)]
mod prism;
#[path = "../../cloud-atlas/tests/support/vast_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod vast_server;

mod common;

use serde_json::{json, Value};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn atlas(dir: &tempfile::TempDir, base: &str, args: &[&str]) -> (i32, String, String) {
    let out = atlas_any(dir, base, args);
    assert_eq!(out.0, 0, "atlas {args:?} failed: {out:#?}");
    out
}

/// Run `atlas` with whatever exit code it gives; the key must never show.
fn atlas_any(dir: &tempfile::TempDir, base: &str, args: &[&str]) -> (i32, String, String) {
    std::fs::write(
        dir.path().join("atlas.toml"),
        "[providers.vast]\nrequests_per_second = 500\nburst = 500\n",
    )
    .unwrap();
    let o = common::atlas(dir.path(), args)
        .env("VAST_API_KEY", KEY)
        .env("ATLAS_VAST_BASE_URL", base)
        .output()
        .unwrap();
    let out = (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        !out.1.contains(KEY) && !out.2.contains(KEY),
        "the key leaked"
    );
    out
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn done_when_commands_conform_to_the_patched_spec() {
    let spec = format!(
        "{}/../cloud-atlas/tests/fixtures/vast/openapi.patched.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let p = prism::Prism::start(&spec);
    let base = p.base_url();
    let dir = tempfile::tempdir().unwrap();
    let v = ["--provider", "vast"];
    let run = |args: &[&str]| atlas(&dir, &base, &[&v[..], args].concat());

    let (_, out, _) = run(&["gpus", "--gpu", "rtx_4090", "-o", "json"]);
    let gpus = json_of(&out);
    assert_eq!(gpus[0]["gpu"], "rtx_4090", "{gpus}");
    assert!(gpus[0]["price_on_demand"].as_f64().unwrap() > 0.0);

    let (_, out, _) = run(&[
        "spawn",
        "--gpu",
        "rtx_4090",
        "--image",
        "img",
        "--port",
        "8000/http",
        "-o",
        "json",
    ]);
    let spawned = json_of(&out);
    let id = spawned["id"].as_str().unwrap().to_string();
    assert_eq!(spawned["provider"], "vast");

    let (_, out, _) = run(&["ls", "-o", "json"]);
    assert!(json_of(&out).as_array().is_some());
    let (_, out, _) = run(&["get", &id, "-o", "json"]);
    assert_eq!(json_of(&out)["status"], "running");
    run(&["stop", &id]);
    run(&["start", &id]);
    run(&["terminate", &id]);
    p.assert_no_violations();
    assert!(p.request_count() >= 8, "{}", p.log());
}

#[test]
fn ls_returns_all_1000_instances() {
    let (base, state) = vast_server::start(|f| {
        for i in 1..=1000u64 {
            f.instances.insert(
                i,
                json!({"id": i, "actual_status": "running", "intended_status": "running",
                    "cur_state": "running", "label": format!("job-{i}"), "gpu_name": "RTX 4090",
                    "num_gpus": 1, "dph_total": 0.4}),
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (_, out, _) = atlas(&dir, &base, &["ls", "--provider", "vast", "-o", "json"]);
    let all = json_of(&out);
    let ids: std::collections::BTreeSet<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(
        vast_server::recs(&state, "GET", "/api/v1/instances/").len(),
        40
    );
}

fn prices(offers: &Value) -> Vec<f64> {
    offers
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {offers}"))
        .iter()
        .map(|o| {
            o["price_on_demand"]
                .as_f64()
                .or_else(|| o["price_spot"].as_f64())
                .unwrap_or_else(|| panic!("no price: {o}"))
        })
        .collect()
}

fn is_sorted(p: &[f64]) -> bool {
    p.windows(2).all(|w| w[0] <= w[1])
}

#[test]
fn vast_offers_conform_to_the_patched_spec() {
    let spec = format!(
        "{}/../cloud-atlas/tests/fixtures/vast/openapi.patched.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let p = prism::Prism::start(&spec);
    let base = p.base_url();
    let dir = tempfile::tempdir().unwrap();
    // No --provider: `atlas vast` defaults to Vast, as `atlas lambda` does to Lambda.
    let (_, out, _) = atlas(
        &dir,
        &base,
        &["vast", "offers", "--gpu", "rtx_4090", "-o", "json"],
    );
    let offers = json_of(&out);
    let p_list = prices(&offers);
    assert!(!p_list.is_empty(), "{offers}");
    assert!(is_sorted(&p_list), "{offers}");
    for o in offers.as_array().unwrap() {
        assert_eq!(o["provider"], "vast");
        assert_eq!(o["gpu"], "rtx_4090", "{o}");
        assert!(o["id"].as_str().unwrap().parse::<u64>().is_ok(), "{o}");
    }
    let (_, table, _) = atlas(
        &dir,
        &base,
        &[
            "vast",
            "offers",
            "--count",
            "1",
            "--spot",
            "--region",
            "US",
            "--max-price",
            "2",
            "--limit",
            "5",
            "--verified",
        ],
    );
    assert!(
        table.contains("RTX 4090") && table.contains("Oregon, US"),
        "{table}"
    );
    p.assert_no_violations();
    assert_eq!(p.request_count(), 2, "{}", p.log());
}

#[test]
fn vast_offers_are_cheapest_first_and_filtered_as_asked() {
    let (base, state) = vast_server::start(|f| {
        let mut two = vast_server::offer(7, 0.70);
        two["num_gpus"] = json!(2);
        let mut de = vast_server::offer(8, 0.20);
        de["geolocation"] = json!("Berlin, DE");
        f.offers = vec![
            vast_server::offer(3, 0.90),
            vast_server::offer(1, 0.30),
            two,
            de,
            vast_server::offer(2, 0.60),
            vast_server::offer(4, 5.00),
        ];
    });
    let dir = tempfile::tempdir().unwrap();
    let (_, out, _) = atlas(
        &dir,
        &base,
        &[
            "vast",
            "offers",
            "--gpu",
            "rtx_4090",
            "--count",
            "1",
            "--region",
            "us",
            "--max-price",
            "1.5",
            "--limit",
            "10",
            "--verified",
            "-o",
            "json",
        ],
    );
    let offers = json_of(&out);
    let ids: Vec<&str> = offers
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    // The server answers unsorted and ignores filters: the CLI sorts, and the 2-GPU,
    // German and over-budget offers are dropped client-side as well.
    assert_eq!(ids, ["1", "2", "3"], "{offers}");
    assert_eq!(prices(&offers), [0.30, 0.60, 0.90]);
    let searches = vast_server::recs(&state, "POST", "/api/v0/bundles/");
    assert_eq!(searches.len(), 1);
    let body: Value = serde_json::from_str(&searches[0].body).unwrap();
    assert_eq!(body["gpu_name"], json!({"in": ["RTX 4090"]}));
    assert_eq!(body["num_gpus"], json!({"eq": 1}));
    assert_eq!(body["geolocation"], json!({"in": ["US"]}));
    assert_eq!(body["dph_total"], json!({"lte": 1.5}));
    assert_eq!(body["verified"], json!({"eq": true}));
    assert_eq!(body["type"], "ondemand");
    assert_eq!(body["limit"], 10);

    // Spot: priced at the bid floor, still cheapest first; no --verified = any host.
    let (_, out, _) = atlas(&dir, &base, &["vast", "offers", "--spot", "-o", "json"]);
    let spot = json_of(&out);
    let p = prices(&spot);
    assert_eq!(p.len(), 6, "{spot}");
    assert!(is_sorted(&p), "{spot}");
    assert_eq!(spot[0]["price_spot"], 0.10);
    let searches = vast_server::recs(&state, "POST", "/api/v0/bundles/");
    let body: Value = serde_json::from_str(&searches[1].body).unwrap();
    assert_eq!(body["type"], "bid");
    assert!(body.get("verified").is_none(), "{body}");
}

#[test]
fn bad_vast_offers_flags_exit_2_naming_the_field_before_any_request() {
    let (base, state) = vast_server::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, field) in [
        ("--max-price", "cheap", "max_price"),
        ("--max-price", "-3", "max_price"),
        ("--count", "0", "count"),
        ("--limit", "many", "limit"),
        ("--region", "us-east-1", "region"),
        ("--gpu", "voodoo2", "gpu"),
    ] {
        let (code, out, err) = atlas_any(&dir, &base, &["vast", "offers", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {out} {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(field), "{err}");
        assert!(out.is_empty(), "{out}");
    }
    let (code, _, err) = atlas_any(&dir, &base, &["--provider", "runpod", "vast", "offers"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("provider"), "{err}");
    assert!(state.lock().unwrap().recs.is_empty(), "nothing may be sent");
}
