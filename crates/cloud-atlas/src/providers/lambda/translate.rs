//! Pure translation between spec types and Lambda Cloud API JSON.
//!
//! Nothing here does I/O: every function is tested from the published samples and the
//! spec's examples (`tests/fixtures/lambda/`).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::spec::deadline;
use crate::spec::{
    Compute, ComputeRequest, ComputeStatus, Gpu, GpuType, PortBinding, PortSpec, Protocol,
    LAUNCH_ID_LABEL,
};

/// Provider name.
pub(crate) const NAME: &str = "lambda";

/// Tag carrying the launch id (Lambda tag keys allow `a-z0-9-:`, so not `atlas_launch_id`).
pub const TAG_LAUNCH_ID: &str = "atlas-launch-id";
/// Tag carrying the requested image (when it fits Lambda's 128-character tag values).
pub const TAG_IMAGE: &str = "atlas-image";
/// Tag carrying the requested ports (`8000/http,9000/tcp`), so `get` can report bindings.
pub const TAG_PORTS: &str = "atlas-ports";
/// The `image` value meaning "the plain VM, no container" (Lambda's default Lambda Stack image).
pub const VM_ONLY_IMAGE: &str = "lambda-stack";

const TAG_VALUE_MAX: usize = 128;
const TAG_KEY_MAX: usize = 55;
const USER_DATA_MAX: usize = 1024 * 1024;

/// A Lambda region (`us-west-1`, "California, USA").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Region {
    /// Region code.
    pub name: String,
    /// Where it is.
    #[serde(default)]
    pub description: String,
}

/// Hardware of an instance type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceTypeSpecs {
    /// Virtual CPUs.
    #[serde(default)]
    pub vcpus: u32,
    /// RAM in GiB.
    #[serde(default)]
    pub memory_gib: u32,
    /// Local storage in GiB.
    #[serde(default)]
    pub storage_gib: u32,
    /// GPUs (0 for CPU instance types).
    #[serde(default)]
    pub gpus: u32,
}

/// A Lambda instance type (`gpu_1x_a10`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceType {
    /// Name, e.g. `gpu_8x_h100_sxm5`.
    pub name: String,
    /// Description, e.g. `8x H100 (80 GB SXM5)`.
    #[serde(default)]
    pub description: String,
    /// GPU description, e.g. `H100 (80 GB SXM5)`; `N/A` for CPU types.
    #[serde(default)]
    pub gpu_description: String,
    /// Price in US cents per hour for the whole instance.
    #[serde(default)]
    pub price_cents_per_hour: u64,
    /// Hardware.
    #[serde(default)]
    pub specs: InstanceTypeSpecs,
}

impl InstanceType {
    /// The canonical GPU, when the type maps to one.
    pub fn gpu(&self) -> Option<Gpu> {
        gpu_of(&self.name, &self.gpu_description)
    }
    /// USD per hour.
    pub fn price_per_hour(&self) -> f64 {
        self.price_cents_per_hour as f64 / 100.0
    }
}

/// One catalog entry: an instance type and the regions that can launch it right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The type.
    pub instance_type: InstanceType,
    /// Regions with capacity now (live stock).
    #[serde(rename = "regions_with_capacity_available", default)]
    pub regions: Vec<Region>,
}

impl CatalogEntry {
    /// Region codes with capacity now.
    pub fn region_names(&self) -> Vec<&str> {
        self.regions.iter().map(|r| r.name.as_str()).collect()
    }
    /// Whether `region` (case-insensitive) has capacity now.
    pub fn has_capacity_in(&self, region: &str) -> bool {
        self.regions
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case(region.trim()))
    }
}

#[derive(Debug, Deserialize)]
struct TagEntry {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Instance {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    status: String,
    #[serde(default)]
    region: Option<Region>,
    #[serde(default)]
    instance_type: Option<InstanceType>,
    #[serde(default)]
    tags: Vec<TagEntry>,
}

/// Decode `v` as `T`; a failure is a `Provider` error naming the JSON path.
pub(crate) fn decode<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        Error::new(
            ErrorKind::Provider,
            format!(
                "could not decode Lambda's {what} at `{}`: {}",
                e.path(),
                e.inner()
            ),
        )
        .with_provider(NAME)
    })
}

/// Lambda instance status → spec status.
///
/// `booting` → starting; `active` → running; `terminating`, `terminated` and
/// `preempted` (reclaimed by Lambda) → terminated; `unhealthy` and anything new is kept
/// verbatim as `Other`, since an unhealthy instance may recover and still bills.
pub fn status(s: &str) -> ComputeStatus {
    match s {
        "booting" => ComputeStatus::Starting,
        "active" => ComputeStatus::Running,
        "terminating" | "terminated" | "preempted" => ComputeStatus::Terminated,
        other => ComputeStatus::Other(other.to_string()),
    }
}

/// The fragment after `gpu_{n}x_` in an instance type name (`a10` in `gpu_1x_a10`).
pub fn fragment(instance_type: &str) -> Option<&str> {
    let rest = instance_type.strip_prefix("gpu_")?;
    let (count, frag) = rest.split_once('_')?;
    let n = count.strip_suffix('x')?;
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && !frag.is_empty()).then_some(frag)
}

/// The canonical GPU of an instance type: from the GPU description (`A100 (40 GB
/// PCIe)`: model, memory and form factor) where it names a GPU of the table, else from
/// the name's fragment via the GPU table. The description comes first because one
/// fragment can mean two form factors: `gpu_1x_a100` is `A100 (40 GB PCIe)` but
/// `gpu_8x_a100` is `A100 (40 GB SXM4)`.
pub fn gpu_of(instance_type: &str, gpu_description: &str) -> Option<Gpu> {
    gpu_from_description(gpu_description)
        .or_else(|| fragment(instance_type).and_then(|f| Gpu::from_provider_id(NAME, f)))
}

fn gpu_from_description(desc: &str) -> Option<Gpu> {
    let (model, rest) = desc.split_once('(')?;
    let model: String = model
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    if model.is_empty() {
        return None;
    }
    let mem: u32 = rest
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let form = rest.to_ascii_lowercase();
    let prefix = format!("{model}_");
    let candidates: Vec<Gpu> = Gpu::ALL
        .iter()
        .copied()
        .filter(|g| {
            g.memory_gb() == mem && (g.as_str() == model || g.as_str().starts_with(&prefix))
        })
        .collect();
    if candidates.len() <= 1 {
        return candidates.first().copied();
    }
    let by_form = |needle: &str| {
        candidates
            .iter()
            .copied()
            .find(|g| g.as_str().contains(needle))
    };
    if form.contains("pcie") {
        if let Some(g) = by_form("pcie") {
            return Some(g);
        }
    }
    if form.contains("sxm") {
        if let Some(g) = by_form("sxm") {
            return Some(g);
        }
    }
    let open = format!("{model}_{mem}g");
    candidates
        .iter()
        .copied()
        .find(|g| g.as_str() == model || g.as_str() == open)
}

/// Whether an instance type's GPU satisfies a request for `wanted` (`h100` accepts
/// `h100_sxm` and `h100_pcie`, `a100_40g` either A100 40 GB; names that fix the form
/// factor accept only themselves): [`Gpu::covers`].
pub fn gpu_satisfies(offered: Gpu, wanted: Gpu) -> bool {
    wanted.covers(offered)
}

/// The instance type name for `count` × `gpu`: `gpu_{count}x_{fragment}`.
///
/// # Errors
/// `Validation` listing Lambda's GPUs when `gpu` has no Lambda fragment.
pub fn instance_type_name(gpu: Gpu, count: u32) -> Result<String> {
    let frag = gpu.require_provider_id(NAME)?;
    Ok(format!("gpu_{count}x_{frag}"))
}

/// Decode the `data` map of `GET /api/v1/instance-types`, sorted by instance type name.
pub fn catalog(data: &Value) -> Result<Vec<CatalogEntry>> {
    let map: BTreeMap<String, Value> = decode(data, "instance types")?;
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map {
        let mut e: CatalogEntry = decode(&v, "instance type")?;
        if e.instance_type.name.is_empty() {
            e.instance_type.name = key;
        }
        out.push(e);
    }
    Ok(out)
}

/// A catalog entry as a spec [`GpuType`] (CPU types too, with `gpu: None`, `gpu_count: 0`).
pub fn gpu_type(e: &CatalogEntry) -> GpuType {
    let t = &e.instance_type;
    let mut g = GpuType::new(NAME, t.name.clone(), t.description.clone());
    g.gpu = t.gpu();
    g.gpu_count = t.specs.gpus;
    g.memory_gb = g.gpu.map(Gpu::memory_gb).or_else(|| {
        let d = t.gpu_description.split_once('(')?.1;
        d.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    g.price_on_demand = Some(t.price_per_hour());
    g.available = Some(!e.regions.is_empty());
    g.stock = Some(if e.regions.is_empty() {
        "none".to_string()
    } else {
        format!("{} regions", e.regions.len())
    });
    g.regions = e.regions.iter().map(|r| r.name.clone()).collect();
    g.raw = serde_json::to_value(e).unwrap_or(Value::Null);
    g
}

/// A Lambda instance with its secrets (Jupyter token, also inside the Jupyter URL) redacted.
pub fn redact_instance(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        if obj.get("jupyter_token").is_some_and(Value::is_string) {
            obj.insert("jupyter_token".into(), json!(crate::http::REDACTED));
        }
        if let Some(u) = obj.get("jupyter_url").and_then(Value::as_str) {
            let shown = match url::Url::parse(u) {
                Ok(url) => crate::http::redact_url(&url),
                Err(_) => crate::http::REDACTED.to_string(),
            };
            obj.insert("jupyter_url".into(), json!(shown));
        }
    }
    v
}

/// Parse the [`TAG_PORTS`] value; unknown entries are skipped.
pub fn parse_ports_tag(s: &str) -> Vec<PortSpec> {
    s.split(',')
        .filter_map(|p| p.trim().parse::<PortSpec>().ok())
        .collect()
}

/// Where to reach each requested port on the instance's public IP: `http://ip:port`
/// for HTTP, `tcp://ip:port` / `udp://ip:port` otherwise (no URL before an IP is known).
pub fn port_bindings(ip: Option<&str>, ports: &[PortSpec]) -> Vec<PortBinding> {
    ports
        .iter()
        .map(|p| {
            let url = ip.filter(|i| !i.is_empty()).map(|ip| {
                let scheme = match p.protocol {
                    Protocol::Http => "http",
                    Protocol::Udp => "udp",
                    _ => "tcp",
                };
                format!("{scheme}://{ip}:{}", p.port)
            });
            PortBinding::new(p.port, Some(p.port), p.protocol, url)
        })
        .collect()
}

/// A Lambda instance as spec [`Compute`]. `raw` is the instance with secrets redacted.
///
/// Tags written at launch come back as: [`TAG_LAUNCH_ID`] → label [`LAUNCH_ID_LABEL`],
/// [`TAG_IMAGE`] → `image`, [`TAG_PORTS`] → port bindings on the public IP; other tags
/// are labels.
pub fn compute(v: &Value) -> Result<Compute> {
    let i: Instance = decode(v, "instance")?;
    let mut c = Compute::new(i.id, NAME, status(&i.status));
    c.public_ip = i.ip.filter(|s| !s.is_empty());
    c.name = i.name.filter(|s| !s.is_empty());
    c.region = i.region.map(|r| r.name);
    if let Some(t) = &i.instance_type {
        c.gpu = t.gpu();
        c.gpu_count = t.specs.gpus;
        c.cost_per_hour = Some(t.price_per_hour());
    }
    let mut ports = Vec::new();
    for t in i.tags {
        match t.key.as_str() {
            TAG_LAUNCH_ID => {
                c.labels.insert(LAUNCH_ID_LABEL.to_string(), t.value);
            }
            TAG_IMAGE => c.image = Some(t.value),
            TAG_PORTS => ports = parse_ports_tag(&t.value),
            _ => {
                c.labels.insert(t.key, t.value);
            }
        }
    }
    c.ports = port_bindings(c.public_ip.as_deref(), &ports);
    c.set_raw(redact_instance(v.clone()));
    Ok(c)
}

fn tag_key_ok(k: &str) -> bool {
    let mut chars = k.chars();
    k.len() >= 2
        && k.len() <= TAG_KEY_MAX
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == ':')
}

/// The launch tags: launch id, image and ports (when they fit), then the request's labels
/// with `_` turned into `-` (Lambda tag keys allow lowercase letters, digits, `-` and `:`).
///
/// # Errors
/// `Validation` naming `labels` for a key or value Lambda cannot store, and `ports` when
/// the port list does not fit a tag.
pub fn tags(req: &ComputeRequest) -> Result<Vec<Value>> {
    let mut out = vec![json!({"key": TAG_LAUNCH_ID, "value": req.launch_id})];
    if req.image.len() <= TAG_VALUE_MAX {
        out.push(json!({"key": TAG_IMAGE, "value": req.image}));
    }
    if !req.ports.is_empty() {
        let v = req
            .ports
            .iter()
            .map(PortSpec::to_string)
            .collect::<Vec<_>>()
            .join(",");
        if v.len() > TAG_VALUE_MAX {
            return Err(Error::validation(
                "ports",
                format!("Lambda keeps at most {TAG_VALUE_MAX} characters of ports per instance; request fewer ports"),
            ));
        }
        out.push(json!({"key": TAG_PORTS, "value": v}));
    }
    for (k, v) in &req.labels {
        let key = k.to_ascii_lowercase().replace('_', "-");
        if matches!(key.as_str(), TAG_LAUNCH_ID | TAG_IMAGE | TAG_PORTS) {
            continue;
        }
        if !tag_key_ok(&key) {
            return Err(Error::validation(
                "labels",
                format!("{k:?} cannot be a Lambda tag key; use 2-55 lowercase letters, digits, -, _ or :, starting with a letter"),
            ));
        }
        if v.len() > TAG_VALUE_MAX {
            return Err(Error::validation(
                "labels",
                format!("the value of {k:?} is longer than Lambda's {TAG_VALUE_MAX} characters"),
            ));
        }
        out.push(json!({"key": key, "value": v}));
    }
    Ok(out)
}

/// A provider option holding one name or several: a string (comma-separated) or an array of strings.
///
/// # Errors
/// `Validation` naming `provider_opts.<key>` for any other JSON type.
pub fn opt_list(req: &ComputeRequest, key: &str) -> Result<Vec<String>> {
    let bad = || {
        Error::validation(
            &format!("provider_opts.{key}"),
            "must be a name, a comma-separated list of names or an array of names",
        )
    };
    match req.provider_opts.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split_names(s)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(|s| s.trim().to_string()).ok_or_else(bad))
            .filter(|r| r.as_ref().map_or(true, |s| !s.is_empty()))
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn split_names(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The SSH key names for a launch: provider options `ssh_key`/`ssh_keys`, else the
/// configured `ssh_key_names`. Lambda requires exactly one.
///
/// # Errors
/// `Validation` saying how to set a key when none is given, or naming the keys when
/// more than one is.
pub fn ssh_key_names(req: &ComputeRequest, configured: &[String]) -> Result<Vec<String>> {
    let mut names = opt_list(req, "ssh_key")?;
    names.extend(opt_list(req, "ssh_keys")?);
    if names.is_empty() {
        names = configured.to_vec();
    }
    names.dedup();
    match names.len() {
        0 => Err(Error::validation(
            "provider_opts.ssh_key",
            "Lambda needs the name of an SSH key on your account to launch an instance: pass --provider-opt ssh_key=NAME, or set ssh_key_names = [\"NAME\"] under [providers.lambda] in atlas.toml (list keys with `atlas lambda ssh-keys list`)",
        )),
        1 => Ok(names),
        _ => Err(Error::validation(
            "provider_opts.ssh_key",
            format!(
                "Lambda accepts exactly one SSH key per launch, got {}; choose one with --provider-opt ssh_key=NAME",
                names.join(", ")
            ),
        )),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The cloud-init user-data script that runs `req.image` as a Docker container on the VM.
///
/// Lambda launches VM images, not containers. Lambda Stack (the default image) ships
/// Docker and the NVIDIA container toolkit, so the script waits for Docker, writes the
/// environment (the request's env plus minted auth credentials) to a root-only env file,
/// and starts the container with every GPU, restarting unless stopped. Each requested
/// port is published on the same host port (`-p 8000:8000`, `/udp` for UDP), except 22,
/// which is the VM's own SSH.
///
/// # Errors
/// `Validation` naming `env` when a value holds a newline (Docker env files are one
/// variable per line).
pub fn container_script(req: &ComputeRequest, env: &BTreeMap<String, String>) -> Result<String> {
    let file = format!("/etc/cloud-atlas/{}.env", req.launch_id);
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# cloud-atlas: run the container of launch {}\n",
        req.launch_name()
    ));
    s.push_str("set -euo pipefail\numask 077\nmkdir -p /etc/cloud-atlas\n");
    s.push_str(&format!("cat > {file} <<'ATLAS_ENV_EOF'\n"));
    for (k, v) in env {
        if v.contains('\n') || v.contains('\r') {
            return Err(Error::validation(
                "env",
                format!("the value of {k} contains a line break, which Lambda container runs cannot pass"),
            ));
        }
        s.push_str(&format!("{k}={v}\n"));
    }
    s.push_str("ATLAS_ENV_EOF\n");
    s.push_str("for _ in $(seq 1 90); do docker info >/dev/null 2>&1 && break; sleep 2; done\n");
    let mut cmd = format!(
        "docker run -d --restart unless-stopped --name atlas-{} --env-file {file}",
        req.launch_id
    );
    if req.wants_gpu() {
        cmd.push_str(" --gpus all");
    }
    for p in req.ports.iter().filter(|p| p.port != 22) {
        match p.protocol {
            Protocol::Udp => cmd.push_str(&format!(" -p {0}:{0}/udp", p.port)),
            _ => cmd.push_str(&format!(" -p {0}:{0}", p.port)),
        }
    }
    cmd.push(' ');
    cmd.push_str(&shell_quote(&req.image));
    if !req.command.is_empty() {
        // As `docker run IMAGE CMD…`: the command replaces the image's CMD.
        cmd.push(' ');
        cmd.push_str(&deadline::shell_join(&req.command));
    }
    s.push_str(&cmd);
    s.push('\n');
    Ok(s)
}

/// The cloud-init user-data script that runs `req.command` on a plain VM
/// ([`VM_ONLY_IMAGE`]) as root, in the background, its output in
/// `/var/log/cloud-atlas-command.log`.
pub fn vm_command_script(req: &ComputeRequest) -> String {
    format!(
        "#!/bin/sh\n# cloud-atlas: run the command of launch {}\nnohup {} >/var/log/cloud-atlas-command.log 2>&1 </dev/null &\n",
        req.launch_name(),
        deadline::shell_join(&req.command)
    )
}

/// Where a launch goes: instance type, region and SSH keys (chosen by the provider).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchTarget {
    /// Instance type name.
    pub instance_type: String,
    /// Region code.
    pub region: String,
    /// SSH key names (exactly one today).
    pub ssh_key_names: Vec<String>,
}

impl LaunchTarget {
    /// A target.
    pub fn new(
        instance_type: impl Into<String>,
        region: impl Into<String>,
        ssh_key_names: Vec<String>,
    ) -> LaunchTarget {
        LaunchTarget {
            instance_type: instance_type.into(),
            region: region.into(),
            ssh_key_names,
        }
    }
}

/// The `InstanceLaunchRequest` body.
///
/// - `name` is `req.launch_name()` and the tags carry the launch id (see [`tags`]), so an
///   ambiguous launch is found again by listing;
/// - `image`: `req.image` is a container image run by [`container_script`] through
///   `user_data`; [`VM_ONLY_IMAGE`] (`lambda-stack`) launches the plain VM. The VM image
///   itself comes from provider option `vm_image_family` or `vm_image_id` (Lambda's
///   `image` field; default Lambda Stack). Provider option `user_data` sends your own
///   cloud-init instead, and then needs `--image lambda-stack`;
/// - file systems from `network_volume_id` and provider option `file_systems` (names).
///
/// # Errors
/// `Validation` naming the offending field or option.
pub fn launch_body(
    req: &ComputeRequest,
    target: &LaunchTarget,
    env: &BTreeMap<String, String>,
) -> Result<Value> {
    let mut body = json!({
        "region_name": target.region,
        "instance_type_name": target.instance_type,
        "ssh_key_names": target.ssh_key_names,
        "name": req.launch_name(),
        "tags": tags(req)?,
    });
    let mut fs = opt_list(req, "file_systems")?;
    if let Some(v) = &req.network_volume_id {
        fs.insert(0, v.clone());
    }
    fs.dedup();
    if !fs.is_empty() {
        body["file_system_names"] = json!(fs);
    }
    match (req.opt_str("vm_image_id"), req.opt_str("vm_image_family")) {
        (Some(_), Some(_)) => {
            return Err(Error::validation(
                "provider_opts.vm_image_id",
                "give vm_image_id or vm_image_family, not both",
            ))
        }
        (Some(id), None) => body["image"] = json!({ "id": id }),
        (None, Some(family)) => body["image"] = json!({ "family": family }),
        (None, None) => {}
    }
    // A VM bills until it is terminated through the API, and the account key never goes
    // onto a machine: nothing there can end it, so a max runtime is refused.
    deadline::machine_command(NAME, req, None)?;
    let vm_only = req.image == VM_ONLY_IMAGE;
    let user_data = match req.opt_str("user_data") {
        Some(_) if !vm_only => {
            return Err(Error::validation(
                "provider_opts.user_data",
                format!("your own user_data replaces the container run, so it needs --image {VM_ONLY_IMAGE} (got {:?})", req.image),
            ))
        }
        Some(_) if !req.command.is_empty() => {
            return Err(Error::validation(
                "provider_opts.user_data",
                "your own user_data replaces the command run; give the command or user_data, not both",
            ))
        }
        Some(u) => Some(u.to_string()),
        None if vm_only && req.command.is_empty() => None,
        None if vm_only => Some(vm_command_script(req)),
        None => Some(container_script(req, env)?),
    };
    if let Some(u) = user_data {
        if u.len() > USER_DATA_MAX {
            return Err(Error::validation(
                "provider_opts.user_data",
                "Lambda accepts at most 1 MB of user data",
            ));
        }
        body["user_data"] = json!(u);
    }
    Ok(body)
}

/// The compute a launch just created, from what is known before Lambda reports it
/// (status `provisioning`, no IP yet).
pub fn launched(
    id: &str,
    req: &ComputeRequest,
    target: &LaunchTarget,
    instance_type: Option<&InstanceType>,
) -> Compute {
    let mut c = Compute::new(id, NAME, ComputeStatus::Provisioning);
    c.name = Some(req.launch_name());
    c.region = Some(target.region.clone());
    c.image = Some(req.image.clone());
    c.gpu = req.gpu;
    c.gpu_count = req.gpu_count;
    if let Some(t) = instance_type {
        c.gpu = c.gpu.or_else(|| t.gpu());
        c.gpu_count = t.specs.gpus;
        c.cost_per_hour = Some(t.price_per_hour());
    }
    c.labels = req.labels.clone();
    c.labels
        .insert(LAUNCH_ID_LABEL.to_string(), req.launch_id.clone());
    c.ports = port_bindings(None, &req.ports);
    c.raw = json!({"instance_ids": [id], "instance_type_name": target.instance_type, "region_name": target.region});
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AuthMode;

    fn sample(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/lambda/samples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn spec() -> Value {
        let path = format!(
            "{}/tests/fixtures/lambda/cloud-api-1.8.3.openapi.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn statuses() {
        assert_eq!(status("booting"), ComputeStatus::Starting);
        assert_eq!(status("active"), ComputeStatus::Running);
        assert_eq!(status("terminating"), ComputeStatus::Terminated);
        assert_eq!(status("preempted"), ComputeStatus::Terminated);
        assert_eq!(
            status("unhealthy"),
            ComputeStatus::Other("unhealthy".into())
        );
    }

    #[test]
    fn catalog_from_sample_maps_every_gpu_type() {
        let cat = catalog(&sample("m_instance_types_response.json")["data"]).unwrap();
        assert_eq!(cat.len(), 20);
        let by = |n: &str| cat.iter().find(|e| e.instance_type.name == n).unwrap();
        let expect = [
            ("gpu_1x_gh200", Some(Gpu::GH200)),
            ("gpu_8x_b200_sxm6", Some(Gpu::B200)),
            ("gpu_8x_h100_sxm5", Some(Gpu::H100_SXM)),
            ("gpu_1x_h100_pcie", Some(Gpu::H100_PCIE)),
            ("gpu_8x_a100_80gb_sxm4", Some(Gpu::A100_SXM4_80G)),
            ("gpu_1x_a10", Some(Gpu::A10)),
            // One fragment, two form factors: the description decides.
            ("gpu_1x_a100", Some(Gpu::A100_PCIE_40G)),
            ("gpu_1x_a100_sxm4", Some(Gpu::A100_SXM4_40G)),
            ("gpu_8x_a100", Some(Gpu::A100_SXM4_40G)),
            ("gpu_4x_a6000", Some(Gpu::A6000)),
            // Quadro RTX 6000 (24 GB) is not the 48 GB RTX 6000 Ada.
            ("gpu_1x_rtx6000", None),
            // "Tesla V100 (16 GB)" with no form factor: the open 16 GB V100.
            ("gpu_8x_v100", Some(Gpu::V100_16G)),
            ("cpu_4x_general", None),
        ];
        for (name, gpu) in expect {
            assert_eq!(by(name).instance_type.gpu(), gpu, "{name}");
        }
        let a10 = gpu_type(by("gpu_1x_a10"));
        assert_eq!(a10.gpu, Some(Gpu::A10));
        assert_eq!(a10.price_on_demand, Some(0.75));
        assert_eq!(a10.regions, vec!["us-east-1", "us-west-1"]);
        assert_eq!(a10.available, Some(true));
        assert_eq!(a10.memory_gb, Some(24));
        let gh = gpu_type(by("gpu_1x_gh200"));
        assert_eq!(gh.available, Some(false));
        assert!(gh.regions.is_empty());
        let cpu = gpu_type(by("cpu_4x_general"));
        assert_eq!((cpu.gpu, cpu.gpu_count), (None, 0));
        let h8 = gpu_type(by("gpu_8x_h100_sxm5"));
        assert_eq!(h8.gpu_count, 8);
        assert_eq!(h8.price_on_demand, Some(23.92));
    }

    #[test]
    fn every_lambda_fragment_names_an_instance_type_in_the_sample() {
        let cat = catalog(&sample("m_instance_types_response.json")["data"]).unwrap();
        for g in Gpu::for_provider(NAME) {
            for frag in g.provider_ids(NAME) {
                assert!(
                    cat.iter()
                        .any(|e| fragment(&e.instance_type.name) == Some(*frag)),
                    "{g}: no instance type ends in {frag}"
                );
            }
        }
        assert_eq!(instance_type_name(Gpu::A10, 1).unwrap(), "gpu_1x_a10");
        assert_eq!(
            instance_type_name(Gpu::H100, 8).unwrap(),
            "gpu_8x_h100_sxm5"
        );
        let e = instance_type_name(Gpu::RTX_4090, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
    }

    #[test]
    fn spec_examples_translate() {
        let s = spec();
        let ex = &s["components"]["schemas"]["InstanceTypes"]["example"];
        let cat = catalog(ex).unwrap();
        assert_eq!(cat[0].instance_type.gpu(), Some(Gpu::GH200));
        assert_eq!(cat[0].region_names(), vec!["us-west-1"]);
        let term = &s["paths"]["/api/v1/instance-operations/terminate"]["post"]["responses"]["200"]
            ["content"]["application/json"]["schema"]["properties"]["data"]["examples"][0]
            ["terminated_instances"][0];
        let c = compute(term).unwrap();
        assert_eq!(c.status, ComputeStatus::Terminated);
        // gpu_8x_a100 is "A100 (40 GB SXM4)".
        assert_eq!(c.gpu, Some(Gpu::A100_SXM4_40G));
        assert_eq!(c.gpu_count, 8);
        assert_eq!(c.labels.get("key2").map(String::as_str), Some("value2"));
    }

    #[test]
    fn instance_sample_translates_and_hides_the_jupyter_token() {
        let list = sample("m_instances_response.json");
        let c = compute(&list["data"][0]).unwrap();
        assert_eq!(c.id, "0920582c7ff041399e34823a0be62549");
        assert_eq!(c.status, ComputeStatus::Starting);
        assert_eq!(c.public_ip.as_deref(), Some("198.51.100.2"));
        assert_eq!(c.region.as_deref(), Some("us-west-1"));
        assert_eq!(c.gpu, Some(Gpu::H100_SXM));
        assert_eq!(c.gpu_count, 8);
        assert_eq!(c.cost_per_hour, Some(35.92));
        assert_eq!(c.name.as_deref(), Some("My Instance"));
        let raw = c.raw.to_string();
        assert!(!raw.contains("03b7d30d9d3e4d8fa41657bc0d478c1b"), "{raw}");
        assert!(!format!("{c:?}").contains("03b7d30d9d3e4d8fa41657bc0d478c1b"));
        let get = sample("m_instance_get_response.json");
        compute(&get["data"]).unwrap();
        let restart = sample("m_restart_response.json");
        compute(&restart["data"]["restarted_instances"][0]).unwrap();
        // The client these samples come from calls terminate "stop" and launch "start".
        let term = sample("m_stop_response.json");
        let t = compute(&term["data"]["terminated_instances"][0]).unwrap();
        assert_eq!(t.status, ComputeStatus::Terminated);
        let launch = sample("m_start_response.json");
        assert_eq!(
            launch["data"]["instance_ids"][0],
            "0920582c7ff041399e34823a0be62549"
        );
    }

    #[test]
    fn tags_round_trip_launch_id_image_and_ports() {
        let req = ComputeRequest::builder()
            .gpu(Gpu::A10)
            .image("ghcr.io/acme/app:1")
            .port("8000/http")
            .port("9000/udp")
            .label("team_name", "ml")
            .build()
            .unwrap();
        let t = tags(&req).unwrap();
        let mut inst = sample("m_instance_get_response.json")["data"].clone();
        inst["tags"] = json!(t);
        inst["status"] = json!("active");
        let c = compute(&inst).unwrap();
        assert_eq!(c.labels.get(LAUNCH_ID_LABEL), Some(&req.launch_id));
        assert_eq!(c.labels.get("team-name").map(String::as_str), Some("ml"));
        assert_eq!(c.image.as_deref(), Some("ghcr.io/acme/app:1"));
        assert_eq!(c.http_url(), Some("http://198.51.100.2:8000"));
        assert_eq!(c.ports[1].url.as_deref(), Some("udp://198.51.100.2:9000"));
        let bad = ComputeRequest::builder()
            .image("i")
            .label("Bad Key!", "v")
            .build()
            .unwrap();
        let e = tags(&bad).unwrap_err();
        assert!(e.message().starts_with("labels"), "{e}");
    }

    #[test]
    fn ssh_keys_come_from_options_then_config() {
        let base = || ComputeRequest::builder().gpu(Gpu::A10).image("i");
        let r = base().provider_opt("ssh_key", "mine").build().unwrap();
        assert_eq!(ssh_key_names(&r, &["cfg".into()]).unwrap(), vec!["mine"]);
        let r = base().build().unwrap();
        assert_eq!(ssh_key_names(&r, &["cfg".into()]).unwrap(), vec!["cfg"]);
        let e = ssh_key_names(&r, &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("--provider-opt ssh_key=NAME"), "{e}");
        assert!(e.message().contains("ssh_key_names"), "{e}");
        let r = base()
            .provider_opt("ssh_keys", json!(["a", "b"]))
            .build()
            .unwrap();
        assert!(ssh_key_names(&r, &[])
            .unwrap_err()
            .message()
            .contains("exactly one"));
        let r = base().provider_opt("ssh_key", 7).build().unwrap();
        assert_eq!(
            ssh_key_names(&r, &[]).unwrap_err().kind(),
            ErrorKind::Validation
        );
    }

    #[test]
    fn launch_body_runs_the_container_with_auth_env() {
        let req = ComputeRequest::builder()
            .gpu(Gpu::A10)
            .image("ghcr.io/acme/it's:1")
            .port("8000/http")
            .port("22/tcp")
            .env("MODEL", "llama")
            .auth(AuthMode::Bearer)
            .network_volume_id("my-filesystem")
            .provider_opt("vm_image_family", "lambda-stack-24-04")
            .build()
            .unwrap();
        let (_, mut env) = crate::auth::AuthHandle::mint(req.auth);
        env.extend(req.env.clone());
        let target = LaunchTarget::new("gpu_1x_a10", "us-west-1", vec!["k".into()]);
        let b = launch_body(&req, &target, &env).unwrap();
        assert_eq!(b["instance_type_name"], "gpu_1x_a10");
        assert_eq!(b["region_name"], "us-west-1");
        assert_eq!(b["ssh_key_names"], json!(["k"]));
        assert_eq!(b["name"], json!(req.launch_name()));
        assert_eq!(b["file_system_names"], json!(["my-filesystem"]));
        assert_eq!(b["image"], json!({"family": "lambda-stack-24-04"}));
        let ud = b["user_data"].as_str().unwrap();
        assert!(ud.starts_with("#!/bin/bash\n"));
        assert!(ud.contains("MODEL=llama\n"));
        assert!(ud.contains("ATLAS_PRESHARED_KEY="));
        assert!(ud.contains("--gpus all"));
        assert!(ud.contains(" -p 8000:8000 "), "{ud}");
        assert!(!ud.contains("-p 22:22"), "{ud}");
        assert!(ud.contains(r"'ghcr.io/acme/it'\''s:1'"), "{ud}");
        assert!(b["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == TAG_LAUNCH_ID && t["value"] == json!(req.launch_id)));
    }

    #[test]
    fn vm_only_and_own_user_data() {
        let target = LaunchTarget::new("gpu_1x_a10", "us-west-1", vec!["k".into()]);
        let env = BTreeMap::new();
        let vm = ComputeRequest::builder()
            .gpu(Gpu::A10)
            .image(VM_ONLY_IMAGE)
            .build()
            .unwrap();
        assert!(launch_body(&vm, &target, &env)
            .unwrap()
            .get("user_data")
            .is_none());
        let own = ComputeRequest::builder()
            .gpu(Gpu::A10)
            .image(VM_ONLY_IMAGE)
            .provider_opt("user_data", "#cloud-config\n")
            .build()
            .unwrap();
        assert_eq!(
            launch_body(&own, &target, &env).unwrap()["user_data"],
            "#cloud-config\n"
        );
        let clash = ComputeRequest::builder()
            .gpu(Gpu::A10)
            .image("img")
            .provider_opt("user_data", "#cloud-config\n")
            .build()
            .unwrap();
        let e = launch_body(&clash, &target, &env).unwrap_err();
        assert!(e.message().starts_with("provider_opts.user_data"), "{e}");
        let nl = ComputeRequest::builder()
            .image("img")
            .env("A", "x\ny")
            .build()
            .unwrap();
        assert!(launch_body(&nl, &target, &nl.env)
            .unwrap_err()
            .message()
            .starts_with("env"));
    }

    #[test]
    fn the_command_runs_in_the_container_or_on_the_vm_and_a_max_runtime_is_refused() {
        let target = LaunchTarget::new("gpu_1x_a10", "us-west-1", vec!["k".into()]);
        let env = BTreeMap::new();
        let b = |image: &str| {
            ComputeRequest::builder()
                .gpu(Gpu::A10)
                .image(image)
                .command(["python", "-c", "print('hi')"])
        };
        let ud = launch_body(&b("img").build().unwrap(), &target, &env).unwrap();
        let script = ud["user_data"].as_str().unwrap();
        assert!(
            script.contains(r#"'img' python -c 'print('\''hi'\'')'"#),
            "{script}"
        );
        let vm = launch_body(&b(VM_ONLY_IMAGE).build().unwrap(), &target, &env).unwrap();
        let script = vm["user_data"].as_str().unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.contains(r#"nohup python -c 'print('\''hi'\'')' >"#),
            "{script}"
        );
        let own = b(VM_ONLY_IMAGE)
            .provider_opt("user_data", "#cloud-config\n")
            .build()
            .unwrap();
        let e = launch_body(&own, &target, &env).unwrap_err();
        assert!(e.message().starts_with("provider_opts.user_data"), "{e}");
        // Nothing on a Lambda VM can end it: a max runtime is refused before launch.
        let max = b("img")
            .max_runtime(std::time::Duration::from_secs(3600))
            .build()
            .unwrap();
        let e = launch_body(&max, &target, &env).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.to_string().contains("orchestrator"), "{e}");
    }

    #[test]
    fn launched_compute_reports_what_is_known() {
        let req = ComputeRequest::builder()
            .gpu(Gpu::A10)
            .image("img")
            .port("8000/http")
            .build()
            .unwrap();
        let cat = catalog(&sample("m_instance_types_response.json")["data"]).unwrap();
        let t = &cat
            .iter()
            .find(|e| e.instance_type.name == "gpu_1x_a10")
            .unwrap()
            .instance_type;
        let target = LaunchTarget::new("gpu_1x_a10", "us-east-1", vec!["k".into()]);
        let c = launched("abc", &req, &target, Some(t));
        assert_eq!(c.status, ComputeStatus::Provisioning);
        assert_eq!(c.cost_per_hour, Some(0.75));
        assert_eq!(c.ports[0].url, None);
        assert_eq!(c.name, Some(req.launch_name()));
    }
}
