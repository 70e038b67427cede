//! Pure translation between spec types and Fly Machines JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::spec::deadline::{self, SelfEnd};
use crate::spec::{Compute, ComputeRequest, ComputeStatus, PortBinding, Protocol, LAUNCH_ID_LABEL};

/// Provider name.
pub(crate) const NAME: &str = "fly";

/// Metadata key holding the launch name (machine names are also set to it).
pub const LAUNCH_NAME_METADATA: &str = "atlas_launch_name";

/// Fly machine state → spec status.
///
/// `created` → provisioning; `starting`/`replacing` → starting; `started` → running;
/// `stopping`/`stopped`/`suspending`/`suspended` → stopped; `destroying`/`destroyed` →
/// terminated; `failed` → failed; anything else is kept as `Other`.
pub fn status(state: &str) -> ComputeStatus {
    match state {
        "created" => ComputeStatus::Provisioning,
        "starting" | "replacing" | "updating" => ComputeStatus::Starting,
        "started" => ComputeStatus::Running,
        "stopping" | "stopped" | "suspending" | "suspended" => ComputeStatus::Stopped,
        "destroying" | "destroyed" => ComputeStatus::Terminated,
        "failed" => ComputeStatus::Failed,
        other => ComputeStatus::Other(other.to_string()),
    }
}

fn memory_mb(req: &ComputeRequest) -> u64 {
    u64::from(req.memory_gb.unwrap_or(1)) * 1024
}

/// Build the `CreateMachineRequest` body for `req` in `app`.
///
/// - guest: `cpu_kind` from provider option `cpu_kind` (default `shared`; `performance`
///   when GPUs are requested), `cpus` (default 1), `memory_mb` from `memory_gb` (default 1 GiB);
///   `gpu_kind`/`gpus` only from a native GPU id (`--gpu native:a100-pcie-40gb`, with
///   `gpu_count`) or provider options (Fly retired GPU Machines in 2026);
/// - services: the first HTTP port is served on 443 (TLS + HTTP) and 80 (redirect to HTTPS)
///   through Fly's proxy; further HTTP ports on their own number with TLS; TCP/UDP ports raw;
/// - `auto_destroy: true` and `restart: {policy: "no"}` for transient compute, unless
///   provider options `auto_destroy=false` / `restart=<policy>` say otherwise;
/// - the command as `init.cmd` (it replaces the image's `CMD`); with a max runtime it is
///   wrapped ([`deadline`]) so its exit, at the latest at max runtime, destroys the
///   machine (which needs the `restart: no` + `auto_destroy: true` defaults);
/// - metadata carries the launch id and name; the machine name is the launch name;
/// - region from the first region hint.
pub fn create_body(req: &ComputeRequest, env: &BTreeMap<String, String>) -> Result<Value> {
    let mut guest = Map::new();
    if let (Some(native), Some(opt)) = (&req.native_gpu, req.opt_str("gpu_kind")) {
        if native != opt {
            return Err(Error::validation(
                "provider_opts.gpu_kind",
                format!(
                    "{opt:?} contradicts the GPU asked for (native:{native}); give one of them"
                ),
            ));
        }
    }
    let gpu_kind = req.native_gpu.as_deref().or(req.opt_str("gpu_kind"));
    let cpu_kind = req.opt_str("cpu_kind").unwrap_or(if gpu_kind.is_some() {
        "performance"
    } else {
        "shared"
    });
    if !matches!(cpu_kind, "shared" | "performance") {
        return Err(Error::validation(
            "provider_opts.cpu_kind",
            format!("{cpu_kind:?} is not allowed; allowed: shared, performance"),
        ));
    }
    guest.insert("cpu_kind".into(), json!(cpu_kind));
    guest.insert("cpus".into(), json!(req.cpus.unwrap_or(1)));
    guest.insert("memory_mb".into(), json!(memory_mb(req)));
    if let Some(k) = gpu_kind {
        guest.insert("gpu_kind".into(), json!(k));
        let n = req
            .provider_opts
            .get("gpus")
            .and_then(Value::as_u64)
            .unwrap_or(u64::from(req.gpu_count.max(1)));
        guest.insert("gpus".into(), json!(n));
    }
    let mut services = Vec::new();
    let mut first_http = true;
    for p in &req.ports {
        let svc = match p.protocol {
            Protocol::Http if first_http => {
                first_http = false;
                json!({"protocol": "tcp", "internal_port": p.port, "autostop": "off", "ports": [
                    {"port": 443, "handlers": ["tls", "http"]},
                    {"port": 80, "handlers": ["http"], "force_https": true}
                ]})
            }
            Protocol::Http => {
                json!({"protocol": "tcp", "internal_port": p.port, "autostop": "off", "ports": [
                    {"port": p.port, "handlers": ["tls", "http"]}
                ]})
            }
            Protocol::Tcp => {
                json!({"protocol": "tcp", "internal_port": p.port, "autostop": "off", "ports": [{"port": p.port}]})
            }
            Protocol::Udp => {
                json!({"protocol": "udp", "internal_port": p.port, "ports": [{"port": p.port}]})
            }
        };
        services.push(svc);
    }
    let mut metadata = Map::new();
    for (k, v) in &req.labels {
        metadata.insert(k.clone(), json!(v));
    }
    metadata.insert(LAUNCH_ID_LABEL.into(), json!(req.launch_id));
    metadata.insert(LAUNCH_NAME_METADATA.into(), json!(req.launch_name()));
    let auto_destroy = req
        .provider_opts
        .get("auto_destroy")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let restart = req.opt_str("restart").unwrap_or("no");
    if !matches!(restart, "no" | "always" | "on-failure" | "spot-price") {
        return Err(Error::validation(
            "provider_opts.restart",
            format!("{restart:?} is not allowed; allowed: no, always, on-failure, spot-price"),
        ));
    }
    // The command replaces the image's CMD (`init.cmd`, as `docker run IMAGE CMD…`); a max
    // runtime wraps it, and its exit then destroys the machine (restart no + auto_destroy).
    let argv = deadline::machine_command(NAME, req, Some(SelfEnd::Exit))?;
    if req.max_runtime.is_some() && (restart != "no" || !auto_destroy) {
        return Err(Error::validation(
            "max_runtime",
            format!("is held on Fly by the command's exit destroying the machine, which needs restart=no and auto_destroy=true (got restart={restart}, auto_destroy={auto_destroy}); drop those provider options or max_runtime"),
        ));
    }
    let mut config = Map::new();
    config.insert("image".into(), json!(req.image));
    if !argv.is_empty() {
        config.insert("init".into(), json!({ "cmd": argv }));
    }
    config.insert("guest".into(), Value::Object(guest));
    if !env.is_empty() {
        config.insert("env".into(), json!(env));
    }
    if !services.is_empty() {
        config.insert("services".into(), Value::Array(services));
    }
    config.insert("metadata".into(), Value::Object(metadata));
    config.insert("auto_destroy".into(), json!(auto_destroy));
    config.insert("restart".into(), json!({"policy": restart}));
    let mut body = Map::new();
    body.insert("name".into(), json!(req.launch_name()));
    body.insert("config".into(), Value::Object(config));
    if let Some(r) = req.region_hints.first() {
        body.insert("region".into(), json!(r));
    }
    Ok(Value::Object(body))
}

/// A Fly `Machine` → [`Compute`]. `id` is the id callers use (see the provider docs).
pub fn compute(app: &str, id: String, m: &Value) -> Compute {
    let state = m.get("state").and_then(Value::as_str).unwrap_or("unknown");
    let mut c = Compute::new(id, NAME, status(state));
    let cfg = m.get("config").cloned().unwrap_or(Value::Null);
    c.name = m.get("name").and_then(Value::as_str).map(str::to_string);
    c.region = m.get("region").and_then(Value::as_str).map(str::to_string);
    c.image = cfg.get("image").and_then(Value::as_str).map(str::to_string);
    c.created_at = m
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc));
    if let Some(md) = cfg.get("metadata").and_then(Value::as_object) {
        for (k, v) in md {
            if let Some(s) = v.as_str() {
                c.labels.insert(k.clone(), s.to_string());
            }
        }
    }
    if let Some(g) = cfg.get("guest") {
        c.gpu_count = g.get("gpus").and_then(Value::as_u64).unwrap_or(0) as u32;
        c.gpu = g
            .get("gpu_kind")
            .and_then(Value::as_str)
            .and_then(|k| crate::spec::Gpu::from_provider_id(NAME, k));
    }
    c.public_ip = None;
    let host = format!("{app}.fly.dev");
    if let Some(svcs) = cfg.get("services").and_then(Value::as_array) {
        for s in svcs {
            let Some(internal) = s.get("internal_port").and_then(Value::as_u64) else {
                continue;
            };
            let ports = s
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let http = ports.iter().any(|p| {
                p.get("handlers")
                    .and_then(Value::as_array)
                    .is_some_and(|h| h.iter().any(|x| x == "http"))
            });
            let public = ports
                .iter()
                .filter_map(|p| p.get("port").and_then(Value::as_u64))
                .find(|p| *p != 80)
                .unwrap_or(internal);
            let proto = match (s.get("protocol").and_then(Value::as_str), http) {
                (_, true) => Protocol::Http,
                (Some("udp"), _) => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            let url = match proto {
                Protocol::Http if public == 443 => format!("https://{host}"),
                Protocol::Http => format!("https://{host}:{public}"),
                other => format!("{other}://{host}:{public}"),
            };
            c.ports.push(PortBinding::new(
                internal as u16,
                Some(public as u16),
                proto,
                Some(url),
            ));
        }
    }
    c.set_raw(m.clone());
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::AuthMode;

    #[test]
    fn a_native_gpu_is_the_gpu_kind() {
        let env = BTreeMap::new();
        let req = ComputeRequest::builder()
            .native_gpu("a100-pcie-40gb")
            .gpu_count(2)
            .image("img")
            .provider_opt("app", "my-app")
            .build()
            .unwrap();
        let b = create_body(&req, &env).unwrap();
        assert_eq!(b["config"]["guest"]["gpu_kind"], "a100-pcie-40gb");
        assert_eq!(b["config"]["guest"]["gpus"], 2);
        assert_eq!(b["config"]["guest"]["cpu_kind"], "performance");
        let clash = ComputeRequest::builder()
            .native_gpu("a100-pcie-40gb")
            .image("img")
            .provider_opt("gpu_kind", "l40s")
            .build()
            .unwrap();
        let e = create_body(&clash, &env).unwrap_err();
        assert!(e.message().starts_with("provider_opts.gpu_kind"), "{e}");
    }

    #[test]
    fn create_body_shape() {
        let req = ComputeRequest::builder()
            .cpus(2)
            .memory_gb(4)
            .image("img")
            .port("8080/http")
            .port("5432/tcp")
            .region("ams")
            .auth(AuthMode::Bearer)
            .provider_opt("app", "my-app")
            .build()
            .unwrap();
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let b = create_body(&req, &env).unwrap();
        assert_eq!(b["name"], req.launch_name());
        assert_eq!(b["region"], "ams");
        assert_eq!(
            b["config"]["guest"],
            json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096})
        );
        assert_eq!(b["config"]["auto_destroy"], true);
        assert_eq!(b["config"]["restart"]["policy"], "no");
        assert_eq!(b["config"]["services"][0]["ports"][0]["port"], 443);
        assert_eq!(b["config"]["services"][1]["ports"][0]["port"], 5432);
        assert_eq!(b["config"]["metadata"][LAUNCH_ID_LABEL], req.launch_id);
        assert_eq!(b["config"]["env"]["A"], "1");
    }

    #[test]
    fn the_command_is_init_cmd_and_a_max_runtime_wraps_it() {
        let base = || {
            ComputeRequest::builder()
                .image("img")
                .command(["python", "serve.py"])
        };
        let env = BTreeMap::new();
        let plain = create_body(&base().build().unwrap(), &env).unwrap();
        assert_eq!(
            plain["config"]["init"],
            json!({"cmd": ["python", "serve.py"]})
        );
        let none = create_body(
            &ComputeRequest::builder().image("img").build().unwrap(),
            &env,
        )
        .unwrap();
        assert!(
            none["config"].get("init").is_none(),
            "no command: the image's own"
        );

        let req = base()
            .max_runtime(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let b = create_body(&req, &env).unwrap();
        let cmd: Vec<String> = serde_json::from_value(b["config"]["init"]["cmd"].clone()).unwrap();
        assert_eq!(
            cmd,
            deadline::wrap(
                &req.command,
                std::time::Duration::from_secs(120),
                SelfEnd::Exit
            )
        );
        assert_eq!(b["config"]["restart"]["policy"], "no");
        assert_eq!(b["config"]["auto_destroy"], true);

        // An exit that would not destroy the machine cannot carry the deadline.
        for (k, v) in [("restart", json!("always")), ("auto_destroy", json!(false))] {
            let r = base()
                .max_runtime(std::time::Duration::from_secs(120))
                .provider_opt(k, v)
                .build()
                .unwrap();
            let e = create_body(&r, &env).unwrap_err();
            assert!(e.message().starts_with("max_runtime"), "{e}");
        }
        let no_cmd = ComputeRequest::builder()
            .image("img")
            .max_runtime(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let e = create_body(&no_cmd, &env).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    }

    #[test]
    fn compute_from_machine() {
        let req = ComputeRequest::builder()
            .image("img")
            .port("8080/http")
            .port("22/tcp")
            .build()
            .unwrap();
        let body = create_body(&req, &BTreeMap::new()).unwrap();
        let m = json!({"id": "d8d9", "name": req.launch_name(), "state": "started", "region": "ams",
            "created_at": "2026-01-01T00:00:00Z", "config": body["config"]});
        let c = compute("my-app", "d8d9".into(), &m);
        assert_eq!(c.status, ComputeStatus::Running);
        assert_eq!(c.http_url(), Some("https://my-app.fly.dev"));
        assert_eq!(c.ports[1].url.as_deref(), Some("tcp://my-app.fly.dev:22"));
        assert_eq!(c.labels[LAUNCH_ID_LABEL], req.launch_id);
        assert!(c.created_at.is_some());
    }

    #[test]
    fn states() {
        for (s, want) in [
            ("created", ComputeStatus::Provisioning),
            ("started", ComputeStatus::Running),
            ("suspended", ComputeStatus::Stopped),
            ("destroyed", ComputeStatus::Terminated),
            ("replacing", ComputeStatus::Starting),
        ] {
            assert_eq!(status(s), want);
        }
        assert_eq!(status("weird"), ComputeStatus::Other("weird".into()));
    }

    #[test]
    fn bad_opts_are_validation() {
        let req = ComputeRequest::builder()
            .image("i")
            .provider_opt("cpu_kind", "huge")
            .build()
            .unwrap();
        let e = create_body(&req, &BTreeMap::new()).unwrap_err();
        assert!(e.message().starts_with("provider_opts.cpu_kind"));
    }
}
