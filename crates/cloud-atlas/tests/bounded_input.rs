//! Documents read from files have a size cap: an oversized or endless input is a clear
//! one-line error (or a skipped file with its reason), never an out-of-memory abort.

use std::collections::BTreeMap;
use std::path::Path;

use cloud_atlas::config::Config;
use cloud_atlas::fly::discover_apps;
use cloud_atlas::fly::tokens::read_fly_config;
use cloud_atlas::ErrorKind;

/// A valid TOML document of more than 1 MiB starting with `first`.
fn huge_toml(path: &Path, first: &str) {
    let mut text = format!("{first}\n");
    while text.len() <= 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding\n");
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn an_oversized_atlas_toml_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("atlas.toml");
    huge_toml(&p, "default_provider = 'mock'");
    let e = Config::load_with(dir.path(), Some(&p), &BTreeMap::new(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("1 MiB"), "{e}");
    assert!(!e.to_string().contains('\n'), "{e}");
}

#[test]
#[cfg(target_os = "linux")]
fn an_endless_config_file_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load_with(
        dir.path(),
        Some(Path::new("/dev/zero")),
        &BTreeMap::new(),
        None,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("1 MiB"), "{e}");

    // flyctl's config.yml, the same.
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("config.yml")).unwrap();
    let e = read_fly_config(dir.path()).unwrap_err();
    assert!(e.to_string().contains("1 MiB"), "{e}");
}

#[test]
fn an_oversized_fly_toml_is_skipped_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("big")).unwrap();
    huge_toml(&dir.path().join("big").join("fly.toml"), "app = 'big-app'");
    std::fs::write(dir.path().join("fly.toml"), "app = 'small-app'\n").unwrap();
    let d = discover_apps(dir.path(), 2).unwrap();
    assert_eq!(d.apps.len(), 1, "{d:?}");
    assert_eq!(d.apps[0].app, "small-app");
    assert_eq!(d.skipped.len(), 1, "{d:?}");
    assert!(d.skipped[0].reason.contains("1 MiB"), "{d:?}");
}
