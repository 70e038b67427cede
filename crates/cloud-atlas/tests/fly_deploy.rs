//! `fly deploy` against fake `fly` shell scripts.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloud_atlas::fly::{
    deploy, stream_deploy, DeployOptions, DeployStatus, DeployTimer, Flyctl, OutputStream,
};
use cloud_atlas::ErrorKind;

struct Fake {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    app_dir: PathBuf,
    log: PathBuf,
}

/// A fake `fly` whose body is `script`; `$LOG` is a file it may write to.
fn fake(script: &str) -> Fake {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("fly");
    let log = tmp.path().join("log");
    std::fs::write(
        &bin,
        format!("#!/bin/sh\nLOG='{}'\n{script}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app_dir = tmp.path().join("app");
    std::fs::create_dir_all(&app_dir).unwrap();
    std::fs::write(
        app_dir.join("fly.toml"),
        "app = 'demo-app'\n[http_service]\n  internal_port = 8080\n",
    )
    .unwrap();
    Fake {
        _tmp: tmp,
        bin,
        app_dir,
        log,
    }
}

fn opts(f: &Fake) -> DeployOptions {
    DeployOptions::default()
        .with_flyctl(Flyctl::new(&f.bin).with_kill_grace(Duration::from_millis(300)))
        .with_activity_timeout(Duration::from_secs(20))
        .with_stream_timeout(Duration::from_secs(60))
}

/// Wait (bounded) until process `pid` is gone or a zombie.
async fn assert_process_ends(pid: u32) {
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        match stat {
            Err(_) => return,
            Ok(s) if s.split_whitespace().nth(2) == Some("Z") => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("process {pid} of the deploy's group is still running");
}

fn read_pid(p: &Path) -> u32 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn streams_stdout_and_stderr_lines_and_succeeds() {
    let f = fake(
        r#"echo "args: $*" > "$LOG"; pwd >> "$LOG"
echo "==> Verifying app config"
echo "--> Building image" 1>&2
printf 'progress 10%%\rprogress 100%%\n'
printf 'no newline at end'"#,
    );
    let mut s = stream_deploy(&f.app_dir, None, &opts(&f)).await.unwrap();
    assert_eq!(s.app(), "demo-app");
    let mut lines = Vec::new();
    while let Some(l) = s.next_line().await {
        lines.push(l);
    }
    let out = s.outcome().await.unwrap();
    assert_eq!(out.status, DeployStatus::Succeeded);
    assert_eq!(out.lines, lines.len() as u64);
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|l| l.stream == OutputStream::Stdout)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(
        stdout,
        [
            "==> Verifying app config",
            "progress 10%",
            "progress 100%",
            "no newline at end"
        ]
    );
    assert!(lines
        .iter()
        .any(|l| l.stream == OutputStream::Stderr && l.text == "--> Building image"));
    let log = std::fs::read_to_string(&f.log).unwrap();
    assert!(
        log.starts_with("args: deploy --remote-only --app demo-app\n"),
        "{log}"
    );
    assert!(
        log.trim_end().ends_with("/app"),
        "runs in the app folder: {log}"
    );
}

#[tokio::test]
async fn app_argument_wins_and_bad_app_is_validation() {
    let f = fake(r#"echo "args: $*" > "$LOG""#);
    let r = deploy(&f.app_dir, Some("other-app"), &opts(&f))
        .await
        .unwrap();
    assert!(r.outcome.status.is_success());
    assert!(std::fs::read_to_string(&f.log)
        .unwrap()
        .contains("--app other-app"));

    let e = stream_deploy(&f.app_dir, Some("Bad_App"), &opts(&f))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.to_string().contains("app"));

    std::fs::write(f.app_dir.join("fly.toml"), "app = '{{apps.0}}'\n").unwrap();
    let e = stream_deploy(&f.app_dir, None, &opts(&f))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("--app"), "{e}");

    let e = stream_deploy(&f.app_dir.join("nope"), Some("x"), &opts(&f))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn slow_steady_output_keeps_the_activity_timer_alive() {
    let f = fake(r#"i=0; while [ $i -lt 8 ]; do echo "step $i"; i=$((i+1)); sleep 0.1; done"#);
    let o = opts(&f).with_activity_timeout(Duration::from_secs(2));
    let r = deploy(&f.app_dir, None, &o).await.unwrap();
    // The blocking form only has the cap; check the streamed form too.
    assert!(r.outcome.status.is_success());
    let mut s = stream_deploy(&f.app_dir, None, &o).await.unwrap();
    let mut n = 0;
    while s.next_line().await.is_some() {
        n += 1;
    }
    assert_eq!(n, 8);
    assert_eq!(s.outcome().await.unwrap().status, DeployStatus::Succeeded);
}

#[tokio::test]
async fn silence_past_the_activity_timer_kills_the_process_group() {
    let f = fake(
        r#"echo "building"
sleep 30 &
echo $! > "$LOG"
wait"#,
    );
    let o = opts(&f).with_activity_timeout(Duration::from_millis(300));
    let mut s = stream_deploy(&f.app_dir, None, &o).await.unwrap();
    let mut lines = Vec::new();
    while let Some(l) = s.next_line().await {
        lines.push(l.text);
    }
    let out = s.outcome().await.unwrap();
    assert_eq!(
        out.status,
        DeployStatus::TimedOut {
            timer: DeployTimer::Activity,
            after: Duration::from_millis(300)
        }
    );
    assert_eq!(out.status.exit_code(), 124);
    assert_eq!(lines[0], "building");
    assert!(
        lines.last().unwrap().contains("no output for 300ms"),
        "{lines:?}"
    );
    // The grandchild (`sleep 30`) was in the group and is gone too.
    assert_process_ends(read_pid(&f.log)).await;
}

#[tokio::test]
async fn absolute_cap_fires_even_with_steady_output() {
    let f = fake(r#"echo $$ > "$LOG"; while true; do echo tick; sleep 0.05; done"#);
    let o = opts(&f)
        .with_activity_timeout(Duration::from_secs(5))
        .with_stream_timeout(Duration::from_millis(400));
    let s = stream_deploy(&f.app_dir, None, &o).await.unwrap();
    let out = s.outcome().await.unwrap();
    assert!(matches!(
        out.status,
        DeployStatus::TimedOut {
            timer: DeployTimer::Absolute,
            ..
        }
    ));
    assert_eq!(out.status.as_str(), "timed_out_absolute");
    assert_process_ends(read_pid(&f.log)).await;

    // The blocking form has its own cap.
    let o = opts(&f).with_deploy_timeout(Duration::from_millis(300));
    let r = deploy(&f.app_dir, None, &o).await.unwrap();
    assert!(matches!(
        r.outcome.status,
        DeployStatus::TimedOut {
            timer: DeployTimer::Absolute,
            ..
        }
    ));
    assert!(r.output.contains("tick\n"));
}

#[tokio::test]
async fn non_zero_exit_is_a_failed_outcome_with_its_code() {
    let f = fake("echo 'Error: failed to fetch an image' 1>&2; exit 3");
    let r = deploy(&f.app_dir, None, &opts(&f)).await.unwrap();
    assert_eq!(r.outcome.status, DeployStatus::Failed { code: Some(3) });
    assert_eq!(r.outcome.status.exit_code(), 3);
    assert_eq!(r.output, "Error: failed to fetch an image\n");
    assert_eq!(r.outcome.lines, 1);
}

#[tokio::test]
async fn output_held_open_by_a_leftover_child_does_not_hang() {
    let f = fake(
        r#"sleep 30 &
echo $! > "$LOG"
echo "deployed"
exit 0"#,
    );
    let r = deploy(&f.app_dir, None, &opts(&f)).await.unwrap();
    assert_eq!(r.outcome.status, DeployStatus::Succeeded);
    assert_eq!(r.output, "deployed\n");
    assert_process_ends(read_pid(&f.log)).await;
}

#[tokio::test]
async fn missing_binary_is_not_found_naming_it() {
    let f = fake("exit 0");
    let o = DeployOptions::default().with_flyctl(Flyctl::new("/nonexistent/bin/fly"));
    let e = stream_deploy(&f.app_dir, None, &o).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("/nonexistent/bin/fly"), "{e}");
    assert!(e.message().contains("ATLAS_FLY_BIN"), "{e}");
    let o = DeployOptions::default().with_flyctl(Flyctl::new("fly-not-installed-anywhere"));
    let e = deploy(&f.app_dir, None, &o).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("`fly-not-installed-anywhere`"));
}

#[tokio::test]
async fn dropping_the_stream_stops_the_deploy() {
    let f = fake(r#"echo $$ > "$LOG"; echo started; sleep 30"#);
    let mut s = stream_deploy(&f.app_dir, None, &opts(&f)).await.unwrap();
    assert_eq!(s.next_line().await.unwrap().text, "started");
    let pid = read_pid(&f.log);
    drop(s);
    assert_process_ends(pid).await;
}

#[tokio::test]
async fn cancel_stops_the_group_and_waits_for_it() {
    let f = fake(r#"echo $$ > "$LOG"; echo started; sleep 30 & wait"#);
    let mut s = stream_deploy(&f.app_dir, None, &opts(&f)).await.unwrap();
    assert_eq!(s.next_line().await.unwrap().text, "started");
    let pid = read_pid(&f.log);
    let outcome = s.cancel().await.unwrap();
    assert_eq!(outcome.status, DeployStatus::Failed { code: None });
    assert_process_ends(pid).await;
}
