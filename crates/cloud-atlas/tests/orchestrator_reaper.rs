//! The reaper's rules on the mock cloud: prefix, grace window, partial listing, dry
//! run, vanished machines, and a machine spawned by someone else that must survive.

use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::orchestrator::store::{MemorySessionStore, SessionStore};
use cloud_atlas::orchestrator::{
    EventKind, Orchestrator, OrchestratorConfig, ReapAction, ReapOptions, ReapReport, Reaper,
    ReaperConfig, Recv, SessionRequest, ShutdownPolicy, TerminateReason,
};
use cloud_atlas::providers::mock::{Fault, Mock, MockOp};
use cloud_atlas::{ComputeRequest, ErrorKind, Gpu, Provider};

const MIN: u64 = 60;

fn cfg() -> OrchestratorConfig {
    let mut c = OrchestratorConfig::default();
    c.default_idle_ttl = Duration::from_secs(24 * 3600);
    c.default_max_runtime = Duration::from_secs(48 * 3600);
    c.reaper.enabled = false;
    c
}

fn req() -> SessionRequest {
    SessionRequest::new(
        "mock",
        "ops",
        ComputeRequest::builder()
            .gpu(Gpu::L4)
            .image("app")
            .build()
            .unwrap(),
    )
}

fn action(r: &ReapReport, id: &str) -> (ReapAction, String) {
    let d = r
        .for_compute(id)
        .unwrap_or_else(|| panic!("no decision about {id}: {r:#?}"));
    (d.action, d.reason.clone())
}

struct World {
    mock: Mock,
    orch: Orchestrator,
    tracked: String,
    vanished_session: String,
    vanished_machine: String,
    orphan: String,
    young: String,
    foreign: String,
}

async fn world(c: OrchestratorConfig) -> World {
    let mock = Mock::in_memory();
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .config(c)
        .start()
        .await
        .unwrap();
    let tracked = orch.spawn(req()).await.unwrap().compute.id;
    let gone = orch.spawn(req()).await.unwrap();
    mock.terminate(&gone.compute.id).await.unwrap(); // vanished behind our back
    let orphan = mock
        .seed(
            "atlas-session-crashed-1a2b3c",
            Some(Gpu::H100),
            Duration::from_secs(30 * MIN),
        )
        .unwrap()
        .id;
    let young = mock
        .seed(
            "atlas-session-inflight-4d5e6f",
            Some(Gpu::L4),
            Duration::from_secs(2 * MIN),
        )
        .unwrap()
        .id;
    let foreign = mock
        .seed(
            "research-llm-finetune",
            Some(Gpu::A100_80G),
            Duration::from_secs(5 * 3600),
        )
        .unwrap()
        .id;
    tokio::time::sleep(Duration::from_secs(1)).await;
    World {
        mock,
        orch,
        tracked,
        vanished_session: gone.session.id,
        vanished_machine: gone.compute.id,
        orphan,
        young,
        foreign,
    }
}

#[tokio::test(start_paused = true)]
async fn dry_run_explains_and_changes_nothing() {
    let w = world(cfg()).await;
    let r = w.orch.reap(&ReapOptions::dry_run()).await.unwrap();
    assert!(r.dry_run);
    let (a, why) = action(&r, &w.tracked);
    assert_eq!(a, ReapAction::Keep);
    assert!(why.contains("tracked by session"), "{why}");
    let (a, why) = action(&r, &w.orphan);
    assert_eq!(a, ReapAction::Terminate);
    assert!(
        why.contains("orphan") && why.contains("atlas-session-"),
        "{why}"
    );
    let (a, why) = action(&r, &w.young);
    assert_eq!(a, ReapAction::Keep);
    assert!(why.contains("grace"), "{why}");
    let (a, why) = action(&r, &w.foreign);
    assert_eq!(a, ReapAction::Keep);
    assert!(why.contains("not a session machine"), "{why}");
    let (a, why) = action(&r, &w.vanished_machine);
    assert_eq!(a, ReapAction::MarkTerminated);
    assert!(why.contains("no longer listed"), "{why}");
    assert!(r.decisions.iter().all(|d| !d.done));
    assert_eq!(w.mock.live_count().unwrap(), 4);
    assert_eq!(w.orch.len(), 2);
    w.orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(
        w.mock.live_count().unwrap(),
        3,
        "tracked one terminated; seeded ones are not ours to end"
    );
    for id in [&w.orphan, &w.young, &w.foreign] {
        w.mock.terminate(id).await.unwrap();
    }
    assert_eq!(w.mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_listing_reaps_nothing_that_round() {
    let w = world(cfg()).await;
    w.mock.inject(MockOp::List, Fault::Unavailable, 1);
    let r = w.orch.reap(&ReapOptions::default()).await.unwrap();
    assert_eq!(r.decisions.len(), 1);
    assert_eq!(r.decisions[0].action, ReapAction::SkipProvider);
    assert!(r.decisions[0]
        .error
        .as_deref()
        .unwrap()
        .contains("unavailable"));
    assert_eq!(w.mock.live_count().unwrap(), 4);
    assert_eq!(
        w.orch.len(),
        2,
        "a vanished-looking session is not marked on a failed listing"
    );
    w.orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    for id in [&w.orphan, &w.young, &w.foreign] {
        w.mock.terminate(id).await.unwrap();
    }
    assert_eq!(w.mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn reaps_orphans_past_grace_marks_vanished_and_spares_foreign() {
    let mut c = cfg();
    c.reaper.enabled = true;
    c.reaper.interval = Duration::from_secs(60);
    let w = world(c).await;
    let mut all = w.orch.subscribe_all();
    // The interval round runs by itself after 60 s.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(
        w.mock.get(&w.orphan).await.unwrap_err().kind() == ErrorKind::NotFound,
        "orphan reaped"
    );
    assert!(
        w.mock.get(&w.young).await.is_ok(),
        "young one spared (grace window)"
    );
    assert!(
        w.mock.get(&w.foreign).await.is_ok(),
        "someone else's machine spared"
    );
    assert!(
        w.mock.get(&w.tracked).await.is_ok(),
        "tracked machine spared"
    );
    assert!(
        w.orch.get(&w.vanished_session).is_err(),
        "vanished session marked terminated"
    );
    let mut seen = Vec::new();
    while let Some(Recv::Event(e)) = all.try_recv() {
        if let EventKind::Terminated { reason, .. } = e.kind {
            seen.push((reason, e.compute_id.unwrap()));
        }
    }
    assert!(
        seen.contains(&(TerminateReason::Orphan, w.orphan.clone())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(TerminateReason::Vanished, w.vanished_machine.clone())),
        "{seen:?}"
    );
    // Ten minutes later the young one is past the grace window too; the foreign one never goes.
    tokio::time::sleep(Duration::from_secs(10 * MIN)).await;
    assert_eq!(
        w.mock.get(&w.young).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let r = w
        .orch
        .reap(&ReapOptions::default().provider("mock"))
        .await
        .unwrap();
    assert_eq!(action(&r, &w.foreign).0, ReapAction::Keep);
    assert_eq!(r.with_action(ReapAction::Terminate).count(), 0);
    assert_eq!(
        w.orch
            .reap(&ReapOptions::default().provider("nope"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Validation
    );
    w.orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(
        w.mock.live_count().unwrap(),
        1,
        "only the foreign machine survives"
    );
    w.mock.get(&w.foreign).await.unwrap();
    w.mock.terminate(&w.foreign).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn another_prefix_is_never_reaped_and_custom_prefixes_work() {
    let mock = Mock::in_memory();
    let mut c = cfg();
    c.reaper = ReaperConfig::default()
        .with_prefix("team-")
        .with_enabled(false);
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .config(c)
        .start()
        .await
        .unwrap();
    let mine = mock
        .seed("team-old", None, Duration::from_secs(3600))
        .unwrap()
        .id;
    let default_prefixed = mock
        .seed("atlas-session-old", None, Duration::from_secs(3600))
        .unwrap()
        .id;
    let r = orch.reap(&ReapOptions::default()).await.unwrap();
    assert!(r.for_compute(&mine).unwrap().done);
    assert_eq!(action(&r, &default_prefixed).0, ReapAction::Keep);
    assert_eq!(mock.live_count().unwrap(), 1);
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    mock.terminate(&default_prefixed).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn standalone_reaper_works_on_the_store_alone() {
    let mock = Mock::in_memory();
    let store: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
    // A session tracked by an orchestrator that is released (another process's view).
    let orch = Orchestrator::builder()
        .store_arc(std::sync::Arc::clone(&store))
        .provider(mock.clone())
        .config(cfg())
        .start()
        .await
        .unwrap();
    let tracked = orch.spawn(req()).await.unwrap();
    orch.shutdown(ShutdownPolicy::Release).await.unwrap();
    let orphan = mock
        .seed("atlas-session-orphan", None, Duration::from_secs(3600))
        .unwrap()
        .id;
    let reaper =
        Reaper::new(Arc::clone(&store), ReaperConfig::default()).provider(Arc::new(mock.clone()));
    let dry = reaper.run(&ReapOptions::dry_run()).await.unwrap();
    assert_eq!(action(&dry, &orphan).0, ReapAction::Terminate);
    assert_eq!(action(&dry, &tracked.compute.id).0, ReapAction::Keep);
    assert_eq!(mock.live_count().unwrap(), 2);
    reaper.run(&ReapOptions::default()).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 1);
    // Its machine vanishes: the standalone reaper forgets the session in the store.
    mock.terminate(&tracked.compute.id).await.unwrap();
    let r = reaper.run(&ReapOptions::default()).await.unwrap();
    assert!(r.with_action(ReapAction::MarkTerminated).all(|d| d.done));
    assert!(store.list().await.unwrap().is_empty());
    let e = Reaper::new(store, ReaperConfig::default().with_prefix(""))
        .run(&ReapOptions::dry_run())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(mock.live_count().unwrap(), 0);
}
