//! The mock cloud: a realistic provider that runs on this machine, for demos and tests.
//!
//! It behaves like a cloud, not like a stub:
//! - compute goes `provisioning → starting → running` after a configurable boot delay;
//! - HTTP ports get URLs, TCP ports `tcp://ip:port` bindings;
//! - cost accrues per hour from a price table (GPU × count, or vCPU + memory for CPU-only),
//!   and a stopped machine keeps billing its volume's storage;
//! - stop/start work; `max_runtime` is enforced provider-side (the machine is gone after it);
//!   a request's `command` is stored (in `raw.command`) but not run;
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
//! from stored timestamps on every read, so no background task is needed.
//!
//! Stock: every GPU is available except `mi300x`, which is out of stock (a
//! `Capacity` error), so fail-over code has something to exercise.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::auth::AuthHandle;
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::{Provider, Serverless};
use crate::spec::{
    parse_duration, Capabilities, Capability, Compute, ComputeRequest, ComputeStatus,
    EndpointHealth, Gpu, GpuType, Job, JobRequest, JobStatus, ListFilter, PortBinding, PortSpec,
    Protocol, LAUNCH_ID_LABEL,
};

const NAME: &str = "mock";

/// File name of the mock cloud's SQLite database inside the data directory.
pub const MOCK_DB_FILE: &str = "mock-cloud.sqlite";

/// Endpoint id of the mock's built-in serverless endpoint.
pub const MOCK_ENDPOINT: &str = "mock-echo";

/// Which call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MockOp {
    /// `spawn`.
    Spawn,
    /// `get`.
    Get,
    /// `list`.
    List,
    /// `stop`.
    Stop,
    /// `start`.
    Start,
    /// `terminate`.
    Terminate,
    /// `gpu_types`.
    GpuTypes,
    /// Any call.
    Any,
}

/// A failure to inject.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// `Capacity`: no machine of that kind.
    Capacity,
    /// `RateLimited` with a `retry_after`.
    RateLimited(Duration),
    /// `Transport`: the connection dropped (nothing happened upstream).
    Transport,
    /// `Provider` HTTP 500 **after** the machine was created (spawn only): the
    /// ambiguous failure real clouds produce. The machine exists and bills.
    ErrorAfterCreate,
    /// `Provider` HTTP 503 before anything happened.
    Unavailable,
}

#[derive(Debug, Default)]
struct Faults {
    queue: VecDeque<(MockOp, Fault)>,
    latency: Duration,
    /// Every n-th call fails with `Transport` (0 = never).
    flaky_every: u32,
    calls: u32,
}

/// Options of the mock cloud.
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Time from spawn/start to `running` (half provisioning, half starting).
    pub boot_delay: Duration,
    /// Base URL every HTTP port points at (e.g. a local test server); by default each
    /// port gets `https://{id}-{port}.mock.cloud-atlas.invalid`, which does not resolve.
    pub http_base: Option<String>,
    /// Time a job waits in the queue.
    pub queue_delay: Duration,
    /// Default execution time of a job.
    pub exec_time: Duration,
    /// How long `spawn` takes to answer after the machine exists (a slow provider; the
    /// machine bills and is listed meanwhile). Default zero.
    pub create_delay: Duration,
}

impl Default for MockOptions {
    fn default() -> MockOptions {
        MockOptions {
            boot_delay: Duration::from_millis(100),
            http_base: None,
            queue_delay: Duration::from_millis(50),
            exec_time: Duration::from_millis(200),
            create_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Power {
    On,
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Machine {
    id: String,
    name: String,
    image: String,
    gpu: Option<Gpu>,
    gpu_count: u32,
    cpus: Option<u32>,
    memory_gb: Option<u32>,
    region: String,
    /// The command it was spawned with (stored, not run: the mock runs nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    ports: Vec<PortSpec>,
    env_keys: Vec<String>,
    labels: BTreeMap<String, String>,
    spot: bool,
    volume_gb: Option<u32>,
    created_at: DateTime<Utc>,
    power: Power,
    /// When the machine was last powered on.
    powered_at: DateTime<Utc>,
    /// When the current billing rate started.
    rate_since: DateTime<Utc>,
    /// USD accrued before `rate_since`.
    accrued_before: f64,
    running_rate: f64,
    stopped_rate: f64,
    deadline: Option<DateTime<Utc>>,
    token_hash: Option<String>,
    auth_mode: crate::spec::AuthMode,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MockJob {
    id: String,
    endpoint_id: String,
    input: serde_json::Value,
    created_at: DateTime<Utc>,
    queue_ms: u64,
    exec_ms: u64,
    chunks: u32,
    outcome: Outcome,
    cancelled_at: Option<DateTime<Utc>>,
    retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Outcome {
    Complete,
    Fail(String),
    TimeOut,
}

#[derive(Debug, Default)]
struct MemoryState {
    machines: BTreeMap<String, Machine>,
    /// Machine name -> id, so one-launch-one-machine checks do not scan every machine.
    names: std::collections::HashMap<String, String>,
    jobs: BTreeMap<String, MockJob>,
}

enum Backend {
    Memory(Mutex<MemoryState>),
    #[cfg(feature = "sqlite")]
    Sqlite(Mutex<rusqlite::Connection>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Memory(_) => f.write_str("Memory"),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => f.write_str("Sqlite"),
        }
    }
}

#[derive(Debug)]
enum Clock {
    /// Wall clock (SQLite mode: shared across processes).
    System,
    /// Wall clock at creation plus tokio time elapsed (honours paused time in tests).
    Tokio(DateTime<Utc>, tokio::time::Instant),
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio(wall, inst) => {
                *wall + chrono::Duration::from_std(inst.elapsed()).unwrap_or_default()
            }
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
}

/// The mock cloud provider. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct Mock {
    inner: Arc<Inner>,
    serverless: MockServerless,
}

/// The mock's serverless job API (`Mock::serverless()`).
///
/// Endpoint [`MOCK_ENDPOINT`] (and any other id) runs an echo handler. Input knobs:
/// `{"fail": "message"}` fails the job, `{"timeout": true}` times it out,
/// `{"sleep_ms": n}` sets the execution time, `{"chunks": n}` the number of
/// streamed chunks (default 3). Output is `{"echo": input}`; each chunk is
/// `{"index": i, "text": "chunk i"}`.
#[derive(Debug, Clone)]
pub struct MockServerless {
    inner: Arc<Inner>,
}

fn price_per_gpu(gpu: Gpu) -> f64 {
    match gpu {
        Gpu::B200 => 5.99,
        Gpu::H200 | Gpu::H200_NVL => 3.99,
        Gpu::GH200 => 3.19,
        Gpu::H100 | Gpu::H100_SXM => 2.99,
        Gpu::H100_PCIE => 2.39,
        Gpu::H100_NVL => 2.59,
        Gpu::A100_80G | Gpu::A100_SXM4_80G => 1.89,
        Gpu::A100_PCIE_80G => 1.64,
        Gpu::A100_40G | Gpu::A100_SXM4_40G | Gpu::A100_PCIE_40G => 1.29,
        Gpu::A40 => 0.44,
        Gpu::L40S => 0.86,
        Gpu::L40 => 0.79,
        Gpu::L4 => 0.43,
        Gpu::A10 => 0.75,
        Gpu::A6000 => 0.76,
        Gpu::A5000 => 0.36,
        Gpu::A4000 => 0.32,
        Gpu::RTX_6000_ADA => 0.77,
        Gpu::RTX_PRO_6000
        | Gpu::RTX_PRO_6000_SERVER
        | Gpu::RTX_PRO_6000_WORKSTATION
        | Gpu::RTX_PRO_6000_MAX_Q => 1.79,
        Gpu::RTX_5090 => 0.94,
        Gpu::RTX_4090 => 0.69,
        Gpu::RTX_3090 => 0.43,
        Gpu::V100_16G
        | Gpu::V100_32G
        | Gpu::V100_SXM2_16G
        | Gpu::V100_SXM2_32G
        | Gpu::V100_PCIE_16G
        | Gpu::V100_PCIE_32G
        | Gpu::V100_FHHL_16G => 0.29,
        Gpu::MI300X => 3.49,
    }
}

fn in_stock(gpu: Gpu) -> bool {
    gpu != Gpu::MI300X
}

/// Storage price of a stopped machine's volume, USD per GB-hour ($0.10 per GB-month).
const STORAGE_PER_GB_HOUR: f64 = 0.10 / 730.0;

impl Mock {
    /// An in-memory mock cloud with default options (100 ms boot).
    pub fn in_memory() -> Mock {
        Mock::in_memory_with(MockOptions::default())
    }

    /// An in-memory mock cloud with `options`.
    pub fn in_memory_with(options: MockOptions) -> Mock {
        Mock::from_parts(
            Backend::Memory(Mutex::new(MemoryState::default())),
            options,
            Clock::Tokio(Utc::now(), tokio::time::Instant::now()),
            None,
        )
    }

    /// A mock cloud persisted in the SQLite file at `path` (created 0600 if missing,
    /// its folder 0700 when created), shared with every other process that opens it.
    ///
    /// # Errors
    /// `Unknown` when the file cannot be opened.
    #[cfg(feature = "sqlite")]
    pub fn open(path: impl AsRef<Path>, options: MockOptions) -> Result<Mock> {
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
        Ok(Mock::from_parts(
            Backend::Sqlite(Mutex::new(conn)),
            options,
            Clock::System,
            Some(path.to_path_buf()),
        ))
    }

    /// The mock the CLI uses: SQLite in the data directory (when the `sqlite` feature
    /// is on), options from `[mock]` in `atlas.toml` or the provider settings
    /// (`boot_delay = "2s"`, `queue_delay`, `exec_time`, `create_delay`,
    /// `http_base = "http://127.0.0.1:8000"`).
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
        let get = |k: &str| settings.options.get(k).or_else(|| config.mock.get(k));
        for (key, slot) in [
            ("boot_delay", &mut opts.boot_delay),
            ("queue_delay", &mut opts.queue_delay),
            ("exec_time", &mut opts.exec_time),
            ("create_delay", &mut opts.create_delay),
        ] {
            if let Some(v) = get(key) {
                let s = v.as_str().ok_or_else(|| {
                    Error::validation(
                        &format!("mock.{key}"),
                        "must be a duration string like \"2s\"",
                    )
                })?;
                *slot = parse_duration(&format!("mock.{key}"), s)?;
            }
        }
        if let Some(v) = get("http_base") {
            opts.http_base = Some(
                v.as_str()
                    .ok_or_else(|| Error::validation("mock.http_base", "must be a URL string"))?
                    .to_string(),
            );
        }
        #[cfg(feature = "sqlite")]
        {
            Mock::open(config.data_dir.join(MOCK_DB_FILE), opts)
        }
        #[cfg(not(feature = "sqlite"))]
        {
            Ok(Mock::in_memory_with(opts))
        }
    }

    fn from_parts(
        backend: Backend,
        options: MockOptions,
        clock: Clock,
        path: Option<PathBuf>,
    ) -> Mock {
        let inner = Arc::new(Inner {
            backend,
            options,
            faults: Mutex::new(Faults::default()),
            clock,
            path,
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

    /// Make the next `times` calls of `op` fail with `fault` (queued in order).
    pub fn inject(&self, op: MockOp, fault: Fault, times: u32) {
        let mut f = lock(&self.inner.faults);
        for _ in 0..times {
            f.queue.push_back((op, fault.clone()));
        }
    }

    /// Add `latency` to every call.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.inner.faults).latency = latency;
    }

    /// Make every `n`-th call fail with `Transport` (0 turns it off).
    pub fn set_flaky_every(&self, n: u32) {
        lock(&self.inner.faults).flaky_every = n;
    }

    /// Drop all injected faults, latency and flakiness.
    pub fn clear_faults(&self) {
        *lock(&self.inner.faults) = Faults::default();
    }

    /// USD accrued so far by machine `id` (running time at its GPU price, stopped time at storage price).
    ///
    /// # Errors
    /// `NotFound` when the machine is gone.
    pub fn accrued_usd(&self, id: &str) -> Result<f64> {
        let m = self.load(id)?.ok_or_else(|| not_found(id))?;
        Ok(self.accrued(&m, self.inner.clock.now()))
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

    async fn before(&self, op: MockOp) -> Result<Option<Fault>> {
        let (latency, fault) = {
            let mut f = lock(&self.inner.faults);
            f.calls += 1;
            let flaky = f.flaky_every > 0 && f.calls % f.flaky_every == 0;
            let pos = f
                .queue
                .iter()
                .position(|(o, _)| *o == op || *o == MockOp::Any);
            let fault = pos.and_then(|p| f.queue.remove(p)).map(|(_, fl)| fl);
            (
                f.latency,
                if flaky { Some(Fault::Transport) } else { fault },
            )
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            None => Ok(None),
            Some(Fault::ErrorAfterCreate) if op == MockOp::Spawn => {
                Ok(Some(Fault::ErrorAfterCreate))
            }
            Some(f) => Err(fault_error(&f)),
        }
    }

    fn new_machine(&self, req: &ComputeRequest, name: String, now: DateTime<Utc>) -> Machine {
        let id = format!("mock-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let running_rate = match req.gpu {
            Some(g) => {
                let base = price_per_gpu(g) * f64::from(req.gpu_count);
                if req.spot {
                    (base * 0.5 * 100.0).round() / 100.0
                } else {
                    base
                }
            }
            None => {
                f64::from(req.cpus.unwrap_or(2)) * 0.02
                    + f64::from(req.memory_gb.unwrap_or(4)) * 0.005
            }
        };
        let stopped_rate =
            f64::from(req.volume_gb.unwrap_or(0) + req.container_disk_gb.unwrap_or(0))
                * STORAGE_PER_GB_HOUR;
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
            labels,
            spot: req.spot,
            volume_gb: req.volume_gb,
            created_at: now,
            power: Power::On,
            powered_at: now,
            rate_since: now,
            accrued_before: 0.0,
            running_rate,
            stopped_rate,
            // Saturating: an unrepresentable max runtime is "never", not "now".
            deadline: req.max_runtime.map(|d| crate::spec::utc_after(now, d)),
            token_hash: None,
            auth_mode: req.auth,
        }
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

    fn to_compute(&self, m: &Machine, now: DateTime<Utc>, auth: Option<AuthHandle>) -> Compute {
        let mut c = Compute::new(m.id.clone(), NAME, self.status(m, now));
        c.public_ip = Some("127.0.0.1".to_string());
        c.ports = m
            .ports
            .iter()
            .map(|p| {
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
        c.set_raw(serde_json::json!({
            "id": m.id,
            "name": m.name,
            "power": m.power,
            "spot": m.spot,
            "volume_gb": m.volume_gb,
            "env_keys": m.env_keys,
            "command": m.command,
            "accrued_usd": (self.accrued(m, now) * 1e6).round() / 1e6,
            "deadline": m.deadline,
        }));
        c
    }

    // ---- storage ----

    fn load(&self, id: &str) -> Result<Option<Machine>> {
        match &self.inner.backend {
            Backend::Memory(s) => Ok(lock(s).machines.get(id).cloned()),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let body: Option<String> = c
                    .query_row("SELECT body FROM machines WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .map(Some)
                    .or_else(|e| {
                        if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| self.db_err(e))?;
                body.map(|b| serde_json::from_str(&b).map_err(|e| self.decode_err(e)))
                    .transpose()
            }
        }
    }

    fn load_all(&self) -> Result<Vec<Machine>> {
        match &self.inner.backend {
            Backend::Memory(s) => Ok(lock(s).machines.values().cloned().collect()),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let mut st = c
                    .prepare("SELECT body FROM machines ORDER BY id")
                    .map_err(|e| self.db_err(e))?;
                let rows = st
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| self.db_err(e))?;
                let mut out = Vec::new();
                for r in rows {
                    let b = r.map_err(|e| self.db_err(e))?;
                    out.push(serde_json::from_str(&b).map_err(|e| self.decode_err(e))?);
                }
                Ok(out)
            }
        }
    }

    fn save(&self, m: &Machine) -> Result<()> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                s.names.insert(m.name.clone(), m.id.clone());
                s.machines.insert(m.id.clone(), m.clone());
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let body = serde_json::to_string(m)?;
                lock(c)
                    .execute(
                        "INSERT INTO machines (id, name, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET name = excluded.name, body = excluded.body",
                        rusqlite::params![m.id, m.name, body],
                    )
                    .map_err(|e| self.db_err(e))?;
                Ok(())
            }
        }
    }

    /// Insert `m` unless a machine named `m.name` exists; returns the machine that holds the name.
    fn insert_unique(&self, m: &Machine) -> Result<(Machine, bool)> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                if let Some(existing) = s.names.get(&m.name).and_then(|id| s.machines.get(id)) {
                    return Ok((existing.clone(), false));
                }
                s.names.insert(m.name.clone(), m.id.clone());
                s.machines.insert(m.id.clone(), m.clone());
                Ok((m.clone(), true))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let mut c = lock(c);
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| self.db_err(e))?;
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT body FROM machines WHERE name = ?1",
                        [&m.name],
                        |r| r.get(0),
                    )
                    .map(Some)
                    .or_else(|e| {
                        if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| self.db_err(e))?;
                if let Some(b) = existing {
                    return Ok((
                        serde_json::from_str(&b).map_err(|e| self.decode_err(e))?,
                        false,
                    ));
                }
                tx.execute(
                    "INSERT INTO machines (id, name, body) VALUES (?1, ?2, ?3)",
                    rusqlite::params![m.id, m.name, serde_json::to_string(m)?],
                )
                .map_err(|e| self.db_err(e))?;
                tx.commit().map_err(|e| self.db_err(e))?;
                Ok((m.clone(), true))
            }
        }
    }

    fn remove(&self, id: &str) -> Result<bool> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                match s.machines.remove(id) {
                    Some(m) => {
                        if s.names.get(&m.name).is_some_and(|x| x == id) {
                            s.names.remove(&m.name);
                        }
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let n = lock(c)
                    .execute("DELETE FROM machines WHERE id = ?1", [id])
                    .map_err(|e| self.db_err(e))?;
                Ok(n > 0)
            }
        }
    }

    #[cfg(feature = "sqlite")]
    fn db_err(&self, e: rusqlite::Error) -> Error {
        sqlite_err(
            self.inner.path.as_deref().unwrap_or(Path::new(":memory:")),
            e,
        )
    }

    fn decode_err(&self, e: serde_json::Error) -> Error {
        Error::new(
            ErrorKind::Unknown,
            "mock cloud state is corrupt; delete the mock database to start afresh",
        )
        .with_provider(NAME)
        .with_source(e)
    }

    /// Load a live machine (expired ones are removed on the way).
    fn live(&self, id: &str) -> Result<Machine> {
        let m = self.load(id)?.ok_or_else(|| not_found(id))?;
        if self.expired(&m, self.inner.clock.now()) {
            self.remove(id)?;
            return Err(not_found(id));
        }
        Ok(m)
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!("mock cloud database {}: {e}", path.display()),
    )
    .with_provider(NAME)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("compute {id} not found (terminated or never existed)"),
    )
    .with_provider(NAME)
    .with_status(404)
}

fn fault_error(f: &Fault) -> Error {
    let e = match f {
        Fault::Capacity => Error::new(
            ErrorKind::Capacity,
            "injected: no machines of that kind are available; try another GPU or region",
        ),
        Fault::RateLimited(d) => Error::new(ErrorKind::RateLimited, "injected: too many requests")
            .with_status(429)
            .with_retry_after(*d),
        Fault::Transport => Error::new(
            ErrorKind::Transport,
            "injected: connection reset before the request was sent",
        ),
        Fault::Unavailable => {
            Error::new(ErrorKind::Provider, "injected: service unavailable").with_status(503)
        }
        Fault::ErrorAfterCreate => {
            Error::new(ErrorKind::Provider, "injected: internal error after create")
                .with_status(500)
                .with_ambiguous()
        }
    };
    e.with_provider(NAME)
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
            if !in_stock(g) {
                let alternatives: Vec<&str> = Gpu::ALL
                    .iter()
                    .filter(|g| in_stock(**g))
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
        let now = self.inner.clock.now();
        let mut m = self.new_machine(req, req.launch_name(), now);
        let (auth, _env) = AuthHandle::mint(req.auth);
        m.token_hash = auth.as_ref().and_then(|a| a.token_hash.clone());
        if m.auth_mode != crate::spec::AuthMode::None {
            m.env_keys.extend(_env.keys().cloned());
        }
        let (stored, created) = self.insert_unique(&m)?;
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
            if self.expired(&m, now) {
                self.remove(&m.id)?;
                continue;
            }
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
            let now = self.inner.clock.now();
            m.accrued_before = self.accrued(&m, now);
            m.rate_since = now;
            m.power = Power::Off;
            self.save(&m)?;
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
            self.save(&m)?;
        }
        Ok(())
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        self.before(MockOp::Terminate).await?;
        let m = self.live(id)?;
        self.remove(&m.id)?;
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
                t.available = Some(in_stock(*g));
                t.stock = Some(if in_stock(*g) { "High" } else { "None" }.to_string());
                t.regions = if in_stock(*g) {
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

// ---- serverless ----

impl MockServerless {
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn load_job(&self, endpoint: &str, id: &str) -> Result<MockJob> {
        let job = match &self.inner.backend {
            Backend::Memory(s) => lock(s).jobs.get(id).cloned(),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let body: Option<String> = c
                    .query_row("SELECT body FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| {
                        if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| {
                        sqlite_err(self.inner.path.as_deref().unwrap_or(Path::new("?")), e)
                    })?;
                body.map(|b| serde_json::from_str::<MockJob>(&b))
                    .transpose()?
            }
        };
        job.filter(|j| j.endpoint_id == endpoint).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("job {id} not found on endpoint {endpoint}"),
            )
            .with_provider(NAME)
            .with_status(404)
        })
    }

    fn save_job(&self, j: &MockJob) -> Result<()> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                lock(s).jobs.insert(j.id.clone(), j.clone());
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                lock(c)
                    .execute(
                        "INSERT INTO jobs (id, endpoint, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                        rusqlite::params![j.id, j.endpoint_id, serde_json::to_string(j)?],
                    )
                    .map_err(|e| {
                        sqlite_err(self.inner.path.as_deref().unwrap_or(Path::new("?")), e)
                    })?;
                Ok(())
            }
        }
    }

    fn endpoint_jobs(&self, endpoint: &str) -> Result<Vec<MockJob>> {
        match &self.inner.backend {
            Backend::Memory(s) => Ok(lock(s)
                .jobs
                .values()
                .filter(|j| j.endpoint_id == endpoint)
                .cloned()
                .collect()),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let err = |e| sqlite_err(self.inner.path.as_deref().unwrap_or(Path::new("?")), e);
                let mut st = c
                    .prepare("SELECT body FROM jobs WHERE endpoint = ?1")
                    .map_err(err)?;
                let rows = st
                    .query_map([endpoint], |r| r.get::<_, String>(0))
                    .map_err(err)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(serde_json::from_str(&r.map_err(err)?)?);
                }
                Ok(out)
            }
        }
    }

    fn elapsed_ms(&self, j: &MockJob) -> u64 {
        let end = j.cancelled_at.unwrap_or_else(|| self.now());
        (end - j.created_at).num_milliseconds().max(0) as u64
    }

    fn status_of(&self, j: &MockJob) -> JobStatus {
        let t = self.elapsed_ms(j);
        if j.cancelled_at.is_some() {
            return JobStatus::Cancelled;
        }
        if t < j.queue_ms {
            JobStatus::InQueue
        } else if t < j.queue_ms + j.exec_ms {
            JobStatus::InProgress
        } else {
            match &j.outcome {
                Outcome::Complete => JobStatus::Completed,
                Outcome::Fail(_) => JobStatus::Failed,
                Outcome::TimeOut => JobStatus::TimedOut,
            }
        }
    }

    /// Chunks produced so far.
    fn chunks_ready(&self, j: &MockJob) -> u32 {
        let t = self.elapsed_ms(j);
        if t < j.queue_ms || j.chunks == 0 {
            return 0;
        }
        if j.outcome != Outcome::Complete {
            return 0;
        }
        let per = (j.exec_ms / u64::from(j.chunks)).max(1);
        (((t - j.queue_ms) / per) as u32).min(j.chunks)
    }

    fn to_job(&self, j: &MockJob) -> Job {
        let status = self.status_of(j);
        let mut job = Job::new(j.id.clone(), j.endpoint_id.clone(), status.clone());
        let t = self.elapsed_ms(j);
        job.delay_time_ms = Some(t.min(j.queue_ms));
        if t > j.queue_ms {
            job.execution_time_ms = Some((t - j.queue_ms).min(j.exec_ms));
        }
        match (&status, &j.outcome) {
            (JobStatus::Completed, _) => job.output = Some(serde_json::json!({"echo": j.input})),
            (JobStatus::Failed, Outcome::Fail(m)) => job.error = Some(m.clone()),
            (JobStatus::TimedOut, _) => {
                job.error = Some(format!(
                    "job exceeded its execution timeout of {} ms",
                    j.exec_ms
                ))
            }
            _ => {}
        }
        job.raw = serde_json::json!({"id": j.id, "status": status.as_str().to_ascii_uppercase(), "retries": j.retries});
        job
    }

    fn new_job(&self, req: &JobRequest) -> MockJob {
        let input = &req.input;
        let exec_ms = input
            .get("sleep_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(self.inner.options.exec_time.as_millis() as u64);
        let outcome = if let Some(msg) = input.get("fail").and_then(|v| v.as_str()) {
            Outcome::Fail(msg.to_string())
        } else if input.get("timeout").and_then(|v| v.as_bool()) == Some(true) {
            Outcome::TimeOut
        } else {
            Outcome::Complete
        };
        MockJob {
            id: format!("job-{}", uuid::Uuid::new_v4()),
            endpoint_id: req.endpoint_id.clone(),
            input: input.clone(),
            created_at: self.now(),
            queue_ms: self.inner.options.queue_delay.as_millis() as u64,
            exec_ms,
            chunks: input
                .get("chunks")
                .and_then(|v| v.as_u64())
                .unwrap_or(3)
                .min(1000) as u32,
            outcome,
            cancelled_at: None,
            retries: 0,
        }
    }
}

#[async_trait]
impl Serverless for MockServerless {
    async fn run(&self, req: &JobRequest) -> Result<Job> {
        crate::spec::validate_endpoint(&req.endpoint_id)?;
        let j = self.new_job(req);
        self.save_job(&j)?;
        Ok(self.to_job(&j))
    }

    async fn run_sync(&self, req: &JobRequest, timeout: Duration) -> Result<Job> {
        let job = self.run(req).await?;
        let deadline = crate::spec::deadline_in(timeout);
        loop {
            let j = self.status(&req.endpoint_id, &job.id).await?;
            if j.status.is_terminal() {
                return Ok(j);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("job {} still {} after {}; check it later with `atlas job status --endpoint {} {}`", j.id, j.status, humantime::format_duration(timeout), req.endpoint_id, j.id),
                )
                .with_provider(NAME));
            }
            tokio::time::sleep(Duration::from_millis(50).min(deadline - now)).await;
        }
    }

    async fn status(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        crate::spec::validate_endpoint(endpoint_id)?;
        Ok(self.to_job(&self.load_job(endpoint_id, job_id)?))
    }

    async fn stream<'a>(
        &'a self,
        endpoint_id: &'a str,
        job_id: &'a str,
    ) -> Result<BoxStream<'a, Result<serde_json::Value>>> {
        crate::spec::validate_endpoint(endpoint_id)?;
        self.load_job(endpoint_id, job_id)?;
        let s = futures::stream::unfold((0u32, false), move |(sent, done)| async move {
            if done {
                return None;
            }
            loop {
                let j = match self.load_job(endpoint_id, job_id) {
                    Ok(j) => j,
                    Err(e) => return Some((Err(e), (sent, true))),
                };
                let ready = self.chunks_ready(&j);
                if ready > sent {
                    return Some((
                        Ok(serde_json::json!({"index": sent, "text": format!("chunk {sent}")})),
                        (sent + 1, false),
                    ));
                }
                let st = self.status_of(&j);
                if st.is_terminal() {
                    return match st {
                        JobStatus::Completed => None,
                        other => {
                            let job = self.to_job(&j);
                            let msg = job.error.unwrap_or_else(|| format!("job {}", other));
                            let kind = if other == JobStatus::TimedOut {
                                ErrorKind::Timeout
                            } else {
                                ErrorKind::Provider
                            };
                            Some((
                                Err(Error::new(kind, format!("job {job_id} {other}: {msg}"))
                                    .with_provider(NAME)),
                                (sent, true),
                            ))
                        }
                    };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Ok(Box::pin(s))
    }

    async fn cancel(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        let mut j = self.load_job(endpoint_id, job_id)?;
        if !self.status_of(&j).is_terminal() {
            j.cancelled_at = Some(self.now());
            self.save_job(&j)?;
        }
        Ok(self.to_job(&j))
    }

    async fn retry(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        let mut j = self.load_job(endpoint_id, job_id)?;
        let st = self.status_of(&j);
        if !matches!(st, JobStatus::Failed | JobStatus::TimedOut) {
            return Err(Error::validation(
                "job",
                format!("job {job_id} is {st}; only failed or timed_out jobs can be retried"),
            ));
        }
        j.created_at = self.now();
        j.cancelled_at = None;
        j.retries += 1;
        j.outcome = Outcome::Complete;
        self.save_job(&j)?;
        Ok(self.to_job(&j))
    }

    async fn purge_queue(&self, endpoint_id: &str) -> Result<u64> {
        crate::spec::validate_endpoint(endpoint_id)?;
        let mut n = 0;
        for mut j in self.endpoint_jobs(endpoint_id)? {
            if self.status_of(&j) == JobStatus::InQueue {
                j.cancelled_at = Some(self.now());
                self.save_job(&j)?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn health(&self, endpoint_id: &str) -> Result<EndpointHealth> {
        crate::spec::validate_endpoint(endpoint_id)?;
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut retried = 0;
        for j in self.endpoint_jobs(endpoint_id)? {
            let key = match self.status_of(&j) {
                JobStatus::InQueue => "inQueue",
                JobStatus::InProgress => "inProgress",
                JobStatus::Completed => "completed",
                JobStatus::Failed | JobStatus::TimedOut => "failed",
                _ => "cancelled",
            };
            *counts.entry(key).or_default() += 1;
            retried += u64::from(j.retries);
        }
        let mut jobs = serde_json::Map::new();
        for k in ["completed", "failed", "inProgress", "inQueue"] {
            jobs.insert(k.into(), counts.get(k).copied().unwrap_or(0).into());
        }
        jobs.insert("retried".into(), retried.into());
        let running = counts.get("inProgress").copied().unwrap_or(0);
        let mut workers = serde_json::Map::new();
        workers.insert("idle".into(), (if running == 0 { 1 } else { 0 }).into());
        workers.insert("running".into(), running.into());
        let raw = serde_json::json!({"jobs": jobs, "workers": workers});
        Ok(EndpointHealth { jobs, workers, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderExt;
    use futures::StreamExt;

    fn req() -> ComputeRequest {
        ComputeRequest::builder()
            .gpu(Gpu::H100)
            .image("img")
            .port("8000/http")
            .port("22/tcp")
            .auth(crate::AuthMode::Bearer)
            .volume_gb(10)
            .build()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn lifecycle_and_cost() {
        let m = Mock::in_memory();
        let c = m.spawn(&req()).await.unwrap();
        assert_eq!(c.status, ComputeStatus::Provisioning);
        assert!(c.auth.as_ref().unwrap().token.is_some());
        assert!(c.http_url().unwrap().starts_with("https://"));
        let c = m
            .wait_for(&c.id, ComputeStatus::Running, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            c.auth.as_ref().unwrap().token.is_none(),
            "raw token only once"
        );
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let cost = m.accrued_usd(&c.id).unwrap();
        assert!((cost - 2.99).abs() < 0.01, "{cost}");
        m.stop(&c.id).await.unwrap();
        assert_eq!(m.get(&c.id).await.unwrap().status, ComputeStatus::Stopped);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let stopped_cost = m.accrued_usd(&c.id).unwrap() - cost;
        assert!(stopped_cost > 0.0 && stopped_cost < 0.01, "{stopped_cost}");
        m.start(&c.id).await.unwrap();
        m.terminate(&c.id).await.unwrap();
        assert_eq!(m.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(m.live_count().unwrap(), 0);
    }

    #[tokio::test]
    async fn same_launch_is_one_machine_and_faults() {
        let m = Mock::in_memory();
        let r = req();
        m.inject(MockOp::Spawn, Fault::ErrorAfterCreate, 1);
        let e = m.spawn(&r).await.unwrap_err();
        assert!(e.is_ambiguous());
        let again = m.spawn(&r).await.unwrap();
        assert_eq!(m.list(&ListFilter::all()).await.unwrap().len(), 1);
        assert_eq!(again.name.as_deref(), Some(r.launch_name().as_str()));
        m.inject(MockOp::Spawn, Fault::Capacity, 1);
        assert_eq!(
            m.spawn(&r.relaunch()).await.unwrap_err().kind(),
            ErrorKind::Capacity
        );
        let mi = ComputeRequest::builder()
            .gpu(Gpu::MI300X)
            .image("i")
            .build()
            .unwrap();
        assert_eq!(m.spawn(&mi).await.unwrap_err().kind(), ErrorKind::Capacity);
    }

    #[tokio::test(start_paused = true)]
    async fn max_runtime_is_enforced_upstream() {
        let m = Mock::in_memory();
        let r = ComputeRequest::builder()
            .image("i")
            .max_runtime(Duration::from_secs(60))
            .build()
            .unwrap();
        let c = m.spawn(&r).await.unwrap();
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(m.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_max_runtime_is_a_deadline_in_the_future_not_now() {
        let m = Mock::in_memory();
        let r = ComputeRequest::builder()
            .image("i")
            .max_runtime(Duration::from_secs(365 * 86_400))
            .command(["python", "serve.py"])
            .build()
            .unwrap();
        let c = m.spawn(&r).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let got = m.get(&c.id).await.unwrap();
        assert_eq!(got.status, ComputeStatus::Running);
        assert_eq!(
            got.raw["command"],
            serde_json::json!(["python", "serve.py"])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_create_answer_comes_after_the_machine_exists() {
        let m = Mock::in_memory_with(MockOptions {
            create_delay: Duration::from_secs(5),
            ..MockOptions::default()
        });
        let r = req();
        let spawning = {
            let m = m.clone();
            let r = r.clone();
            tokio::spawn(async move { m.spawn(&r).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!spawning.is_finished());
        assert_eq!(
            m.live_count().unwrap(),
            1,
            "listed while the answer is pending"
        );
        let c = spawning.await.unwrap().unwrap();
        assert_eq!(c.name.as_deref(), Some(r.launch_name().as_str()));
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_state_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.sqlite");
        let a = Mock::open(&p, MockOptions::default()).unwrap();
        let b = Mock::open(&p, MockOptions::default()).unwrap();
        let c = a.spawn(&req()).await.unwrap();
        assert_eq!(b.get(&c.id).await.unwrap().id, c.id);
        b.terminate(&c.id).await.unwrap();
        assert_eq!(a.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
        let mode = std::fs::metadata(dir.path()).unwrap();
        let _ = mode;
    }

    #[tokio::test]
    async fn serverless_jobs() {
        let m = Mock::in_memory();
        let s = m.serverless().unwrap();
        let req = JobRequest::new(
            MOCK_ENDPOINT,
            serde_json::json!({"prompt": "hi", "chunks": 4}),
        )
        .unwrap();
        let job = s.run(&req).await.unwrap();
        assert_eq!(job.status, JobStatus::InQueue);
        let chunks: Vec<_> = s
            .stream(MOCK_ENDPOINT, &job.id)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.is_ok()));
        let done = s.status(MOCK_ENDPOINT, &job.id).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.output.unwrap()["echo"]["prompt"], "hi");

        let bad = JobRequest::new(MOCK_ENDPOINT, serde_json::json!({"fail": "boom"})).unwrap();
        let j = s.run(&bad).await.unwrap();
        let items: Vec<_> = s
            .stream(MOCK_ENDPOINT, &j.id)
            .await
            .unwrap()
            .collect()
            .await;
        let err = items.last().unwrap().as_ref().unwrap_err();
        assert!(err.message().contains("boom"));

        let slow = JobRequest::new(MOCK_ENDPOINT, serde_json::json!({"sleep_ms": 10_000})).unwrap();
        let e = s
            .run_sync(&slow, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(
            s.status("other", &j.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
