//! The conformance suite on the mock cloud: one test per case through the macro, the
//! whole suite through `run_all` with a leak check, a provider with few capabilities,
//! a provider that breaks the contract (the suite must catch it), and cleanup after
//! a panicking case.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use async_trait::async_trait;
use cloud_atlas::providers::mock::{Mock, MockOptions, MOCK_ENDPOINT};
use cloud_atlas::testing::{self, Case, Fixture, Outcome, SuiteOptions};
use cloud_atlas::{
    Capabilities, Capability, Compute, ComputeRequest, Error, GpuType, ListFilter, Provider, Result,
};
use futures::FutureExt;

fn mock() -> Mock {
    Mock::in_memory_with(MockOptions {
        boot_delay: Duration::from_millis(50),
        ..MockOptions::default()
    })
}

fn opts() -> SuiteOptions {
    SuiteOptions {
        wait_timeout: Duration::from_secs(20),
        case_timeout: Duration::from_secs(60),
        cleanup_timeout: Duration::from_secs(20),
        serverless_endpoint: Some(MOCK_ENDPOINT.to_string()),
        ..SuiteOptions::default()
    }
}

/// One test per case, on a fresh mock each.
mod mock_cases {
    use super::*;
    cloud_atlas::conformance_tests!(mock(), opts());
}

/// The SQLite-backed mock, kept in a temp dir that must outlive it ([`Guarded`]).
mod sqlite_mock_cases {
    use super::*;
    use cloud_atlas::testing::Guarded;

    fn sqlite_mock() -> Guarded<tempfile::TempDir, Mock> {
        let dir = tempfile::tempdir().unwrap();
        let m = Mock::open(
            dir.path().join("state/mock.sqlite"),
            MockOptions {
                boot_delay: Duration::from_millis(50),
                ..MockOptions::default()
            },
        )
        .unwrap();
        Guarded::new(dir, m)
    }

    cloud_atlas::conformance_tests!(sqlite_mock(), opts());
}

/// The relaxed checks used for static contract servers must hold on a real backend too.
mod mock_as_static_server {
    use super::*;
    cloud_atlas::conformance_tests!(
        mock(),
        SuiteOptions {
            expect_state_changes: false,
            ..opts()
        }
    );
}

/// A user's own provider with few capabilities: CPU-only, no stop/start, no catalog,
/// no serverless. Undeclared operations answer `Unsupported` as the contract says.
#[derive(Debug)]
struct CpuOnly(Mock);

#[async_trait]
impl Provider for CpuOnly {
    fn name(&self) -> &str {
        "cpu-only"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new([Capability::SpawnCpu])
    }
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        if req.gpu.is_some() {
            return Err(Error::validation("gpu", "cpu-only offers no GPUs"));
        }
        // It cannot hold a deadline on the machine, so a max runtime is refused.
        cloud_atlas::spec::deadline::check(self.name(), &self.capabilities(), req)?;
        self.0.spawn(req).await.map(|c| self.own(c))
    }
    async fn get(&self, id: &str) -> Result<Compute> {
        self.0.get(id).await.map(|c| self.own(c))
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        let all = self.0.list(filter).await?;
        Ok(all.into_iter().map(|c| self.own(c)).collect())
    }
    async fn stop(&self, _id: &str) -> Result<()> {
        Err(Error::unsupported(self.name(), "stop", "no stop"))
    }
    async fn start(&self, _id: &str) -> Result<()> {
        Err(Error::unsupported(self.name(), "start", "no start"))
    }
    async fn terminate(&self, id: &str) -> Result<()> {
        self.0.terminate(id).await
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        Err(Error::unsupported(self.name(), "gpu_types", "no catalog"))
    }
}

impl CpuOnly {
    fn own(&self, mut c: Compute) -> Compute {
        c.provider = self.name().to_string();
        c
    }
}

mod cpu_only_cases {
    use super::*;
    cloud_atlas::conformance_tests!(CpuOnly(mock()), opts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_the_mock_passes_and_leaves_nothing_alive() {
    let cloud = mock();
    let report = testing::run_all(&cloud, &opts()).await;
    println!("{report}");
    report.assert_passed();
    // Every capability-driven case ran on the mock (serverless too: an endpoint is set).
    for name in [
        "spawn_get_list_terminate",
        "wait_for_running",
        "ports_get_urls",
        "stop_start",
        "gpu_types_have_prices",
        "serverless_run_status",
        "unoffered_gpu_is_validation",
    ] {
        let case = report.case(name).expect("case is reported");
        assert!(matches!(case.outcome, Outcome::Passed), "{case}");
    }
    // The mock declares every checked capability, so there is nothing to refuse.
    assert!(matches!(
        report
            .case("undeclared_capabilities_are_unsupported")
            .unwrap()
            .outcome,
        Outcome::Skipped(_)
    ));
    assert_eq!(cloud.live_count().unwrap(), 0, "the suite leaked machines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_only_provider_runs_only_what_it_declares() {
    let p = CpuOnly(mock());
    let report = testing::run_all(&p, &opts()).await;
    println!("{report}");
    report.assert_passed();
    for skipped in [
        "ports_get_urls",
        "stop_start",
        "gpu_types_have_prices",
        "serverless_run_status",
        "unoffered_gpu_is_validation",
    ] {
        let c = report.case(skipped).unwrap();
        assert!(matches!(c.outcome, Outcome::Skipped(_)), "{c}");
    }
    let c = report
        .case("undeclared_capabilities_are_unsupported")
        .unwrap();
    assert!(matches!(c.outcome, Outcome::Passed), "{c}");
    assert_eq!(p.0.live_count().unwrap(), 0);
}

/// Declares no stop/catalog but forwards them anyway: the suite must fail it.
#[derive(Debug)]
struct Overreaching(Mock);

#[async_trait]
impl Provider for Overreaching {
    fn name(&self) -> &str {
        "mock"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new([Capability::SpawnGpu, Capability::SpawnCpu])
    }
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        self.0.spawn(req).await
    }
    async fn get(&self, id: &str) -> Result<Compute> {
        self.0.get(id).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        self.0.list(filter).await
    }
    async fn stop(&self, id: &str) -> Result<()> {
        self.0.stop(id).await
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.0.start(id).await
    }
    async fn terminate(&self, id: &str) -> Result<()> {
        self.0.terminate(id).await
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.0.gpu_types().await
    }
}

#[tokio::test]
async fn the_suite_fails_a_provider_that_serves_undeclared_operations() {
    let p = Overreaching(mock());
    let fx_opts = opts();
    let case = testing::all_cases()
        .into_iter()
        .find(|c| c.name == "undeclared_capabilities_are_unsupported")
        .unwrap();
    let r = testing::run_case(&p, &fx_opts, &case).await;
    let Outcome::Failed(why) = &r.outcome else {
        panic!("expected a failure, got {r}");
    };
    assert!(why.contains("expected Unsupported"), "{why}");
}

#[tokio::test]
async fn a_provider_whose_get_still_finds_terminated_machines_fails() {
    /// Terminate "succeeds" but does nothing: the round trip must notice.
    #[derive(Debug)]
    struct Sticky(Mock);
    #[async_trait]
    impl Provider for Sticky {
        fn name(&self) -> &str {
            "mock"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new([Capability::SpawnGpu])
        }
        async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
            self.0.spawn(req).await
        }
        async fn get(&self, id: &str) -> Result<Compute> {
            self.0.get(id).await
        }
        async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
            self.0.list(filter).await
        }
        async fn stop(&self, id: &str) -> Result<()> {
            self.0.stop(id).await
        }
        async fn start(&self, id: &str) -> Result<()> {
            self.0.start(id).await
        }
        async fn terminate(&self, _id: &str) -> Result<()> {
            Ok(())
        }
        async fn gpu_types(&self) -> Result<Vec<GpuType>> {
            self.0.gpu_types().await
        }
    }
    let p = Sticky(mock());
    let case = testing::all_cases()
        .into_iter()
        .find(|c| c.name == "spawn_get_list_terminate")
        .unwrap();
    let r = testing::run_case(&p, &opts(), &case).await;
    let Outcome::Failed(why) = &r.outcome else {
        panic!("expected a failure, got {r}");
    };
    assert!(why.contains("get after terminate"), "{why}");
    // The stuck machine is real in the underlying mock; clean it for the leak check.
    for c in p.0.list(&ListFilter::all()).await.unwrap() {
        p.0.terminate(&c.id).await.unwrap();
    }
}

async fn spawn_then_panic<'a>(_p: &'a dyn Provider, fx: &'a Fixture<'a>) -> testing::CaseResult {
    let req = fx.request("panic").unwrap().build().unwrap();
    let c = fx.spawn(&req).await.unwrap();
    assert!(!c.id.is_empty());
    panic!("deliberate panic after spawning {}", c.id);
}

#[tokio::test]
async fn run_case_terminates_what_a_panicking_case_spawned() {
    let cloud = mock();
    let case = Case::new("spawn_then_panic", &[], |p, fx| {
        Box::pin(spawn_then_panic(p, fx))
    });
    let r = testing::run_case(&cloud, &opts(), &case).await;
    let Outcome::Failed(why) = &r.outcome else {
        panic!("expected a failure, got {r}");
    };
    assert!(why.contains("panicked: deliberate panic"), "{why}");
    assert_eq!(r.cleanup.terminated.len(), 1, "{}", r.cleanup);
    assert_eq!(cloud.live_count().unwrap(), 0);
}

/// The Drop guard (no runner involved): a panic unwinds through the fixture, which
/// terminates what it spawned. Checked on both runtime flavours, since `Drop` picks
/// `block_in_place` on multi-thread runtimes and a helper thread on current-thread ones.
async fn drop_guard_cleans_up() {
    let cloud = mock();
    let o = opts();
    let caught = AssertUnwindSafe(async {
        let fx = Fixture::new(&cloud, &o);
        for tag in ["one", "two"] {
            let req = fx.request(tag).unwrap().build().unwrap();
            fx.spawn(&req).await.unwrap();
        }
        assert_eq!(cloud.live_count().unwrap(), 2);
        panic!("deliberate panic with two machines up");
    })
    .catch_unwind()
    .await;
    assert!(caught.is_err());
    assert_eq!(
        cloud.live_count().unwrap(),
        0,
        "the drop guard left machines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_guard_cleans_up_on_multi_thread_runtime() {
    drop_guard_cleans_up().await;
}

#[tokio::test(flavor = "current_thread")]
async fn drop_guard_cleans_up_on_current_thread_runtime() {
    drop_guard_cleans_up().await;
}

#[test]
fn drop_guard_cleans_up_outside_any_runtime() {
    let cloud = mock();
    let o = opts();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fx = Fixture::new(&cloud, &o);
    let req = fx.request("noruntime").unwrap().build().unwrap();
    rt.block_on(fx.spawn(&req)).unwrap();
    assert_eq!(cloud.live_count().unwrap(), 1);
    drop(rt);
    drop(fx);
    assert_eq!(cloud.live_count().unwrap(), 0);
}

#[tokio::test]
async fn cleanup_sweeps_machines_whose_spawn_response_was_lost() {
    let cloud = mock();
    let o = opts();
    let fx = Fixture::new(&cloud, &o);
    // The mock creates the machine, then answers 500: the id never reaches the fixture.
    cloud.inject(
        cloud_atlas::providers::mock::MockOp::Spawn,
        cloud_atlas::providers::mock::Fault::ErrorAfterCreate,
        1,
    );
    let req = fx.request("lost").unwrap().build().unwrap();
    assert!(fx.spawn(&req).await.is_err());
    assert!(fx.spawned().is_empty());
    assert_eq!(cloud.live_count().unwrap(), 1);
    let c = fx.cleanup().await;
    assert!(c.is_clean(), "{c}");
    assert_eq!(c.terminated.len(), 1, "{c}");
    assert_eq!(cloud.live_count().unwrap(), 0);
}

#[test]
fn fixture_names_are_prefixed_and_valid() {
    let cloud = mock();
    let o = opts();
    let fx = Fixture::new(&cloud, &o);
    let n = fx.name("A Very Long Case Name That Keeps Going");
    assert!(n.starts_with("atlas-conf-"), "{n}");
    assert!(n.len() <= 40, "{n}");
    let req = fx.request("x").unwrap().build().unwrap();
    assert!(req.launch_name().starts_with(fx.prefix()));
    assert!(testing::cases(&cloud.capabilities()).len() >= 7);
}
