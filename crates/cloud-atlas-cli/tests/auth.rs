//! `atlas token …` and `atlas url …` through the real binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn atlas(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atlas"));
    cmd.args(args)
        .env_remove("ATLAS_SIGNING_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A signing secret of the length `url sign` asks for.
const SECRET: &str = "per-pod-secret-0123456789abcdef-0123";

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn url_sign_json_and_secret_from_stdin() {
    let out = atlas(
        &[
            "url",
            "sign",
            "/media/a.mp4",
            "--secret-stdin",
            "-o",
            "json",
        ],
        &[],
        &format!("{SECRET}\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with("/media/a.mp4?exp="), "{url}");
    let ok = atlas(
        &["url", "verify", url, "--secret-stdin"],
        &[],
        &format!("{SECRET}\n"),
    );
    assert!(ok.status.success(), "{ok:?}");
}

#[test]
fn token_mint_json_verifies_with_token_verify() {
    let out = atlas(&["token", "mint", "-o", "json"], &[], "");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (token, hash) = (v["token"].as_str().unwrap(), v["hash"].as_str().unwrap());
    let ok = atlas(
        &["token", "verify", "--hash", hash],
        &[],
        &format!("{token}\n"),
    );
    assert!(ok.status.success(), "{ok:?}");
    let bad = atlas(&["token", "verify", "--hash", hash], &[], "not-the-token\n");
    assert_eq!(bad.status.code(), Some(3));
    assert!(stderr(&bad).contains("does not match the hash"), "{bad:?}");
    // The token never shows up in argv: `--hash` is public, the token comes on stdin.
    let usage = atlas(&["token", "verify", "--hash", "not-hex"], &[], "x\n");
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn url_sign_output_verifies_and_fails_after_expiry() {
    let env = [("POD_SECRET", SECRET)];
    let signed = atlas(
        &[
            "url",
            "sign",
            "https://pod.example/media/a.mp4?w=640",
            "--secret-env",
            "POD_SECRET",
            "--expires-in",
            "1s",
        ],
        &env,
        "",
    );
    assert!(signed.status.success(), "{signed:?}");
    let url = stdout(&signed).trim().to_string();
    assert!(url.contains("&sig="), "{url}");
    // The secret never appears in argv: it comes from the env var or stdin.
    let ok = atlas(
        &["url", "verify", &url, "--secret-env", "POD_SECRET"],
        &env,
        "",
    );
    assert!(ok.status.success(), "{ok:?}");
    let ok = atlas(
        &["url", "verify", &url, "--secret-stdin"],
        &[],
        &format!("{SECRET}\n"),
    );
    assert!(ok.status.success(), "{ok:?}");
    let tampered = atlas(
        &[
            "url",
            "verify",
            &url.replace("w=640", "w=1"),
            "--secret-env",
            "POD_SECRET",
        ],
        &env,
        "",
    );
    assert_eq!(tampered.status.code(), Some(3));
    assert!(stderr(&tampered).contains("bad signature"), "{tampered:?}");

    std::thread::sleep(Duration::from_secs(2));
    let late = atlas(
        &["url", "verify", &url, "--secret-env", "POD_SECRET"],
        &env,
        "",
    );
    assert_eq!(late.status.code(), Some(3), "{late:?}");
    assert!(stderr(&late).contains("signed URL expired"), "{late:?}");
}

#[test]
fn url_sign_without_a_secret_names_the_env_var() {
    let out = atlas(&["url", "sign", "/media/a.mp4"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("ATLAS_SIGNING_SECRET"), "{err}");
}

#[test]
fn url_sign_refuses_a_short_secret_in_one_line() {
    let out = atlas(
        &["url", "sign", "/media/a.mp4", "--secret-env", "POD_SECRET"],
        &[("POD_SECRET", "short-secret")],
        "",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("at least 32 bytes"), "{err}");
    assert!(!err.contains("short-secret"), "{err}");
}

/// `atlas args` with stdin from `/dev/zero`: endless input without a line break.
fn atlas_endless_stdin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atlas"))
        .args(args)
        .env_remove("ATLAS_SIGNING_SECRET")
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap()
}

#[test]
fn endless_stdin_is_a_clear_error_not_out_of_memory() {
    let hash = "0".repeat(64);
    for args in [
        vec!["token", "verify", "--hash", &hash],
        vec!["url", "sign", "/m", "--secret-stdin"],
        vec!["url", "verify", "/m?exp=1&sig=x", "--secret-stdin"],
    ] {
        let out = atlas_endless_stdin(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("stdin") && err.contains("64 KiB"),
            "{args:?}: {err}"
        );
    }
}
