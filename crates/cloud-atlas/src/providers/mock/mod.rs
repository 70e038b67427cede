//! The mock cloud: a realistic provider that runs on this machine, for demos and tests.
//!
//! It behaves like a cloud, not like a stub:
//! - compute goes `provisioning → starting → running` after a configurable boot delay;
//! - **a request's `command` really runs, on this host** (the image is ignored), as a
//!   local process that outlives the call: its output is the machine's log
//!   ([`Mock::logs`], `atlas logs`), its ports are `http://127.0.0.1:<port>` (the command
//!   gets the port in `$PORT`), its exit status is kept (`raw.exit_code`, the machine is
//!   `stopped` once it ended), and stop/terminate kill it — see [`process`] for the rules;
//! - without a command, HTTP ports get URLs that do not resolve (or `http_base`), TCP
//!   ports `tcp://ip:port` bindings, and nothing runs;
//! - cost accrues per hour from a price table (GPU × count, or vCPU + memory for CPU-only),
//!   and a stopped machine keeps billing its volume's storage;
//! - stop/start work; `max_runtime` is enforced provider-side (the machine is gone after
//!   it, and a running command is killed at the deadline even with no `atlas` left);
//! - `create_delay` makes the create call answer late, after the machine exists (a slow
//!   provider, for tests of what a caller does meanwhile);
//! - one launch name is one machine: spawning the same request twice returns the first machine;
//! - a serverless endpoint whose jobs move `in_queue → in_progress → completed` and stream
//!   partial output (see [`MockServerless`] for the input knobs that make a job fail or time out);
//! - injectable failures for users' tests: capacity, rate limits, latency, flaky transport,
//!   and a 500 after the machine was created ([`Mock::inject`]).
//!
//! State lives in memory ([`Mock::in_memory`]) or in SQLite ([`Mock::open`]) so that
//! separate `atlas` invocations see the same mock cloud. Status and cost are computed
//! from stored timestamps (and, for a command, its exit file) on every read, so no
//! background task is needed. An in-memory mock kills its commands when its last clone
//! is dropped; a persisted one leaves them running for the next `atlas` call.
//!
//! Stock: every GPU is available except `mi300x`, which is out of stock (a
//! `Capacity` error), so fail-over code has something to exercise;
//! [`MockOptions::out_of_stock`] (`[mock] out_of_stock = […]`) changes which.
//!
//! Files by concept: `state` (what is stored, and where), `process` (running commands),
//! `logs`, `faults`, `pricing`, `serverless`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::AuthHandle;
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::{Provider, Serverless};
use crate::spec::{
    Capabilities, Capability, Compute, ComputeRequest, ComputeStatus, Gpu, GpuType, ListFilter,
    PortBinding, Protocol, LAUNCH_ID_LABEL,
};

mod faults;
mod logs;
mod pricing;
pub mod process;
mod serverless;
mod state;
#[cfg(test)]
mod tests;

pub use faults::{Fault, MockOp};
pub use logs::LogLine;
pub use process::MockProcess;
pub use serverless::MockServerless;

use faults::{fault_error, Faults};
use pricing::price_per_gpu;
use process::{ProcessEnv, ProcessState};
use state::{lock, Backend, Clock, Machine, MemoryState, Power};

pub(crate) const NAME: &str = "mock";

crate::config_keys! {
    /// A mock-cloud configuration key, under `[mock]` or `[providers.mock]` in
    /// `atlas.toml` (the mock needs no key and has no URL).
    pub enum MockConfigKey for "mock" {
        /// Time from spawn/start to `running` (`"1500ms"`).
        BootDelay = "boot_delay": Duration,
        /// Time a job waits in the queue.
        QueueDelay = "queue_delay": Duration,
        /// Default execution time of a job.
        ExecTime = "exec_time": Duration,
        /// How long `spawn` takes to answer after the machine exists.
        CreateDelay = "create_delay": Duration,
        /// Base URL every HTTP port points at.
        HttpBase = "http_base": Url,
        /// GPU kinds the mock reports out of stock (`["mi300x"]`), for fail-over tests.
        OutOfStock = "out_of_stock": List,
    }
}

/// File name of the mock cloud's SQLite database inside the data directory.
pub const MOCK_DB_FILE: &str = "mock-cloud.sqlite";

/// Folder (next to the database) holding one folder per machine that runs a command.
pub const MOCK_MACHINES_DIR: &str = "mock-cloud";

/// Endpoint id of the mock's built-in serverless endpoint.
pub const MOCK_ENDPOINT: &str = "mock-echo";

/// Options of the mock cloud.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Time from spawn/start to `running` (half provisioning, half starting).
    pub boot_delay: Duration,
    /// Base URL every HTTP port of a machine **without a command** points at (e.g. a
    /// local test server); by default each such port gets
    /// `https://{id}-{port}.mock.cloud-atlas.invalid`, which does not resolve. A machine
    /// with a command gets `http://127.0.0.1:<port>` of its own process instead.
    pub http_base: Option<String>,
    /// Time a job waits in the queue.
    pub queue_delay: Duration,
    /// Default execution time of a job.
    pub exec_time: Duration,
    /// How long `spawn` takes to answer after the machine exists (a slow provider; the
    /// machine bills and is listed meanwhile). Default zero.
    pub create_delay: Duration,
    /// GPUs with no stock: a spawn asking for one is a `Capacity` error and `gpu_types`
    /// reports them unavailable (for fail-over tests). Default `[mi300x]`; empty: all in stock.
    pub out_of_stock: Vec<Gpu>,
}

impl Default for MockOptions {
    fn default() -> MockOptions {
        MockOptions {
            boot_delay: Duration::from_millis(100),
            http_base: None,
            queue_delay: Duration::from_millis(50),
            exec_time: Duration::from_millis(200),
            create_delay: Duration::ZERO,
            out_of_stock: vec![Gpu::MI300X],
        }
    }
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    options: MockOptions,
    faults: Mutex<Faults>,
    clock: Clock,
    path: Option<PathBuf>,
    /// Where machines that run a command keep their folders.
    machines_dir: PathBuf,
}

impl Drop for Inner {
    /// An in-memory cloud ends with its last handle: so do its commands and their files.
    fn drop(&mut self) {
        if let Backend::Memory(s) = &self.backend {
            let mut s = lock(s);
            for m in s.machines.values_mut() {
                if let Some(p) = &mut m.process {
                    p.discard();
                }
            }
            let _ = std::fs::remove_dir_all(&self.machines_dir);
        }
    }
}

/// The mock cloud provider. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Mock {
    inner: Arc<Inner>,
    serverless: MockServerless,
}

impl Mock {
    /// An in-memory mock cloud with default options (100 ms boot).
    pub fn in_memory() -> Mock {
        Mock::in_memory_with(MockOptions::default())
    }

    /// An in-memory mock cloud with `options`. Commands keep their output in a
    /// temporary folder, removed (and the commands killed) when the mock is dropped.
    pub fn in_memory_with(options: MockOptions) -> Mock {
        let dir = std::env::temp_dir().join(format!(
            "atlas-mock-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        Mock::from_parts(
            Backend::Memory(Mutex::new(MemoryState::default())),
            options,
            Clock::Tokio(Utc::now(), tokio::time::Instant::now()),
            None,
            dir,
        )
    }

    /// A mock cloud persisted in the SQLite file at `path` (created 0600 if missing,
    /// its folder 0700 when created), shared with every other process that opens it.
    /// Machines that run a command keep their output in [`MOCK_MACHINES_DIR`] next to it.
    ///
    /// # Errors
    /// `Unknown` when the file cannot be opened.
    #[cfg(feature = "sqlite")]
    pub fn open(path: impl AsRef<Path>, options: MockOptions) -> Result<Mock> {
        use state::sqlite_err;
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            crate::config::ensure_private_dir(dir)?;
        }
        crate::files::create_private_file(path)?;
        let conn = rusqlite::Connection::open(path).map_err(|e| sqlite_err(path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sqlite_err(path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS machines (id TEXT PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, body TEXT NOT NULL);",
        )
        .map_err(|e| sqlite_err(path, e))?;
        let machines_dir = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(MOCK_MACHINES_DIR);
        Ok(Mock::from_parts(
            Backend::Sqlite(Mutex::new(conn)),
            options,
            Clock::System,
            Some(path.to_path_buf()),
            machines_dir,
        ))
    }

    /// The mock the CLI uses: SQLite in the data directory (when the `sqlite` feature
    /// is on), options from `[mock]` in `atlas.toml` or the provider settings
    /// (`boot_delay = "2s"`, `queue_delay`, `exec_time`, `create_delay`,
    /// `http_base = "http://127.0.0.1:8000"`, `out_of_stock = ["mi300x", "h100"]`).
    ///
    /// # Errors
    /// `Validation` for a bad option; `Unknown` when the database cannot be opened.
    pub fn from_config(config: &Config, settings: &ProviderSettings) -> Result<Mock> {
        let mut opts = MockOptions {
            boot_delay: Duration::from_millis(1500),
            queue_delay: Duration::from_millis(300),
            exec_time: Duration::from_millis(1500),
            ..MockOptions::default()
        };
        settings.check::<MockConfigKey>()?;
        for (key, slot) in [
            (MockConfigKey::BootDelay, &mut opts.boot_delay),
            (MockConfigKey::QueueDelay, &mut opts.queue_delay),
            (MockConfigKey::ExecTime, &mut opts.exec_time),
            (MockConfigKey::CreateDelay, &mut opts.create_delay),
        ] {
            if let Some(d) = settings.duration(key)? {
                *slot = d;
            }
        }
        if let Some(u) = settings.get(MockConfigKey::HttpBase) {
            opts.http_base = Some(u.to_string());
        }
        if let Some(list) = settings.list(MockConfigKey::OutOfStock) {
            opts.out_of_stock = list
                .iter()
                .map(|g| {
                    g.parse::<Gpu>().map_err(|_| {
                        Error::validation(
                            "mock.out_of_stock",
                            format!(
                                "{g:?} is not a GPU name; allowed: {}",
                                Gpu::ALL
                                    .iter()
                                    .map(|g| g.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<_>>()?;
        }
        #[cfg(feature = "sqlite")]
        {
            Mock::open(config.data_dir.join(MOCK_DB_FILE), opts)
        }
        #[cfg(not(feature = "sqlite"))]
        {
            let _ = config;
            Ok(Mock::in_memory_with(opts))
        }
    }

    fn from_parts(
        backend: Backend,
        options: MockOptions,
        clock: Clock,
        path: Option<PathBuf>,
        machines_dir: PathBuf,
    ) -> Mock {
        let inner = Arc::new(Inner {
            backend,
            options,
            faults: Mutex::new(Faults::default()),
            clock,
            path,
            machines_dir,
        });
        Mock {
            serverless: MockServerless {
                inner: Arc::clone(&inner),
            },
            inner,
        }
    }

    /// The SQLite file, when persisted.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// USD accrued so far by machine `id` (running time at its GPU price, stopped time at storage price).
    ///
    /// # Errors
    /// `NotFound` when the machine is gone.
    pub fn accrued_usd(&self, id: &str) -> Result<f64> {
        let m = self.load(id)?.ok_or_else(|| not_found(id))?;
        // A command that ended stopped the machine's running rate: notice it first.
        let m = if m.process.is_some() {
            self.refresh(m.clone())?.unwrap_or(m)
        } else {
            m
        };
        Ok(self.accrued(&m, self.inner.clock.now()))
    }

    /// Machine `id`'s command process (`None` when it was spawned without a command).
    ///
    /// # Errors
    /// `NotFound` when the machine is gone.
    pub fn process(&self, id: &str) -> Result<Option<MockProcess>> {
        Ok(self.live(id)?.process.as_ref().map(ProcessState::view))
    }

    /// Number of machines that exist (not terminated). Handy for leak checks in tests.
    ///
    /// # Errors
    /// Storage errors.
    pub fn live_count(&self) -> Result<usize> {
        let now = self.inner.clock.now();
        Ok(self
            .load_all()?
            .iter()
            .filter(|m| !self.expired(m, now))
            .count())
    }

    /// Create a machine directly, as if someone else (another tool, a colleague) had
    /// spawned it: `age` back-dates its creation. For reaper demos and tests.
    ///
    /// # Errors
    /// Storage errors.
    pub fn seed(&self, name: &str, gpu: Option<Gpu>, age: Duration) -> Result<Compute> {
        let now = self.inner.clock.now();
        let created = crate::spec::utc_before(now, age);
        let req = ComputeRequest::builder().image("seeded").build()?;
        let mut m = self.new_machine(&req, name.to_string(), created);
        m.gpu = gpu;
        m.gpu_count = u32::from(gpu.is_some());
        m.running_rate = gpu.map_or(0.05, price_per_gpu);
        self.save(&m)?;
        Ok(self.to_compute(&m, now, None))
    }

    fn new_machine(&self, req: &ComputeRequest, name: String, now: DateTime<Utc>) -> Machine {
        let id = format!("mock-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut labels = req.labels.clone();
        labels.insert(LAUNCH_ID_LABEL.to_string(), req.launch_id.clone());
        Machine {
            id,
            name,
            image: req.image.clone(),
            gpu: req.gpu,
            gpu_count: req.gpu_count,
            cpus: req.cpus,
            memory_gb: req.memory_gb,
            region: req
                .region_hints
                .first()
                .cloned()
                .unwrap_or_else(|| "mock-local-1".to_string()),
            command: req.command.clone(),
            ports: req.ports.clone(),
            env_keys: req.env.keys().cloned().collect(),
            env: ProcessEnv::default(),
            process: None,
            labels,
            spot: req.spot,
            volume_gb: req.volume_gb,
            created_at: now,
            power: Power::On,
            powered_at: now,
            rate_since: now,
            accrued_before: 0.0,
            running_rate: pricing::running_rate(req),
            stopped_rate: pricing::stopped_rate(req),
            // Saturating: an unrepresentable max runtime is "never", not "now".
            deadline: req.max_runtime.map(|d| crate::spec::utc_after(now, d)),
            token_hash: None,
            auth_mode: req.auth,
        }
    }

    /// Whether the mock has machines with `gpu` ([`MockOptions::out_of_stock`]).
    fn in_stock(&self, gpu: Gpu) -> bool {
        !self.inner.options.out_of_stock.contains(&gpu)
    }

    fn expired(&self, m: &Machine, now: DateTime<Utc>) -> bool {
        m.deadline.is_some_and(|d| now >= d)
    }

    fn status(&self, m: &Machine, now: DateTime<Utc>) -> ComputeStatus {
        if self.expired(m, now) {
            return ComputeStatus::Terminated;
        }
        if m.power == Power::Off {
            return ComputeStatus::Stopped;
        }
        let up = chrono::Duration::from_std(self.inner.options.boot_delay).unwrap_or_default();
        let since = now - m.powered_at;
        if since >= up {
            ComputeStatus::Running
        } else if since * 2 >= up {
            ComputeStatus::Starting
        } else {
            ComputeStatus::Provisioning
        }
    }

    fn rate(&self, m: &Machine) -> f64 {
        if m.power == Power::On {
            m.running_rate
        } else {
            m.stopped_rate
        }
    }

    fn accrued(&self, m: &Machine, now: DateTime<Utc>) -> f64 {
        let end = m.deadline.map_or(now, |d| d.min(now));
        let hours = (end - m.rate_since).num_milliseconds().max(0) as f64 / 3_600_000.0;
        m.accrued_before + hours * self.rate(m)
    }

    /// Power a machine off at `at`: billing switches to the stopped rate from then.
    fn power_off(&self, m: &mut Machine, at: DateTime<Utc>) {
        if m.power == Power::On {
            let at = at.max(m.rate_since);
            m.accrued_before = self.accrued(m, at);
            m.rate_since = at;
            m.power = Power::Off;
        }
    }

    fn to_compute(&self, m: &Machine, now: DateTime<Utc>, auth: Option<AuthHandle>) -> Compute {
        let mut c = Compute::new(m.id.clone(), NAME, self.status(m, now));
        c.public_ip = Some("127.0.0.1".to_string());
        c.ports = m
            .ports
            .iter()
            .map(|p| {
                if let Some(host) = m.process.as_ref().and_then(|ps| ps.host_ports.get(&p.port)) {
                    let scheme = match p.protocol {
                        Protocol::Http => "http".to_string(),
                        proto => proto.to_string(),
                    };
                    return PortBinding::new(
                        p.port,
                        Some(*host),
                        p.protocol,
                        Some(format!("{scheme}://127.0.0.1:{host}")),
                    );
                }
                let external = 20000 + (fxhash(&m.id) % 20000) as u16 + p.port % 100;
                match p.protocol {
                    Protocol::Http => {
                        let url = match &self.inner.options.http_base {
                            Some(b) => b.trim_end_matches('/').to_string(),
                            None => format!("https://{}-{}.mock.cloud-atlas.invalid", m.id, p.port),
                        };
                        PortBinding::new(p.port, Some(443), Protocol::Http, Some(url))
                    }
                    proto => PortBinding::new(
                        p.port,
                        Some(external),
                        proto,
                        Some(format!("{proto}://127.0.0.1:{external}")),
                    ),
                }
            })
            .collect();
        c.gpu = m.gpu;
        c.gpu_count = m.gpu_count;
        c.cost_per_hour = Some(self.rate(m));
        c.region = Some(m.region.clone());
        c.image = Some(m.image.clone());
        c.name = Some(m.name.clone());
        c.labels = m.labels.clone();
        c.created_at = Some(m.created_at);
        c.auth = auth.or_else(|| {
            m.token_hash.as_ref().map(|h| AuthHandle {
                mode: m.auth_mode,
                token: None,
                token_hash: Some(h.clone()),
                header: None,
                signing_secret: None,
            })
        });
        let mut raw = serde_json::json!({
            "id": m.id,
            "name": m.name,
            "power": m.power,
            "spot": m.spot,
            "volume_gb": m.volume_gb,
            "env_keys": m.env_keys,
            "command": m.command,
            "accrued_usd": (self.accrued(m, now) * 1e6).round() / 1e6,
            "deadline": m.deadline,
        });
        if let Some(p) = &m.process {
            raw["pid"] = serde_json::json!(p.pid);
            raw["exit_code"] = serde_json::json!(p.exit.as_ref().and_then(|e| e.code));
            raw["exited_at"] = serde_json::json!(p.exit.as_ref().map(|e| e.at));
            raw["log"] = serde_json::json!(p.log());
            raw["runs"] = serde_json::json!(p.runs);
        }
        c.set_raw(raw);
        c
    }

    /// Load a live machine: expired ones are ended and removed on the way, and a
    /// command that ended is noticed (the machine powers off).
    fn live(&self, id: &str) -> Result<Machine> {
        let m = self.load(id)?.ok_or_else(|| not_found(id))?;
        self.refresh(m)?.ok_or_else(|| not_found(id))
    }

    /// `m` as it is now: `None` when its deadline passed (then it is ended and removed).
    fn refresh(&self, mut m: Machine) -> Result<Option<Machine>> {
        let now = self.inner.clock.now();
        if self.expired(&m, now) {
            self.discard(&mut m)?;
            return Ok(None);
        }
        if let Some(p) = &mut m.process {
            if p.observe(now) {
                let at = p.exit.as_ref().map_or(now, |e| e.at);
                self.power_off(&mut m, at);
                if !self.update(&m)? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(m))
    }

    /// End machine `m` for good: kill its command, remove its files and its record.
    fn discard(&self, m: &mut Machine) -> Result<bool> {
        if let Some(p) = &mut m.process {
            p.discard();
        }
        self.remove(&m.id)
    }

    /// Run `m`'s command (a fresh run) and record it; the machine must be stored already.
    fn run_command(&self, m: &mut Machine) -> Result<()> {
        let now = self.inner.clock.now();
        let limit = m.deadline.map(|d| (d - now).to_std().unwrap_or_default());
        let boot = self.inner.options.boot_delay;
        let (command, env, ports) = (&m.command, &m.env, &m.ports);
        let Some(p) = &mut m.process else {
            return Ok(());
        };
        p.launch(command, env, ports, boot, limit)?;
        if !self.update(m)? {
            // Terminated meanwhile (another process): never leave its command running.
            if let Some(p) = &mut m.process {
                p.discard();
            }
            return Err(not_found(&m.id));
        }
        Ok(())
    }
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("compute {id} not found (terminated or never existed)"),
    )
    .with_provider(NAME)
    .with_status(404)
}

fn fxhash(s: &str) -> u32 {
    s.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    })
}

#[async_trait]
impl Provider for Mock {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new([
            Capability::Stop,
            Capability::Start,
            Capability::GpuTypes,
            Capability::Serverless,
            Capability::SpawnSpot,
            Capability::SpawnGpu,
            Capability::SpawnCpu,
            Capability::SpawnWithVolume,
            Capability::SpawnWithPorts,
            Capability::ProviderDeadline,
        ])
        .with_max_gpus_per_instance(8)
    }

    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        let fault = self.before(MockOp::Spawn).await?;
        // The mock's native GPU ids are the canonical names.
        let resolved;
        let req = match &req.native_gpu {
            Some(id) => {
                let g: Gpu = id.parse().map_err(|_| {
                    Error::validation(
                        "gpu",
                        format!(
                            "native id {id:?} is not a mock GPU; the mock's ids are the canonical names: {}",
                            Gpu::all_names()
                        ),
                    )
                })?;
                let mut r = req.clone();
                r.gpu = Some(g);
                r.native_gpu = None;
                resolved = r;
                &resolved
            }
            None => req,
        };
        if let Some(g) = req.gpu {
            if !self.in_stock(g) {
                let alternatives: Vec<&str> = Gpu::ALL
                    .iter()
                    .filter(|g| self.in_stock(**g))
                    .take(6)
                    .map(|g| g.as_str())
                    .collect();
                return Err(Error::new(
                    ErrorKind::Capacity,
                    format!(
                        "no {g} machines are available in the mock cloud right now; in stock: {} …",
                        alternatives.join(", ")
                    ),
                )
                .with_provider(NAME));
            }
            if req.gpu_count > 8 {
                return Err(Error::validation(
                    "gpu_count",
                    "the mock cloud allows at most 8 GPUs per machine",
                ));
            }
        }
        #[cfg(not(unix))]
        if !req.command.is_empty() {
            return Err(Error::unsupported(
                NAME,
                "command",
                "the mock cloud runs commands only on Unix (sh and process groups); spawn without a command",
            ));
        }
        let now = self.inner.clock.now();
        let mut m = self.new_machine(req, req.launch_name(), now);
        let (auth, auth_env) = AuthHandle::mint(req.auth);
        m.token_hash = auth.as_ref().and_then(|a| a.token_hash.clone());
        if m.auth_mode != crate::spec::AuthMode::None {
            m.env_keys.extend(auth_env.keys().cloned());
        }
        if !m.command.is_empty() {
            let mut env = req.env.clone();
            env.extend(auth_env);
            m.env = ProcessEnv(env.into_iter().collect());
            m.process = Some(ProcessState::new(
                self.inner.machines_dir.join(&m.id),
                &m.ports,
            )?);
        }
        let (stored, created) = self.insert_unique(&m)?;
        if created && m.process.is_some() {
            if let Err(e) = self.run_command(&mut m) {
                // Nothing runs: the machine must not stay (nor bill).
                self.discard(&mut m)?;
                return Err(e);
            }
        }
        let stored = if created { m } else { stored };
        if !self.inner.options.create_delay.is_zero() {
            tokio::time::sleep(self.inner.options.create_delay).await;
        }
        if fault == Some(Fault::ErrorAfterCreate) {
            return Err(fault_error(&Fault::ErrorAfterCreate));
        }
        if !created {
            // Same launch name: this launch already has its machine; never make a second.
            return Ok(self.to_compute(&stored, now, None));
        }
        tracing::info!(provider = NAME, compute.id = %stored.id, "spawned");
        Ok(self.to_compute(&stored, now, auth))
    }

    async fn get(&self, id: &str) -> Result<Compute> {
        self.before(MockOp::Get).await?;
        let m = self.live(id)?;
        Ok(self.to_compute(&m, self.inner.clock.now(), None))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        self.before(MockOp::List).await?;
        let now = self.inner.clock.now();
        let mut out = Vec::new();
        for m in self.load_all()? {
            let Some(m) = self.refresh(m)? else { continue };
            let c = self.to_compute(&m, now, None);
            if filter.matches(&c) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    async fn stop(&self, id: &str) -> Result<()> {
        self.before(MockOp::Stop).await?;
        let mut m = self.live(id)?;
        if m.power == Power::On {
            if let Some(pid) = m.process.as_mut().and_then(|p| p.pid.take()) {
                process::end_group(pid).await;
            }
            let now = self.inner.clock.now();
            self.power_off(&mut m, now);
            if !self.update(&m)? {
                return Err(not_found(id));
            }
        }
        Ok(())
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.before(MockOp::Start).await?;
        let mut m = self.live(id)?;
        if m.power == Power::Off {
            let now = self.inner.clock.now();
            m.accrued_before = self.accrued(&m, now);
            m.rate_since = now;
            m.powered_at = now;
            m.power = Power::On;
            if !self.update(&m)? {
                return Err(not_found(id));
            }
            // A start runs the command again (as a container restart does).
            if let Err(e) = self.run_command(&mut m) {
                if e.kind() != ErrorKind::NotFound {
                    // Nothing runs: the machine stays stopped rather than read `running`.
                    self.power_off(&mut m, self.inner.clock.now());
                    self.update(&m)?;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        self.before(MockOp::Terminate).await?;
        let mut m = self.live(id)?;
        if let Some(pid) = m.process.as_mut().and_then(|p| p.pid.take()) {
            process::end_group(pid).await;
        }
        self.discard(&mut m)?;
        tracing::info!(provider = NAME, compute.id = %id, "terminated");
        Ok(())
    }

    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.before(MockOp::GpuTypes).await?;
        Ok(Gpu::ALL
            .iter()
            .map(|g| {
                let mut t = GpuType::new(NAME, g.as_str(), g.as_str().to_ascii_uppercase());
                let p = price_per_gpu(*g);
                t.gpu = Some(*g);
                t.memory_gb = Some(g.memory_gb());
                t.price_on_demand = Some(p);
                t.price_spot = Some((p * 0.5 * 100.0).round() / 100.0);
                t.price_community = Some((p * 0.8 * 100.0).round() / 100.0);
                t.available = Some(self.in_stock(*g));
                t.stock = Some(if self.in_stock(*g) { "High" } else { "None" }.to_string());
                t.regions = if self.in_stock(*g) {
                    vec!["mock-local-1".into(), "mock-local-2".into()]
                } else {
                    vec![]
                };
                t.raw = serde_json::json!({"id": g.as_str(), "price": p});
                t
            })
            .collect())
    }

    fn serverless(&self) -> Option<&dyn Serverless> {
        Some(&self.serverless)
    }
}
