//! `atlas` against Prism running Lambda's published 1.8.3 spec, reached through
//! `ATLAS_LAMBDA_BASE_URL`: the Done-when commands of the Lambda issue (gpus, spawn, ls,
//! get, terminate succeed; stop exits 7 saying Lambda cannot pause instances) and the
//! `atlas lambda …` commands, with no spec violation.

#[path = "../../cloud-atlas/tests/support/prism.rs"]
#[allow(unreachable_pub)]
mod prism;

mod common;

use std::path::Path;

use common::Run;
use prism::Prism;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../cloud-atlas/tests/fixtures/lambda/cloud-api-1.8.3.openapi.json"
);
/// The id every instance example in the spec carries.
const EXAMPLE_ID: &str = "0920582c7ff041399e34823a0be62549";

fn atlas(dir: &Path, base_url: &str, args: &[&str]) -> Run {
    Run::of(
        common::atlas(dir, args)
            .env("LAMBDA_API_KEY", "lambda-cli-test-key-0123")
            .env("ATLAS_LAMBDA_BASE_URL", base_url),
    )
}

#[test]
fn done_when_commands_work_against_the_spec() {
    let prism = Prism::start(SPEC);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("atlas.toml"),
        "default_provider = \"mock\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| atlas(dir.path(), &prism.base_url(), args);

    let gpus = run(&["gpus", "--provider", "lambda", "-o", "json"])
        .ok()
        .json();
    assert_eq!(gpus[0]["id"], "gpu_1x_gh200", "{gpus}");
    assert_eq!(gpus[0]["regions"][0], "us-west-1");

    // The spec's catalog example lists only gpu_1x_gh200: a10 has no listed capacity,
    // so without a region the spawn is refused (exit 2) and says how to proceed.
    let no_region = run(&[
        "spawn",
        "--provider",
        "lambda",
        "--gpu",
        "a10",
        "--image",
        "lambda-stack",
        "--provider-opt",
        "ssh_key=my-key",
    ]);
    assert_eq!(no_region.code, 2, "{}", no_region.stderr);
    assert!(
        no_region.stderr.contains("--region"),
        "{}",
        no_region.stderr
    );

    let spawned = run(&[
        "spawn",
        "--provider",
        "lambda",
        "--gpu",
        "a10",
        "--image",
        "lambda-stack",
        "--region",
        "us-west-1",
        "--provider-opt",
        "ssh_key=my-key",
        "-o",
        "json",
    ])
    .ok()
    .json();
    assert_eq!(spawned["id"], EXAMPLE_ID, "{spawned}");
    assert_eq!(spawned["provider"], "lambda");
    assert_eq!(spawned["gpu"], "a10");

    // A container image with a port and bearer auth: opens the port, runs the container.
    let with_port = run(&[
        "spawn",
        "--provider",
        "lambda",
        "--gpu",
        "gh200",
        "--image",
        "ghcr.io/acme/infer:1",
        "--port",
        "8000/http",
        "--auth",
        "bearer",
        "--provider-opt",
        "ssh_key=my-key",
        "-o",
        "json",
    ])
    .ok()
    .json();
    assert_eq!(with_port["region"], "us-west-1", "{with_port}");
    assert!(with_port["auth"]["token"].is_string(), "{with_port}");

    let ls = run(&["ls", "--provider", "lambda", "-o", "json"])
        .ok()
        .json();
    assert_eq!(ls[0]["id"], EXAMPLE_ID, "{ls}");
    let got = run(&["get", "--provider", "lambda", EXAMPLE_ID, "-o", "json"])
        .ok()
        .json();
    assert_eq!(got["public_ip"], "198.51.100.2", "{got}");
    run(&["terminate", "--provider", "lambda", EXAMPLE_ID]).ok();

    let stop = run(&["stop", "--provider", "lambda", EXAMPLE_ID]);
    assert_eq!(stop.code, 7, "{}", stop.stderr);
    assert!(stop.stderr.starts_with("error: "), "{}", stop.stderr);
    assert!(stop.stderr.contains("cannot pause"), "{}", stop.stderr);

    prism.assert_no_violations();
}

#[test]
fn lambda_account_commands() {
    let prism = Prism::start(SPEC);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("atlas.toml"), "").unwrap();
    let run = |args: &[&str]| atlas(dir.path(), &prism.base_url(), args);

    let keys = run(&["lambda", "ssh-keys", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(keys[0]["name"], "my-public-key", "{keys}");
    let table = run(&["lambda", "ssh-keys", "list"]).ok();
    assert!(table.stdout.contains("my-public-key"), "{}", table.stdout);
    let pubkey = dir.path().join("id.pub");
    std::fs::write(&pubkey, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN laptop\n").unwrap();
    run(&[
        "lambda",
        "ssh-keys",
        "add",
        "laptop",
        "--public-key-file",
        pubkey.to_str().unwrap(),
    ])
    .ok();

    let fs = run(&["lambda", "file-systems", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(fs[0]["name"], "my-filesystem", "{fs}");
    run(&[
        "lambda",
        "file-systems",
        "create",
        "scratch",
        "--region",
        "us-west-1",
    ])
    .ok();

    let types = run(&["lambda", "instance-types", "--available", "-o", "json"])
        .ok()
        .json();
    assert_eq!(types[0]["instance_type"]["name"], "gpu_1x_gh200", "{types}");
    let table = run(&["lambda", "instance-types"]).ok();
    assert!(table.stdout.contains("us-west-1"), "{}", table.stdout);

    run(&["lambda", "restart", EXAMPLE_ID]).ok();

    let wrong = run(&["lambda", "ssh-keys", "list", "--provider", "runpod"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);

    prism.assert_no_violations();
}
