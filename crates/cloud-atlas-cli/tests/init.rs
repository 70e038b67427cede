//! `atlas init` through the real binary: an empty folder, a hand-edited `atlas.toml`,
//! twice in a row, `--dry-run`, a newer file refused, and `--rust` on a fresh crate that
//! then builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `atlas args…` in `dir` with a cleared environment plus `env`.
fn atlas(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home").join(".config"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[cfg(unix)]
fn mode(p: impl AsRef<Path>) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir` (not `home/`) with its bytes, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "home" && n != "target") {
                    stack.push(p);
                }
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn empty_folder_gets_config_data_dir_and_gitignore() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(dir.join("web/fly.toml"), "app = \"web-app\"\n").unwrap();
    let out = ok(&atlas(dir, &["init"], &[("RUNPOD_API_KEY", "rp-key")]));
    assert!(out.contains("changed: created atlas.toml"), "{out}");
    assert!(out.contains("Fly apps found: web-app"), "{out}");
    let toml = read(dir.join("atlas.toml"));
    assert!(toml.contains("\nversion = 1\n"), "{toml}");
    // The provider with a key is a live table; the others are commented out.
    assert!(toml.contains("\n[providers.runpod]\n"), "{toml}");
    assert!(toml.contains("\n# [providers.lambda]\n"), "{toml}");
    assert!(toml.contains("\n# [providers.fly]\n"), "{toml}");
    assert!(toml.contains("#   web-app  (web)"), "{toml}");
    assert!(
        !toml.contains("rp-key"),
        "a key from the environment is never written"
    );
    assert!(dir.join(".atlas").is_dir());
    #[cfg(unix)]
    {
        assert_eq!(mode(dir.join(".atlas")), 0o700);
        assert_eq!(mode(dir.join("atlas.toml")), 0o600);
        assert_eq!(mode(dir.join(".gitignore")), 0o644);
    }
    assert!(read(dir.join(".gitignore")).contains("\n/.atlas/\n"));
    // The written file loads: the mock is the default provider and works.
    let ls = ok(&atlas(dir, &["ls", "-o", "json"], &[]));
    assert_eq!(ls.trim(), "[]");
    assert!(
        dir.join(".atlas")
            .join(cloud_atlas::providers::mock::MOCK_DB_FILE)
            .exists(),
        "mock state goes to the project's data dir"
    );
}

/// A file written by hand, without `version`, with comments and odd formatting.
const HAND_EDITED: &str = "# mine, do not touch\n\
default_provider='mock'    #  spaced   comment\n\
\n\
[mock]\n\
   boot_delay  =  \"10ms\"   # indented\n\
\n\
[providers.runpod]   # header comment\n\
base_url = \"http://127.0.0.1:4010\"\n";

#[test]
fn hand_edited_file_survives_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("atlas.toml"), HAND_EDITED).unwrap();
    // A .gitignore without a final newline gets the line appended once.
    std::fs::write(dir.join(".gitignore"), "target").unwrap();
    let out = ok(&atlas(dir, &["init"], &[("LAMBDA_API_KEY", "lk")]));
    let after = read(dir.join("atlas.toml"));
    // The only change is the version line the v0 -> v1 step adds.
    let without: String = after.replace("version = 1\n", "");
    assert_eq!(without, HAND_EDITED, "after:\n{after}");
    assert!(after.contains("version = 1\n"));
    assert!(out.contains("version 0 -> 1"), "{out}");
    // A provider whose key is now set is reported, never added behind the user's back.
    assert!(out.contains("left: [providers.lambda] not added"), "{out}");
    assert_eq!(
        read(dir.join(".gitignore")),
        "target\n# cloud-atlas state (mock cloud, sessions, tokens)\n/.atlas/\n"
    );
}

#[test]
fn second_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&atlas(dir, &["init"], &[]));
    // The user edits the file and ignores the data dir their own way.
    let mut toml = read(dir.join("atlas.toml"));
    toml = toml.replace(
        "# [mock]\n# boot_delay = \"1500ms\"",
        "[mock]\nboot_delay = \"5ms\"  # mine",
    );
    std::fs::write(dir.join("atlas.toml"), &toml).unwrap();
    std::fs::write(dir.join(".gitignore"), ".atlas\n").unwrap();
    let before = snapshot(dir);
    let out = ok(&atlas(dir, &["init"], &[]));
    assert!(out.starts_with("nothing to change\n"), "{out}");
    assert!(out.contains("left: atlas.toml"), "{out}");
    assert!(
        out.contains("left: .gitignore already ignores .atlas/"),
        "{out}"
    );
    assert_eq!(snapshot(dir), before);
    let out = ok(&atlas(dir, &["init", "--dry-run"], &[]));
    assert!(out.starts_with("nothing to change\n"), "{out}");
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("atlas.toml"), HAND_EDITED).unwrap();
    let before = snapshot(dir);
    let out = ok(&atlas(dir, &["init", "--dry-run", "-o", "table"], &[]));
    assert_eq!(snapshot(dir), before);
    assert!(!dir.join(".atlas").exists());
    assert!(
        out.contains("--- a/atlas.toml\n+++ b/atlas.toml\n"),
        "{out}"
    );
    assert!(out.contains("\n+version = 1\n"), "{out}");
    assert!(out.contains("--- /dev/null\n+++ b/.gitignore\n"), "{out}");
    assert!(out.contains("mkdir -m 0700 .atlas"), "{out}");
    assert!(out.contains("would change: created .atlas/"), "{out}");
    let json = ok(&atlas(dir, &["init", "--dry-run", "-o", "json"], &[]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["dry_run"], true);
    assert!(v["changed"].as_array().unwrap().len() >= 3, "{v}");
}

#[test]
fn newer_or_broken_file_is_refused_and_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("atlas.toml"), "version = 99\n").unwrap();
    let o = atlas(dir, &["init"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("version = 99, newer than this atlas understands"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(read(dir.join("atlas.toml")), "version = 99\n");
    assert!(!dir.join(".atlas").exists());
    std::fs::write(dir.join("atlas.toml"), "version = = 1\n").unwrap();
    let o = atlas(dir, &["init"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is not valid TOML"), "{err}");
    // Other commands refuse the newer file too (the config loader checks `version`).
    std::fs::write(dir.join("atlas.toml"), "version = 2\n").unwrap();
    let o = atlas(dir, &["ls"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("upgrade atlas"));
}

#[test]
fn rust_flag_on_a_fresh_cargo_crate_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let krate = tmp.path().join("hello");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(&cargo)
        .args(["new", "--vcs", "none", "--quiet"])
        .arg(&krate)
        .status()
        .unwrap();
    assert!(st.success());
    let manifest_before = read(krate.join("Cargo.toml"));
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cloud-atlas");
    let lib = lib.to_str().unwrap();
    let out = ok(&atlas(
        &krate,
        &["init", "--rust", "--cloud-atlas-path", lib],
        &[],
    ));
    assert!(
        out.contains("added cloud-atlas, tokio to Cargo.toml"),
        "{out}"
    );
    assert!(out.contains("wrote examples/atlas_quickstart.rs"), "{out}");
    let manifest = read(krate.join("Cargo.toml"));
    assert!(manifest.starts_with(&manifest_before), "{manifest}");
    assert!(
        manifest.contains("cloud-atlas = { version = \"0.1.0\", path = "),
        "{manifest}"
    );
    // Idempotent with --rust too.
    let before = snapshot(&krate);
    let again = ok(&atlas(
        &krate,
        &["init", "--rust", "--cloud-atlas-path", lib],
        &[],
    ));
    assert!(again.starts_with("nothing to change\n"), "{again}");
    assert_eq!(snapshot(&krate), before);
    // The crate and its starter example build offline against this workspace, with the
    // workspace's lock file so the versions are the ones already downloaded.
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::copy(ws.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("init-rust-target");
    let o = Command::new(&cargo)
        .args(["check", "--offline", "--quiet", "--examples", "--bins"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo check failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
