//! The conformance cases: one `pub async fn` each, chosen by capability.
//!
//! Every case takes the provider under test and a [`Fixture`] (which carries the
//! [`SuiteOptions`]) and spawns only through the fixture, so the runner can terminate
//! whatever it made. A case returns `Err(CaseError::Failed)` with a message that says
//! what the provider did wrong, or `Err(CaseError::Skipped)` when the options leave
//! nothing honest to check (e.g. no serverless endpoint named).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::client::Checked;
use crate::error::{Error, ErrorKind, Result};
use crate::provider::{Provider, ProviderExt, Serverless};
use crate::spec::{
    Capabilities, Capability, Compute, ComputeRequest, ComputeStatus, Gpu, GpuType, JobRequest,
    JobStatus, ListFilter, Protocol,
};

use super::fixture::Fixture;
#[cfg(doc)]
use super::SuiteOptions;

/// Why a case did not pass.
#[derive(Debug)]
pub enum CaseError {
    /// The provider broke the contract; the message says how.
    Failed(String),
    /// Nothing honest to check with these options; the message says what to set.
    Skipped(String),
}

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaseError::Failed(m) => write!(f, "failed: {m}"),
            CaseError::Skipped(m) => write!(f, "skipped: {m}"),
        }
    }
}

impl std::error::Error for CaseError {}

/// What a case returns.
pub type CaseResult = std::result::Result<(), CaseError>;

/// A case body: `(provider, fixture) -> future`.
pub type CaseFn = for<'a> fn(&'a dyn Provider, &'a Fixture<'a>) -> BoxFuture<'a, CaseResult>;

/// One named conformance case and the capabilities it needs.
#[derive(Clone, Copy)]
pub struct Case {
    /// Name (also the test name the macro generates).
    pub name: &'static str,
    /// Capabilities that must all be declared for the case to run.
    pub needs: &'static [Capability],
    /// Needs at least one of these (empty: no such need).
    pub needs_any: &'static [Capability],
    run: CaseFn,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("needs_any", &self.needs_any)
            .finish_non_exhaustive()
    }
}

impl Case {
    /// A case of your own (run it with [`run_case`](super::run_case)).
    pub fn new(name: &'static str, needs: &'static [Capability], run: CaseFn) -> Case {
        Case {
            name,
            needs,
            needs_any: &[],
            run,
        }
    }

    /// Whether a provider with `caps` must pass this case.
    pub fn applies(&self, caps: &Capabilities) -> bool {
        self.needs.iter().all(|c| caps.contains(*c))
            && (self.needs_any.is_empty() || self.needs_any.iter().any(|c| caps.contains(*c)))
    }

    /// Why the case does not apply to `caps` (`None` when it does).
    pub fn missing(&self, caps: &Capabilities) -> Option<String> {
        if self.applies(caps) {
            return None;
        }
        let mut missing: Vec<String> = self
            .needs
            .iter()
            .filter(|c| !caps.contains(**c))
            .map(|c| c.to_string())
            .collect();
        if !self.needs_any.is_empty() && !self.needs_any.iter().any(|c| caps.contains(*c)) {
            let any: Vec<&str> = self.needs_any.iter().map(|c| c.as_str()).collect();
            missing.push(format!("one of {}", any.join("/")));
        }
        Some(format!("needs {}", missing.join(", ")))
    }

    /// Run the body (no cleanup; use [`run_case`](super::run_case) for that).
    pub fn call<'a>(&self, p: &'a dyn Provider, fx: &'a Fixture<'a>) -> BoxFuture<'a, CaseResult> {
        (self.run)(p, fx)
    }
}

const SPAWN: &[Capability] = &[Capability::SpawnGpu, Capability::SpawnCpu];

macro_rules! case {
    ($name:ident, needs [$($n:ident),*], any $any:expr) => {
        Case {
            name: stringify!($name),
            needs: &[$(Capability::$n),*],
            needs_any: $any,
            run: |p, fx| Box::pin($name(p, fx)),
        }
    };
}

/// Every case in the suite, in run order.
pub fn all_cases() -> Vec<Case> {
    vec![
        case!(spawn_get_list_terminate, needs [], any SPAWN),
        case!(wait_for_running, needs [], any SPAWN),
        case!(ports_get_urls, needs [SpawnWithPorts], any SPAWN),
        case!(stop_start, needs [Stop], any SPAWN),
        case!(gpu_types_have_prices, needs[GpuTypes], any & []),
        case!(serverless_run_status, needs[Serverless], any & []),
        case!(unoffered_gpu_is_validation, needs[SpawnGpu], any & []),
        case!(max_runtime_is_held_or_refused, needs [], any SPAWN),
        Case {
            name: "undeclared_capabilities_are_unsupported",
            needs: &[],
            needs_any: &[],
            run: |p, _fx| Box::pin(undeclared_capabilities_are_unsupported(p)),
        },
    ]
}

/// The cases a provider with `caps` must pass.
pub fn cases(caps: &Capabilities) -> Vec<Case> {
    all_cases()
        .into_iter()
        .filter(|c| c.applies(caps))
        .collect()
}

// ---- helpers ----

fn fail(msg: impl Into<String>) -> CaseError {
    CaseError::Failed(msg.into())
}

/// `Failed` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(fail(format!($($fmt)+)));
        }
    };
}

/// `Failed` naming the step when a provider call errs.
fn step<T>(what: &str, r: Result<T>) -> std::result::Result<T, CaseError> {
    r.map_err(|e| fail(format!("{what}: {e}")))
}

fn expect_kind<T: fmt::Debug>(
    what: &str,
    r: Result<T>,
    kind: ErrorKind,
) -> std::result::Result<Error, CaseError> {
    match r {
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(fail(format!(
            "{what}: expected {kind}, got {}: {e}",
            e.kind()
        ))),
        Ok(v) => Err(fail(format!("{what}: expected {kind}, got Ok({v:?})"))),
    }
}

fn build(
    what: &str,
    b: Result<crate::spec::ComputeRequestBuilder>,
) -> std::result::Result<ComputeRequest, CaseError> {
    b.and_then(|b| b.build())
        .map_err(|e| fail(format!("building the {what} request: {e}")))
}

fn check_spawned(p: &dyn Provider, req: &ComputeRequest, c: &Compute) -> CaseResult {
    ensure!(!c.id.is_empty(), "spawn returned an empty id");
    ensure!(
        c.provider == p.name(),
        "spawn returned provider {:?}, expected {:?}",
        c.provider,
        p.name()
    );
    ensure!(
        !c.status.is_terminal(),
        "spawn returned {} compute {} (a fresh machine cannot be {})",
        c.status,
        c.id,
        c.status
    );
    if let (Some(want), Some(got)) = (req.gpu, c.gpu) {
        ensure!(
            want.covers(got),
            "asked for {want}, spawn reported {got} on {}",
            c.id
        );
    }
    Ok(())
}

async fn wait_running(
    p: &dyn Provider,
    fx: &Fixture<'_>,
    id: &str,
) -> std::result::Result<Compute, CaseError> {
    let c = step(
        &format!("waiting for {id} to run"),
        p.wait_for(id, ComputeStatus::Running, fx.options().wait_timeout)
            .await,
    )?;
    ensure!(
        c.status == ComputeStatus::Running,
        "wait_for returned {} for {id}",
        c.status
    );
    Ok(c)
}

// ---- cases ----

/// spawn → get → list (by exact name) → terminate → get is `NotFound` → terminate is `NotFound`.
///
/// With [`SuiteOptions::expect_state_changes`] off (static contract servers) it checks
/// that every call succeeds and `get` returns the spawned id's record, but not that the
/// name is listed or that the machine is gone afterwards.
pub async fn spawn_get_list_terminate(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let stateful = fx.options().expect_state_changes;
    let req = build("spawn", fx.request("rt"))?;
    let c = step("spawn", fx.spawn(&req).await)?;
    check_spawned(p, &req, &c)?;

    let got = step(&format!("get {}", c.id), p.get(&c.id).await)?;
    ensure!(
        got.provider == p.name(),
        "get {} returned provider {:?}",
        c.id,
        got.provider
    );
    if stateful {
        ensure!(got.id == c.id, "get {} returned id {}", c.id, got.id);
        ensure!(
            got.name.as_deref() == Some(req.launch_name().as_str()),
            "get {} returned name {:?}, expected the launch name {:?} (providers name resources after ComputeRequest::launch_name)",
            c.id,
            got.name,
            req.launch_name()
        );
    }

    let all = step("list all", p.list(&ListFilter::all()).await)?;
    let named = step(
        "list by name",
        p.list(&ListFilter::all().with_name(req.launch_name()))
            .await,
    )?;
    let other = step(
        "list by another name",
        p.list(&ListFilter::all().with_name(fx.name("absent")))
            .await,
    )?;
    ensure!(
        other.is_empty(),
        "list by a name nobody has returned {} machines: {:?}",
        other.len(),
        other.iter().map(|c| &c.id).collect::<Vec<_>>()
    );
    for m in &named {
        ensure!(
            m.name.as_deref() == Some(req.launch_name().as_str()),
            "list by name {:?} returned {} named {:?}",
            req.launch_name(),
            m.id,
            m.name
        );
    }
    if stateful {
        ensure!(
            all.iter().any(|m| m.id == c.id),
            "list all does not contain {}",
            c.id
        );
        ensure!(
            named.len() == 1 && named[0].id == c.id,
            "list by name {:?} returned {:?}, expected exactly {}",
            req.launch_name(),
            named.iter().map(|c| &c.id).collect::<Vec<_>>(),
            c.id
        );
    }

    step(&format!("terminate {}", c.id), p.terminate(&c.id).await)?;
    if stateful {
        match p.get(&c.id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Ok(g) if g.status == ComputeStatus::Terminated => {}
            Ok(g) => {
                return Err(fail(format!(
                    "get after terminate: expected NotFound (or terminated), got {} {}",
                    g.id, g.status
                )))
            }
            Err(e) => {
                return Err(fail(format!(
                    "get after terminate: expected NotFound, got {}: {e}",
                    e.kind()
                )))
            }
        }
        expect_kind(
            "terminating twice",
            p.terminate(&c.id).await,
            ErrorKind::NotFound,
        )?;
        let after = step(
            "list by name after terminate",
            p.list(&ListFilter::all().with_name(req.launch_name()))
                .await,
        )?;
        ensure!(
            after.iter().all(|m| m.status == ComputeStatus::Terminated),
            "list by name after terminate still shows {:?}",
            after
                .iter()
                .map(|m| (&m.id, m.status.as_str()))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// spawn → `wait_for(Running)` within [`SuiteOptions::wait_timeout`].
///
/// Static contract servers cannot change state; there it only checks that spawn and
/// `get` decode, and reports the case as skipped.
pub async fn wait_for_running(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let req = build("spawn", fx.request("wait"))?;
    let c = step("spawn", fx.spawn(&req).await)?;
    check_spawned(p, &req, &c)?;
    if fx.options().expect_state_changes {
        let running = wait_running(p, fx, &c.id).await?;
        ensure!(
            running.id == c.id,
            "wait_for {} returned {}",
            c.id,
            running.id
        );
    } else {
        // A static server's canned states (often the schema placeholder "string")
        // say nothing about the provider's mapping; only check that get decodes.
        step(&format!("get {}", c.id), p.get(&c.id).await)?;
        return Err(CaseError::Skipped(
            "expect_state_changes is off: checked only that spawn and get decode".into(),
        ));
    }
    Ok(())
}

/// spawn with [`SuiteOptions::ports`] → every HTTP port gets a URL once running (and
/// every reported URL parses).
pub async fn ports_get_urls(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let mut b = fx
        .request("ports")
        .map_err(|e| fail(format!("building the ports request: {e}")))?;
    for port in &fx.options().ports {
        b = b.port(port.clone());
    }
    let req = build("ports", Ok(b))?;
    ensure!(
        !req.ports.is_empty(),
        "SuiteOptions.ports is empty; name at least one port (e.g. 80/http)"
    );
    let c = step("spawn with ports", fx.spawn(&req).await)?;
    check_spawned(p, &req, &c)?;
    let c = if fx.options().expect_state_changes {
        wait_running(p, fx, &c.id).await?
    } else {
        step(&format!("get {}", c.id), p.get(&c.id).await)?
    };
    for b in &c.ports {
        if let Some(u) = &b.url {
            ensure!(
                url::Url::parse(u).is_ok(),
                "port {} of {} has URL {u:?}, which does not parse",
                b.internal,
                c.id
            );
        }
    }
    if fx.options().expect_state_changes {
        for want in &req.ports {
            let bound = c.ports.iter().find(|b| b.internal == want.port);
            let Some(bound) = bound else {
                return Err(fail(format!(
                    "running compute {} has no binding for port {want}; bindings: {:?}",
                    c.id, c.ports
                )));
            };
            if want.protocol == Protocol::Http {
                ensure!(
                    bound.url.is_some(),
                    "HTTP port {want} of running compute {} has no URL",
                    c.id
                );
            }
        }
        ensure!(
            c.http_url().is_some() || req.ports.iter().all(|p| p.protocol != Protocol::Http),
            "Compute::http_url() is None for {} though an HTTP port was requested",
            c.id
        );
    }
    Ok(())
}

/// spawn → running → stop → stopped → start (when `Start` is declared) → running.
pub async fn stop_start(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let stateful = fx.options().expect_state_changes;
    let req = build("spawn", fx.request("stop"))?;
    let c = step("spawn", fx.spawn(&req).await)?;
    check_spawned(p, &req, &c)?;
    if stateful {
        wait_running(p, fx, &c.id).await?;
    }
    step(&format!("stop {}", c.id), p.stop(&c.id).await)?;
    if stateful {
        step(
            &format!("waiting for {} to stop", c.id),
            p.wait_for(&c.id, ComputeStatus::Stopped, fx.options().wait_timeout)
                .await,
        )?;
    }
    if p.capabilities().contains(Capability::Start) {
        step(&format!("start {}", c.id), p.start(&c.id).await)?;
        if stateful {
            wait_running(p, fx, &c.id).await?;
        }
    }
    Ok(())
}

/// `gpu_types` is non-empty; every entry names this provider and an id; at least one
/// has a price; every price is a positive finite number.
pub async fn gpu_types_have_prices(p: &dyn Provider, _fx: &Fixture<'_>) -> CaseResult {
    let types = step("gpu_types", p.gpu_types().await)?;
    ensure!(!types.is_empty(), "gpu_types returned an empty catalog");
    let priced = |t: &GpuType| t.lowest_price().is_some();
    ensure!(
        types.iter().any(priced),
        "no entry of gpu_types has a price: {:?}",
        types.iter().map(|t| &t.id).collect::<Vec<_>>()
    );
    for t in &types {
        ensure!(
            t.provider == p.name(),
            "gpu_types entry {} names provider {:?}",
            t.id,
            t.provider
        );
        ensure!(!t.id.is_empty(), "gpu_types has an entry with an empty id");
        for (what, price) in [
            ("on-demand", t.price_on_demand),
            ("spot", t.price_spot),
            ("community", t.price_community),
        ] {
            if let Some(v) = price {
                ensure!(v.is_finite() && v > 0.0, "{} has {what} price {v}", t.id);
            }
        }
    }
    Ok(())
}

/// `run` on [`SuiteOptions::serverless_endpoint`] → `status` of the same job; with
/// state changes, the job completes within [`SuiteOptions::wait_timeout`].
pub async fn serverless_run_status(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let Some(sls) = p.serverless() else {
        return Err(fail("declares Serverless but serverless() returned None"));
    };
    let Some(endpoint) = fx.options().serverless_endpoint.clone() else {
        return Err(CaseError::Skipped(
            "set SuiteOptions.serverless_endpoint to an endpoint the suite may run jobs on".into(),
        ));
    };
    let req = JobRequest::new(endpoint.clone(), fx.options().serverless_input.clone())
        .map_err(|e| fail(format!("building the job request: {e}")))?;
    let job = step("serverless run", sls.run(&req).await)?;
    ensure!(!job.id.is_empty(), "run returned an empty job id");
    let st = step(
        &format!("serverless status {}", job.id),
        sls.status(&endpoint, &job.id).await,
    )?;
    ensure!(
        st.id == job.id || !fx.options().expect_state_changes,
        "status {} returned job {}",
        job.id,
        st.id
    );
    if fx.options().expect_state_changes {
        let done = wait_job(sls, fx, &endpoint, &job.id).await?;
        ensure!(
            done.status == JobStatus::Completed,
            "job {} ended {} ({:?})",
            job.id,
            done.status.as_str(),
            done.error
        );
        ensure!(
            done.output.is_some(),
            "completed job {} has no output",
            job.id
        );
    }
    Ok(())
}

async fn wait_job(
    sls: &dyn Serverless,
    fx: &Fixture<'_>,
    endpoint: &str,
    id: &str,
) -> std::result::Result<crate::spec::Job, CaseError> {
    let deadline = crate::spec::deadline_in(fx.options().wait_timeout);
    let mut delay = Duration::from_millis(100);
    loop {
        let j = step(&format!("status {id}"), sls.status(endpoint, id).await)?;
        if j.status.is_terminal() {
            return Ok(j);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "job {id} still {} after {}",
                j.status.as_str(),
                humantime::format_duration(fx.options().wait_timeout)
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Spawning a GPU this provider does not offer is `Validation` naming `gpu`; more GPUs
/// than the declared per-instance limit is `Validation` naming `gpu_count`. Called on
/// the provider directly (not through [`Checked`]), so the provider checks itself
/// before it sends anything. Skipped when the provider offers every GPU and declares
/// no limit below 16.
pub async fn unoffered_gpu_is_validation(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let caps = p.capabilities();
    let bad = fx.options().bad_gpu.or_else(|| {
        Gpu::ALL
            .iter()
            .copied()
            .find(|g| g.provider_id(p.name()).is_none())
    });
    let limit = caps.max_gpus_per_instance().filter(|m| *m < 16);
    if bad.is_none() && limit.is_none() {
        return Err(CaseError::Skipped(format!(
            "{} offers every canonical GPU and declares no GPU limit; set SuiteOptions.bad_gpu",
            p.name()
        )));
    }
    let base = fx.request("badgpu").map_err(|e| fail(e.to_string()))?;
    // A mis-behaving provider may create something; the fixture terminates it.
    if let Some(g) = bad {
        let req = build("bad GPU", Ok(base.clone().gpu(g).gpu_count(1)))?;
        let e = expect_kind(
            &format!("spawn with {g}, which {} does not offer", p.name()),
            fx.spawn(&req).await,
            ErrorKind::Validation,
        )?;
        ensure!(
            e.message().contains("gpu"),
            "the Validation error for {g} does not name the field `gpu`: {e}"
        );
    }
    if let Some(max) = limit {
        let gpu = fx
            .gpu()
            .ok_or_else(|| fail("no GPU known for this provider; set SuiteOptions.gpu"))?;
        let req = build("too many GPUs", Ok(base.gpu(gpu).gpu_count(max + 1)))?;
        let e = expect_kind(
            &format!("spawn with {} GPUs (declared limit {max})", max + 1),
            fx.spawn(&req).await,
            ErrorKind::Validation,
        )?;
        ensure!(
            e.message().contains("gpu_count"),
            "the Validation error for {} GPUs does not name `gpu_count`: {e}",
            max + 1
        );
    }
    Ok(())
}

/// A max runtime is held by the machine itself or refused before anything exists, as
/// the provider's capabilities say (see [`crate::spec::deadline`]); a command is accepted.
///
/// - a command alone: spawned;
/// - neither `ProviderDeadline` nor `CommandDeadline`: a spawn with `max_runtime` (sent
///   to the provider directly, not through [`Checked`]) is `Unsupported`, and no machine
///   has its launch name;
/// - `CommandDeadline`: the same without a command; with a command, spawned;
/// - with a deadline held and [`SuiteOptions::expect_state_changes`]: the machine is
///   gone after max runtime (within [`SuiteOptions::wait_timeout`] more) —
///   for `CommandDeadline` only when [`SuiteOptions::runs_commands`] too.
pub async fn max_runtime_is_held_or_refused(p: &dyn Provider, fx: &Fixture<'_>) -> CaseResult {
    let caps = p.capabilities();
    let stateful = fx.options().expect_state_changes;
    // Long enough to be observed running on a real cloud, short enough to wait out.
    let max = if caps.contains(Capability::ProviderDeadline) {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(60)
    };
    let command = ["sleep", "3600"];

    let plain = build("command", fx.request("cmd").map(|b| b.command(command)))?;
    let c = step("spawn with a command", fx.spawn(&plain).await)?;
    check_spawned(p, &plain, &c)?;

    let refused = |what: &'static str, req: ComputeRequest| async move {
        expect_unsupported(what, fx.spawn(&req).await, p.name())?;
        if stateful {
            let found = step(
                "list by the refused launch name",
                p.list(&ListFilter::all().with_name(req.launch_name()))
                    .await,
            )?;
            ensure!(
                found.is_empty(),
                "{what}: refused, yet {:?} exist under its launch name",
                found.iter().map(|c| &c.id).collect::<Vec<_>>()
            );
        }
        Ok::<(), CaseError>(())
    };
    let bare = build("max runtime", fx.request("max").map(|b| b.max_runtime(max)))?;
    let held = if caps.contains(Capability::ProviderDeadline) {
        Some(bare)
    } else if caps.contains(Capability::CommandDeadline) {
        refused("spawn with max_runtime and no command", bare).await?;
        Some(build(
            "max runtime with a command",
            fx.request("maxcmd")
                .map(|b| b.max_runtime(max).command(command)),
        )?)
    } else {
        refused("spawn with max_runtime", bare).await?;
        let with_cmd = build(
            "max runtime with a command",
            fx.request("maxcmd")
                .map(|b| b.max_runtime(max).command(command)),
        )?;
        refused("spawn with max_runtime and a command", with_cmd).await?;
        None
    };
    let Some(req) = held else { return Ok(()) };
    let c = step("spawn with a max runtime it holds", fx.spawn(&req).await)?;
    check_spawned(p, &req, &c)?;
    let observable = caps.contains(Capability::ProviderDeadline) || fx.options().runs_commands;
    if !stateful || !observable {
        return Ok(());
    }
    let deadline = crate::spec::deadline_in(max + fx.options().wait_timeout);
    let mut pause = Duration::from_millis(250);
    loop {
        match p.get(&c.id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Ok(g) if g.status.is_terminal() => return Ok(()),
            Ok(g) if tokio::time::Instant::now() >= deadline => {
                return Err(fail(format!(
                    "{} is still {} {:?} after its max runtime",
                    c.id,
                    g.status,
                    max + fx.options().wait_timeout
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(fail(format!("get {} after max runtime: {e}", c.id))),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// Undeclared `Stop`, `Start`, `GpuTypes` and `Serverless` answer `Unsupported`, both
/// from the provider directly and through [`Checked`]; undeclared spawn features
/// (spot, ports, volumes, GPU/CPU) are refused by [`Checked`] with `Unsupported`
/// before the provider is called. Needs no spawn.
pub async fn undeclared_capabilities_are_unsupported(p: &dyn Provider) -> CaseResult {
    let caps = p.capabilities();
    let probe_id = format!("{}-unsupported-probe", super::fixture::NAME_PREFIX);
    // Checked rejects undeclared operations before dispatch: wrap a view of this
    // provider's name and capabilities that fails loudly if it is ever called.
    let checked = Checked::new(Arc::new(CapabilityView {
        name: p.name().to_string(),
        caps: caps.clone(),
    }));
    let mut checked_any = false;

    if !caps.contains(Capability::Stop) {
        expect_unsupported("stop (direct)", p.stop(&probe_id).await, p.name())?;
        expect_unsupported("stop (Checked)", checked.stop(&probe_id).await, p.name())?;
        checked_any = true;
    }
    if !caps.contains(Capability::Start) {
        expect_unsupported("start (direct)", p.start(&probe_id).await, p.name())?;
        expect_unsupported("start (Checked)", checked.start(&probe_id).await, p.name())?;
        checked_any = true;
    }
    if !caps.contains(Capability::GpuTypes) {
        expect_unsupported("gpu_types (direct)", p.gpu_types().await, p.name())?;
        expect_unsupported("gpu_types (Checked)", checked.gpu_types().await, p.name())?;
        checked_any = true;
    }
    if !caps.contains(Capability::Serverless) {
        ensure!(
            p.serverless().is_none(),
            "serverless() returned Some though Serverless is not declared"
        );
        expect_unsupported(
            "serverless (Checked)",
            checked.require_serverless().map(|_| ()),
            p.name(),
        )?;
        checked_any = true;
    }

    // Spawn features Checked refuses before dispatch.
    let base = || ComputeRequest::builder().image("atlas-conformance-probe");
    let gpu = Gpu::for_provider(p.name())
        .into_iter()
        .next()
        .unwrap_or(Gpu::H100);
    let mut probes: Vec<(&str, Result<crate::spec::ComputeRequestBuilder>)> = Vec::new();
    if !caps.contains(Capability::SpawnGpu) {
        probes.push(("spawn with a GPU (Checked)", Ok(base().gpu(gpu))));
    }
    let shaped = || {
        if caps.contains(Capability::SpawnGpu) {
            base().gpu(gpu)
        } else {
            base().cpus(1).memory_gb(1)
        }
    };
    if !caps.contains(Capability::SpawnCpu) {
        probes.push(("spawn CPU-only (Checked)", Ok(base().cpus(1).memory_gb(1))));
    }
    if !caps.contains(Capability::SpawnSpot) {
        probes.push(("spawn spot (Checked)", Ok(shaped().spot(true))));
    }
    if !caps.contains(Capability::SpawnWithPorts) {
        probes.push(("spawn with ports (Checked)", Ok(shaped().port("8000/http"))));
    }
    if !caps.contains(Capability::SpawnWithVolume) {
        probes.push(("spawn with a volume (Checked)", Ok(shaped().volume_gb(10))));
    }
    if !caps.contains(Capability::ProviderDeadline) {
        // A max runtime only a command could carry, and none is given.
        probes.push((
            "spawn with max_runtime and no command (Checked)",
            Ok(shaped().max_runtime(Duration::from_secs(60))),
        ));
    }
    for (what, b) in probes {
        let req = build(what, b)?;
        ensure!(
            checked.check_request(&req).is_err(),
            "{what}: Checked::check_request accepted it"
        );
        expect_unsupported(what, checked.spawn(&req).await, p.name())?;
        checked_any = true;
    }
    if !checked_any {
        // Everything is declared: the capability checks have nothing to refuse.
        return Err(CaseError::Skipped(format!(
            "{} declares every checked capability",
            p.name()
        )));
    }
    Ok(())
}

fn expect_unsupported<T: fmt::Debug>(what: &str, r: Result<T>, provider: &str) -> CaseResult {
    let e = expect_kind(what, r, ErrorKind::Unsupported)?;
    ensure!(
        !e.message().contains(NOT_DISPATCHED),
        "{what}: Checked dispatched an undeclared operation to the provider"
    );
    ensure!(
        e.to_string().contains(provider),
        "{what}: the Unsupported error does not name the provider {provider:?}: {e}"
    );
    Ok(())
}

const NOT_DISPATCHED: &str = "conformance: Checked must not dispatch this call";

/// Name and capabilities of the provider under test, for checking [`Checked`]'s
/// pre-dispatch refusals. Every call answers an error that the case recognises.
#[derive(Debug)]
struct CapabilityView {
    name: String,
    caps: Capabilities,
}

impl CapabilityView {
    fn called<T>(&self) -> Result<T> {
        Err(Error::new(ErrorKind::Unsupported, NOT_DISPATCHED))
    }
}

#[async_trait]
impl Provider for CapabilityView {
    fn name(&self) -> &str {
        &self.name
    }
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
    async fn spawn(&self, _req: &ComputeRequest) -> Result<Compute> {
        self.called()
    }
    async fn get(&self, _id: &str) -> Result<Compute> {
        self.called()
    }
    async fn list(&self, _filter: &ListFilter) -> Result<Vec<Compute>> {
        self.called()
    }
    async fn stop(&self, _id: &str) -> Result<()> {
        self.called()
    }
    async fn start(&self, _id: &str) -> Result<()> {
        self.called()
    }
    async fn terminate(&self, _id: &str) -> Result<()> {
        self.called()
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.called()
    }
}
