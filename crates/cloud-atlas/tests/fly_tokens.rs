//! Token lifecycle: resolution chain, coalescing, refresh, storage conformance, files.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::auth::Secret;
use cloud_atlas::fly::tokens::{
    FileTokenStore, MemoryTokenStore, StoredToken, TokenResolver, TokenSlot, TokenSource,
    TokenStore, CACHE_FILE, MANUAL_FILE,
};
use cloud_atlas::fly::{FlyAuth, Flyctl};
use cloud_atlas::testing::run_token_store_conformance;
use cloud_atlas::ErrorKind;

struct Env {
    tmp: tempfile::TempDir,
    bin: PathBuf,
    counter: PathBuf,
    release: PathBuf,
}

/// A fake `fly` that appends a line to `$COUNTER` per run; `body` prints the token.
/// `$RELEASE` is a file a gated script waits for.
fn fake(body: &str) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin/fly");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    let counter = tmp.path().join("counter");
    let release = tmp.path().join("release");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nCOUNTER='{}'\nRELEASE='{}'\necho \"$*\" >> \"$COUNTER\"\nN=$(wc -l < \"$COUNTER\" | tr -d ' ')\n{body}\n",
            counter.display(),
            release.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    Env {
        tmp,
        bin,
        counter,
        release,
    }
}

const MINT: &str = r#"echo "FlyV1 fm2_minted$N""#;

impl Env {
    fn runs(&self) -> usize {
        std::fs::read_to_string(&self.counter)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
    fn fly_config_dir(&self) -> PathBuf {
        let d = self.tmp.path().join("dot-fly");
        std::fs::create_dir_all(&d).unwrap();
        d
    }
    fn store_dir(&self) -> PathBuf {
        self.tmp.path().join("data/fly-tokens")
    }
    /// Resolver with no env token, an empty flyctl config and the fake CLI.
    fn resolver(
        &self,
        store: Arc<dyn TokenStore>,
    ) -> cloud_atlas::fly::tokens::TokenResolverBuilder {
        TokenResolver::builder()
            .with_store(store)
            .with_fly_config_dir(self.fly_config_dir())
            .with_flyctl(Flyctl::new(&self.bin).with_kill_grace(Duration::from_millis(200)))
            .with_cli_timeout(Duration::from_secs(20))
    }
    fn release(&self) {
        std::fs::write(&self.release, "go").unwrap();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn conformance_memory_store() {
    run_token_store_conformance(&MemoryTokenStore::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn conformance_file_store_and_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    // A folder the store creates is private, and so is every parent it creates.
    let dir = tmp.path().join("home").join("fly-tokens");
    let store = FileTokenStore::new(&dir);
    run_token_store_conformance(&store).await.unwrap();
    // Conformance removed its entries, leaving both files.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&tmp.path().join("home")), 0o700);
    assert_eq!(mode(&dir.join(CACHE_FILE)), 0o600);
    assert_eq!(mode(&dir.join(MANUAL_FILE)), 0o600);
    // A store reopened on the folder sees what the first wrote.
    let t = StoredToken::new(Secret::new("FlyV1 fm2_persisted"), TokenSource::Cli);
    store.save(TokenSlot::Cache, "app-one", &t).await.unwrap();
    let again = FileTokenStore::new(&dir);
    assert_eq!(
        again
            .load(TokenSlot::Cache, "app-one")
            .await
            .unwrap()
            .unwrap()
            .token,
        t.token
    );
    // No temporary files are left behind: the two files and their lock files.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".cache.json.lock",
            ".manual.json.lock",
            CACHE_FILE,
            MANUAL_FILE
        ]
    );
}

#[tokio::test]
async fn an_existing_folder_keeps_the_mode_its_owner_gave_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fly-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = FileTokenStore::new(&dir);
    let t = StoredToken::new(Secret::new("FlyV1 fm2_x"), TokenSource::Manual);
    store.save(TokenSlot::Manual, "app", &t).await.unwrap();
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join(MANUAL_FILE)), 0o600);
}

#[tokio::test]
async fn damaged_manual_store_is_kept_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fly-tokens");
    let store = FileTokenStore::new(&dir);
    let t = StoredToken::new(Secret::new("fo1_hand-typed"), TokenSource::Manual);
    store.save(TokenSlot::Manual, "app-one", &t).await.unwrap();
    let manual = dir.join(MANUAL_FILE);
    let damaged = "{\"version\":1,\"tokens\":{\"app-one\":{\"token\":\"fo1_hand-ty";
    std::fs::write(&manual, damaged).unwrap();

    let e = store.load(TokenSlot::Manual, "app-one").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains(&manual.display().to_string()), "{e}");
    assert!(e.message().contains("kept"), "{e}");
    let e = store
        .save(TokenSlot::Manual, "app-two", &t)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(store.remove(TokenSlot::Manual, "app-one").await.is_err());
    // Never silently recreated.
    assert_eq!(std::fs::read_to_string(&manual).unwrap(), damaged);
    // The cache slot is unaffected.
    store.save(TokenSlot::Cache, "app-one", &t).await.unwrap();

    // Through the resolver: setting a manual token fails loudly; a get that needs the
    // manual step reports the damage.
    let env = fake("exit 1");
    let r = env.resolver(Arc::new(FileTokenStore::new(&dir))).build();
    let e = r
        .set_manual("app-two", Secret::new("fo1_x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    let e = r.get("app-two").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("manual"));
    assert_eq!(std::fs::read_to_string(&manual).unwrap(), damaged);
}

#[tokio::test]
async fn damaged_cache_store_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fly-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join(CACHE_FILE);
    std::fs::write(&cache, "\u{0}\u{1}garbage").unwrap();
    let store = FileTokenStore::new(&dir);
    assert!(store
        .load(TokenSlot::Cache, "app-one")
        .await
        .unwrap()
        .is_none());
    let rebuilt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(rebuilt["tokens"], serde_json::json!({}));
    assert_eq!(mode(&cache), 0o600);
    let t = StoredToken::new(Secret::new("FlyV1 fm2_new"), TokenSource::Cli);
    store.save(TokenSlot::Cache, "app-one", &t).await.unwrap();
    assert!(store
        .load(TokenSlot::Cache, "app-one")
        .await
        .unwrap()
        .is_some());
    // A version this build does not know is treated the same way.
    std::fs::write(&cache, "{\"version\":99,\"tokens\":{}}").unwrap();
    assert!(store
        .load(TokenSlot::Cache, "app-one")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn chain_env_then_cache() {
    let env = fake(MINT);
    let r = env
        .resolver(Arc::new(MemoryTokenStore::new()))
        .with_env_token(Some(Secret::new("FlyV1 fm2_fromenv")))
        .build();
    let t = r.get("app-one").await.unwrap();
    assert_eq!(t.source, TokenSource::Env);
    assert!(!t.fast_path);
    assert_eq!(t.auth().unwrap().scheme, "FlyV1");
    let t = r.get("app-one").await.unwrap();
    assert_eq!(
        (t.source, t.origin, t.fast_path),
        (TokenSource::Cache, TokenSource::Env, true)
    );
    assert_eq!(env.runs(), 0);
    assert!(
        !format!("{t:?}").contains("fromenv"),
        "Debug shows no token"
    );
}

#[tokio::test]
async fn chain_config_file_with_macaroons_and_user_tokens() {
    let env = fake(MINT);
    std::fs::write(
        env.fly_config_dir().join("config.yml"),
        include_str!("fixtures/fly/samples/flyctl-config.yml.constructed"),
    )
    .unwrap();
    let r = env.resolver(Arc::new(MemoryTokenStore::new())).build();
    let t = r.get("app-one").await.unwrap();
    assert_eq!(t.source, TokenSource::Config);
    let auth: FlyAuth = t.auth().unwrap();
    assert_eq!(auth.scheme, "FlyV1");
    assert!(!auth.credential.expose().contains("fo1_"));
    assert_eq!(env.runs(), 0);

    // A damaged config.yml is skipped, not fatal: the CLI answers.
    std::fs::write(env.fly_config_dir().join("config.yml"), "access_token: [\n").unwrap();
    let r = env.resolver(Arc::new(MemoryTokenStore::new())).build();
    assert_eq!(r.get("app-one").await.unwrap().source, TokenSource::Cli);
}

#[tokio::test]
async fn chain_cli_mints_persists_then_storage_answers() {
    let env = fake(MINT);
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(env.store_dir()));
    let r = env.resolver(Arc::clone(&store)).build();
    let t = r.get("app-one").await.unwrap();
    assert_eq!(t.source, TokenSource::Cli);
    assert_eq!(t.token.expose(), "FlyV1 fm2_minted1");
    assert!(t.expires_at.is_some(), "minted with --expiry");
    let args = std::fs::read_to_string(&env.counter).unwrap();
    assert!(
        args.starts_with("tokens create readonly --name cloud-atlas app-one --expiry "),
        "{args}"
    );
    // A new process (new resolver, same store) reads it back instead of minting again.
    let r2 = env.resolver(Arc::clone(&store)).build();
    let t2 = r2.get("app-one").await.unwrap();
    assert_eq!(
        (t2.source, t2.origin),
        (TokenSource::Storage, TokenSource::Cli)
    );
    assert_eq!(t2.token, t.token);
    assert_eq!(env.runs(), 1);
}

#[tokio::test]
async fn chain_falls_through_to_manual_and_then_to_a_clear_error() {
    let env = fake("echo 'Error: not logged in' 1>&2; exit 1");
    let store = Arc::new(MemoryTokenStore::new());
    store
        .save(
            TokenSlot::Manual,
            "app-one",
            &StoredToken::new(Secret::new("fo1_manual"), TokenSource::Manual),
        )
        .await
        .unwrap();
    let r = env
        .resolver(Arc::clone(&store) as Arc<dyn TokenStore>)
        .build();
    let t = r.get("app-one").await.unwrap();
    assert_eq!(t.source, TokenSource::Manual);
    assert_eq!(t.auth().unwrap().scheme, "Bearer");

    let e = r.get("app-two").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let m = e.message();
    assert!(
        m.contains("FLY_API_TOKEN") && m.contains("atlas fly token set app-two"),
        "{m}"
    );
    assert!(
        m.contains("Error: not logged in"),
        "the CLI's reason is kept: {m}"
    );

    // A missing fly binary is just one more miss.
    let r = TokenResolver::builder()
        .with_store(store)
        .with_flyctl(Flyctl::new("/nonexistent/fly"))
        .build();
    assert_eq!(r.get("app-one").await.unwrap().source, TokenSource::Manual);
    let e = r.get("app-two").await.unwrap_err();
    assert!(e.message().contains("/nonexistent/fly"), "{e}");

    let e = r.get("Not An App").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
}

#[tokio::test]
async fn cli_timeout_kills_the_child() {
    let env = fake(r#"echo $$ > "$RELEASE.pid"; sleep 30; echo "FlyV1 fm2_late""#);
    let r = env
        .resolver(Arc::new(MemoryTokenStore::new()))
        .with_cli_timeout(Duration::from_millis(300))
        .build();
    let e = r.get("app-one").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("killed"), "{e}");
    let pid: u32 = std::fs::read_to_string(env.tmp.path().join("release.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(s) if s.split_whitespace().nth(2) == Some("Z") => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("the timed-out fly child is still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_gets_run_the_cli_once() {
    let env = fake(&format!("sleep 0.3\n{MINT}"));
    let r = env.resolver(Arc::new(MemoryTokenStore::new())).build();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move { r.get("app-one").await }));
    }
    let mut tokens = std::collections::HashSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().unwrap().token.expose().to_string());
    }
    assert_eq!(env.runs(), 1, "one acquisition for 1,000 callers");
    assert_eq!(tokens.len(), 1);

    // Failures are shared too: 200 callers, one failing run.
    let bad = fake("exit 2");
    let r = bad.resolver(Arc::new(MemoryTokenStore::new())).build();
    let results = futures::future::join_all((0..200).map(|_| r.get("app-two"))).await;
    assert!(results.iter().all(|x| x
        .as_ref()
        .is_err_and(|e| e.kind() == ErrorKind::Unauthorized)));
    assert_eq!(bad.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_app_does_not_delay_another() {
    let env = fake(&format!(
        r#"case "$*" in *slow-app*) while [ ! -f "$RELEASE" ]; do sleep 0.02; done;; esac
{MINT}"#
    ));
    let r = env.resolver(Arc::new(MemoryTokenStore::new())).build();
    let slow = {
        let r = r.clone();
        tokio::spawn(async move { r.get("slow-app").await })
    };
    // Make sure the slow acquisition is under way.
    while env.runs() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fast = r.get("fast-app").await.unwrap();
    assert_eq!(fast.source, TokenSource::Cli);
    assert!(
        !slow.is_finished(),
        "fast-app resolved while slow-app is still blocked"
    );
    env.release();
    assert_eq!(slow.await.unwrap().unwrap().source, TokenSource::Cli);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_atomic_and_invalidate_forgets() {
    let env = fake(&format!(
        r#"if [ "$N" -ge 2 ]; then while [ ! -f "$RELEASE" ]; do sleep 0.02; done; fi
{MINT}"#
    ));
    let store = Arc::new(MemoryTokenStore::new());
    let r = env
        .resolver(Arc::clone(&store) as Arc<dyn TokenStore>)
        .build();
    let first = r.get("app-one").await.unwrap();
    assert_eq!(first.token.expose(), "FlyV1 fm2_minted1");

    let refreshing = {
        let r = r.clone();
        tokio::spawn(async move { r.refresh("app-one").await })
    };
    while env.runs() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While the refresh runs, readers keep the old token without waiting.
    let during = r.get("app-one").await.unwrap();
    assert_eq!(during.token, first.token);
    assert!(during.fast_path);
    env.release();
    let fresh = refreshing.await.unwrap().unwrap();
    assert_eq!(fresh.token.expose(), "FlyV1 fm2_minted2");
    assert_eq!(r.get("app-one").await.unwrap().token, fresh.token);
    assert_eq!(
        store
            .load(TokenSlot::Cache, "app-one")
            .await
            .unwrap()
            .unwrap()
            .token,
        fresh.token
    );

    // A failed refresh keeps the current token.
    let failing = fake("exit 1");
    let r2 = failing
        .resolver(Arc::clone(&store) as Arc<dyn TokenStore>)
        .build();
    let kept = r2.get("app-one").await.unwrap();
    assert_eq!(kept.source, TokenSource::Storage);
    assert!(r2.refresh("app-one").await.is_err());
    assert_eq!(r2.get("app-one").await.unwrap().token, kept.token);

    // Invalidate drops memory and storage; the next get walks the chain again.
    r.invalidate("app-one").await.unwrap();
    assert!(r.cached("app-one").is_none());
    assert!(store
        .load(TokenSlot::Cache, "app-one")
        .await
        .unwrap()
        .is_none());
    let again = r.get("app-one").await.unwrap();
    assert_eq!(again.source, TokenSource::Cli);
    assert_eq!(again.token.expose(), "FlyV1 fm2_minted3");
}

#[tokio::test]
async fn set_manual_is_persisted_before_it_returns() {
    let env = fake("exit 1");
    let dir = env.store_dir();
    let r = env.resolver(Arc::new(FileTokenStore::new(&dir))).build();
    let set = r
        .set_manual("app-one", Secret::new("  fo1_typed-by-host \n"))
        .await
        .unwrap();
    assert_eq!(set.source, TokenSource::Manual);
    let on_disk = std::fs::read_to_string(dir.join(MANUAL_FILE)).unwrap();
    assert!(on_disk.contains("\"fo1_typed-by-host\""));
    assert_eq!(mode(&dir.join(MANUAL_FILE)), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let t = r.get("app-one").await.unwrap();
    assert_eq!(
        (t.source, t.origin),
        (TokenSource::Cache, TokenSource::Manual)
    );

    // After a restart the override still applies.
    let r2 = env.resolver(Arc::new(FileTokenStore::new(&dir))).build();
    let t = r2.get("app-one").await.unwrap();
    assert_eq!(t.origin, TokenSource::Manual);
    assert_eq!(t.token.expose(), "fo1_typed-by-host");

    // Empty tokens are refused.
    let e = r
        .set_manual("app-one", Secret::new("   "))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);

    // A persist that fails is an error and changes nothing.
    let blocker = env.tmp.path().join("not-a-dir");
    std::fs::write(&blocker, "file").unwrap();
    let r3 = env
        .resolver(Arc::new(FileTokenStore::new(blocker.join("tokens"))))
        .build();
    let e = r3
        .set_manual("app-one", Secret::new("fo1_lost"))
        .await
        .unwrap_err();
    assert!(e.message().contains("not-a-dir"), "{e}");
    assert!(r3.cached("app-one").is_none());
}

#[tokio::test]
async fn background_refresh_runs_ahead_of_a_stored_expiry() {
    let env = fake(MINT);
    let r = env
        .resolver(Arc::new(MemoryTokenStore::new()))
        .with_cli_token_expiry(Some(Duration::from_secs(3)))
        .with_refresh_ahead(Duration::from_millis(2500))
        .build();
    let first = r.get("app-one").await.unwrap();
    assert_eq!(first.token.expose(), "FlyV1 fm2_minted1");
    // No caller asks; the refresh happens on its own before the expiry.
    let mut refreshed = None;
    for _ in 0..200 {
        if let Some(c) = r.cached("app-one") {
            if c.token != first.token {
                refreshed = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let refreshed = refreshed.expect("the token was refreshed in the background");
    assert!(refreshed.token.expose().starts_with("FlyV1 fm2_minted"));
    assert!(refreshed.expires_at > first.expires_at);
    assert!(env.runs() >= 2);
}
