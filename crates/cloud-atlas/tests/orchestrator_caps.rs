//! Spend caps (issue 12, defect 8): caps compare against the larger of the estimate and
//! the provider's reconciled bill; a cap over every user of the store; a cap per user per
//! calendar month that resets when the month rolls over (paused tokio time drives the
//! orchestrator's clock) and survives a restart on SQLite. Every test ends by counting
//! live mock machines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use cloud_atlas::orchestrator::store::{MemorySessionStore, SqliteSessionStore};
use cloud_atlas::orchestrator::{
    BillingSource, EventKind, Orchestrator, OrchestratorConfig, Recv, SessionRequest,
    ShutdownPolicy, SpendLimits, Subscription, TerminateReason,
};
use cloud_atlas::providers::mock::Mock;
use cloud_atlas::{async_trait, ComputeRequest, ErrorKind, Gpu, Result};

const DAY: u64 = 86_400;

fn cfg(limits: SpendLimits) -> OrchestratorConfig {
    let mut c = OrchestratorConfig::default();
    c.reaper.enabled = false;
    c.default_idle_ttl = Duration::from_secs(300 * DAY);
    c.default_max_runtime = Duration::from_secs(300 * DAY);
    c.heartbeat_flush_interval = Duration::from_secs(3600);
    c.reconcile_interval = Duration::from_secs(3600 * 24);
    c.spend_interval = Duration::from_secs(600);
    c.limits = limits;
    c
}

/// An H100 on the mock: $2.99/h.
fn req(user: &str) -> SessionRequest {
    SessionRequest::new(
        "mock",
        user,
        ComputeRequest::builder()
            .gpu(Gpu::H100)
            .image("app")
            .build()
            .unwrap(),
    )
}

/// A provider billing API that billed `usd` for every machine asked about (a bill that ran
/// ahead of the orchestrator's estimate: minimum charges, a rate the listing did not show).
#[derive(Debug)]
struct Billed(f64);

#[async_trait]
impl BillingSource for Billed {
    async fn billed_usd(
        &self,
        compute_ids: &[String],
        _since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, f64>> {
        Ok(compute_ids.iter().map(|id| (id.clone(), self.0)).collect())
    }
}

async fn terminated(sub: &mut Subscription) -> TerminateReason {
    loop {
        match sub.recv().await {
            Recv::Event(e) => {
                if let EventKind::Terminated { reason, .. } = e.kind {
                    return reason;
                }
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_bill_above_the_estimate_counts_against_the_user_cap() {
    let mock = Mock::in_memory();
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .billing("mock", Arc::new(Billed(5.0)))
        .config(cfg(SpendLimits::none().with_max_total_usd_per_user(1.0)))
        .start()
        .await
        .unwrap();
    let s = orch.spawn(req("erin")).await.unwrap();
    let mut sub = orch.subscribe(&s.session.id);
    // The estimate is a few cents; the bill says $5, over the $1 cap.
    assert!(orch.spend().total_usd < 1.0);
    orch.reconcile_bills().await.unwrap();
    assert_eq!(terminated(&mut sub).await, TerminateReason::Budget);
    let e = orch.spawn(req("erin")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(e.message().contains("max_total_usd_per_user"), "{e}");
    assert!(
        e.message().contains("$5.00"),
        "the bill, not the estimate: {e}"
    );
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bill_above_the_estimate_ends_a_session_at_its_own_cap() {
    let mock = Mock::in_memory();
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .billing("mock", Arc::new(Billed(2.0)))
        .config(cfg(SpendLimits::none()))
        .start()
        .await
        .unwrap();
    // $1 would take 20 minutes of H100 by the estimate; the bill says $2 already.
    let capped = orch.spawn(req("ann").with_max_cost(1.0)).await.unwrap();
    let free = orch.spawn(req("ann").with_max_cost(3.0)).await.unwrap();
    let mut sub = orch.subscribe(&capped.session.id);
    orch.reconcile_bills().await.unwrap();
    assert_eq!(terminated(&mut sub).await, TerminateReason::Budget);
    assert!(orch.get(&free.session.id).is_ok(), "under its own cap");
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_store_cap_counts_every_user_together() {
    let mock = Mock::in_memory();
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        // About a minute of one H100; no single user is capped.
        .config(cfg(SpendLimits::none().with_max_total_usd(0.05)))
        .start()
        .await
        .unwrap();
    let a = orch.spawn(req("alice")).await.unwrap();
    let b = orch.spawn(req("bob")).await.unwrap();
    let (mut sa, mut sb) = (orch.subscribe(&a.session.id), orch.subscribe(&b.session.id));
    assert_eq!(terminated(&mut sa).await, TerminateReason::Budget);
    assert_eq!(terminated(&mut sb).await, TerminateReason::Budget);
    let e = orch.spawn(req("carol")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(e.message().contains("max_total_usd"), "{e}");
    assert!(e.message().contains("all users"), "{e}");
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

fn next_month(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_monthly_cap_resets_when_the_month_rolls_over() {
    let mock = Mock::in_memory();
    let started = Utc::now();
    let orch = Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(mock.clone())
        .config(cfg(
            SpendLimits::none().with_max_usd_per_user_per_month(0.05)
        ))
        .start()
        .await
        .unwrap();
    let a = orch.spawn(req("alice")).await.unwrap();
    let mut sub = orch.subscribe(&a.session.id);
    assert_eq!(terminated(&mut sub).await, TerminateReason::Budget);
    let e = orch.spawn(req("alice")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert!(e.message().contains("max_usd_per_user_per_month"), "{e}");
    // Another user has a month of their own.
    let b = orch.spawn(req("bob")).await.unwrap();
    orch.stop_tracked(&b.session.id).await.unwrap();
    // Paused time moves the orchestrator's clock into the next month.
    let wait = (next_month(started) - started).to_std().unwrap() + Duration::from_secs(3600);
    tokio::time::sleep(wait).await;
    let again = orch.spawn(req("alice")).await.unwrap();
    orch.stop_tracked(&again.session.id).await.unwrap();
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_months_closed_spend_survives_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.sqlite");
    let mock = Mock::in_memory();
    let limits = SpendLimits::none().with_max_usd_per_user_per_month(0.05);
    let first = Orchestrator::builder()
        .store(SqliteSessionStore::open(&path).unwrap())
        .provider(mock.clone())
        .config(cfg(limits.clone()))
        .start()
        .await
        .unwrap();
    let s = first.spawn(req("dora")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await; // ~$0.10 of H100
    first.stop_tracked(&s.session.id).await.unwrap();
    first.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    let second = Orchestrator::builder()
        .store(SqliteSessionStore::open(&path).unwrap())
        .provider(mock.clone())
        .config(cfg(limits))
        .start()
        .await
        .unwrap();
    let e = second.spawn(req("dora")).await.unwrap_err();
    assert!(e.message().contains("max_usd_per_user_per_month"), "{e}");
    second.shutdown(ShutdownPolicy::Terminate).await.unwrap();
    assert_eq!(mock.live_count().unwrap(), 0);
}
