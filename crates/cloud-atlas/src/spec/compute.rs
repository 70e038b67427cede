//! Compute requests and the compute they produce.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::{opt_duration, DurationRange};
use super::gpu::{Gpu, GpuChoice};
use crate::auth::AuthHandle;
use crate::error::{Error, Result};

/// Which pool of machines a provider should draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CloudType {
    /// Data-centre machines (RunPod "secure cloud").
    Secure,
    /// Community/marketplace hosts (RunPod community, Vast).
    Community,
    /// Whichever is available.
    #[default]
    Any,
}

impl FromStr for CloudType {
    type Err = Error;
    fn from_str(s: &str) -> Result<CloudType> {
        match s.trim().to_ascii_lowercase().as_str() {
            "secure" => Ok(CloudType::Secure),
            "community" => Ok(CloudType::Community),
            "any" | "all" => Ok(CloudType::Any),
            _ => Err(Error::validation(
                "cloud_type",
                format!("{s:?} is not allowed; allowed: secure, community, any"),
            )),
        }
    }
}

/// How browser-to-pod traffic is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMode {
    /// No credential is minted.
    #[default]
    None,
    /// A preshared bearer key is minted and injected as `ATLAS_PRESHARED_KEY`.
    Bearer,
    /// A per-pod signing secret is minted and injected as `ATLAS_SIGNING_SECRET`.
    SignedUrl,
}

impl FromStr for AuthMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<AuthMode> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "none" => Ok(AuthMode::None),
            "bearer" => Ok(AuthMode::Bearer),
            "signed_url" => Ok(AuthMode::SignedUrl),
            _ => Err(Error::validation(
                "auth",
                format!("{s:?} is not allowed; allowed: none, bearer, signed_url"),
            )),
        }
    }
}

/// Transport protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP(S), usually behind the provider's proxy with a URL.
    Http,
    /// Raw TCP.
    Tcp,
    /// Raw UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A port to expose: `8000/http`, `22/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// Port inside the machine.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl FromStr for PortSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<PortSpec> {
        let bad = || {
            Error::validation(
                "ports",
                format!("{s:?} is not a port; use PORT/PROTO with PORT 1-65535 and PROTO http, tcp or udp (e.g. 8000/http)"),
            )
        };
        let (p, proto) = s.trim().split_once('/').unwrap_or((s.trim(), "http"));
        let port: u16 = p.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "http" | "https" => Protocol::Http,
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => return Err(bad()),
        };
        Ok(PortSpec { port, protocol })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

impl Serialize for PortSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<PortSpec, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Label key carrying the launch id on every spawned resource that supports labels.
pub const LAUNCH_ID_LABEL: &str = "atlas_launch_id";

/// Name prefix reserved for the machines of tracked sessions (the reaper's default scope).
///
/// The orchestrator names every session machine `atlas-session-…` by default; a plain
/// [`ComputeRequest`] may not take a name in this namespace (the builder refuses it), so
/// a machine spawned with `atlas spawn` is never mistaken for a session's.
pub const SESSION_NAME_PREFIX: &str = "atlas-session-";

/// Label key (value `1`) the orchestrator puts on every session machine, on providers that
/// keep labels (the mock's labels, Fly `config.metadata`, Lambda tags, where `_` reads `-`).
/// Reserved: a plain [`ComputeRequest`] may not carry it.
pub const SESSION_LABEL: &str = "atlas_session";

/// Whether `name` (a [`ComputeRequest::name`]) would put a launch name in the
/// [`SESSION_NAME_PREFIX`] namespace.
pub fn in_session_namespace(name: &str) -> bool {
    format!("{name}-").starts_with(SESSION_NAME_PREFIX)
}

/// What to spawn. Built with [`ComputeRequest::builder`], validated in `build()`.
///
/// Every request carries a fresh `launch_id`; providers put it in the resource
/// name ([`ComputeRequest::launch_name`]) and labels so an ambiguous create can be
/// reconciled by listing before any retry.
///
/// `Debug` shows env names but never their values (they are often secrets).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ComputeRequest {
    /// GPU model; `None` for CPU-only compute (or a [`native_gpu`](Self::native_gpu)).
    pub gpu: Option<Gpu>,
    /// A provider's own GPU id, for a GPU the canonical table lacks (`NVIDIA A40` on
    /// RunPod); passed to the provider verbatim. Never set together with `gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_gpu: Option<String>,
    /// GPUs per machine (≥ 1 when a GPU is asked for, 0 otherwise).
    pub gpu_count: u32,
    /// vCPUs (CPU-only compute, or a floor on GPU machines).
    pub cpus: Option<u32>,
    /// Memory in GB (CPU-only compute, or a floor).
    pub memory_gb: Option<u32>,
    /// Container image.
    pub image: String,
    /// What the machine runs, as an argv (`["python", "train.py"]`): it replaces the
    /// image's command (`CMD`) the way `docker run IMAGE CMD ARGS…` does, so an image
    /// `ENTRYPOINT` receives it as arguments. Empty: the image's own command.
    ///
    /// With [`max_runtime`](Self::max_runtime) on a provider that declares
    /// [`Capability::CommandDeadline`](crate::Capability::CommandDeadline), the command
    /// is wrapped so the machine ends itself when the command ends or at max runtime,
    /// whichever comes first (see [`deadline`](crate::spec::deadline)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Secure, community or any.
    pub cloud_type: CloudType,
    /// Interruptible/spot pricing.
    pub spot: bool,
    /// Preferred regions/data centres, most preferred first.
    pub region_hints: Vec<String>,
    /// Ports to expose.
    pub ports: Vec<PortSpec>,
    /// Environment variables for the container.
    pub env: BTreeMap<String, String>,
    /// Persistent volume size in GB.
    pub volume_gb: Option<u32>,
    /// Container disk in GB.
    pub container_disk_gb: Option<u32>,
    /// Provider network volume to attach.
    pub network_volume_id: Option<String>,
    /// Name prefix chosen by the caller (default `atlas`).
    pub name: Option<String>,
    /// Provider template.
    pub template_id: Option<String>,
    /// Browser-to-pod auth.
    pub auth: AuthMode,
    /// Idle time-to-live (enforced by the orchestrator; 1s to 365d).
    #[serde(with = "opt_duration", default)]
    pub idle_ttl: Option<Duration>,
    /// Maximum runtime (1s to 365d): held by the machine itself where the provider can
    /// ([`Capability::ProviderDeadline`](crate::Capability::ProviderDeadline), or
    /// [`Capability::CommandDeadline`](crate::Capability::CommandDeadline) with a
    /// [`command`](Self::command)), and by the orchestrator for tracked sessions.
    /// A provider that can do neither refuses a request carrying one.
    #[serde(with = "opt_duration", default)]
    pub max_runtime: Option<Duration>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Provider-specific options passed through as JSON.
    pub provider_opts: serde_json::Map<String, serde_json::Value>,
    /// Unique id of this launch (12 lowercase hex chars).
    pub launch_id: String,
}

fn new_launch_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

impl ComputeRequest {
    /// Start building a request.
    pub fn builder() -> ComputeRequestBuilder {
        ComputeRequestBuilder::default()
    }

    /// The unique resource name for this launch: `{name or "atlas"}-{launch_id}`.
    pub fn launch_name(&self) -> String {
        format!(
            "{}-{}",
            self.name.as_deref().unwrap_or("atlas"),
            self.launch_id
        )
    }

    /// A copy with a new launch id (a deliberate second launch of the same spec).
    pub fn relaunch(&self) -> ComputeRequest {
        let mut r = self.clone();
        r.launch_id = new_launch_id();
        r
    }

    /// Whether the request asks for a GPU (canonical or native).
    pub fn wants_gpu(&self) -> bool {
        self.gpu.is_some() || self.native_gpu.is_some()
    }

    /// The GPU asked for, canonical or native; `None` for CPU-only compute.
    pub fn gpu_choice(&self) -> Option<GpuChoice> {
        match (&self.gpu, &self.native_gpu) {
            (Some(g), _) => Some(GpuChoice::Canonical(*g)),
            (None, Some(id)) => Some(GpuChoice::Native(id.clone())),
            (None, None) => None,
        }
    }

    /// Provider option `key` as a string, if set.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.provider_opts.get(key).and_then(|v| v.as_str())
    }
}

/// Env names with their values hidden, for `Debug`.
struct EnvNames<'a, I>(I)
where
    I: Iterator<Item = &'a String> + Clone;

impl<'a, I> std::fmt::Debug for EnvNames<'a, I>
where
    I: Iterator<Item = &'a String> + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.clone().map(|k| (k, crate::http::ENV_REDACTED)))
            .finish()
    }
}

impl std::fmt::Debug for ComputeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeRequest")
            .field("gpu", &self.gpu)
            .field("native_gpu", &self.native_gpu)
            .field("gpu_count", &self.gpu_count)
            .field("cpus", &self.cpus)
            .field("memory_gb", &self.memory_gb)
            .field("image", &self.image)
            .field("command", &self.command)
            .field("cloud_type", &self.cloud_type)
            .field("spot", &self.spot)
            .field("region_hints", &self.region_hints)
            .field("ports", &self.ports)
            .field("env", &EnvNames(self.env.keys()))
            .field("volume_gb", &self.volume_gb)
            .field("container_disk_gb", &self.container_disk_gb)
            .field("network_volume_id", &self.network_volume_id)
            .field("name", &self.name)
            .field("template_id", &self.template_id)
            .field("auth", &self.auth)
            .field("idle_ttl", &self.idle_ttl)
            .field("max_runtime", &self.max_runtime)
            .field("labels", &self.labels)
            .field("provider_opts", &self.provider_opts)
            .field("launch_id", &self.launch_id)
            .finish()
    }
}

/// Builder for [`ComputeRequest`]; every check happens in [`build`](Self::build).
///
/// `Debug` shows env names but never their values.
#[derive(Clone, Default)]
pub struct ComputeRequestBuilder {
    gpu: Option<Gpu>,
    native_gpu: Option<String>,
    gpu_count: Option<u32>,
    cpus: Option<u32>,
    memory_gb: Option<u32>,
    image: Option<String>,
    command: Vec<String>,
    cloud_type: CloudType,
    spot: bool,
    region_hints: Vec<String>,
    ports: Vec<String>,
    env: Vec<(String, String)>,
    volume_gb: Option<u32>,
    container_disk_gb: Option<u32>,
    network_volume_id: Option<String>,
    name: Option<String>,
    template_id: Option<String>,
    auth: AuthMode,
    idle_ttl: Option<Duration>,
    max_runtime: Option<Duration>,
    labels: BTreeMap<String, String>,
    provider_opts: serde_json::Map<String, serde_json::Value>,
    launch_id: Option<String>,
}

impl std::fmt::Debug for ComputeRequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputeRequestBuilder")
            .field("gpu", &self.gpu)
            .field("native_gpu", &self.native_gpu)
            .field("gpu_count", &self.gpu_count)
            .field("image", &self.image)
            .field("command", &self.command)
            .field("ports", &self.ports)
            .field("env", &EnvNames(self.env.iter().map(|(k, _)| k)))
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("launch_id", &self.launch_id)
            .finish_non_exhaustive()
    }
}

macro_rules! setter {
    ($(#[$d:meta])* $name:ident: $ty:ty) => {
        $(#[$d])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.$name = Some(v.into());
            self
        }
    };
}

impl ComputeRequestBuilder {
    setter!(/// GPU model (omit for CPU-only).
        gpu: Gpu);
    setter!(/// GPUs per machine (default 1 with a GPU).
        gpu_count: u32);
    setter!(/// vCPUs.
        cpus: u32);
    setter!(/// Memory in GB.
        memory_gb: u32);
    setter!(/// Persistent volume in GB.
        volume_gb: u32);
    setter!(/// Container disk in GB.
        container_disk_gb: u32);
    setter!(/// Idle TTL.
        idle_ttl: Duration);
    setter!(/// Maximum runtime.
        max_runtime: Duration);

    /// A provider's own GPU id for a GPU the table lacks (`NVIDIA A40`); replaces any
    /// canonical [`gpu`](Self::gpu).
    pub fn native_gpu(mut self, id: impl Into<String>) -> Self {
        self.native_gpu = Some(id.into());
        self.gpu = None;
        self
    }
    /// A canonical or native GPU ([`GpuChoice`], as `--gpu` parses it).
    pub fn gpu_choice(mut self, choice: GpuChoice) -> Self {
        match choice {
            GpuChoice::Canonical(g) => {
                self.gpu = Some(g);
                self.native_gpu = None;
            }
            GpuChoice::Native(id) => {
                self.native_gpu = Some(id);
                self.gpu = None;
            }
        }
        self
    }

    /// Container image (required).
    pub fn image(mut self, v: impl Into<String>) -> Self {
        self.image = Some(v.into());
        self
    }
    /// The command the machine runs instead of the image's (`["python", "train.py"]`);
    /// see [`ComputeRequest::command`].
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = argv.into_iter().map(Into::into).collect();
        self
    }
    /// Network volume id.
    pub fn network_volume_id(mut self, v: impl Into<String>) -> Self {
        self.network_volume_id = Some(v.into());
        self
    }
    /// Name prefix (lowercase letters, digits, `-`; the launch id is appended).
    pub fn name(mut self, v: impl Into<String>) -> Self {
        self.name = Some(v.into());
        self
    }
    /// Provider template id.
    pub fn template_id(mut self, v: impl Into<String>) -> Self {
        self.template_id = Some(v.into());
        self
    }
    /// Secure, community or any.
    pub fn cloud_type(mut self, v: CloudType) -> Self {
        self.cloud_type = v;
        self
    }
    /// Spot/interruptible.
    pub fn spot(mut self, v: bool) -> Self {
        self.spot = v;
        self
    }
    /// Add a preferred region.
    pub fn region(mut self, v: impl Into<String>) -> Self {
        self.region_hints.push(v.into());
        self
    }
    /// Add a port, `8000/http` or `22/tcp` (parsed in `build`).
    pub fn port(mut self, v: impl Into<String>) -> Self {
        self.ports.push(v.into());
        self
    }
    /// Add an environment variable.
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Auth mode.
    pub fn auth(mut self, v: AuthMode) -> Self {
        self.auth = v;
        self
    }
    /// Add a label.
    pub fn label(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    /// Set a provider option (JSON passthrough).
    pub fn provider_opt(mut self, k: impl Into<String>, v: impl Into<serde_json::Value>) -> Self {
        self.provider_opts.insert(k.into(), v.into());
        self
    }
    /// Use this launch id instead of a fresh one (orchestrator re-use after a crash).
    pub fn launch_id(mut self, v: impl Into<String>) -> Self {
        self.launch_id = Some(v.into());
        self
    }

    /// Validate and build.
    ///
    /// # Errors
    /// [`ErrorKind::Validation`](crate::ErrorKind::Validation) naming the first bad field.
    pub fn build(self) -> Result<ComputeRequest> {
        let image = self.image.unwrap_or_default();
        if image.trim().is_empty() {
            return Err(Error::validation(
                "image",
                "is required (e.g. --image ghcr.io/org/app:tag)",
            ));
        }
        if image.chars().any(char::is_whitespace) {
            return Err(Error::validation(
                "image",
                format!("{image:?} must not contain whitespace"),
            ));
        }
        if let Some(id) = &self.native_gpu {
            if self.gpu.is_some() {
                return Err(Error::validation(
                    "gpu",
                    "name either a canonical GPU or a native id, not both",
                ));
            }
            if id.trim().is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
                return Err(Error::validation(
                    "gpu",
                    format!("native id {id:?} is not allowed; give the provider's own GPU id (1-200 printable characters)"),
                ));
            }
        }
        let wants_gpu = self.gpu.is_some() || self.native_gpu.is_some();
        let gpu_count = match (wants_gpu.then_some(()), self.gpu_count) {
            (Some(_), None) => 1,
            (Some(_), Some(0)) => return Err(Error::validation("gpu_count", "must be at least 1 when a GPU is requested")),
            (Some(_), Some(n)) if n > 16 => return Err(Error::validation("gpu_count", format!("{n} is too many; allowed: 1-16"))),
            (Some(_), Some(n)) => n,
            (None, None) | (None, Some(0)) => 0,
            (None, Some(_)) => return Err(Error::validation("gpu_count", "set without gpu; name a GPU with gpu (e.g. --gpu h100) or drop gpu_count for CPU-only compute")),
        };
        if self.cpus == Some(0) {
            return Err(Error::validation("cpus", "must be at least 1"));
        }
        if self.memory_gb == Some(0) {
            return Err(Error::validation("memory_gb", "must be at least 1"));
        }
        for (field, v) in [
            ("volume_gb", self.volume_gb),
            ("container_disk_gb", self.container_disk_gb),
        ] {
            if let Some(v) = v {
                if v == 0 || v > 100_000 {
                    return Err(Error::validation(
                        field,
                        format!("{v} is out of range; allowed: 1-100000"),
                    ));
                }
            }
        }
        let mut ports = Vec::new();
        for p in &self.ports {
            let spec: PortSpec = p.parse()?;
            if ports.iter().any(|q: &PortSpec| q.port == spec.port) {
                return Err(Error::validation(
                    "ports",
                    format!("port {} is listed twice", spec.port),
                ));
            }
            ports.push(spec);
        }
        let mut env = BTreeMap::new();
        for (k, v) in self.env {
            let valid = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(Error::validation("env", format!("{k:?} is not a valid variable name; use letters, digits and _ (not starting with a digit)")));
            }
            env.insert(k, v);
        }
        if let Some(name) = &self.name {
            let ok = !name.is_empty()
                && name.len() <= 40
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(Error::validation("name", format!("{name:?} is not allowed; use 1-40 lowercase letters, digits and -, starting with a letter")));
            }
            if in_session_namespace(name) {
                return Err(Error::validation("name", format!("{name:?} is not allowed: names starting with {SESSION_NAME_PREFIX} are reserved for tracked sessions (use atlas session spawn), choose another name")));
            }
        }
        if self
            .labels
            .keys()
            .any(|k| k.replace('-', "_") == SESSION_LABEL)
        {
            return Err(Error::validation(
                "labels",
                format!("{SESSION_LABEL} is reserved: the orchestrator sets it on the machines of tracked sessions (use atlas session spawn)"),
            ));
        }
        for r in &self.region_hints {
            if r.trim().is_empty() {
                return Err(Error::validation(
                    "region_hints",
                    "a region must not be empty",
                ));
            }
        }
        for (field, d) in [
            ("idle_ttl", self.idle_ttl),
            ("max_runtime", self.max_runtime),
        ] {
            if let Some(d) = d {
                DurationRange::LIMIT.check(field, d)?;
            }
        }
        validate_command(&self.command)?;
        let launch_id = match self.launch_id {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 32
                    && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                id
            }
            Some(id) => {
                return Err(Error::validation(
                    "launch_id",
                    format!("{id:?} must be 1-32 letters or digits"),
                ))
            }
            None => new_launch_id(),
        };
        Ok(ComputeRequest {
            gpu: self.gpu,
            native_gpu: self.native_gpu.map(|id| id.trim().to_string()),
            gpu_count,
            cpus: self.cpus,
            memory_gb: self.memory_gb,
            image,
            command: self.command,
            cloud_type: self.cloud_type,
            spot: self.spot,
            region_hints: self.region_hints,
            ports,
            env,
            volume_gb: self.volume_gb,
            container_disk_gb: self.container_disk_gb,
            network_volume_id: self.network_volume_id,
            name: self.name,
            template_id: self.template_id,
            auth: self.auth,
            idle_ttl: self.idle_ttl,
            max_runtime: self.max_runtime,
            labels: self.labels,
            provider_opts: self.provider_opts,
            launch_id,
        })
    }
}

/// Most bytes a command may have in total (every provider passes it in a request body
/// field; some cap those at a few KiB and say so themselves).
const COMMAND_MAX_BYTES: usize = 16 * 1024;

fn validate_command(argv: &[String]) -> Result<()> {
    let Some(program) = argv.first() else {
        return Ok(());
    };
    if program.trim().is_empty() {
        return Err(Error::validation(
            "command",
            "the program (first word) must not be empty",
        ));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(Error::validation(
            "command",
            "an argument contains a NUL byte, which no process can receive",
        ));
    }
    let total: usize = argv.iter().map(|a| a.len() + 1).sum();
    if total > COMMAND_MAX_BYTES {
        return Err(Error::validation(
            "command",
            format!("is {total} bytes; allowed: at most {COMMAND_MAX_BYTES} (put a long script in the image or a file)"),
        ));
    }
    Ok(())
}

/// Lifecycle state of a compute resource, normalised across providers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComputeStatus {
    /// Accepted, machine being found or image pulled.
    Provisioning,
    /// Booting.
    Starting,
    /// Up.
    Running,
    /// Paused; may still bill for storage.
    Stopped,
    /// Gone for good.
    Terminated,
    /// Failed to start or crashed.
    Failed,
    /// A native state we do not map (kept verbatim).
    Other(String),
}

impl ComputeStatus {
    /// Lower-case name (`running`, or the native string for `Other`).
    pub fn as_str(&self) -> &str {
        match self {
            ComputeStatus::Provisioning => "provisioning",
            ComputeStatus::Starting => "starting",
            ComputeStatus::Running => "running",
            ComputeStatus::Stopped => "stopped",
            ComputeStatus::Terminated => "terminated",
            ComputeStatus::Failed => "failed",
            ComputeStatus::Other(s) => s,
        }
    }

    /// Terminated or failed: it will not come back on its own.
    pub fn is_terminal(&self) -> bool {
        matches!(self, ComputeStatus::Terminated | ComputeStatus::Failed)
    }
}

impl fmt::Display for ComputeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComputeStatus {
    type Err = std::convert::Infallible;
    /// Never fails: unknown strings become `Other`.
    fn from_str(s: &str) -> std::result::Result<ComputeStatus, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "provisioning" => ComputeStatus::Provisioning,
            "starting" => ComputeStatus::Starting,
            "running" => ComputeStatus::Running,
            "stopped" => ComputeStatus::Stopped,
            "terminated" => ComputeStatus::Terminated,
            "failed" => ComputeStatus::Failed,
            _ => ComputeStatus::Other(s.to_string()),
        })
    }
}

impl Serialize for ComputeStatus {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ComputeStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<ComputeStatus, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or(ComputeStatus::Other(s)))
    }
}

/// An exposed port and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PortBinding {
    /// Port inside the machine.
    pub internal: u16,
    /// Public port, when the provider maps one.
    pub external: Option<u16>,
    /// Protocol.
    pub protocol: Protocol,
    /// Where to reach it: `https://…` for HTTP, `tcp://ip:port` for TCP.
    pub url: Option<String>,
}

impl PortBinding {
    /// A binding.
    pub fn new(
        internal: u16,
        external: Option<u16>,
        protocol: Protocol,
        url: Option<String>,
    ) -> PortBinding {
        PortBinding {
            internal,
            external,
            protocol,
            url,
        }
    }
}

/// A compute resource as a provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Compute {
    /// Provider's id.
    pub id: String,
    /// Provider name (`runpod`, `mock`, …).
    pub provider: String,
    /// Normalised status.
    pub status: ComputeStatus,
    /// Public IP, when known.
    pub public_ip: Option<String>,
    /// Exposed ports.
    pub ports: Vec<PortBinding>,
    /// GPU model, when known.
    pub gpu: Option<Gpu>,
    /// GPUs attached.
    pub gpu_count: u32,
    /// Current price in USD per hour, when known.
    pub cost_per_hour: Option<f64>,
    /// Region / data centre.
    pub region: Option<String>,
    /// Image.
    pub image: Option<String>,
    /// Resource name.
    pub name: Option<String>,
    /// Labels/metadata/tags the provider keeps.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Browser-to-pod credentials. Only the spawn result carries raw secrets, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthHandle>,
    /// Creation time.
    pub created_at: Option<DateTime<Utc>>,
    /// The provider's native JSON.
    #[serde(default)]
    pub raw: serde_json::Value,
}

impl Compute {
    /// A compute with the given id, provider and status; other fields empty.
    pub fn new(
        id: impl Into<String>,
        provider: impl Into<String>,
        status: ComputeStatus,
    ) -> Compute {
        Compute {
            id: id.into(),
            provider: provider.into(),
            status,
            public_ip: None,
            ports: Vec::new(),
            gpu: None,
            gpu_count: 0,
            cost_per_hour: None,
            region: None,
            image: None,
            name: None,
            labels: BTreeMap::new(),
            auth: None,
            created_at: None,
            raw: serde_json::Value::Null,
        }
    }

    /// Set [`raw`](Self::raw) to the provider's native JSON with every environment
    /// value and secret-looking field redacted ([`redact_raw`](crate::http::redact_raw)):
    /// providers echo a machine's env (RunPod's `env`, Fly's `config.env`, Vast's
    /// `extra_env`), and `raw` is printed by `atlas get -o json`.
    pub fn set_raw(&mut self, raw: serde_json::Value) {
        self.raw = crate::http::redact_raw(raw);
    }

    /// URL of the first HTTP port, if any.
    pub fn http_url(&self) -> Option<&str> {
        self.ports
            .iter()
            .find(|p| p.protocol == Protocol::Http)
            .and_then(|p| p.url.as_deref())
    }
}

/// Which compute [`Provider::list`](crate::Provider::list) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<ComputeStatus>,
    /// Only names starting with this.
    pub name_prefix: Option<String>,
    /// Only this exact name.
    pub name: Option<String>,
}

impl ListFilter {
    /// Everything.
    pub fn all() -> ListFilter {
        ListFilter::default()
    }
    /// Only this status.
    pub fn with_status(mut self, s: ComputeStatus) -> ListFilter {
        self.status = Some(s);
        self
    }
    /// Only names starting with `p`.
    pub fn with_name_prefix(mut self, p: impl Into<String>) -> ListFilter {
        self.name_prefix = Some(p.into());
        self
    }
    /// Only the exact name `n`.
    pub fn with_name(mut self, n: impl Into<String>) -> ListFilter {
        self.name = Some(n.into());
        self
    }
    /// Whether `c` passes this filter (providers apply it client-side where the API cannot).
    pub fn matches(&self, c: &Compute) -> bool {
        let name = c.name.as_deref().unwrap_or("");
        self.status.as_ref().is_none_or(|s| *s == c.status)
            && self
                .name_prefix
                .as_deref()
                .is_none_or(|p| name.starts_with(p))
            && self.name.as_deref().is_none_or(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn a_native_gpu_is_a_gpu_request_and_never_with_a_canonical_one() {
        let r = ComputeRequest::builder()
            .native_gpu(" NVIDIA A40 ")
            .image("i")
            .build()
            .unwrap();
        assert_eq!(r.native_gpu.as_deref(), Some("NVIDIA A40"));
        assert_eq!((r.gpu, r.gpu_count, r.wants_gpu()), (None, 1, true));
        assert_eq!(r.gpu_choice(), Some(GpuChoice::Native("NVIDIA A40".into())));
        let e = ComputeRequest::builder()
            .native_gpu("NVIDIA A40")
            .gpu(Gpu::A100_80G)
            .image("i")
            .build()
            .unwrap_err();
        assert!(e.message().starts_with("gpu: "), "{e}");
        let e = ComputeRequest::builder()
            .native_gpu("  ")
            .image("i")
            .build()
            .unwrap_err();
        assert!(e.message().starts_with("gpu: "), "{e}");
        // Old serialised requests (no native_gpu) still read.
        let mut v = serde_json::to_value(&r).unwrap();
        v.as_object_mut().unwrap().remove("native_gpu");
        let back: ComputeRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back.native_gpu, None);
    }

    #[test]
    fn debug_shows_env_names_not_values() {
        let b = ComputeRequest::builder()
            .image("img")
            .env("HF_TOKEN", "canary-secret-1")
            .env("MODEL", "canary-secret-2");
        let shown = format!("{b:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(
            shown.contains("HF_TOKEN") && shown.contains("MODEL"),
            "{shown}"
        );
        let r = b.build().unwrap();
        for shown in [format!("{r:?}"), format!("{r:#?}")] {
            assert!(!shown.contains("canary"), "{shown}");
            assert!(
                shown.contains("HF_TOKEN") && shown.contains("[redacted]"),
                "{shown}"
            );
            assert!(shown.contains("img"), "{shown}");
        }
    }

    #[test]
    fn builds_valid_request() {
        let r = ComputeRequest::builder()
            .gpu(Gpu::H100)
            .image("img")
            .port("8000/http")
            .port("22/tcp")
            .env("A", "1")
            .build()
            .unwrap();
        assert_eq!(r.gpu_count, 1);
        assert_eq!(
            r.ports[1],
            PortSpec {
                port: 22,
                protocol: Protocol::Tcp
            }
        );
        assert_eq!(r.launch_id.len(), 12);
        assert!(r.launch_name().starts_with("atlas-"));
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let cases: Vec<(ComputeRequestBuilder, &str)> = vec![
            (ComputeRequest::builder(), "image"),
            (
                ComputeRequest::builder()
                    .image("x")
                    .gpu(Gpu::H100)
                    .gpu_count(0),
                "gpu_count",
            ),
            (
                ComputeRequest::builder().image("x").gpu_count(2),
                "gpu_count",
            ),
            (
                ComputeRequest::builder().image("x").port("99999/http"),
                "ports",
            ),
            (
                ComputeRequest::builder().image("x").port("80/sctp"),
                "ports",
            ),
            (ComputeRequest::builder().image("x").env("1A", "v"), "env"),
            (
                ComputeRequest::builder().image("x").name("Bad Name"),
                "name",
            ),
            (
                ComputeRequest::builder().image("x").name("atlas-session"),
                "name",
            ),
            (
                ComputeRequest::builder()
                    .image("x")
                    .name("atlas-session-mine"),
                "name",
            ),
            (
                ComputeRequest::builder()
                    .image("x")
                    .label("atlas-session", "1"),
                "labels",
            ),
            (
                ComputeRequest::builder()
                    .image("x")
                    .idle_ttl(Duration::ZERO),
                "idle_ttl",
            ),
            (
                ComputeRequest::builder()
                    .image("x")
                    .max_runtime(Duration::from_secs(366 * 86_400)),
                "max_runtime",
            ),
            (
                ComputeRequest::builder()
                    .image("x")
                    .max_runtime(Duration::MAX),
                "max_runtime",
            ),
            (
                ComputeRequest::builder().image("x").command([""]),
                "command",
            ),
            (
                ComputeRequest::builder().image("x").command(["sh", "a\0b"]),
                "command",
            ),
            (
                ComputeRequest::builder()
                    .image("x")
                    .command(["sh".to_string(), "x".repeat(20_000)]),
                "command",
            ),
        ];
        for (b, field) in cases {
            let e = b.build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert!(e.message().starts_with(field), "{field}: {e}");
        }
    }

    #[test]
    fn status_round_trips_unknown() {
        let s: ComputeStatus = serde_json::from_str("\"hibernating\"").unwrap();
        assert_eq!(s, ComputeStatus::Other("hibernating".into()));
        assert_eq!(
            serde_json::to_string(&ComputeStatus::Running).unwrap(),
            "\"running\""
        );
    }

    #[test]
    fn request_serde_round_trip() {
        let r = ComputeRequest::builder()
            .image("i")
            .idle_ttl(Duration::from_secs(900))
            .build()
            .unwrap();
        let j = serde_json::to_string(&r).unwrap();
        assert!(j.contains("\"15m\""));
        assert!(
            !j.contains("command"),
            "an empty command is not written: {j}"
        );
        let back: ComputeRequest = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
        let with = ComputeRequest::builder()
            .image("i")
            .command(["python", "-c", "print('hi')"])
            .build()
            .unwrap();
        let back: ComputeRequest =
            serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(back.command, ["python", "-c", "print('hi')"]);
    }
}
