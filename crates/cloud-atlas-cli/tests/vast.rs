//! `atlas` against Vast.ai through `ATLAS_VAST_BASE_URL`: the done-when commands
//! on Prism running Vast's patched spec (no request may violate it), and `atlas ls
//! --provider vast -o json` returning all of 1,000 instances from a paging server.

#[path = "../../cloud-atlas/tests/support/prism.rs"]
#[allow(unreachable_pub)]
mod prism;
#[path = "../../cloud-atlas/tests/support/vast_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod vast_server;

use std::process::Command;

use serde_json::{json, Value};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn atlas(dir: &tempfile::TempDir, base: &str, args: &[&str]) -> (i32, String, String) {
    std::fs::write(
        dir.path().join("atlas.toml"),
        "[providers.vast]\nrequests_per_second = 500\nburst = 500\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path().join("home"))
        .env("ATLAS_HOME", dir.path().join("data"))
        .env("ATLAS_CONFIG", dir.path().join("atlas.toml"))
        .env("VAST_API_KEY", KEY)
        .env("ATLAS_VAST_BASE_URL", base)
        .output()
        .unwrap();
    let out = (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert_eq!(out.0, 0, "atlas {args:?} failed: {out:#?}");
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
