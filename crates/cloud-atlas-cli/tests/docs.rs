//! Every ```` ```sh mock ```` block in `docs/*.md` runs: each block in a fresh empty folder,
//! each non-comment line through `sh -c` with this build's `atlas` first on `PATH` and no
//! provider keys in the environment. A non-zero exit fails with the guide, block and line.
//! (`docs/README.md` documents the marker.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// The info string that marks a runnable block.
const MARKER: &str = "sh mock";

/// `(guide, first line number, lines)` of every runnable block.
fn blocks() -> Vec<(PathBuf, usize, Vec<String>)> {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let mut files = Vec::new();
    let mut dirs = vec![docs];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut current: Option<(usize, Vec<String>)> = None;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            match &mut current {
                None if t
                    .strip_prefix("```")
                    .is_some_and(|info| info.trim() == MARKER) =>
                {
                    current = Some((i + 2, Vec::new()));
                }
                Some(_) if t == "```" => {
                    let (start, lines) = current.take().unwrap();
                    out.push((f.clone(), start, lines));
                }
                Some((_, lines)) => lines.push(line.to_string()),
                None => {}
            }
        }
        assert!(
            current.is_none(),
            "{}: unclosed ```{MARKER} block",
            f.display()
        );
    }
    out
}

#[test]
fn every_mock_shell_snippet_in_the_guides_runs() {
    let bin = Path::new(env!("CARGO_BIN_EXE_atlas")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let blocks = blocks();
    assert!(
        blocks.len() >= 5,
        "expected the guides' runnable blocks, found {}",
        blocks.len()
    );
    for (file, start, lines) in blocks {
        let tmp = tempfile::tempdir().unwrap();
        for (n, line) in lines.iter().enumerate() {
            let cmd = line.trim();
            if cmd.is_empty() || cmd.starts_with('#') {
                continue;
            }
            let o = Command::new("sh")
                .args(["-c", cmd])
                .current_dir(tmp.path())
                .env_clear()
                .env("PATH", &path)
                .env("HOME", tmp.path().join("home"))
                .env("XDG_CONFIG_HOME", tmp.path().join("home/.config"))
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{}:{}: `{cmd}` exited {:?}\nstdout: {}\nstderr: {}",
                file.display(),
                start + n,
                o.status.code(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}
