//! App discovery on trees built from the real-world fly.toml corpus plus own shapes.

use std::path::{Path, PathBuf};

use cloud_atlas::fly::apps::{app_from_toml, read_app};
use cloud_atlas::fly::{discover_apps, Discovery};
use cloud_atlas::ErrorKind;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fly/flytoml-corpus")
        .join(name)
}

fn put_corpus(root: &Path, rel: &str, corpus_file: &str) {
    let to = root.join(rel);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(corpus(corpus_file), &to).unwrap();
}

fn put(root: &Path, rel: &str, text: &str) {
    let to = root.join(rel);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(&to, text).unwrap();
}

/// Every corpus file gives the app (or the reason) a person reading it would expect.
#[test]
fn every_corpus_file_reads_as_expected() {
    let expected: &[(&str, Result<&str, &str>)] = &[
        (
            "02beta__multitenant-saas-starter__apps_api_fly.toml",
            Ok("mss-api"),
        ),
        ("0ptim__JellyChat__backend_fly.toml", Ok("jellychat")),
        ("Accurate0__maccas-api__api_fly.toml", Ok("maccas-api")),
        ("Accurate0__maccas-api__database_fly.toml", Ok("maccas-db")),
        ("Accurate0__maccas-api__web_fly.toml", Ok("maccas-web")),
        (
            "CapSoftware__Sandchest__apps_api_fly.toml",
            Ok("sandchest-api"),
        ),
        ("DannyMac180__ace-platform__fly.toml", Ok("ace-platform")),
        ("GrottoPress__penny__fly.staging.toml", Ok("penny-staging")),
        ("GrottoPress__penny__fly.toml", Ok("penny")),
        ("fly-apps__cockroachdb__fly.toml", Ok("cockroachdb-example")),
        ("fly-apps__go-example__fly.toml", Ok("go-example1")),
        (
            "fly-apps__grpc-service__web-proxy_fly.template.toml",
            Err("no `app` key"),
        ),
        (
            "fly-apps__hello_elixir__fly.example.toml",
            Ok("hello-elixir"),
        ),
        ("fly-apps__live_beats__fly.toml", Ok("livebeats")),
        (
            "fly-apps__nats-cluster__example-fly.toml",
            Ok("nats-cluster-example"),
        ),
        (
            "fly-apps__nats-cluster__fly.toml",
            Ok("dj-nats-cluster-example"),
        ),
        (
            "fly-apps__ollama-open-webui__fly.toml",
            Err("`app` is empty"),
        ),
        ("fly-apps__postgres-flex__fly.toml", Err("no `app` key")),
        (
            "fly-apps__python_gpu_example__fly.toml",
            Ok("cgpu-allinone"),
        ),
        ("fly-apps__redis__fly.toml", Ok("redis-example")),
        ("fly-apps__vllm-demo__fly.toml", Ok("vllm-demo")),
        (
            "superfly__fly-log-shipper__fly.toml",
            Ok("fly-log-shipper-example"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_app-name.toml",
            Ok("test-app"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_build-with-args.toml",
            Ok("build-with-args"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_format-quirks.toml",
            Ok("foo"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_full-reference.toml",
            Ok("foo"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_mounts-array.toml",
            Ok("foo"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_old-format.toml",
            Ok("foo"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_processes-multi.toml",
            Ok("foo"),
        ),
        (
            "superfly__flyctl__internal_appconfig_testdata_services-multi.toml",
            Ok("foo"),
        ),
        (
            "superfly__flyctl__internal_command_deploy_testdata_basic_fly.toml",
            Ok("test-basic"),
        ),
        (
            "superfly__flyctl__test_preflight_fixtures_deploy-node_fly.toml",
            Err("not a valid Fly app name"),
        ),
        (
            "superfly__flyctl__test_preflight_fixtures_example-buildpack_fly.toml",
            Ok("flyctl-example-buildpack"),
        ),
        (
            "superfly__flyctl__test_preflight_fixtures_example_fly.toml",
            Ok("damp-fire-3810"),
        ),
    ];
    let on_disk = std::fs::read_dir(corpus(""))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(on_disk, expected.len(), "every corpus file is covered");
    for (file, want) in expected {
        let got = read_app(&corpus(file));
        match (want, &got) {
            (Ok(app), Ok(g)) => assert_eq!(g, app, "{file}"),
            (Err(why), Err(g)) => assert!(g.contains(why), "{file}: {g}"),
            _ => panic!("{file}: expected {want:?}, got {got:?}"),
        }
    }
}

fn build_tree(root: &Path) {
    // Root app (real file) and a monorepo of real files.
    put_corpus(root, "fly.toml", "fly-apps__go-example__fly.toml");
    put_corpus(root, "api/fly.toml", "Accurate0__maccas-api__api_fly.toml");
    put_corpus(
        root,
        "database/fly.toml",
        "Accurate0__maccas-api__database_fly.toml",
    );
    put_corpus(root, "web/fly.toml", "Accurate0__maccas-api__web_fly.toml");
    put_corpus(
        root,
        "backend/fly.toml",
        "0ptim__JellyChat__backend_fly.toml",
    );
    put_corpus(
        root,
        "gpu/fly.toml",
        "fly-apps__python_gpu_example__fly.toml",
    );
    put_corpus(root, "vllm/fly.toml", "fly-apps__vllm-demo__fly.toml");
    put_corpus(
        root,
        "services/fly.toml",
        "superfly__flyctl__internal_appconfig_testdata_services-multi.toml",
    );
    put_corpus(root, "penny/fly.toml", "GrottoPress__penny__fly.toml");
    put_corpus(
        root,
        "penny/fly.staging.toml",
        "GrottoPress__penny__fly.staging.toml",
    );
    put_corpus(
        root,
        "nats/example-fly.toml",
        "fly-apps__nats-cluster__example-fly.toml",
    );
    // Skipped for cause (real files).
    put_corpus(
        root,
        "ollama/fly.toml",
        "fly-apps__ollama-open-webui__fly.toml",
    );
    put_corpus(
        root,
        "postgres/fly.toml",
        "fly-apps__postgres-flex__fly.toml",
    );
    put_corpus(
        root,
        "preflight/fly.toml",
        "superfly__flyctl__test_preflight_fixtures_deploy-node_fly.toml",
    );
    // Two levels down: found only with max_depth >= 2.
    put_corpus(
        root,
        "apps/api/fly.toml",
        "02beta__multitenant-saas-starter__apps_api_fly.toml",
    );
    // Own shapes.
    put(
        root,
        "quotes/fly.toml",
        "# comment with app = \"not-this\"\napp = 'single-quoted' # trailing comment\n\n[build]\n  dockerfile = \"Dockerfile\"\n\n[http_service]\n  internal_port = 8080\n  force_https = true\n",
    );
    put(
        root,
        "literal/fly.toml",
        "app = \"\"\"multi-line-basic\"\"\"\n[[services]]\n  internal_port = 80\n  protocol = \"tcp\"\n  [[services.ports]]\n    port = 443\n",
    );
    put(root, "numeric/fly.toml", "app = 42\n");
    put(root, "upper/fly.toml", "app = \"MyApp\"\n");
    put(root, "broken/fly.toml", "app = \"unterminated\n[build\n");
    put(root, "nested-table/fly.toml", "[app]\nname = \"x\"\n");
    // Never searched.
    put(
        root,
        "node_modules/pkg/fly.toml",
        "app = \"from-node-modules\"\n",
    );
    put(
        root,
        "node_modules/fly.toml",
        "app = \"from-node-modules-top\"\n",
    );
    put(root, ".git/fly.toml", "app = \"from-git\"\n");
    put(root, ".hidden/fly.toml", "app = \"from-hidden\"\n");
    put(root, "target/fly.toml", "app = \"from-target\"\n");
    put(root, "empty-dir/README.md", "no config here\n");
}

fn apps_of(d: &Discovery, root: &Path) -> Vec<(String, String)> {
    d.apps
        .iter()
        .map(|a| {
            let rel = a
                .dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (a.app.clone(), rel)
        })
        .collect()
}

fn skipped_of(d: &Discovery, root: &Path) -> Vec<(String, String)> {
    d.skipped
        .iter()
        .map(|s| {
            let rel = s
                .file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, s.reason.clone())
        })
        .collect()
}

#[test]
fn discovers_a_monorepo_with_default_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    build_tree(root);
    let d = discover_apps(root, cloud_atlas::fly::DEFAULT_MAX_DEPTH).unwrap();
    let apps = apps_of(&d, root);
    let want: Vec<(String, String)> = [
        ("go-example1", ""),
        ("maccas-api", "api"),
        ("jellychat", "backend"),
        ("maccas-db", "database"),
        ("cgpu-allinone", "gpu"),
        ("multi-line-basic", "literal"),
        ("penny", "penny"),
        ("single-quoted", "quotes"),
        ("foo", "services"),
        ("vllm-demo", "vllm"),
        ("maccas-web", "web"),
    ]
    .iter()
    .map(|(a, d)| (a.to_string(), d.to_string()))
    .collect();
    assert_eq!(apps, want);

    let skipped = skipped_of(&d, root);
    let files: Vec<&str> = skipped.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        [
            "broken/fly.toml",
            "nats/example-fly.toml",
            "nested-table/fly.toml",
            "numeric/fly.toml",
            "ollama/fly.toml",
            "penny/fly.staging.toml",
            "postgres/fly.toml",
            "preflight/fly.toml",
            "upper/fly.toml",
        ]
    );
    let reason = |f: &str| skipped.iter().find(|(x, _)| x == f).unwrap().1.clone();
    assert!(
        reason("broken/fly.toml").starts_with("not valid TOML (line "),
        "{}",
        reason("broken/fly.toml")
    );
    assert!(reason("numeric/fly.toml").contains("not a string"));
    assert!(reason("nested-table/fly.toml").contains("not a string"));
    assert!(reason("ollama/fly.toml").contains("empty"));
    assert!(reason("postgres/fly.toml").contains("no `app` key"));
    assert!(reason("preflight/fly.toml").contains("{{apps.0}}"));
    assert!(reason("upper/fly.toml").contains("not a valid Fly app name"));
    assert!(reason("penny/fly.staging.toml").contains("alternate config"));
    // Hidden, .git, node_modules and target are never looked at.
    let all = format!("{d:?}");
    for never in [
        "from-node-modules",
        "from-git",
        "from-hidden",
        "from-target",
    ] {
        assert!(!all.contains(never), "{never} leaked into {all}");
    }
    for s in &d.skipped {
        assert!(!s.reason.contains('\n'), "one-line reasons: {:?}", s.reason);
    }
}

#[test]
fn max_depth_bounds_the_search_and_order_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    build_tree(root);
    let only_root = discover_apps(root, 0).unwrap();
    assert_eq!(
        apps_of(&only_root, root),
        [("go-example1".to_string(), String::new())]
    );
    assert!(only_root.skipped.is_empty());

    let deeper = discover_apps(root, 2).unwrap();
    let apps = apps_of(&deeper, root);
    assert!(apps.contains(&("mss-api".to_string(), "apps/api".to_string())));
    assert!(!apps.iter().any(|(a, _)| a.starts_with("from-")));
    let shallow = discover_apps(root, 1).unwrap();
    assert!(!apps_of(&shallow, root).iter().any(|(a, _)| a == "mss-api"));

    // Same answer every time, sorted by folder.
    assert_eq!(discover_apps(root, 2).unwrap(), deeper);
    let dirs: Vec<&PathBuf> = deeper.apps.iter().map(|a| &a.dir).collect();
    let mut sorted = dirs.clone();
    sorted.sort();
    assert_eq!(dirs, sorted);
}

#[test]
fn json_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    put(root, "fly.toml", "app = \"one\"\n");
    put(root, "b/fly.toml", "app = ''\n");
    let d = discover_apps(root, 1).unwrap();
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["apps"][0]["app"], "one");
    assert_eq!(v["apps"][0]["dir"], root.to_string_lossy().as_ref());
    assert_eq!(
        v["skipped"][0]["file"],
        root.join("b/fly.toml").to_string_lossy().as_ref()
    );
    assert_eq!(v["skipped"][0]["reason"], "`app` is empty");
    assert_eq!(v.as_object().unwrap().len(), 2);
}

#[test]
fn bad_roots_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let e = discover_apps(tmp.path().join("missing"), 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    put(tmp.path(), "file.txt", "x");
    let e = discover_apps(tmp.path().join("file.txt"), 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("path"));
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    put(root, "a/fly.toml", "app = \"a-app\"\n");
    std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
    let d = discover_apps(root, 5).unwrap();
    assert_eq!(apps_of(&d, root), [("a-app".to_string(), "a".to_string())]);
}

#[test]
fn app_names_from_text() {
    assert_eq!(app_from_toml("app = \"ok-1\"").unwrap(), "ok-1");
    assert!(app_from_toml("app = [\"x\"]")
        .unwrap_err()
        .contains("array"));
}
