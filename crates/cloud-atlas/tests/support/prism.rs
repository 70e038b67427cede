//! A Prism mock server generated from a provider's published OpenAPI spec.
//!
//! Prism validates every request against the spec; with `--errors` a request that
//! violates it gets an error response instead of a mock answer, and every violation is
//! logged. [`Prism::assert_no_violations`] reads that log, so a contract test fails on
//! any non-conforming request even when the provider code tolerated the error answer.
//!
//! The binary is `$ATLAS_PRISM_BIN`, else `tools/prism/node_modules/.bin/prism` in the
//! workspace, installed on first use with `npm ci --prefix tools/prism` (pinned by its lock file).
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running Prism server; killed on drop.
pub struct Prism {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

/// Path of a fixture file (`crates/cloud-atlas/tests/fixtures/<rel>`). Found from the
/// workspace's `crates/` folder, so the path is right in every crate that includes this
/// module (`#[path = "../../cloud-atlas/tests/support/mod.rs"] mod support;`).
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../cloud-atlas/tests/fixtures")
        .join(rel)
}

fn prism_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ATLAS_PRISM_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/prism");
    let p = dir.join("node_modules/.bin/prism");
    if !p.exists() {
        // First run on a fresh machine: install the Prism pinned by tools/prism/package-lock.json.
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .expect("npm is needed to install Prism for the contract tests");
        assert!(
            status.success(),
            "`npm ci --prefix tools/prism` failed; the contract tests need Prism"
        );
    }
    assert!(
        p.exists(),
        "Prism is not installed at {}: run `npm ci --prefix tools/prism` or set ATLAS_PRISM_BIN",
        p.display()
    );
    p
}

impl Prism {
    /// Start Prism on a free loopback port with the spec at `tests/fixtures/<spec>`.
    pub fn start(spec: &str) -> Prism {
        Prism::start_with(spec, &[])
    }

    /// Start with extra Prism arguments (e.g. `["--dynamic"]`).
    pub fn start_with(spec: &str, extra: &[&str]) -> Prism {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(prism_bin())
            .args([
                "mock",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--errors",
            ])
            .args(extra)
            .arg(fixture(spec))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start prism");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let started = Instant::now();
        loop {
            if log.lock().unwrap().contains("Prism is listening") {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("prism exited ({status}): {}", log.lock().unwrap());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "prism did not start in 60s: {}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prism { child, port, log }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Prism logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until Prism's log stops growing (its output is read on other threads, so the
    /// lines of the last requests may still be on their way), at most 3 s.
    pub fn settle(&self) {
        let started = Instant::now();
        let mut last = self.log.lock().unwrap().len();
        let mut quiet = 0;
        while quiet < 2 && started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(150));
            let now = self.log.lock().unwrap().len();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
    }

    /// Log lines reporting a request that did not match the spec (after [`Prism::settle`]).
    pub fn violations(&self) -> Vec<String> {
        self.settle();
        self.log()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                (l.contains("violation") || l.contains("request did not pass"))
                    && !l.contains("response")
            })
            .map(str::to_string)
            .collect()
    }

    /// Panic listing every request violation Prism saw.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "Prism saw requests that violate the spec:\n{}",
            v.join("\n")
        );
    }

    /// How many requests Prism answered.
    pub fn request_count(&self) -> usize {
        self.settle();
        self.log().matches("Request received").count()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prism that asserts, when dropped, that it saw no request violating the spec
/// (for guards held by the conformance suite, whose cases cannot call the check).
pub struct StrictPrism(pub Prism);

impl StrictPrism {
    /// Start a strict Prism with the spec at `tests/fixtures/<spec>`.
    pub fn start(spec: &str) -> StrictPrism {
        StrictPrism(Prism::start(spec))
    }
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.0.base_url()
    }
}

impl Drop for StrictPrism {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.assert_no_violations();
        }
    }
}
