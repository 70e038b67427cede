//! The PostgreSQL session store and reaper lease (feature `postgres`), against a real
//! server named by `ATLAS_TEST_DATABASE_URL` (`.ci/run` sets it; these tests fail,
//! not skip, without it). Each test uses tables of its own (a unique prefix) and drops
//! them at the end.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::orchestrator::store::{run_store_conformance, PgSessionStore, SessionStore};
use cloud_atlas::orchestrator::{
    LeaderLease, Orchestrator, OrchestratorConfig, ReapAction, ReapOptions, SessionRequest,
    ShutdownPolicy,
};
use cloud_atlas::providers::mock::Mock;
use cloud_atlas::{AuthMode, ComputeRequest, ErrorKind, Gpu, Provider};

const URL_VAR: &str = "ATLAS_TEST_DATABASE_URL";

fn database_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "{URL_VAR} is not set: these tests need PostgreSQL, e.g. \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432/test (.ci/run sets it)"
        ),
    }
}

fn unique_prefix() -> String {
    format!("t_{}_", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn store(prefix: &str) -> PgSessionStore {
    PgSessionStore::connect_with_prefix(&database_url(), prefix)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {URL_VAR}: {e}"))
}

/// Poll `f` until it is true; panics naming `what` after a generous deadline.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn req(user: &str) -> SessionRequest {
    SessionRequest::new(
        "mock",
        user,
        ComputeRequest::builder()
            .gpu(Gpu::L4)
            .image("app")
            .build()
            .unwrap(),
    )
}

fn node_cfg() -> OrchestratorConfig {
    let mut c = OrchestratorConfig::default();
    c.default_idle_ttl = Duration::from_secs(24 * 3600);
    c.default_max_runtime = Duration::from_secs(48 * 3600);
    c.watch_running = false;
    c.reaper = c
        .reaper
        .with_interval(Duration::from_millis(100))
        .with_grace(Duration::from_secs(1));
    c
}

#[tokio::test]
async fn postgres_store_conforms() {
    let prefix = unique_prefix();
    let s = store(&prefix).await;
    run_store_conformance(&s).await.unwrap();
    // Again (the suite cleans up after itself), through a second handle on the same
    // tables and through an Arc<dyn SessionStore>.
    let other: Arc<dyn SessionStore> = Arc::new(store(&prefix).await);
    run_store_conformance(&other).await.unwrap();
    assert!(s.list().await.unwrap().is_empty());
    s.drop_tables().await.unwrap();
}

#[tokio::test]
async fn handles_share_writes_and_finish_counts_spend_once() {
    let prefix = unique_prefix();
    let (a, b) = (store(&prefix).await, store(&prefix).await);
    let mock = Mock::in_memory();
    let orch = Orchestrator::builder()
        .store(a.clone())
        .provider(mock.clone())
        .config({
            let mut c = node_cfg();
            c.reaper.enabled = false;
            c
        })
        .start()
        .await
        .unwrap();
    let mut r = req("user-1");
    r.compute.auth = AuthMode::Bearer;
    let s = orch.spawn(r).await.unwrap();
    // Token hashes only: the raw key handed to the browser is nowhere in the row.
    let seen = b
        .get(&s.session.id)
        .await
        .unwrap()
        .expect("visible to node b");
    assert_eq!(seen.compute_id.as_deref(), Some(s.compute.id.as_str()));
    let token = s
        .auth()
        .and_then(|a| a.token.clone())
        .expect("a bearer key");
    assert!(seen.token_hash.is_some());
    let raw = serde_json::to_string(&seen).unwrap();
    assert!(!raw.contains(token.expose()), "raw token stored");
    orch.shutdown(ShutdownPolicy::Release).await.unwrap();

    // Two nodes finishing the same session at once: one wins, spend is added once.
    let (ra, rb) = tokio::join!(a.finish(&s.session.id, 2.0), b.finish(&s.session.id, 2.0));
    assert!(ra.unwrap() ^ rb.unwrap(), "exactly one finish succeeds");
    let spend = b.closed_spend().await.unwrap();
    assert!((spend["user-1"] - 2.0).abs() < 1e-9, "{spend:?}");
    a.drop_tables().await.unwrap();
}

#[tokio::test]
async fn lease_has_one_holder_and_passes_on_release_or_expiry() {
    let prefix = unique_prefix();
    let s = store(&prefix).await;
    let ttl = Duration::from_secs(1);
    let a = s.leader_lease("reaper", "node-a", ttl).unwrap();
    let b = store(&prefix)
        .await
        .leader_lease("reaper", "node-b", ttl)
        .unwrap();
    assert!(a.acquire().await.unwrap());
    assert!(!b.acquire().await.unwrap(), "b took a held lease");
    assert!(a.acquire().await.unwrap(), "the holder renews");
    assert_eq!(a.current_holder().await.unwrap().as_deref(), Some("node-a"));
    b.release().await.unwrap(); // not the holder: no effect
    assert_eq!(b.current_holder().await.unwrap().as_deref(), Some("node-a"));

    a.release().await.unwrap();
    assert_eq!(a.current_holder().await.unwrap(), None);
    assert!(b.acquire().await.unwrap(), "released lease taken at once");
    assert!(!a.acquire().await.unwrap());

    // b dies without releasing: a gets it once the ttl (database clock) has passed.
    eventually("the lease of a silent holder expires", || async {
        a.acquire().await.unwrap()
    })
    .await;
    assert_eq!(b.current_holder().await.unwrap().as_deref(), Some("node-a"));

    // Many contenders at once: exactly one wins.
    a.release().await.unwrap();
    let contenders: Vec<_> = (0..8)
        .map(|i| s.leader_lease("reaper", format!("node-{i}"), ttl).unwrap())
        .collect();
    let won = futures::future::join_all(contenders.iter().map(|l| l.acquire())).await;
    assert_eq!(won.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);

    for bad in [
        s.leader_lease("", "x", ttl),
        s.leader_lease("reaper", " ", ttl),
        s.leader_lease("reaper", "x", Duration::from_millis(10)),
    ] {
        assert_eq!(bad.unwrap_err().kind(), ErrorKind::Validation);
    }
    s.drop_tables().await.unwrap();
}

#[tokio::test]
async fn two_nodes_one_reaper_that_spares_the_other_nodes_sessions() {
    let prefix = unique_prefix();
    let (store_a, store_b) = (store(&prefix).await, store(&prefix).await);
    let ttl = Duration::from_secs(5);
    let lease_a = store_a.leader_lease("reaper", "node-a", ttl).unwrap();
    let lease_b = store_b.leader_lease("reaper", "node-b", ttl).unwrap();
    let probe = lease_a.clone();
    let mock = Mock::in_memory();
    let node = |store: PgSessionStore, lease| {
        Orchestrator::builder()
            .store(store)
            .provider(mock.clone())
            .leader_lease(lease)
            .config(node_cfg())
            .start()
    };
    let a = node(store_a.clone(), lease_a).await.unwrap();
    eventually("node a holds the reaper lease", || async {
        a.is_reaper_leader()
    })
    .await;
    let b = node(store_b.clone(), lease_b).await.unwrap();

    // A's interval reaper runs: an old orphan goes.
    let orphan = mock
        .seed("atlas-session-orphan-1", None, Duration::from_secs(3600))
        .unwrap()
        .id;
    eventually("node a reaps the orphan", || async {
        mock.get(&orphan).await.is_err()
    })
    .await;

    // A spawns; once its machine is past the grace window, B's round keeps it because
    // the shared store tracks it, though B never spawned it.
    let s = a.spawn(req("user-a")).await.unwrap();
    assert!(b.get(&s.session.id).is_err(), "b does not run a's session");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = b.reap(&ReapOptions::dry_run()).await.unwrap();
    let d = r
        .for_compute(&s.compute.id)
        .expect("a decision on a's machine");
    assert_eq!(d.action, ReapAction::Keep, "{d:?}");
    assert!(d.reason.contains("tracked by session"), "{}", d.reason);

    // Only A holds the lease while A runs: B keeps skipping its rounds.
    for _ in 0..10 {
        assert!(a.is_reaper_leader() && !b.is_reaper_leader());
        assert_eq!(
            probe.current_holder().await.unwrap().as_deref(),
            Some("node-a")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A stops (leaving its session running for another node): the lease passes to B.
    a.shutdown(ShutdownPolicy::Release).await.unwrap();
    assert!(!a.is_reaper_leader());
    eventually("node b takes the reaper lease", || async {
        b.is_reaper_leader()
    })
    .await;
    assert_eq!(
        probe.current_holder().await.unwrap().as_deref(),
        Some("node-b")
    );
    // B's rounds now run (a new orphan goes) and still spare A's released session.
    let orphan = mock
        .seed("atlas-session-orphan-2", None, Duration::from_secs(3600))
        .unwrap()
        .id;
    eventually("node b reaps the new orphan", || async {
        mock.get(&orphan).await.is_err()
    })
    .await;
    assert!(
        mock.get(&s.compute.id).await.is_ok(),
        "a's machine was reaped"
    );
    assert!(store_b.get(&s.session.id).await.unwrap().is_some());

    b.shutdown(ShutdownPolicy::Release).await.unwrap();
    assert_eq!(probe.current_holder().await.unwrap(), None, "b released it");
    mock.terminate(&s.compute.id).await.unwrap();
    store_a.drop_tables().await.unwrap();
}

/// The PostgreSQL store keeps closed spend as totals only: a monthly cap on it is refused
/// at start (naming the cap), never silently dropped.
#[tokio::test]
async fn a_monthly_cap_on_postgres_is_refused_at_start() {
    let prefix = unique_prefix();
    let s = store(&prefix).await;
    let mut c = node_cfg();
    c.limits = cloud_atlas::orchestrator::SpendLimits::none().with_max_usd_per_user_per_month(5.0);
    let e = Orchestrator::builder()
        .store(s.clone())
        .provider(Mock::in_memory())
        .config(c)
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("max_usd_per_user_per_month"), "{e}");
    s.drop_tables().await.unwrap();
}

/// Issue 14, item 3: with a record key, a row edited in the database (a session's body
/// or owner, a node's lease) is reported and never acted on; honest rows work as before.
#[tokio::test]
async fn forged_rows_are_refused_when_records_are_signed() {
    use cloud_atlas::orchestrator::store::RecordKey;
    let prefix = unique_prefix();
    let key = || RecordKey::new([42u8; 32]).unwrap();
    let signed = store(&prefix).await.with_record_key(key());
    run_store_conformance(&signed).await.unwrap();
    let mock = Mock::in_memory();
    let start = |s: PgSessionStore| {
        let mut c = node_cfg();
        c.lease_ttl = Duration::from_secs(60);
        Orchestrator::builder()
            .store(s)
            .provider(mock.clone())
            .config(c)
            .start()
    };
    let a = start(signed.clone()).await.unwrap();
    let kept = a.spawn(req("honest")).await.unwrap().session;
    let edited = a.spawn(req("edited")).await.unwrap().session;
    let stolen = a.spawn(req("stolen")).await.unwrap().session;
    a.shutdown(ShutdownPolicy::Release).await.unwrap();

    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let t = format!("{prefix}sessions");
    // Point a session at another machine (to steer a terminate) …
    client
        .execute(
            &format!("UPDATE {t} SET body = replace(body, $2, 'victim-machine') WHERE id = $1"),
            &[&edited.id, &edited.compute_id.clone().unwrap()],
        )
        .await
        .unwrap();
    // … hand a session to a node that does not exist, and forge that node a long lease
    // (to make every node spare it).
    client
        .execute(
            &format!("UPDATE {t} SET owner = 'ghost' WHERE id = $1"),
            &[&stolen.id],
        )
        .await
        .unwrap();
    client
        .execute(
            &format!("INSERT INTO {prefix}owners (node, expires_ms) VALUES ('ghost', $1)"),
            &[&(chrono::Utc::now().timestamp_millis() + 3_600_000)],
        )
        .await
        .unwrap();

    let rows = signed.list().await.unwrap();
    let by = |id: &str| rows.iter().find(|s| s.id == id).unwrap().clone();
    assert_eq!(by(&kept.id).damaged, None);
    let why = by(&edited.id).damaged.expect("the edited body is refused");
    assert!(why.contains("signature does not match"), "{why}");
    let why = by(&stolen.id).damaged.expect("the edited owner is refused");
    assert!(why.contains("owner's signature"), "{why}");
    assert!(
        !signed.owners().await.unwrap().contains_key("ghost"),
        "a forged lease is no lease"
    );
    // A node adopts the honest session only; the forged ones are never acted on, and the
    // reaper keeps its hands off them too (their machines are not terminated).
    let b = start(signed.clone()).await.unwrap();
    assert!(b.get(&kept.id).is_ok());
    assert!(b.get(&edited.id).is_err() && b.get(&stolen.id).is_err());
    b.reap(&ReapOptions::default()).await.unwrap();
    for s in [&kept, &edited, &stolen] {
        assert!(mock.get(s.compute_id.as_deref().unwrap()).await.is_ok());
    }
    // Without the key, the same database reads as written (nothing is lost by signing).
    let plain = store(&prefix).await;
    assert!(plain
        .list()
        .await
        .unwrap()
        .iter()
        .all(|s| s.damaged.is_none()));
    b.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    for s in [&edited, &stolen] {
        mock.terminate(s.compute_id.as_deref().unwrap())
            .await
            .unwrap();
    }
    signed.drop_tables().await.unwrap();
}
