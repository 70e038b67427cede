//! The dashboard in a real headless browser (Debian's Chromium through chromedriver,
//! driven over WebDriver by `fantoccini`): sign in, see a session spawned by another
//! client appear live, click Terminate, confirm, see the row turn terminated. A
//! screenshot is saved under this test's output folder (`CARGO_TARGET_TMPDIR`).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them), or `ATLAS_CHROMIUM` / `ATLAS_CHROMEDRIVER`.
//! Without them the test fails, saying so: it never passes by skipping.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use support::{Server, TOKEN};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin(env: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        p.exists(),
        "{} not found: install Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver) or set {env}",
        p.display()
    );
    p
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_watch_a_session_appear_live_and_terminate_it() {
    let chromium = bin("ATLAS_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = bin("ATLAS_CHROMEDRIVER", "/usr/bin/chromedriver");
    let s = Server::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }
    });
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut builder = ClientBuilder::new(connector);
    builder.capabilities(caps.as_object().unwrap().clone());
    let webdriver = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let c = loop {
        match builder.connect(&webdriver).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "chromedriver did not start: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let result = async {
        c.goto(&format!("{}/", s.base)).await?;
        // Sign in.
        let token = c.wait().for_element(Locator::Id("token")).await?;
        token.send_keys(TOKEN).await?;
        c.find(Locator::Id("signin-btn")).await?.click().await?;
        c.wait()
            .for_element(Locator::Css("#app:not([hidden])"))
            .await?;
        wait_for(
            "the event stream to connect",
            Duration::from_secs(10),
            || async { c.find(Locator::Css("#live.on")).await.is_ok() },
        )
        .await;
        // Another client spawns a session: the row appears without a reload.
        let spawned = s.spawn("dana", json!({"auth": "bearer"})).await;
        let id = spawned["session"]["id"].as_str().unwrap().to_string();
        let name = spawned["session"]["name"].as_str().unwrap().to_string();
        let row = format!("tr[data-id='{id}']");
        wait_for(
            "the spawned session's row",
            Duration::from_secs(10),
            || async {
                match c.find(Locator::Css(&row)).await {
                    Ok(r) => r
                        .text()
                        .await
                        .is_ok_and(|t| t.contains(&name) && t.contains("dana")),
                    Err(_) => false,
                }
            },
        )
        .await;
        let pill = format!("{row} .pill");
        wait_for(
            "the row to show the session running",
            Duration::from_secs(10),
            || async {
                match c.find(Locator::Css(&pill)).await {
                    Ok(p) => p
                        .text()
                        .await
                        .is_ok_and(|t| t == "running" || t == "active"),
                    Err(_) => false,
                }
            },
        )
        .await;
        wait_for(
            "the spend summary to count it",
            Duration::from_secs(10),
            || async {
                match c.find(Locator::Id("s-sessions")).await {
                    Ok(e) => e.text().await.is_ok_and(|t| t == "1"),
                    Err(_) => false,
                }
            },
        )
        .await;
        // The raw pod token is nowhere on the page.
        let raw = spawned["compute"]["auth"]["token"].as_str().unwrap();
        assert!(!c.source().await?.contains(raw));
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("dashboard-live.png"), c.screenshot().await?).unwrap();
        // Terminate, confirm.
        c.find(Locator::Css(&format!(
            "{row} button[data-action='terminate']"
        )))
        .await?
        .click()
        .await?;
        let ok = c
            .wait()
            .for_element(Locator::Css("dialog#confirm[open] #confirm-ok"))
            .await?;
        let text = c.find(Locator::Id("confirm-text")).await?.text().await?;
        assert!(
            text.contains(&name),
            "the confirmation names the session: {text}"
        );
        std::fs::write(out.join("dashboard-confirm.png"), c.screenshot().await?).unwrap();
        ok.click().await?;
        wait_for(
            "the row to turn terminated",
            Duration::from_secs(15),
            || async {
                match c.find(Locator::Css(&pill)).await {
                    Ok(p) => p.text().await.is_ok_and(|t| t == "terminated"),
                    Err(_) => false,
                }
            },
        )
        .await;
        std::fs::write(out.join("dashboard-terminated.png"), c.screenshot().await?).unwrap();
        println!("screenshots in {}", out.display());
        Ok::<_, fantoccini::error::CmdError>(id)
    }
    .await;
    let _ = c.close().await;
    let id = result.expect("browser steps");
    // The machine is really gone.
    assert_eq!(s.cloud.live_count().unwrap(), 0);
    assert_eq!(s.get(&format!("/v1/sessions/{id}")).await.status(), 404);
    s.stop().await;
}
