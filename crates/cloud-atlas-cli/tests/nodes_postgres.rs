//! Issue 14: several `atlas serve` nodes as OS processes on one PostgreSQL database and
//! one (mock) cloud account. A node that is `kill -9`ed has its sessions taken over by
//! the survivors within a lease TTL and a renewal, nothing is terminated that should not
//! be, idle expiry still fires for the adopted sessions, and a node stopped with the
//! `release` policy hands its sessions over without terminating any.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{atlas, Run};
use serde_json::{json, Value};

fn database_url() -> String {
    std::env::var("ATLAS_TEST_DATABASE_URL").expect(
        "ATLAS_TEST_DATABASE_URL is not set: these tests need PostgreSQL, e.g. \
         ATLAS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test (.ci/run sets it)",
    )
}

struct World {
    dir: tempfile::TempDir,
    url: String,
    prefix: String,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("atlas.toml"),
            "default_provider = \"mock\"\n[mock]\nboot_delay = \"100ms\"\n\
             [orchestrator]\nlease_ttl = \"3s\"\nreaper_interval = \"1s\"\n",
        )
        .unwrap();
        let prefix = format!("t_{}_", &uuid_like()[..10]);
        World {
            dir,
            url: database_url(),
            prefix,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = atlas(self.dir.path(), args);
        c.env("ATLAS_DATABASE_URL", &self.url)
            .env("ATLAS_DATABASE_TABLE_PREFIX", &self.prefix)
            .env(
                "ATLAS_RECORD_KEY",
                "k3y-for-the-nodes-test-0123456789abcdef",
            );
        c
    }

    fn serve(&self, node: &str, extra: &[&str]) -> Node {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--node-id", node];
        args.extend_from_slice(extra);
        let mut child = self
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let t0 = Instant::now();
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "serve exited: {banner}"
            );
            banner.push_str(&line);
            if line.contains("shown once") {
                let mut tok = String::new();
                out.read_line(&mut tok).unwrap();
                banner.push_str(&tok);
                break;
            }
            if line.contains("admin token") {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "{banner}");
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let base = banner
            .lines()
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        assert!(banner.contains("postgres (tables t_"), "{banner}");
        assert!(banner.contains("signed rows"), "{banner}");
        Node { child, base }
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/server/admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Sessions in the shared store, read by another process.
    fn sessions(&self) -> Vec<Value> {
        let r = Run::of(&mut self.cmd(&["session", "ls", "-o", "json"])).ok();
        r.json().as_array().unwrap().clone()
    }

    fn live_machines(&self) -> usize {
        let r = Run::of(&mut atlas(self.dir.path(), &["ls", "-o", "json"])).ok();
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["status"] != "terminated")
            .count()
    }

    fn until(&self, what: &str, within: Duration, mut ok: impl FnMut(&World) -> bool) {
        let t0 = Instant::now();
        while !ok(self) {
            assert!(t0.elapsed() < within, "not within {within:?}: {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn signal(&mut self, sig: &str) -> i32 {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(c: &reqwest::blocking::Client, node: &Node, token: &str, user: &str, idle: &str) {
    let r = c
        .post(format!("{}/v1/sessions", node.base))
        .bearer_auth(token)
        .json(&json!({"user": user, "gpu": "l4", "image": "app", "idle_ttl": idle}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
}

fn owners(w: &World) -> Vec<String> {
    w.sessions()
        .iter()
        .map(|s| s["owner"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn three_nodes_one_killed_its_sessions_pass_on_and_a_released_node_hands_over() {
    let w = World::new();
    let mut nodes = vec![
        w.serve("n1", &[]),
        w.serve("n2", &["--shutdown", "release"]),
    ];
    nodes.push(w.serve("n3", &[]));
    let token = w.token();
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // 60 sessions spread over the nodes; n1's end as idle 20 s after their spawn
    // (nobody touches them), every other one lasts an hour.
    for i in 0..60 {
        let n = i % 3;
        let idle = if n == 0 { "20s" } else { "1h" };
        spawn(&c, &nodes[n], &token, &format!("user-{i}"), idle);
    }
    let spawned = Instant::now();
    let before = owners(&w);
    assert_eq!(before.len(), 60);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(before.iter().filter(|o| *o == n).count(), 20, "{before:?}");
    }
    assert_eq!(w.live_machines(), 60);

    // kill -9 n1: within lease TTL (3 s) + a renewal (1 s) + slack, survivors own all.
    nodes[0].signal("-KILL");
    w.until(
        "n1's sessions owned by survivors",
        Duration::from_secs(12),
        |w| {
            let o = owners(w);
            o.len() == 60 && o.iter().all(|o| o == "n2" || o == "n3")
        },
    );
    assert!(
        spawned.elapsed() < Duration::from_secs(20),
        "the takeover was checked before any idle expiry"
    );
    assert_eq!(w.live_machines(), 60, "a takeover terminates nothing");
    // Idle expiry still fires for the adopted sessions, and only for them.
    w.until(
        "the adopted idle sessions ended",
        Duration::from_secs(40),
        |w| w.live_machines() == 40,
    );
    let left = w.sessions();
    assert_eq!(left.len(), 40);
    assert!(left.iter().all(|s| s["idle_ttl"] == 3_600_000), "{left:#?}");

    // SIGTERM n2 (policy release): nothing terminated, n3 takes its sessions over.
    assert_eq!(nodes[1].signal("-TERM"), 0);
    assert_eq!(w.live_machines(), 40, "release terminates nothing");
    w.until("n2's sessions owned by n3", Duration::from_secs(8), |w| {
        owners(w).iter().all(|o| o == "n3")
    });
    // n2 restarts: all sessions still there, none terminated.
    let _n2 = w.serve("n2", &["--shutdown", "release"]);
    assert_eq!(w.sessions().len(), 40);
    assert_eq!(w.live_machines(), 40);
    // n3 dies too (kill -9): the restarted n2 holds everything once n3's lease expired.
    assert_ne!(nodes[2].signal("-KILL"), 0);
    w.until("n3's sessions owned by n2", Duration::from_secs(12), |w| {
        owners(w).iter().all(|o| o == "n2")
    });
    assert_eq!(w.live_machines(), 40);
}
