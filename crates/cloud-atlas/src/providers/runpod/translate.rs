//! Pure translation between RunPod's native JSON and the spec types.
//!
//! Tested from the REST v2 spec's own examples and the serverless docs' samples
//! (`tests/fixtures/runpod/`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::logs::LogLine;
use crate::error::{Error, Result};
use crate::spec::deadline::{self, SelfEnd};
use crate::spec::{
    CloudType, Compute, ComputeRequest, ComputeStatus, EndpointHealth, Gpu, GpuChoice, GpuType,
    Job, JobStatus, PortBinding, Protocol, LAUNCH_ID_LABEL,
};

/// Provider name.
pub const NAME: &str = "runpod";

/// CPU flavor used for CPU-only pods unless `--provider-opt cpu_flavor=…` names another.
pub const DEFAULT_CPU_FLAVOR: &str = "cpu3c";

/// Mount path of a persistent or network volume unless `volume_path` is given.
pub const DEFAULT_VOLUME_PATH: &str = "/workspace";

/// Provider options `spawn` understands (`--provider-opt KEY=VALUE`).
pub const PROVIDER_OPTS: &[&str] = &[
    "gpu_id",
    "cpu_flavor",
    "volume_path",
    "args",
    "registry",
    "start_ssh",
    "start_jupyter",
    "global_networking",
    "min_cuda_version",
    "allowed_cuda_versions",
];

fn opt_bool(req: &ComputeRequest, key: &str) -> Result<Option<bool>> {
    match req.provider_opts.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(other) => Err(Error::validation(
            &format!("provider_opts.{key}"),
            format!("{other} is not allowed; allowed: true, false"),
        )),
    }
}

/// Most GPUs one RunPod pod holds (the spec sets no maximum; RunPod's machines top out at 8).
pub const MAX_GPUS_PER_POD: u32 = 8;

/// The `CreatePodRequest` body for `req`, with `env` (the request's env merged with the
/// minted auth env) as the container environment.
///
/// # Errors
/// `Validation` naming the field for what RunPod cannot express: a GPU RunPod does not
/// offer, more than [`MAX_GPUS_PER_POD`] GPUs, UDP ports, a persistent volume under 10 GB or on a CPU pod, both a persistent
/// and a network volume, a vCPU count that is not a power of two ≥ 2, an unknown
/// provider option. `Unsupported` for `spot` (REST v2 has no interruptible pods).
pub fn create_body(req: &ComputeRequest, env: &BTreeMap<String, String>) -> Result<Value> {
    if req.spot {
        return Err(Error::unsupported(
            NAME,
            "spawn",
            "RunPod REST v2 has no interruptible (spot) pods; drop --spot",
        ));
    }
    for k in req.provider_opts.keys() {
        if !PROVIDER_OPTS.contains(&k.as_str()) {
            return Err(Error::validation(
                &format!("provider_opts.{k}"),
                format!(
                    "is not a RunPod option; allowed: {}",
                    PROVIDER_OPTS.join(", ")
                ),
            ));
        }
    }
    let mut body = Map::new();
    body.insert("name".into(), json!(req.launch_name()));
    body.insert("image".into(), json!(req.image));
    match req.gpu_choice() {
        Some(choice) => {
            if req.gpu_count > MAX_GPUS_PER_POD {
                return Err(Error::validation(
                    "gpu_count",
                    format!(
                        "{} is more than a RunPod pod holds; allowed: 1-{MAX_GPUS_PER_POD}",
                        req.gpu_count
                    ),
                ));
            }
            // RunPod takes one gpuTypeId: the canonical GPU's preferred id (every id of
            // the GPU matches it), or the native id as given.
            let id = match (req.opt_str("gpu_id"), choice) {
                (Some(id), _) => id.to_string(),
                (None, GpuChoice::Native(id)) => id,
                (None, GpuChoice::Canonical(g)) => g.require_provider_id(NAME)?.to_string(),
            };
            body.insert("gpu".into(), json!({"id": id, "count": req.gpu_count}));
        }
        None => {
            let vcpus = req.cpus.unwrap_or(2);
            if vcpus < 2 || !vcpus.is_power_of_two() {
                return Err(Error::validation(
                    "cpus",
                    format!("{vcpus} is not allowed on RunPod CPU pods; use a power of two ≥ 2 (2, 4, 8, 16, 32)"),
                ));
            }
            let flavor = req.opt_str("cpu_flavor").unwrap_or(DEFAULT_CPU_FLAVOR);
            body.insert("cpu".into(), json!({"id": flavor, "vcpuCount": vcpus}));
        }
    }
    match req.cloud_type {
        CloudType::Secure => {
            body.insert("cloud".into(), json!("SECURE"));
        }
        CloudType::Community => {
            body.insert("cloud".into(), json!("COMMUNITY"));
        }
        _ => {}
    }
    if !req.ports.is_empty() {
        let mut ports = Vec::new();
        for p in &req.ports {
            let proto = match p.protocol {
                Protocol::Http => "http",
                Protocol::Tcp => "tcp",
                _ => {
                    return Err(Error::validation(
                        "ports",
                        format!("{p} is not allowed; RunPod exposes http and tcp ports only"),
                    ))
                }
            };
            ports.push(json!(format!("{}/{proto}", p.port)));
        }
        body.insert("ports".into(), Value::Array(ports));
    }
    if !env.is_empty() {
        body.insert("env".into(), json!(env));
    }
    if let Some(d) = req.container_disk_gb {
        body.insert("disk".into(), json!(d));
    }
    let path = req.opt_str("volume_path").unwrap_or(DEFAULT_VOLUME_PATH);
    match (req.volume_gb, &req.network_volume_id) {
        (Some(_), Some(_)) => {
            return Err(Error::validation(
                "volume_gb",
                "RunPod pods take a persistent volume or a network volume, not both; drop one",
            ))
        }
        (Some(size), None) => {
            if size < 10 {
                return Err(Error::validation(
                    "volume_gb",
                    format!("{size} is too small; RunPod persistent volumes are at least 10 GB"),
                ));
            }
            if !req.wants_gpu() {
                return Err(Error::validation(
                    "volume_gb",
                    "RunPod CPU pods cannot have a persistent volume; use a network volume",
                ));
            }
            body.insert(
                "mounts".into(),
                json!({"persistent": {"size": size, "path": path}}),
            );
        }
        (None, Some(vol)) => {
            body.insert(
                "mounts".into(),
                json!({"network": [{"volumeId": vol, "path": path}]}),
            );
        }
        (None, None) => {}
    }
    if let Some(t) = &req.template_id {
        body.insert("templateId".into(), json!(t));
    }
    if !req.region_hints.is_empty() {
        body.insert("dataCenterIds".into(), json!(req.region_hints));
    }
    // v2's only command field is `args` (one string, passed to the image's entrypoint);
    // a max runtime wraps the command so the pod removes itself (spec::deadline).
    let argv = deadline::machine_command(NAME, req, Some(SelfEnd::RunPod))?;
    match (req.opt_str("args"), argv.is_empty()) {
        (Some(_), false) => {
            return Err(Error::validation(
                "provider_opts.args",
                "give the command (`-- CMD ARGS…`) or provider option args, not both",
            ))
        }
        (Some(a), true) => {
            body.insert("args".into(), json!(a));
        }
        (None, false) => {
            body.insert("args".into(), json!(deadline::shell_join(&argv)));
        }
        (None, true) => {}
    }
    if let Some(r) = req.opt_str("registry") {
        body.insert("registry".into(), json!(r));
    }
    for (opt, field) in [
        ("start_ssh", "startSsh"),
        ("start_jupyter", "startJupyter"),
        ("global_networking", "globalNetworking"),
    ] {
        if let Some(b) = opt_bool(req, opt)? {
            body.insert(field.into(), json!(b));
        }
    }
    if req.wants_gpu() {
        if let Some(v) = req.opt_str("min_cuda_version") {
            body["gpu"]["minCudaVersion"] = json!(v);
        }
        if let Some(v) = req.opt_str("allowed_cuda_versions") {
            let list: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            body["gpu"]["allowedCudaVersions"] = json!(list);
        }
    }
    Ok(Value::Object(body))
}

/// Native pod status → spec status.
pub fn status(native: &str) -> ComputeStatus {
    match native {
        "PROVISIONING" => ComputeStatus::Provisioning,
        "STARTING" => ComputeStatus::Starting,
        "RUNNING" => ComputeStatus::Running,
        "EXITED" => ComputeStatus::Stopped,
        "ERROR" => ComputeStatus::Failed,
        "TERMINATED" => ComputeStatus::Terminated,
        other => ComputeStatus::Other(other.to_string()),
    }
}

/// The public URL RunPod's proxy gives an HTTP port of a pod.
pub fn proxy_url(pod_id: &str, port: u16) -> String {
    format!("https://{pod_id}-{port}.proxy.runpod.net")
}

fn launch_id_of(name: &str) -> Option<&str> {
    let (_, tail) = name.rsplit_once('-')?;
    (tail.len() == 12 && tail.chars().all(|c| c.is_ascii_hexdigit())).then_some(tail)
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// A `Pod` object → [`Compute`].
///
/// HTTP ports get `https://{id}-{port}.proxy.runpod.net`; TCP ports get
/// `tcp://ip:public` from the live mappings in `runtime.ports` (none until running).
pub fn compute(pod: &Value) -> Compute {
    let id = pod["id"].as_str().unwrap_or_default().to_string();
    let mut c = Compute::new(
        id.clone(),
        NAME,
        status(pod["status"].as_str().unwrap_or("")),
    );
    c.name = pod["name"].as_str().map(str::to_string);
    c.image = pod["image"].as_str().map(str::to_string);
    c.region = pod["dataCenterId"].as_str().map(str::to_string);
    c.cost_per_hour = pod["cost"].as_f64();
    c.created_at = parse_time(&pod["createdAt"]);
    if let Some(gpu) = pod.get("gpu").filter(|g| g.is_object()) {
        c.gpu = gpu["id"]
            .as_str()
            .and_then(|g| Gpu::from_provider_id(NAME, g));
        c.gpu_count = gpu["count"].as_u64().unwrap_or(1) as u32;
    }
    let runtime_ports: &[Value] = pod
        .pointer("/runtime/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    c.public_ip = runtime_ports
        .iter()
        .find_map(|p| p["ip"].as_str().filter(|s| !s.is_empty()))
        .map(str::to_string);
    for spec in pod["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Some((port, proto)) = spec.as_str().and_then(|s| s.split_once('/')) else {
            continue;
        };
        let Ok(port) = port.trim().parse::<u16>() else {
            continue;
        };
        let live = runtime_ports
            .iter()
            .find(|p| p["private"].as_u64() == Some(u64::from(port)) && p["type"] == proto);
        let external = live
            .and_then(|p| p["public"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        match proto.trim() {
            "http" => c.ports.push(PortBinding::new(
                port,
                external,
                Protocol::Http,
                Some(proxy_url(&id, port)),
            )),
            "tcp" => {
                let url = match (live.and_then(|p| p["ip"].as_str()), external) {
                    (Some(ip), Some(ext)) => Some(format!("tcp://{ip}:{ext}")),
                    _ => None,
                };
                c.ports
                    .push(PortBinding::new(port, external, Protocol::Tcp, url));
            }
            _ => {}
        }
    }
    if let Some(lid) = c.name.as_deref().and_then(launch_id_of) {
        c.labels
            .insert(LAUNCH_ID_LABEL.to_string(), lid.to_string());
    }
    c.set_raw(pod.clone());
    c
}

/// A catalog `GpuType` object → [`GpuType`].
///
/// Prices are per GPU per hour: `price.secure` is the on-demand (secure cloud) price,
/// `price.community` the community price. REST v2 quotes no spot price. Stock is the
/// `availability` level (`NONE`, `LOW`, `MEDIUM`, `HIGH`) when it was requested.
pub fn gpu_type(v: &Value) -> GpuType {
    let id = v["id"].as_str().unwrap_or_default();
    let mut g = GpuType::new(NAME, id, v["name"].as_str().unwrap_or(id));
    g.gpu = Gpu::from_provider_id(NAME, id);
    g.memory_gb = v["memory"].as_u64().map(|m| m as u32);
    if v["secure"].as_bool() != Some(false) {
        g.price_on_demand = v.pointer("/price/secure").and_then(Value::as_f64);
    }
    if v["community"].as_bool() != Some(false) {
        g.price_community = v.pointer("/price/community").and_then(Value::as_f64);
    }
    if let Some(level) = v["availability"].as_str() {
        g.available = Some(level != "NONE");
        g.stock = Some(level.to_string());
    } else if v["secure"].as_bool() == Some(false) && v["community"].as_bool() == Some(false) {
        g.available = Some(false);
    }
    g.regions = v["dataCenters"]
        .as_array()
        .map(|dcs| {
            dcs.iter()
                .filter(|dc| dc["availability"] != "NONE")
                .filter_map(|dc| dc["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    g.raw = v.clone();
    g
}

/// A serverless job response (`run`, `runsync`, `status`, `cancel`, `retry`) → [`Job`].
pub fn job(endpoint_id: &str, v: &Value) -> Job {
    let mut j = Job::new(
        v["id"].as_str().unwrap_or_default(),
        endpoint_id,
        JobStatus::parse(v["status"].as_str().unwrap_or("")),
    );
    j.output = v.get("output").filter(|o| !o.is_null()).cloned();
    j.error = match v.get("error") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    j.delay_time_ms = v["delayTime"].as_u64();
    j.execution_time_ms = v["executionTime"].as_u64();
    j.raw = v.clone();
    j
}

/// One poll of `/stream/{job_id}`: the job status when the body carries one, the chunk
/// outputs in order, and the error message when the job failed.
///
/// Both shapes are read: runpod-python's `{"status", "stream": [{"output": …}]}` and the
/// docs sample, a bare array of `{"output": …, "metrics": …}` chunks.
pub fn stream_poll(v: &Value) -> (Option<JobStatus>, Vec<Value>, Option<String>) {
    let (status, items) = match v {
        Value::Array(items) => (None, items.as_slice()),
        _ => (
            v["status"].as_str().map(JobStatus::parse),
            v["stream"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        ),
    };
    let chunks = items
        .iter()
        .map(|c| c.get("output").cloned().unwrap_or_else(|| c.clone()))
        .collect();
    let error = match v.get("error") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    (status, chunks, error)
}

/// A `/health` response → [`EndpointHealth`].
pub fn health(v: &Value) -> EndpointHealth {
    EndpointHealth {
        jobs: v["jobs"].as_object().cloned().unwrap_or_default(),
        workers: v["workers"].as_object().cloned().unwrap_or_default(),
        raw: v.clone(),
    }
}

/// One server-sent log event (`id:` + JSON `data:`) → [`LogLine`].
///
/// A `data` that is not the documented JSON is kept as the line itself.
pub fn log_line(id: &str, data: &str) -> LogLine {
    let parsed: Option<Value> = serde_json::from_str(data).ok();
    match parsed.filter(Value::is_object) {
        Some(v) => LogLine {
            id: id.to_string(),
            ts: v["ts"].as_str().map(str::to_string),
            source: v["source"].as_str().map(str::to_string),
            line: v["line"].as_str().unwrap_or_default().to_string(),
        },
        None => LogLine {
            id: id.to_string(),
            ts: None,
            source: None,
            line: data.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::time::Duration;

    fn spec() -> Value {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/runpod/rest-v2.openapi.json"
        ))
        .unwrap()
    }

    fn example(spec: &Value, path: &str, method: &str, code: &str, name: &str) -> Value {
        let p = format!(
            "/paths/{}/{method}/responses/{code}/content/application~1json/examples/{name}/value",
            path.replace('/', "~1")
        );
        spec.pointer(&p)
            .unwrap_or_else(|| panic!("no example at {p}"))
            .clone()
    }

    fn sample(name: &str) -> Value {
        let text = match name {
            "run" => {
                include_str!("../../../tests/fixtures/runpod/samples/serverless-run.response.json")
            }
            "runsync" => include_str!(
                "../../../tests/fixtures/runpod/samples/serverless-runsync.response.json"
            ),
            "status" => include_str!(
                "../../../tests/fixtures/runpod/samples/serverless-status.response.json"
            ),
            "stream" => include_str!(
                "../../../tests/fixtures/runpod/samples/serverless-stream.response.json"
            ),
            "cancel" => include_str!(
                "../../../tests/fixtures/runpod/samples/serverless-cancel.response.json"
            ),
            "health" => include_str!(
                "../../../tests/fixtures/runpod/samples/serverless-health.response.json"
            ),
            _ => unreachable!("unknown sample {name}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn request() -> ComputeRequest {
        ComputeRequest::builder()
            .gpu(Gpu::RTX_4090)
            .image("runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404")
            .port("8000/http")
            .port("22/tcp")
            .env("A", "1")
            .container_disk_gb(50)
            .volume_gb(20)
            .region("US-KS-2")
            .cloud_type(CloudType::Secure)
            .launch_id("0123456789ab")
            .build()
            .unwrap()
    }

    #[test]
    fn gpu_ids_are_the_form_factor_asked_for_and_native_ids_pass_verbatim() {
        let env = BTreeMap::new();
        let body = |b: crate::spec::ComputeRequestBuilder| {
            create_body(&b.image("i").build().unwrap(), &env).unwrap()
        };
        let b = body(ComputeRequest::builder().gpu(Gpu::A100_SXM4_80G));
        assert_eq!(b["gpu"]["id"], "NVIDIA A100-SXM4-80GB");
        let b = body(ComputeRequest::builder().gpu(Gpu::A100_PCIE_80G));
        assert_eq!(b["gpu"]["id"], "NVIDIA A100 80GB PCIe");
        let b = body(ComputeRequest::builder().gpu(Gpu::RTX_5090).gpu_count(2));
        assert_eq!(
            b["gpu"],
            json!({"id": "NVIDIA GeForce RTX 5090", "count": 2})
        );
        let b = body(ComputeRequest::builder().native_gpu("NVIDIA RTX A4500"));
        assert_eq!(b["gpu"], json!({"id": "NVIDIA RTX A4500", "count": 1}));
        // RunPod sells no 40 GB A100: refused before any call, naming the native route.
        let e = create_body(
            &ComputeRequest::builder()
                .gpu(Gpu::A100_40G)
                .image("i")
                .build()
                .unwrap(),
            &env,
        )
        .unwrap_err();
        assert!(
            e.message().starts_with("gpu: ") && e.message().contains("native:"),
            "{e}"
        );
    }

    #[test]
    fn create_body_matches_the_spec_shape() {
        let req = request();
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let body = create_body(&req, &env).unwrap();
        assert_eq!(
            body,
            json!({
                "name": "atlas-0123456789ab",
                "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
                "gpu": {"id": "NVIDIA GeForce RTX 4090", "count": 1},
                "cloud": "SECURE",
                "ports": ["8000/http", "22/tcp"],
                "env": {"A": "1"},
                "disk": 50,
                "mounts": {"persistent": {"size": 20, "path": "/workspace"}},
                "dataCenterIds": ["US-KS-2"],
            })
        );
        // The spec's own createPod example uses the same GPU id and fields.
        let spec = spec();
        let ex = spec
            .pointer("/paths/~1v2~1pods/post/requestBody/content/application~1json/examples/gpuPod/value")
            .unwrap();
        assert_eq!(ex["gpu"], body["gpu"]);
        assert_eq!(ex["disk"], body["disk"]);
    }

    #[test]
    fn the_command_is_the_args_string_and_a_max_runtime_wraps_it() {
        let base = || {
            ComputeRequest::builder()
                .gpu(Gpu::RTX_4090)
                .image("img")
                .command(["python", "-c", "print('hi')"])
        };
        let env = BTreeMap::new();
        let plain = create_body(&base().build().unwrap(), &env).unwrap();
        assert_eq!(plain["args"], r#"python -c 'print('\''hi'\'')'"#);

        let req = base()
            .max_runtime(Duration::from_secs(3600))
            .build()
            .unwrap();
        let b = create_body(&req, &env).unwrap();
        let args = b["args"].as_str().unwrap();
        let want = deadline::shell_join(&deadline::wrap(
            &req.command,
            Duration::from_secs(3600),
            SelfEnd::RunPod,
        ));
        assert_eq!(args, want);
        assert!(args.starts_with("/bin/sh -c '"), "{args}");
        assert!(
            args.contains(" atlas-deadline 3600 10 runpod -- python -c "),
            "{args}"
        );

        // No command to wrap: refused before anything is sent.
        let no_cmd = ComputeRequest::builder()
            .gpu(Gpu::RTX_4090)
            .image("img")
            .max_runtime(Duration::from_secs(60))
            .build()
            .unwrap();
        let e = create_body(&no_cmd, &env).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        assert!(e.to_string().contains("-- CMD ARGS"), "{e}");
        // The command and provider option args are one field: not both.
        let both = base().provider_opt("args", "x").build().unwrap();
        let e = create_body(&both, &env).unwrap_err();
        assert!(e.message().starts_with("provider_opts.args"), "{e}");
    }

    #[test]
    fn create_body_options_and_refusals() {
        let req = ComputeRequest::builder()
            .gpu(Gpu::H100)
            .gpu_count(2)
            .image("img")
            .network_volume_id("vol_xyz")
            .template_id("30zmvf89kd")
            .cloud_type(CloudType::Community)
            .provider_opt("start_ssh", true)
            .provider_opt("min_cuda_version", "12.1")
            .provider_opt("volume_path", "/runpod-volume")
            .build()
            .unwrap();
        let b = create_body(&req, &BTreeMap::new()).unwrap();
        let nine = ComputeRequest::builder()
            .gpu(Gpu::H100)
            .gpu_count(MAX_GPUS_PER_POD + 1)
            .image("img")
            .build()
            .unwrap();
        let e = create_body(&nine, &BTreeMap::new()).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Validation);
        assert!(e.message().starts_with("gpu_count"), "{e}");
        assert_eq!(
            b["gpu"],
            json!({"id": "NVIDIA H100 80GB HBM3", "count": 2, "minCudaVersion": "12.1"})
        );
        assert_eq!(
            b["mounts"],
            json!({"network": [{"volumeId": "vol_xyz", "path": "/runpod-volume"}]})
        );
        assert_eq!(b["templateId"], "30zmvf89kd");
        assert_eq!(b["cloud"], "COMMUNITY");
        assert_eq!(b["startSsh"], true);
        assert!(b.get("env").is_none());

        let cpu = ComputeRequest::builder()
            .image("img")
            .cpus(4)
            .build()
            .unwrap();
        let b = create_body(&cpu, &BTreeMap::new()).unwrap();
        assert_eq!(b["cpu"], json!({"id": "cpu3c", "vcpuCount": 4}));
        assert!(b.get("gpu").is_none());

        let bad = |b: crate::spec::ComputeRequestBuilder, field: &str, kind: ErrorKind| {
            let e = create_body(&b.build().unwrap(), &BTreeMap::new()).unwrap_err();
            assert_eq!(e.kind(), kind, "{e}");
            if kind == ErrorKind::Validation {
                assert!(e.message().starts_with(field), "{field}: {e}");
            }
        };
        bad(
            ComputeRequest::builder().image("i").cpus(3),
            "cpus",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder().image("i").gpu(Gpu::A10),
            "gpu",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder()
                .image("i")
                .gpu(Gpu::L4)
                .port("53/udp"),
            "ports",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder()
                .image("i")
                .gpu(Gpu::L4)
                .volume_gb(5),
            "volume_gb",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder().image("i").cpus(2).volume_gb(20),
            "volume_gb",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder()
                .image("i")
                .gpu(Gpu::L4)
                .volume_gb(20)
                .network_volume_id("v"),
            "volume_gb",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder()
                .image("i")
                .gpu(Gpu::L4)
                .provider_opt("bogus", 1),
            "provider_opts.bogus",
            ErrorKind::Validation,
        );
        bad(
            ComputeRequest::builder().image("i").gpu(Gpu::L4).spot(true),
            "",
            ErrorKind::Unsupported,
        );
    }

    #[test]
    fn pod_examples_translate() {
        let spec = spec();
        let list = example(&spec, "/v2/pods", "get", "200", "pods");
        let c = compute(&list["pods"][0]);
        assert_eq!(c.id, "7h9k2m4n6p");
        assert_eq!(c.status, ComputeStatus::Running);
        assert_eq!(c.gpu, Some(Gpu::RTX_4090));
        assert_eq!(c.gpu_count, 1);
        assert_eq!(c.cost_per_hour, Some(0.44));
        assert_eq!(c.region.as_deref(), Some("US-KS-2"));
        assert_eq!(c.public_ip.as_deref(), Some("195.26.233.3"));
        assert_eq!(
            c.http_url(),
            Some("https://7h9k2m4n6p-8888.proxy.runpod.net")
        );
        let tcp = c
            .ports
            .iter()
            .find(|p| p.protocol == Protocol::Tcp)
            .unwrap();
        assert_eq!(tcp.internal, 22);
        assert_eq!(tcp.external, Some(34446));
        assert_eq!(tcp.url.as_deref(), Some("tcp://195.26.233.3:34446"));
        assert_eq!(
            c.created_at.unwrap().to_rfc3339(),
            "2026-06-01T12:00:00+00:00"
        );
        assert!(c.labels.is_empty());

        let created = example(&spec, "/v2/pods", "post", "201", "pod");
        let c = compute(&created);
        assert_eq!(c.status, ComputeStatus::Provisioning);
        let tcp = c
            .ports
            .iter()
            .find(|p| p.protocol == Protocol::Tcp)
            .unwrap();
        assert_eq!(tcp.url, None, "no TCP mapping before the pod runs");
    }

    #[test]
    fn statuses_and_launch_label() {
        for (n, s) in [
            ("PROVISIONING", ComputeStatus::Provisioning),
            ("STARTING", ComputeStatus::Starting),
            ("RUNNING", ComputeStatus::Running),
            ("EXITED", ComputeStatus::Stopped),
            ("ERROR", ComputeStatus::Failed),
            ("TERMINATED", ComputeStatus::Terminated),
            ("HIBERNATING", ComputeStatus::Other("HIBERNATING".into())),
        ] {
            assert_eq!(status(n), s);
        }
        let c = compute(&json!({"id": "p1", "name": "atlas-0123456789ab", "status": "RUNNING"}));
        assert_eq!(c.labels[LAUNCH_ID_LABEL], "0123456789ab");
    }

    #[test]
    fn gpu_catalog_example() {
        let spec = spec();
        let v = example(&spec, "/v2/catalog/gpus", "get", "200", "gpus");
        let g = gpu_type(&v["gpus"][0]);
        assert_eq!(g.id, "NVIDIA GeForce RTX 4090");
        assert_eq!(g.name, "RTX 4090");
        assert_eq!(g.gpu, Some(Gpu::RTX_4090));
        assert_eq!(g.memory_gb, Some(24));
        assert_eq!(g.price_on_demand, Some(0.44));
        assert_eq!(g.price_community, Some(0.31));
        assert_eq!(g.price_spot, None);
        assert_eq!(g.available, Some(true));
        assert_eq!(g.stock.as_deref(), Some("HIGH"));
        assert_eq!(g.regions, vec!["US-KS-2".to_string()]);
    }

    #[test]
    fn every_runpod_gpu_id_is_one_runpod_publishes() {
        // REST v1's spec enumerates RunPod's gpuTypeIds (v2 takes the same ids).
        let ids: Vec<String> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/runpod/rest-v1.gpuTypeIds.json"
        ))
        .unwrap();
        for g in Gpu::for_provider(NAME) {
            let id = g.provider_id(NAME).unwrap();
            assert!(ids.iter().any(|i| i == id), "{g}: {id}");
        }
        // The older `GPUTypeId` enum still lists the A100 40 GB; pod creation does not.
        assert!(!ids.iter().any(|i| i == "NVIDIA A100-SXM4-40GB"));
        assert_eq!(Gpu::A100_40G.provider_id(NAME), None);
    }

    #[test]
    fn serverless_samples_translate() {
        let j = job("ep", &sample("runsync"));
        assert_eq!(j.status, JobStatus::Completed);
        assert_eq!(j.id, "sync-79164ff4-d212-44bc-9fe3-389e199a5c15");
        assert_eq!(j.delay_time_ms, Some(824));
        assert_eq!(j.execution_time_ms, Some(3391));
        assert_eq!(j.output.unwrap()[0]["seed"], 46578);
        let j = job("ep", &sample("run"));
        assert_eq!(j.status, JobStatus::InQueue);
        assert_eq!(j.output, None);
        assert_eq!(
            job("ep", &sample("status")).output.unwrap()["output_tokens"],
            16
        );
        assert_eq!(job("ep", &sample("cancel")).status, JobStatus::Cancelled);
        let failed = job(
            "ep",
            &json!({"id": "j", "status": "FAILED", "error": "handler raised"}),
        );
        assert_eq!(failed.error.as_deref(), Some("handler raised"));

        let (st, chunks, err) = stream_poll(&sample("stream"));
        assert_eq!(st, None);
        assert_eq!(
            chunks,
            vec![json!({"input_tokens": 0, "output_tokens": 1, "text": [" How"]})]
        );
        assert_eq!(err, None);
        let (st, chunks, _) = stream_poll(&json!({"status": "COMPLETED", "stream": []}));
        assert_eq!(st, Some(JobStatus::Completed));
        assert!(chunks.is_empty());

        let h = health(&sample("health"));
        assert_eq!(h.jobs["failed"], 5);
        assert_eq!(h.workers["idle"], 0);
    }

    #[test]
    fn log_event_example() {
        let spec = spec();
        let text = spec
            .pointer("/paths/~1v2~1pods~1{id}~1logs/get/responses/200/content/text~1event-stream/examples/logLine/value")
            .and_then(Value::as_str)
            .unwrap();
        let (id_line, data_line) = text.split_once('\n').unwrap();
        let id = id_line.strip_prefix("id: ").unwrap();
        let data = data_line.trim().strip_prefix("data: ").unwrap();
        let l = log_line(id, data);
        assert_eq!(l.line, "Model loaded.");
        assert_eq!(l.source.as_deref(), Some("container"));
        assert_eq!(l.ts.as_deref(), Some("2026-06-01T12:02:03Z"));
        assert_eq!(l.id, "2026-06-01T12:02:03Z/000000000001");
        assert_eq!(log_line("x", "plain text").line, "plain text");
    }
}
