//! The conformance suites (feature `testing`): providers, and with feature `fly` the
//! Fly token stores ([`run_token_store_conformance`]).
//!
//! **Not a stable API**: cases and options change as the contract grows.
//!
//! It checks that a [`Provider`] keeps the contract: spawn/get/list/terminate round
//! trips, `wait_for(Running)`, port URLs, stop/start, a priced GPU catalog, serverless
//! jobs — each only when the provider declares the capability — that a `max_runtime` is
//! held by the machine or refused as the deadline capabilities say, and that undeclared
//! capabilities answer [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
//!
//! Against a real cloud it **spawns real machines and costs money**. Everything it
//! spawns is named `atlas-conf-<8 hex>-<case>` (plus the launch id) and terminated at
//! the end of its case by a [`Fixture`], even when the case panics.
//!
//! # One test per case
//!
//! ```no_run
//! // tests/conformance.rs of your crate (needs `tokio` with `macros` and
//! // `rt-multi-thread` as a dev-dependency)
//! use cloud_atlas::providers::mock::Mock;
//! # fn main() {}
//! use cloud_atlas::testing::SuiteOptions;
//!
//! cloud_atlas::conformance_tests!(Mock::in_memory());
//!
//! // or with options, inside a module when a file tests several providers:
//! mod against_contract_server {
//!     use super::*;
//!     cloud_atlas::conformance_tests!(
//!         Mock::in_memory(),
//!         SuiteOptions { expect_state_changes: false, ..SuiteOptions::default() }
//!     );
//! }
//! ```
//!
//! When the provider needs something alive while it is tested (a contract server
//! process, a local fake), return both from the expression with [`Guarded`]:
//! `conformance_tests!(Guarded::new(server, provider), SuiteOptions::contract_server())`
//! — the guard lives until the test ends.
//!
//! The macro expands to one `#[tokio::test(flavor = "multi_thread")]` per case in
//! [`all_cases`], named after the case (`spawn_get_list_terminate`, …), plus a
//! `conformance_suite_is_complete` test. A case the provider's capabilities do not
//! call for passes with a note on stderr; a case that cannot run honestly with the
//! given options (no serverless endpoint named) passes as skipped with a note.
//!
//! # All at once
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")] async fn main() {
//! use cloud_atlas::providers::mock::Mock;
//! use cloud_atlas::testing::{run_all, SuiteOptions};
//! let report = run_all(&Mock::in_memory(), &SuiteOptions::default()).await;
//! report.assert_passed();
//! # }
//! ```

mod cases;
mod fixture;
mod guarded;
#[cfg(feature = "fly")]
mod token_store;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

pub use cases::{
    all_cases, cases, gpu_types_have_prices, max_runtime_is_held_or_refused, ports_get_urls,
    serverless_run_status, spawn_get_list_terminate, stop_start,
    undeclared_capabilities_are_unsupported, unoffered_gpu_is_validation, wait_for_running, Case,
    CaseError, CaseFn, CaseResult,
};
pub use fixture::{Cleanup, Fixture, NAME_PREFIX};
pub use guarded::Guarded;
#[cfg(feature = "fly")]
pub use token_store::{run_token_store_conformance, TokenStoreConformanceFailure};

use crate::provider::Provider;
use crate::spec::Gpu;

/// What the suite spawns and how long it waits.
///
/// Construct with struct-update syntax: `SuiteOptions { gpu: Some(Gpu::A10), ..SuiteOptions::default() }`.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// GPU to spawn. `None`: the first provider-offered GPU of a cheapest-first list
    /// (`a4000`, `rtx_3090`, `a5000`, `l4`, `a10`, …).
    pub gpu: Option<Gpu>,
    /// GPUs per machine (default 1).
    pub gpu_count: u32,
    /// Spawn CPU-only machines even when the provider spawns GPUs (needs `SpawnCpu`).
    pub cpu_only: bool,
    /// vCPUs for CPU-only machines (default 2).
    pub cpus: u32,
    /// Memory in GB for CPU-only machines (default 4).
    pub memory_gb: u32,
    /// Image (default `nginx:1.27-alpine`: stays up and serves HTTP on port 80).
    pub image: String,
    /// Ports for the ports case (default `["80/http"]`).
    pub ports: Vec<String>,
    /// Region hint, if any.
    pub region: Option<String>,
    /// Provider options passed through on every spawn (e.g. a Fly app name).
    pub provider_opts: serde_json::Map<String, serde_json::Value>,
    /// A GPU the provider does NOT offer, for the validation case. `None`: the first
    /// canonical GPU missing from the provider's column of the GPU table.
    pub bad_gpu: Option<Gpu>,
    /// Whether the backend keeps state: spawned compute appears in `list` under its
    /// name, reaches `running`, stops and starts, and is `NotFound` after `terminate`;
    /// jobs complete. `true` (default) for real clouds and the mock; `false` for
    /// static contract servers (Prism) that answer canned examples — the suite then
    /// checks that every call succeeds and decodes, not that state changes.
    pub expect_state_changes: bool,
    /// Whether machines really run their command (real clouds: `true`, the default), so
    /// a command-held max runtime can be seen ending the machine. `false` for fakes
    /// that keep state but run nothing; the suite then checks the create only.
    pub runs_commands: bool,
    /// Most time to wait for `running`, `stopped` or a finished job (default 15 min).
    pub wait_timeout: Duration,
    /// Most time one case may take, cleanup excluded (default 30 min).
    pub case_timeout: Duration,
    /// Most time cleanup may take from a `Drop` guard (default 5 min).
    pub cleanup_timeout: Duration,
    /// Serverless endpoint to run jobs on (the serverless case is skipped without one).
    pub serverless_endpoint: Option<String>,
    /// Input of the serverless job (default `{"prompt": "atlas conformance"}`).
    pub serverless_input: serde_json::Value,
}

impl Default for SuiteOptions {
    fn default() -> SuiteOptions {
        SuiteOptions {
            gpu: None,
            gpu_count: 1,
            cpu_only: false,
            cpus: 2,
            memory_gb: 4,
            image: "nginx:1.27-alpine".into(),
            ports: vec!["80/http".into()],
            region: None,
            provider_opts: serde_json::Map::new(),
            bad_gpu: None,
            expect_state_changes: true,
            runs_commands: true,
            wait_timeout: Duration::from_secs(15 * 60),
            case_timeout: Duration::from_secs(30 * 60),
            cleanup_timeout: Duration::from_secs(5 * 60),
            serverless_endpoint: None,
            serverless_input: serde_json::json!({"prompt": "atlas conformance"}),
        }
    }
}

impl SuiteOptions {
    /// Options for a static contract server (Prism): no state changes expected,
    /// short timeouts.
    pub fn contract_server() -> SuiteOptions {
        SuiteOptions {
            expect_state_changes: false,
            runs_commands: false,
            wait_timeout: Duration::from_secs(30),
            case_timeout: Duration::from_secs(120),
            cleanup_timeout: Duration::from_secs(30),
            ..SuiteOptions::default()
        }
    }
}

/// How one case ended.
#[derive(Debug)]
pub enum Outcome {
    /// Passed.
    Passed,
    /// Not run: the capabilities do not call for it, or the options leave nothing to check.
    Skipped(String),
    /// Failed, panicked, timed out, or left machines behind.
    Failed(String),
}

/// One case's result.
#[derive(Debug)]
pub struct CaseReport {
    /// Case name.
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// What cleanup did.
    pub cleanup: Cleanup,
    /// Wall time including cleanup.
    pub elapsed: Duration,
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Passed => write!(f, "ok      {}", self.name)?,
            Outcome::Skipped(why) => write!(f, "skipped {} ({why})", self.name)?,
            Outcome::Failed(why) => write!(f, "FAILED  {}: {why}", self.name)?,
        }
        write!(f, " [{:.1}s]", self.elapsed.as_secs_f64())
    }
}

/// The results of [`run_all`].
#[derive(Debug)]
pub struct Report {
    /// Provider name.
    pub provider: String,
    /// One entry per case of [`all_cases`], in order.
    pub cases: Vec<CaseReport>,
}

impl Report {
    /// Whether no case failed.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }
    /// The failed cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
    }
    /// The case named `name`.
    pub fn case(&self, name: &str) -> Option<&CaseReport> {
        self.cases.iter().find(|c| c.name == name)
    }
    /// Panic with the whole report when a case failed.
    ///
    /// # Panics
    /// When any case failed.
    pub fn assert_passed(&self) {
        assert!(self.passed(), "conformance failures:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}:", self.provider)?;
        for c in &self.cases {
            writeln!(f, "  {c}")?;
        }
        Ok(())
    }
}

/// Run one case with its own [`Fixture`]: the case's panic is caught, the case is
/// bounded by [`SuiteOptions::case_timeout`], and cleanup always runs afterwards on
/// this runtime. Machines left behind by cleanup fail the case.
pub async fn run_case(p: &dyn Provider, opts: &SuiteOptions, case: &Case) -> CaseReport {
    let started = Instant::now();
    if let Some(why) = case.missing(&p.capabilities()) {
        return CaseReport {
            name: case.name,
            outcome: Outcome::Skipped(format!("{} {why}", p.name())),
            cleanup: Cleanup::default(),
            elapsed: started.elapsed(),
        };
    }
    let fx = Fixture::new(p, opts);
    let body = futures::FutureExt::catch_unwind(AssertUnwindSafe(case.call(p, &fx)));
    let mut outcome = match tokio::time::timeout(opts.case_timeout, body).await {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(CaseError::Skipped(why)))) => Outcome::Skipped(why),
        Ok(Ok(Err(CaseError::Failed(why)))) => Outcome::Failed(why),
        Ok(Err(panic)) => Outcome::Failed(format!("panicked: {}", panic_message(&*panic))),
        Err(_) => Outcome::Failed(format!(
            "did not finish within {}",
            humantime::format_duration(opts.case_timeout)
        )),
    };
    let cleanup = fx.cleanup().await;
    if !cleanup.is_clean() {
        let left = format!("cleanup left machines behind: {cleanup}");
        outcome = match outcome {
            Outcome::Failed(why) => Outcome::Failed(format!("{why}; {left}")),
            _ => Outcome::Failed(left),
        };
    }
    CaseReport {
        name: case.name,
        outcome,
        cleanup,
        elapsed: started.elapsed(),
    }
}

/// Run every case of [`all_cases`] in order (those the capabilities do not call for
/// are reported as skipped).
pub async fn run_all(p: &dyn Provider, opts: &SuiteOptions) -> Report {
    let mut out = Vec::new();
    for case in all_cases() {
        out.push(run_case(p, opts, &case).await);
    }
    Report {
        provider: p.name().to_string(),
        cases: out,
    }
}

/// Run the case named `name` and panic with its report when it fails (what the
/// [`conformance_tests!`](crate::conformance_tests) macro calls).
///
/// # Panics
/// When the case fails or no case has that name.
pub async fn run_named(p: &dyn Provider, opts: &SuiteOptions, name: &str) {
    let Some(case) = all_cases().into_iter().find(|c| c.name == name) else {
        panic!(
            "no conformance case named {name:?}; cases: {}",
            case_names().join(", ")
        );
    };
    let r = run_case(p, opts, &case).await;
    match &r.outcome {
        Outcome::Failed(_) => panic!("conformance of {}: {r}", p.name()),
        Outcome::Skipped(_) => eprintln!("conformance of {}: {r}", p.name()),
        Outcome::Passed => {}
    }
}

/// Names of every case, in order.
pub fn case_names() -> Vec<&'static str> {
    all_cases().iter().map(|c| c.name).collect()
}

/// Panic unless `names` lists exactly the suite's cases (keeps the macro honest).
///
/// # Panics
/// When the lists differ.
pub fn assert_case_names(names: &[&str]) {
    assert_eq!(
        names,
        case_names().as_slice(),
        "conformance_tests! is out of date with testing::all_cases()"
    );
}

/// The text of a caught panic.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// One `#[tokio::test]` per conformance case for a provider expression.
///
/// `conformance_tests!(make)` or `conformance_tests!(make, options)`: `make` is
/// evaluated once per test and may be any value implementing [`Provider`] (including
/// `Arc<dyn Provider>`); `options` is a [`SuiteOptions`]. The calling crate needs
/// `tokio` (features `macros`, `rt-multi-thread`). Call it inside a `mod` to test
/// several providers in one file. See the [module docs](crate::testing).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!($make, $crate::testing::SuiteOptions::default());
    };
    ($make:expr, $opts:expr $(,)?) => {
        $crate::__conformance_cases!(($make) ($opts)
            spawn_get_list_terminate
            wait_for_running
            ports_get_urls
            stop_start
            gpu_types_have_prices
            serverless_run_status
            unoffered_gpu_is_validation
            max_runtime_is_held_or_refused
            undeclared_capabilities_are_unsupported
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (($make:expr) ($opts:expr) $($case:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let provider = $make;
                let options: $crate::testing::SuiteOptions = $opts;
                $crate::testing::run_named(&provider, &options, stringify!($case)).await;
            }
        )*

        #[test]
        fn conformance_suite_is_complete() {
            $crate::testing::assert_case_names(&[$(stringify!($case)),*]);
        }
    };
}
