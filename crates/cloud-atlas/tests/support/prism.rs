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

/// Path of a fixture file (`tests/fixtures/<rel>`).
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn prism_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ATLAS_PRISM_BIN") {
        return PathBuf::from(p);
    }
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/prism/node_modules/.bin/prism");
    assert!(
        p.exists(),
        "Prism is not installed: run `npm ci --prefix tools/prism` (or set ATLAS_PRISM_BIN); contract tests need it"
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

    /// Log lines reporting a request that did not match the spec.
    pub fn violations(&self) -> Vec<String> {
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
