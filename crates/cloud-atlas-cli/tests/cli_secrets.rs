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

/// A one-shot HTTP server on 127.0.0.1: answers every request 401 and hands back the
/// `authorization` header of the first one.
fn header_catcher() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("authorization") {
                        auth = v.trim().to_string();
                    }
                }
            }
            let _ = tx.send(auth);
            let body = r#"{"error":"unauthorized"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, rx)
}

#[test]
fn api_key_file_and_stdin_reach_the_provider_without_argv() {
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("vast.key");
    std::fs::write(&key_file, "vast-key-from-file-123\n").unwrap();
    let (url, seen) = header_catcher();
    let key_path = key_file.display().to_string();
    let args = [
        "--provider",
        "vast",
        "--base-url",
        &url,
        "--api-key-file",
        &key_path,
        "ls",
    ];
    let r = Run::of(&mut atlas(tmp.path(), &args));
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(seen.recv().unwrap(), "Bearer vast-key-from-file-123");
    assert!(!r.stderr.contains("vast-key-from-file"), "{r:#?}");

    // `-` reads it from stdin.
    let (url, seen) = header_catcher();
    let args = [
        "--provider",
        "vast",
        "--base-url",
        &url,
        "--api-key-file",
        "-",
        "ls",
    ];
    let r = common::run_with_stdin(&mut atlas(tmp.path(), &args), "vast-key-from-stdin\n");
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(seen.recv().unwrap(), "Bearer vast-key-from-stdin");

    // Where the key came from is shown, never the key.
    let r = Run::of(&mut atlas(
        tmp.path(),
        &[
            "--provider",
            "vast",
            "--api-key-file",
            &key_path,
            "providers",
            "-o",
            "json",
        ],
    ))
    .ok();
    let v = r.json();
    let vast = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "vast")
        .unwrap();
    assert_eq!(vast["api_key"]["configured"], true);
    assert_eq!(vast["api_key"]["source"], "--api-key-file");
    assert!(!r.stdout.contains("vast-key-from-file"));
}

#[test]
fn api_key_file_errors_are_one_line_and_help_prefers_env_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.key");
    let empty = tmp.path().join("empty.key");
    std::fs::write(&empty, "\n").unwrap();
    let two = tmp.path().join("two.key");
    std::fs::write(&two, "line-one\nline-two\n").unwrap();
    for f in [&missing, &empty, &two] {
        let r = Run::of(&mut atlas(
            tmp.path(),
            &[
                "--provider",
                "vast",
                "--api-key-file",
                &f.display().to_string(),
                "ls",
            ],
        ));
        let line = r.fails(2);
        assert!(line.contains("--api-key-file"), "{line}");
        assert!(!line.contains("line-one"), "{line}");
    }
    // Both ways at once is a usage error.
    let r = Run::of(&mut atlas(
        tmp.path(),
        &[
            "--api-key",
            "k",
            "--api-key-file",
            &empty.display().to_string(),
            "ls",
        ],
    ));
    assert_eq!(r.code, 2, "{r:#?}");

    let help = Run::of(&mut atlas(tmp.path(), &["--help"])).ok();
    let flat = help
        .stdout
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(flat.contains("--api-key-file"), "{flat}");
    assert!(
        flat.contains("visible to other users") && flat.contains("prefer"),
        "{flat}"
    );
}
