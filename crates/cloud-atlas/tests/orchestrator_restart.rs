//! Crash safety: restart re-adoption from SQLite (the mock cloud in SQLite too, so it
//! survives like a real cloud), and a crash between the provider spawn and the store
//! write, which must end with the machine adopted or terminated, never leaked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloud_atlas::orchestrator::store::{SessionStore, SqliteSessionStore};
use cloud_atlas::orchestrator::{
    EventKind, Orchestrator, OrchestratorConfig, Recv, Session, SessionRequest, SessionState,
    ShutdownPolicy, Subscription, TerminateReason,
};
use cloud_atlas::providers::mock::{Fault, Mock, MockOp, MockOptions};
use cloud_atlas::{async_trait, ComputeRequest, Error, ErrorKind, Gpu, Provider, Result};

fn cfg() -> OrchestratorConfig {
    let mut c = OrchestratorConfig::default();
    c.heartbeat_flush_interval = Duration::from_millis(100);
    c.terminate_backoff = Duration::from_millis(50);
    c.terminate_backoff_max = Duration::from_millis(200);
    c.reaper.enabled = false;
    // A crashed test node's lease runs out quickly (see `LEASE_GONE`).
    c.lease_ttl = Duration::from_millis(200);
    c
}

/// Long enough for a dropped (crashed) node's lease to have expired.
const LEASE_GONE: Duration = Duration::from_millis(300);

fn req(user: &str, idle: Duration) -> SessionRequest {
    let compute = ComputeRequest::builder()
        .gpu(Gpu::L4)
        .image("app")
        .port("8000/http")
        .build()
        .unwrap();
    SessionRequest::new("mock", user, compute).with_idle_ttl(idle)
}

fn mock_at(dir: &std::path::Path) -> Mock {
    Mock::open(
        dir.join("mock-cloud.sqlite"),
        MockOptions {
            boot_delay: Duration::from_millis(20),
            ..MockOptions::default()
        },
    )
    .unwrap()
}

async fn start(mock: &Mock, store: Arc<dyn SessionStore>) -> Orchestrator {
    start_with(mock, store, cfg()).await
}

async fn start_with(
    mock: &Mock,
    store: Arc<dyn SessionStore>,
    c: OrchestratorConfig,
) -> Orchestrator {
    Orchestrator::builder()
        .store_arc(store)
        .provider(mock.clone())
        .config(c)
        .start()
        .await
        .unwrap()
}

/// A start after the intent grace window has passed (the intents are old enough to be
/// resolved; a younger one may still be spawning in another process).
async fn start_after_grace(mock: &Mock, store: Arc<dyn SessionStore>) -> Orchestrator {
    let mut c = cfg();
    c.reaper.grace = Duration::ZERO;
    start_with(mock, store, c).await
}

async fn terminated(sub: &mut Subscription) -> TerminateReason {
    let wait = async {
        loop {
            match sub.recv().await {
                Recv::Event(e) => {
                    if let EventKind::Terminated { reason, .. } = e.kind {
                        return reason;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("terminated in time")
}

#[tokio::test]
async fn restart_readopts_sessions_from_sqlite_with_timers_from_stored_times() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let store_path = dir.path().join("state").join("sessions.sqlite");
    let (short, long) = {
        let store: Arc<dyn SessionStore> = Arc::new(SqliteSessionStore::open(&store_path).unwrap());
        let orch = start(&mock, store).await;
        let short = orch
            .spawn(req("ann", Duration::from_millis(1500)))
            .await
            .unwrap()
            .session;
        let long = orch
            .spawn(req("ben", Duration::from_secs(3600)))
            .await
            .unwrap()
            .session;
        tokio::time::sleep(Duration::from_millis(20)).await;
        orch.touch(&long.id).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await; // one heartbeat batch persisted
                                                              // Crash: no shutdown, the handle just goes away mid-flight.
        drop(orch);
        (short, long)
    };
    tokio::time::sleep(LEASE_GONE).await;
    assert_eq!(mock.live_count().unwrap(), 2, "a crash terminates nothing");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = std::fs::metadata(&store_path).unwrap().permissions().mode() & 0o777;
        let dir_mode = std::fs::metadata(store_path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!((file, dir_mode), (0o600, 0o700));
    }

    let store = Arc::new(SqliteSessionStore::open(&store_path).unwrap());
    let stored = store.get(&long.id).await.unwrap().unwrap();
    assert!(
        stored.last_touch > long.last_touch,
        "the heartbeat batch reached the store"
    );
    let orch = start(&mock, Arc::<SqliteSessionStore>::clone(&store)).await;
    assert_eq!(orch.len(), 2);
    let again = orch.get(&short.id).unwrap();
    assert_eq!(
        (again.compute_id.clone(), again.state),
        (short.compute_id.clone(), SessionState::Active)
    );
    let mut sub = orch.subscribe(&short.id);
    // The idle deadline comes from the stored wall-clock time, not from the restart.
    let reason = terminated(&mut sub).await;
    assert_eq!(reason, TerminateReason::Idle);
    let ended = Utc::now();
    assert!(
        ended - short.last_touch < chrono::Duration::milliseconds(1500 + 1500),
        "deadline rebuilt from stored time"
    );
    assert!(orch.get(&long.id).is_ok());
    assert_eq!(mock.live_count().unwrap(), 1);
    orch.stop_tracked(&long.id).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test]
async fn a_terminating_session_resumes_termination_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let path = dir.path().join("sessions.sqlite");
    let id = {
        let orch = start(&mock, Arc::new(SqliteSessionStore::open(&path).unwrap())).await;
        let s = orch
            .spawn(req("cid", Duration::from_secs(3600)))
            .await
            .unwrap()
            .session;
        mock.inject(MockOp::Terminate, Fault::Unavailable, 1000);
        let _ = orch.stop_tracked(&s.id).await.unwrap_err();
        drop(orch);
        s.id
    };
    tokio::time::sleep(LEASE_GONE).await;
    mock.clear_faults();
    let store = Arc::new(SqliteSessionStore::open(&path).unwrap());
    assert_eq!(
        store.get(&id).await.unwrap().unwrap().state,
        SessionState::Terminating
    );
    let orch = start(&mock, Arc::<SqliteSessionStore>::clone(&store)).await;
    for _ in 0..200 {
        if orch.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(orch.is_empty() && store.list().await.unwrap().is_empty());
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

/// A store whose `update` (the write after the provider answered) can be made to fail.
#[derive(Debug)]
struct FailingStore {
    inner: SqliteSessionStore,
    fail_updates: AtomicBool,
}

#[async_trait]
impl SessionStore for FailingStore {
    async fn insert(&self, s: &Session) -> Result<()> {
        self.inner.insert(s).await
    }
    async fn update(&self, s: &Session) -> Result<()> {
        if self.fail_updates.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unknown, "injected: disk full"));
        }
        self.inner.update(s).await
    }
    async fn get(&self, id: &str) -> Result<Option<Session>> {
        self.inner.get(id).await
    }
    async fn list(&self) -> Result<Vec<Session>> {
        self.inner.list().await
    }
    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()> {
        self.inner.touch_many(beats).await
    }
    async fn finish(&self, id: &str, spent_usd: f64) -> Result<bool> {
        self.inner.finish(id, spent_usd).await
    }
    async fn closed_spend(&self) -> Result<std::collections::BTreeMap<String, f64>> {
        self.inner.closed_spend().await
    }
    async fn claim(&self, id: &str, from: Option<&str>, to: &str) -> Result<bool> {
        self.inner.claim(id, from, to).await
    }
    async fn renew_owner(&self, node: &str, until: DateTime<Utc>) -> Result<()> {
        self.inner.renew_owner(node, until).await
    }
    async fn release_owner(&self, node: &str) -> Result<()> {
        self.inner.release_owner(node).await
    }
    async fn owners(&self) -> Result<std::collections::BTreeMap<String, DateTime<Utc>>> {
        self.inner.owners().await
    }
}

#[tokio::test]
async fn failed_store_write_after_spawn_terminates_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let store = Arc::new(FailingStore {
        inner: SqliteSessionStore::open(dir.path().join("sessions.sqlite")).unwrap(),
        fail_updates: AtomicBool::new(true),
    });
    let orch = start(&mock, Arc::<FailingStore>::clone(&store)).await;
    let mut all = orch.subscribe_all();
    let e = orch
        .spawn(req("dan", Duration::from_secs(3600)))
        .await
        .unwrap_err();
    assert!(e.message().contains("being terminated"), "{e}");
    assert_eq!(terminated(&mut all).await, TerminateReason::Orphan);
    assert_eq!(mock.live_count().unwrap(), 0, "not leaked");
    assert!(store.list().await.unwrap().is_empty(), "intent resolved");
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
}

#[tokio::test]
async fn crash_between_spawn_and_store_write_is_adopted_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let path = dir.path().join("sessions.sqlite");
    let store = Arc::new(FailingStore {
        inner: SqliteSessionStore::open(&path).unwrap(),
        fail_updates: AtomicBool::new(true),
    });
    {
        let mut c = cfg();
        c.lease_ttl = Duration::from_millis(300);
        let orch = start_with(&mock, Arc::<FailingStore>::clone(&store), c).await;
        // The write fails and so does every terminate: then the process dies.
        mock.inject(MockOp::Terminate, Fault::Unavailable, 1000);
        orch.spawn(req("eve", Duration::from_secs(3600)))
            .await
            .unwrap_err();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(orch);
    }
    // The dead process's lease runs out; only then is its intent anyone else's business.
    tokio::time::sleep(Duration::from_millis(400)).await;
    mock.clear_faults();
    assert_eq!(mock.live_count().unwrap(), 1);
    let intents = store.list().await.unwrap();
    assert_eq!(intents.len(), 1);
    assert_eq!(
        (intents[0].state, intents[0].compute_id.as_deref()),
        (SessionState::Pending, None)
    );

    let orch = start_after_grace(&mock, Arc::new(SqliteSessionStore::open(&path).unwrap())).await;
    let adopted = orch.get(&intents[0].id).unwrap();
    assert_eq!(adopted.state, SessionState::Active);
    let machine = &mock.list(&Default::default()).await.unwrap()[0];
    assert_eq!(adopted.compute_id.as_deref(), Some(machine.id.as_str()));
    assert_eq!(Some(adopted.name.as_str()), machine.name.as_deref());
    orch.stop_tracked(&adopted.id).await.unwrap();
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test]
async fn dangling_intents_are_adopted_or_dropped_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let path = dir.path().join("sessions.sqlite");
    let (kept, ghost) = {
        let store = Arc::new(SqliteSessionStore::open(&path).unwrap());
        let orch = start(&mock, Arc::<SqliteSessionStore>::clone(&store)).await;
        // The provider refuses before creating anything: the intent is dropped at once.
        mock.inject(MockOp::Spawn, Fault::Unavailable, 1);
        orch.spawn(req("fay", Duration::from_secs(60)))
            .await
            .unwrap_err();
        assert!(store.list().await.unwrap().is_empty());
        // An ambiguous create (the machine exists) whose reconciliation listing fails:
        // the outcome is unknown, so the intent is kept.
        mock.inject(MockOp::Spawn, Fault::ErrorAfterCreate, 1);
        mock.inject(MockOp::List, Fault::Unavailable, 1);
        orch.spawn(req("fay", Duration::from_secs(60)))
            .await
            .unwrap_err();
        let kept = store.list().await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].state, SessionState::Pending);
        // An intent whose process died before the provider created anything.
        let mut ghost = kept[0].clone();
        ghost.id = "0123456789abcdef0123456789abcdef".into();
        ghost.name = "atlas-neverspawned".into();
        store.insert(&ghost).await.unwrap();
        // While their owner lives, no other node touches them, however old they are
        // (issue 12, defect 1).
        let other = start_after_grace(&mock, Arc::<SqliteSessionStore>::clone(&store)).await;
        assert_eq!(other.len(), 0, "a live owner's intents are not adopted");
        assert_eq!(store.list().await.unwrap().len(), 2, "nor dropped");
        other.shutdown(ShutdownPolicy::Release).await.unwrap();
        drop(orch);
        (kept[0].clone(), ghost)
    };
    assert_eq!(mock.live_count().unwrap(), 1, "nothing terminated");
    tokio::time::sleep(LEASE_GONE).await;
    let store = Arc::new(SqliteSessionStore::open(&path).unwrap());
    // The owner is gone: within the grace window an intent whose machine is listed is
    // adopted at once; one with no machine is kept (a listing may lag the create).
    {
        let young = start(&mock, Arc::<SqliteSessionStore>::clone(&store)).await;
        assert_eq!(young.len(), 1);
        assert_eq!(young.get(&kept.id).unwrap().state, SessionState::Active);
        assert!(
            store.get(&ghost.id).await.unwrap().is_some(),
            "young ghost kept"
        );
        young.shutdown(ShutdownPolicy::Release).await.unwrap();
    }
    assert_eq!(mock.live_count().unwrap(), 1, "nothing terminated");
    let orch = start_after_grace(&mock, Arc::<SqliteSessionStore>::clone(&store)).await;
    assert_eq!(orch.len(), 1);
    assert_eq!(
        orch.get(&kept.id).unwrap().state,
        SessionState::Active,
        "released by the last node: adopted again"
    );
    assert!(
        store.get(&ghost.id).await.unwrap().is_none(),
        "no machine: intent dropped"
    );
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert_eq!(mock.live_count().unwrap(), 0);
}

/// A node restarted under the same node id (`--node-id`, or the id kept in the data dir)
/// re-adopts its own sessions at once: its previous run's lease, still live, is its own.
#[tokio::test]
async fn a_node_restarted_under_its_own_id_readopts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let path = dir.path().join("sessions.sqlite");
    let mut c = cfg();
    c.node_id = Some("node-1".into());
    c.lease_ttl = Duration::from_secs(3600);
    let id = {
        let orch = start_with(
            &mock,
            Arc::new(SqliteSessionStore::open(&path).unwrap()),
            c.clone(),
        )
        .await;
        let id = orch
            .spawn(req("gus", Duration::from_secs(3600)))
            .await
            .unwrap()
            .session
            .id;
        drop(orch); // a crash: the hour-long lease stays
        id
    };
    let store: Arc<dyn SessionStore> = Arc::new(SqliteSessionStore::open(&path).unwrap());
    let other = start(&mock, Arc::clone(&store)).await;
    assert!(other.get(&id).is_err(), "another node waits for the lease");
    other.shutdown(ShutdownPolicy::Release).await.unwrap();
    let again = start_with(&mock, Arc::clone(&store), c).await;
    assert_eq!(again.get(&id).unwrap().state, SessionState::Active);
    again.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

/// Later rounds (at each lease renewal) take over only what other nodes left: a record
/// this node owns but does not track live (e.g. a spawn between its store write and its
/// live entry) is left to the code that holds it, never adopted a second time.
#[tokio::test]
async fn renewal_rounds_leave_this_nodes_own_records_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let store: Arc<dyn SessionStore> =
        Arc::new(SqliteSessionStore::open(dir.path().join("s.sqlite")).unwrap());
    let mut c = cfg();
    c.node_id = Some("node-2".into());
    c.lease_ttl = Duration::from_millis(150); // a round every 50 ms
    let orch = start_with(&mock, Arc::clone(&store), c).await;
    // This node's own intent, in the store only, with its machine already listed.
    let s = orch
        .spawn(req("hal", Duration::from_secs(3600)))
        .await
        .unwrap()
        .session;
    let mut mine = store.get(&s.id).await.unwrap().unwrap();
    mine.id = "0123456789abcdef0123456789abcdef".into();
    mine.name = "atlas-session-own-1".into();
    mine.compute_id = None;
    mine.state = SessionState::Pending;
    mock.seed(&mine.name, None, Duration::ZERO).unwrap();
    store.insert(&mine).await.unwrap();
    assert_eq!(
        store.get(&mine.id).await.unwrap().unwrap().owner.as_deref(),
        Some("node-2")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        orch.get(&mine.id).is_err(),
        "a round adopted this node's own record"
    );
    assert_eq!(
        store.get(&mine.id).await.unwrap().unwrap().state,
        SessionState::Pending
    );
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
}

/// A damaged record is stopped by what it names: its machine id, else its launch name
/// (an intent recorded before the provider answered). The machine is terminated, the
/// record forgotten, and nothing else is touched.
#[tokio::test]
async fn a_damaged_intent_is_stopped_by_its_launch_name() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_at(dir.path());
    let store: Arc<dyn SessionStore> =
        Arc::new(SqliteSessionStore::open(dir.path().join("s.sqlite")).unwrap());
    let orch = start(&mock, Arc::clone(&store)).await;
    let kept = orch
        .spawn(req("ida", Duration::from_secs(3600)))
        .await
        .unwrap()
        .session;
    let mut bad = store.get(&kept.id).await.unwrap().unwrap();
    bad.id = "fedcba9876543210fedcba9876543210".into();
    bad.name = "atlas-session-damaged-1".into();
    bad.compute_id = None;
    bad.state = SessionState::Pending;
    bad.idle_ttl = Duration::from_secs(400 * 86_400); // out of range: damaged on read
    let machine = mock.seed(&bad.name, None, Duration::ZERO).unwrap();
    store.insert(&bad).await.unwrap();
    assert!(store.get(&bad.id).await.unwrap().unwrap().damaged.is_some());
    orch.stop_tracked(&bad.id).await.unwrap();
    assert!(
        mock.get(&machine.id).await.is_err(),
        "its machine was left billing"
    );
    assert!(store.get(&bad.id).await.unwrap().is_none(), "forgotten");
    assert!(orch.get(&kept.id).is_ok(), "the other session is untouched");
    assert_eq!(mock.live_count().unwrap(), 1);
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
}
