//! Secrets on disk and on the command line, across real `atlas` processes: which
//! folders and files `atlas` creates and with what modes, and how API keys get in
//! without showing up in `ps`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::Run;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn atlas(dir: &Path, args: &[&str]) -> Command {
    std::fs::write(dir.join("atlas.toml"), "").unwrap();
    common::atlas(dir, args)
}

#[test]
fn an_existing_data_dir_keeps_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    // As `ATLAS_HOME=/tmp`: a shared folder that is not ours to lock down.
    let home = tmp.path().join("shared");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut c = atlas(tmp.path(), &["ls", "--provider", "mock"]);
    c.env("ATLAS_HOME", &home);
    Run::of(&mut c).ok();
    assert_eq!(mode(&home), 0o1777);
    // What we created inside it is private.
    assert_eq!(mode(&home.join("mock-cloud.sqlite")), 0o600);

    let mut c = atlas(tmp.path(), &["fly", "token", "set", "my-app"]);
    c.env("ATLAS_HOME", &home);
    common::run_with_stdin(&mut c, "tok-1\n").ok();
    assert_eq!(mode(&home), 0o1777);
    assert_eq!(mode(&home.join("fly-tokens")), 0o700);
    assert_eq!(mode(&home.join("fly-tokens").join("manual.json")), 0o600);
}

#[test]
fn folders_atlas_creates_are_private_all_the_way_down() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("new").join("atlas-home");
    let mut c = atlas(tmp.path(), &["fly", "token", "set", "my-app"]);
    c.env("ATLAS_HOME", &home);
    common::run_with_stdin(&mut c, "tok-1\n").ok();
    assert_eq!(mode(&tmp.path().join("new")), 0o700);
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("fly-tokens")), 0o700);
    assert_eq!(mode(&home.join("fly-tokens").join("manual.json")), 0o600);

    // The mock's state file in a data dir it creates.
    let home = tmp.path().join("mock-home");
    let mut c = atlas(tmp.path(), &["ls", "--provider", "mock"]);
    c.env("ATLAS_HOME", &home);
    Run::of(&mut c).ok();
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("mock-cloud.sqlite")), 0o600);
}
