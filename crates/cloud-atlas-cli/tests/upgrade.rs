//! `atlas upgrade` on fixtures of every older version (`tests/fixtures/upgrade/vN.toml`
//! becomes `vN.expected.toml` byte for byte), idempotence, `--dry-run`, and refusals.

use std::path::Path;
use std::process::{Command, Output};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/upgrade")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `atlas args…` in `dir` (which holds `atlas.toml`), with a cleared environment.
fn atlas(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home").join(".config"))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Every older version has a fixture pair; each upgrades to its expected text, loads,
/// and a second run changes nothing.
#[test]
fn every_older_version_upgrades_to_its_expected_text() {
    for from in 0..cloud_atlas::config::CONFIG_VERSION {
        let input = fixture(&format!("v{from}.toml"));
        let expected = fixture(&format!("v{from}.expected.toml"));
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("atlas.toml");
        std::fs::write(&file, &input).unwrap();
        let out = stdout(&atlas(tmp.path(), &["upgrade"]));
        assert!(
            out.contains(&format!("changed: version {from} -> ")),
            "{out}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected, "v{from}");
        // The result is a valid config for this build.
        stdout(&atlas(tmp.path(), &["providers", "-o", "json"]));
        let again = stdout(&atlas(tmp.path(), &["upgrade"]));
        assert!(again.starts_with("nothing to change\n"), "{again}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    }
}

#[test]
fn current_file_is_left_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("atlas.toml");
    let v1 = fixture("v1.toml");
    std::fs::write(&file, &v1).unwrap();
    let out = stdout(&atlas(tmp.path(), &["upgrade"]));
    assert!(out.contains("is at version 1 (current)"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), v1);
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("atlas.toml");
    let v0 = fixture("v0.toml");
    std::fs::write(&file, &v0).unwrap();
    let out = stdout(&atlas(tmp.path(), &["upgrade", "--dry-run"]));
    assert!(
        out.contains("--- a/atlas.toml\n+++ b/atlas.toml\n"),
        "{out}"
    );
    assert!(out.contains("\n+version = 1\n"), "{out}");
    assert!(out.contains("would change: version 0 -> 1"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), v0);
}

#[test]
fn newer_version_bad_version_and_missing_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("atlas.toml");
    for (text, says) in [
        (
            "version = 7\n",
            "version = 7, newer than this atlas understands (1): upgrade atlas",
        ),
        (
            "version = \"1\"\n",
            "version must be a whole number from 0 to 1",
        ),
        (
            "version = -1\n",
            "version must be a whole number from 0 to 1",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let o = atlas(tmp.path(), &["upgrade"]);
        assert_eq!(o.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{text}: {err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
    std::fs::remove_file(&file).unwrap();
    let o = atlas(tmp.path(), &["upgrade"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("run `atlas init`"));
}
