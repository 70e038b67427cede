//! Orchestrator behaviour on the mock cloud, in deterministic (paused) tokio time where
//! possible: idle expiry and touch, max runtime, the provider-side deadline, budget caps,
//! terminate failure then retry, event order, lag, wait_ready, shutdown policies.
//! Every test ends by counting live mock machines.

use std::time::Duration;

use cloud_atlas::orchestrator::store::MemorySessionStore;
use cloud_atlas::orchestrator::{
    Event, EventKind, Orchestrator, OrchestratorConfig, Recv, SessionFilter, SessionRequest,
    SessionState, ShutdownPolicy, SpendLimits, Subscription, TerminateReason,
};
use cloud_atlas::providers::mock::{Fault, Mock, MockOp, MockOptions};
use cloud_atlas::{AuthMode, ComputeRequest, ErrorKind, Gpu, Provider};
use tokio::time::Instant;

fn cfg() -> OrchestratorConfig {
    let mut c = OrchestratorConfig::default();
    c.heartbeat_flush_interval = Duration::from_secs(1);
    c.terminate_backoff = Duration::from_millis(200);
    c.terminate_backoff_max = Duration::from_secs(2);
    c.reaper.enabled = false;
    c
}

async fn start(mock: &Mock, c: OrchestratorConfig) -> Orchestrator {
    Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .config(c)
        .start()
        .await
        .unwrap()
}

fn req(user: &str) -> SessionRequest {
    let compute = ComputeRequest::builder()
        .gpu(Gpu::H100)
        .image("ghcr.io/acme/app:1")
        .port("8000/http")
        .auth(AuthMode::Bearer)
        .build()
        .unwrap();
    SessionRequest::new("mock", user, compute)
}

/// Next event of `kind`'s shape (ignoring others), failing on lag or close.
async fn next(sub: &mut Subscription) -> Event {
    match sub.recv().await {
        Recv::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn until_terminated(sub: &mut Subscription) -> (TerminateReason, Vec<Event>) {
    let mut seen = Vec::new();
    loop {
        let e = next(sub).await;
        seen.push(e.clone());
        if let EventKind::Terminated { reason, .. } = e.kind {
            return (reason, seen);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn idle_expiry_and_touch() {
    let mock = Mock::in_memory();
    let orch = start(&mock, cfg()).await;
    let s = orch
        .spawn(req("alice").with_idle_ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    let id = s.session.id.clone();
    assert!(
        s.auth().unwrap().token.is_some(),
        "raw token once, in the spawn result"
    );
    assert_eq!(
        orch.get(&id).unwrap().token_hash,
        s.auth().unwrap().token_hash
    );
    let mut sub = orch.subscribe(&id);
    // Touching every 6 s keeps a 10 s TTL alive well past 10 s.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        orch.touch(&id).unwrap();
    }
    assert_eq!(orch.get(&id).unwrap().state, SessionState::Active);
    assert_eq!(mock.live_count().unwrap(), 1);
    let last_touch = Instant::now();
    let (reason, _) = until_terminated(&mut sub).await;
    assert_eq!(reason, TerminateReason::Idle);
    let idle = Instant::now() - last_touch;
    assert!(
        idle >= Duration::from_secs(10) && idle < Duration::from_secs(11),
        "{idle:?}"
    );
    assert_eq!(orch.get(&id).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(orch.touch(&id).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(orch.is_empty());
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_runtime_ends_an_active_session() {
    let mock = Mock::in_memory();
    let orch = start(&mock, cfg()).await;
    let t0 = Instant::now();
    let s = orch
        .spawn(
            req("bob")
                .with_idle_ttl(Duration::from_secs(3600))
                .with_max_runtime(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let mut sub = orch.subscribe(&s.session.id);
    let toucher = {
        let orch = orch.clone();
        let id = s.session.id.clone();
        tokio::spawn(async move {
            while orch.touch(&id).is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let (reason, _) = until_terminated(&mut sub).await;
    assert_eq!(reason, TerminateReason::MaxRuntime);
    let ran = Instant::now() - t0;
    assert!(
        ran >= Duration::from_secs(30) && ran < Duration::from_secs(31),
        "{ran:?}"
    );
    toucher.await.unwrap();
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn provider_side_deadline_ends_the_machine_when_we_are_gone() {
    let mock = Mock::in_memory();
    let mut c = cfg();
    c.provider_deadline_slack = Duration::from_secs(5);
    let orch = start(&mock, c).await;
    let s = orch
        .spawn(
            req("carol")
                .with_idle_ttl(Duration::from_secs(3600))
                .with_max_runtime(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(
        s.compute.raw["deadline"].is_string(),
        "the provider got a deadline: {}",
        s.compute.raw
    );
    // Every process of ours is gone (no shutdown, no terminate).
    drop(orch);
    tokio::time::sleep(Duration::from_secs(64)).await;
    assert_eq!(
        mock.live_count().unwrap(),
        1,
        "alive until the provider deadline"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        mock.live_count().unwrap(),
        0,
        "the provider-side deadline ended it"
    );
}

#[tokio::test(start_paused = true)]
async fn budget_cap_terminates_and_limits_refuse_spawns() {
    let mock = Mock::in_memory();
    let mut c = cfg();
    c.limits = SpendLimits::none().with_max_sessions_per_user(1);
    let orch = start(&mock, c).await;
    // H100 at $2.99/h: $0.01 lasts about 12 s.
    let s = orch.spawn(req("dave").with_max_cost(0.01)).await.unwrap();
    let e = orch.spawn(req("dave")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(e.message().contains("max_sessions_per_user"), "{e}");
    assert_eq!(
        mock.live_count().unwrap(),
        1,
        "a refused spawn creates nothing"
    );
    let mut sub = orch.subscribe(&s.session.id);
    let t0 = Instant::now();
    let toucher = {
        let orch = orch.clone();
        let id = s.session.id.clone();
        tokio::spawn(async move {
            while orch.touch(&id).is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let (reason, events) = until_terminated(&mut sub).await;
    assert_eq!(reason, TerminateReason::Budget);
    let took = Instant::now() - t0;
    assert!(
        took >= Duration::from_secs(11) && took <= Duration::from_secs(13),
        "{took:?}"
    );
    let spent = match events.last().unwrap().kind {
        EventKind::Terminated { spent_usd, .. } => spent_usd,
        _ => unreachable!(),
    };
    assert!((spent - 0.01).abs() < 0.001, "{spent}");
    toucher.await.unwrap();
    let report = orch.spend();
    assert!((report.users["dave"].closed_usd - spent).abs() < 1e-9);
    assert!((report.total_usd - spent).abs() < 1e-9);
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn per_user_rate_and_total_caps() {
    let mock = Mock::in_memory();
    let mut c = cfg();
    c.spend_interval = Duration::from_secs(5);
    c.limits = SpendLimits::none()
        .with_max_usd_per_hour_per_user(4.0)
        .with_max_total_usd_per_user(0.05);
    let orch = start(&mock, c).await;
    let a = orch
        .spawn(req("erin").with_idle_ttl(Duration::from_secs(3600)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Erin bills $2.99/h (< $4): a second H100 is allowed by the pre-check, and crossing
    // the $/h cap terminates the newest session at the next spend check.
    let b = orch
        .spawn(req("erin").with_idle_ttl(Duration::from_secs(3600)))
        .await
        .unwrap();
    let mut sub_b = orch.subscribe(&b.session.id);
    let (reason, _) = until_terminated(&mut sub_b).await;
    assert_eq!(reason, TerminateReason::Budget);
    assert!(orch.get(&a.session.id).is_ok(), "the older session stays");
    // Now at $2.99/h; the next spawn would be allowed by rate, but the total cap ($0.05,
    // about a minute of H100) ends everything once crossed and then refuses spawns.
    let mut sub_a = orch.subscribe(&a.session.id);
    let (reason, _) = until_terminated(&mut sub_a).await;
    assert_eq!(reason, TerminateReason::Budget);
    let e = orch.spawn(req("erin")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(e.message().contains("max_total_usd_per_user"), "{e}");
    // Other users are unaffected.
    let f = orch.spawn(req("frank")).await.unwrap();
    orch.stop_tracked(&f.session.id).await.unwrap();
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn terminate_failure_is_retried_and_never_drops_the_record() {
    let mock = Mock::in_memory();
    let orch = start(&mock, cfg()).await;
    let s = orch
        .spawn(req("gina").with_idle_ttl(Duration::from_secs(5)))
        .await
        .unwrap();
    let id = s.session.id.clone();
    let mut sub = orch.subscribe(&id);
    mock.inject(MockOp::Terminate, Fault::Unavailable, 3);
    let mut failures = 0;
    loop {
        let e = next(&mut sub).await;
        match e.kind {
            EventKind::TerminateFailed { attempt, ref error } => {
                failures += 1;
                assert_eq!(attempt, failures);
                assert!(error.contains("unavailable"), "{error}");
                // Still tracked, still billing, visibly terminating.
                let got = orch.get(&id).unwrap();
                assert_eq!(got.state, SessionState::Terminating);
                assert_eq!(got.terminate_reason, Some(TerminateReason::Idle));
                assert_eq!(mock.live_count().unwrap(), 1);
            }
            EventKind::Terminated { reason, .. } => {
                assert_eq!(reason, TerminateReason::Idle);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(failures, 3);
    assert_eq!(mock.live_count().unwrap(), 0);
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stop_tracked_reports_a_failed_terminate_and_keeps_retrying() {
    let mock = Mock::in_memory();
    let orch = start(&mock, cfg()).await;
    let s = orch.spawn(req("hank")).await.unwrap();
    mock.inject(MockOp::Terminate, Fault::Unavailable, 1);
    let e = orch.stop_tracked(&s.session.id).await.unwrap_err();
    assert!(e.message().contains("retried"), "{e}");
    assert!(
        orch.get(&s.session.id).is_ok(),
        "record kept after a failed terminate"
    );
    let mut sub = orch.subscribe(&s.session.id);
    let (reason, _) = until_terminated(&mut sub).await;
    assert_eq!(reason, TerminateReason::Requested);
    assert_eq!(
        orch.stop_tracked(&s.session.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn events_come_in_lifecycle_order() {
    let mock = Mock::in_memory();
    let orch = start(&mock, cfg()).await;
    let mut all = orch.subscribe_all();
    let s = orch.spawn(req("iris")).await.unwrap();
    let id = s.session.id.clone();
    tokio::time::sleep(Duration::from_millis(500)).await; // boots in 100 ms
    orch.touch(&id).unwrap();
    orch.touch(&id).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await; // one heartbeat batch
    orch.stop_tracked(&id).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(Recv::Event(e)) = all.try_recv() {
        assert_eq!(e.session_id, id);
        assert_eq!(e.compute_id.as_deref(), Some(s.compute.id.as_str()));
        kinds.push(match e.kind {
            EventKind::Spawned { .. } => "spawned",
            EventKind::Running { .. } => "running",
            EventKind::Heartbeat { .. } => "heartbeat",
            EventKind::Terminating { reason } => {
                assert_eq!(reason, TerminateReason::Requested);
                "terminating"
            }
            EventKind::Terminated { .. } => "terminated",
            EventKind::TerminateFailed { .. } => "terminate_failed",
            _ => "other",
        });
    }
    assert_eq!(
        kinds,
        [
            "spawned",
            "running",
            "heartbeat",
            "terminating",
            "terminated"
        ]
    );
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_subscribers_lag_and_never_block() {
    let mock = Mock::in_memory();
    let mut c = cfg();
    c.event_capacity = 4;
    let orch = start(&mock, c).await;
    let mut slow = orch.subscribe_all();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(orch.spawn(req(&format!("u{i}"))).await.unwrap().session.id);
    }
    for id in &ids {
        orch.stop_tracked(id).await.unwrap();
    }
    match slow.recv().await {
        Recv::Lagged(n) => assert!(n > 0),
        other => panic!("expected a lag signal, got {other:?}"),
    }
    assert!(matches!(slow.recv().await, Recv::Event(_)));
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn list_filters_and_ambiguous_spawn_makes_one_machine() {
    let mock = Mock::in_memory();
    let orch = start(&mock, cfg()).await;
    mock.inject(MockOp::Spawn, Fault::ErrorAfterCreate, 1);
    let a = orch.spawn(req("jo")).await.unwrap();
    assert_eq!(
        mock.live_count().unwrap(),
        1,
        "reconciled by launch name, not spawned twice"
    );
    assert!(a.session.name.starts_with("atlas-"));
    let _b = orch.spawn(req("kim")).await.unwrap();
    mock.inject(MockOp::Spawn, Fault::Capacity, 1);
    assert_eq!(
        orch.spawn(req("kim")).await.unwrap_err().kind(),
        ErrorKind::Capacity
    );
    assert_eq!(
        orch.list(&SessionFilter::all()).len(),
        2,
        "a failed spawn is not tracked"
    );
    assert_eq!(orch.list(&SessionFilter::all().user("jo")).len(), 1);
    assert_eq!(
        orch.list(
            &SessionFilter::all()
                .provider("mock")
                .state(SessionState::Active)
        )
        .len(),
        2
    );
    assert_eq!(orch.list(&SessionFilter::all().provider("runpod")).len(), 0);
    let e = orch
        .spawn(SessionRequest::new("runpod", "jo", req("jo").compute))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().starts_with("provider"), "{e}");
    let report = orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!((report.terminated, report.left_tracked), (2, 0));
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn release_leaves_machines_running_and_tracked() {
    let mock = Mock::in_memory();
    let store = std::sync::Arc::new(MemorySessionStore::new());
    let orch = Orchestrator::builder()
        .store_arc(std::sync::Arc::<MemorySessionStore>::clone(&store))
        .provider(mock.clone())
        .config(cfg())
        .start()
        .await
        .unwrap();
    let s = orch.spawn(req("lee")).await.unwrap();
    orch.touch(&s.session.id).unwrap();
    let report = orch.shutdown(ShutdownPolicy::Release).await.unwrap();
    assert_eq!((report.terminated, report.left_tracked), (0, 1));
    assert_eq!(mock.live_count().unwrap(), 1);
    assert!(
        orch.spawn(req("lee")).await.is_err(),
        "no spawns after shutdown"
    );
    // The next start adopts it; terminate then.
    let next = Orchestrator::builder()
        .store_arc(store)
        .provider(mock.clone())
        .config(cfg())
        .start()
        .await
        .unwrap();
    assert_eq!(
        next.get(&s.session.id).unwrap().compute_id,
        s.session.compute_id
    );
    next.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn billing_reconciliation_records_the_drift() {
    let mock = Mock::in_memory();
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .billing("mock", std::sync::Arc::new(mock.clone()))
        .config(cfg())
        .start()
        .await
        .unwrap();
    let s = orch
        .spawn(req("max").with_idle_ttl(Duration::from_secs(7200)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    orch.reconcile_bills().await.unwrap();
    let got = orch.get(&s.session.id).unwrap();
    let billed = got.billed_usd.unwrap();
    assert!((billed - 2.99).abs() < 0.01, "{billed}");
    assert!(orch.spend().reconciliation_drift_usd.abs() < 0.01);
    // A stopped machine bills storage only: the reaper's listing updates the rate.
    mock.stop(&s.compute.id).await.unwrap();
    orch.reap(&Default::default()).await.unwrap();
    assert!(orch.get(&s.session.id).unwrap().cost_per_hour < 0.01);
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test]
async fn wait_ready_needs_running_and_an_answering_port() {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let mock = Mock::in_memory_with(MockOptions {
        boot_delay: Duration::from_millis(300),
        http_base: Some(base),
        ..MockOptions::default()
    });
    let orch = start(&mock, cfg()).await;
    let s = orch.spawn(req("nia")).await.unwrap();
    let ready = orch
        .wait_ready(&s.session.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(ready.http_url.unwrap().starts_with("http://127.0.0.1:"));

    // Running but nothing listening: a timeout that says so.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mock2 = Mock::in_memory_with(MockOptions {
        boot_delay: Duration::from_millis(50),
        http_base: Some(dead_url),
        ..MockOptions::default()
    });
    let orch2 = start(&mock2, cfg()).await;
    let s2 = orch2.spawn(req("nia")).await.unwrap();
    let e = orch2
        .wait_ready(&s2.session.id, Duration::from_millis(1200))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("port not answering"), "{e}");
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    orch2.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
    assert_eq!(mock2.live_count().unwrap(), 0);
}

#[tokio::test]
async fn bad_config_is_a_validation_error() {
    let mock = Mock::in_memory();
    let mut c = cfg();
    c.reaper.prefix = String::new();
    let e = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .config(c)
        .start()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().starts_with("reaper.prefix"), "{e}");
    let e = Orchestrator::builder()
        .provider(mock.clone())
        .start()
        .await
        .unwrap_err();
    assert!(e.message().starts_with("store"), "{e}");
    assert_eq!(mock.live_count().unwrap(), 0);
    let _ = mock.name();
}

#[tokio::test(start_paused = true)]
async fn stop_or_shutdown_during_a_spawn_leaks_nothing() {
    let mock = Mock::in_memory();
    mock.set_latency(Duration::from_secs(2));
    let orch = start(&mock, cfg()).await;
    let spawning = {
        let orch = orch.clone();
        tokio::spawn(async move { orch.spawn(req("olga")).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = orch.list(&SessionFilter::all().state(SessionState::Pending));
    assert_eq!(
        pending.len(),
        1,
        "the intent is tracked while the provider works"
    );
    orch.stop_tracked(&pending[0].id).await.unwrap();
    let e = spawning.await.unwrap().unwrap_err();
    assert!(
        e.message().contains("stopped while it was being spawned"),
        "{e}"
    );
    assert!(orch.is_empty());
    assert_eq!(mock.live_count().unwrap(), 0);

    // Shutdown(Terminate) while a spawn is in flight.
    let spawning = {
        let orch = orch.clone();
        tokio::spawn(async move { orch.spawn(req("olga")).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert!(spawning.await.unwrap().is_err());
    assert_eq!(report.left_tracked, 0);
    assert_eq!(mock.live_count().unwrap(), 0);
}

/// With a store shared by two nodes, a node never acts on a session another live node
/// holds (issue 12, defect 1): it neither adopts nor stops it. Once the holder is gone it
/// takes the session over within a lease TTL, reads the heartbeat the holder persisted,
/// and ends it as idle only after that.
#[tokio::test(start_paused = true)]
async fn a_second_node_leaves_a_live_nodes_session_alone_and_takes_it_over_when_it_goes() {
    let mock = Mock::in_memory();
    let store: std::sync::Arc<dyn cloud_atlas::orchestrator::SessionStore> =
        std::sync::Arc::new(MemorySessionStore::new());
    let node = |mock: &Mock| {
        Orchestrator::builder()
            .store_arc(std::sync::Arc::clone(&store))
            .provider(mock.clone())
            .config(cfg())
            .start()
    };
    let a = node(&mock).await.unwrap();
    let s = a
        .spawn(req("alice").with_idle_ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    let id = s.session.id.clone();
    assert_eq!(s.session.owner.as_deref(), Some(a.node_id()));
    let b = node(&mock).await.unwrap();
    assert_ne!(a.node_id(), b.node_id());
    assert!(b.get(&id).is_err(), "node B adopted a session node A holds");
    let e = b.stop_tracked(&id).await.unwrap_err();
    assert_eq!(e.kind(), cloud_atlas::ErrorKind::Conflict, "{e}");
    assert!(e.message().contains(a.node_id()), "{e}");
    // The user keeps touching through node A, for several idle TTLs and lease TTLs.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        a.touch(&id).unwrap();
    }
    assert!(b.get(&id).is_err(), "node B took over from a live node");
    assert_eq!(mock.live_count().unwrap(), 1);
    // A releases its sessions (touched just now, heartbeat flushed): B takes it over
    // within a lease TTL, and respects the persisted heartbeat.
    let mut sub_b = b.subscribe(&id);
    let released = a.shutdown(ShutdownPolicy::Release).await.unwrap();
    assert_eq!(released.left_tracked, 1);
    // B renews (and looks for sessions to take over) every third of the 90 s lease TTL.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let adopted = b.get(&id).expect("node B took the session over");
    assert_eq!(adopted.owner.as_deref(), Some(b.node_id()));
    match sub_b.recv().await {
        Recv::Event(e) => assert_eq!(
            e.kind,
            EventKind::TakenOver {
                from: Some(a.node_id().to_string())
            }
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(adopted.state, SessionState::Active);
    assert_eq!(
        mock.live_count().unwrap(),
        1,
        "not ended before its idle TTL"
    );
    let (reason, _) = until_terminated(&mut sub_b).await;
    assert_eq!(reason, TerminateReason::Idle);
    b.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

/// A node that dies (dropped without shutdown) keeps its lease until it expires: only
/// then does a surviving node take its sessions over.
#[tokio::test(start_paused = true)]
async fn the_sessions_of_a_crashed_node_pass_on_once_its_lease_expires() {
    let mock = Mock::in_memory();
    let store: std::sync::Arc<dyn cloud_atlas::orchestrator::SessionStore> =
        std::sync::Arc::new(MemorySessionStore::new());
    let mut c = cfg();
    c.lease_ttl = Duration::from_secs(30);
    let node = |mock: &Mock| {
        Orchestrator::builder()
            .store_arc(std::sync::Arc::clone(&store))
            .provider(mock.clone())
            .config(c.clone())
            .start()
    };
    let a = node(&mock).await.unwrap();
    let id = a.spawn(req("carl")).await.unwrap().session.id;
    let b = node(&mock).await.unwrap();
    drop(a);
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        b.get(&id).is_err(),
        "taken over while the crashed node's lease was live"
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(b.get(&id).unwrap().owner.as_deref(), Some(b.node_id()));
    b.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}
