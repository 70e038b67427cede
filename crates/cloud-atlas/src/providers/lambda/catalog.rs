//! The instance-type catalog (`GET /api/v1/instance-types`) with live regional capacity,
//! cached for a short time, and the choice of instance type and region for a launch.
//!
//! API: <https://docs.lambda.ai/api/cloud#listInstanceTypes>.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::translate::{self, CatalogEntry, LaunchTarget, NAME};
use crate::error::{Error, ErrorKind, Result};
use crate::http::ApiClient;
use crate::spec::ComputeRequest;

/// Default time a fetched catalog is reused (capacity changes by the minute).
pub const DEFAULT_CATALOG_TTL: Duration = Duration::from_secs(15);

type Cached = Option<(Instant, Arc<Vec<CatalogEntry>>)>;

/// Lambda's instance types with the regions that have capacity now.
#[derive(Debug, Clone)]
pub struct CatalogApi {
    api: ApiClient,
    ttl: Duration,
    cache: Arc<Mutex<Cached>>,
}

impl CatalogApi {
    pub(crate) fn new(api: ApiClient, ttl: Duration) -> CatalogApi {
        CatalogApi {
            api,
            ttl,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    fn cached(&self) -> Option<Arc<Vec<CatalogEntry>>> {
        let guard = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, c)| Arc::clone(c))
    }

    /// Every instance type, served from the cache when it is younger than the TTL.
    ///
    /// # Errors
    /// Whatever the request fails with (`Unauthorized` for a bad key, …).
    pub async fn list(&self) -> Result<Arc<Vec<CatalogEntry>>> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        self.refresh().await
    }

    /// Fetch the catalog now, bypassing and refilling the cache.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn refresh(&self) -> Result<Arc<Vec<CatalogEntry>>> {
        let v: Value = self
            .api
            .get("/api/v1/instance-types")
            .operation("gpu_types")
            .json()
            .await?;
        let entries =
            Arc::new(translate::catalog(&v["data"]).map_err(|e| e.with_operation("gpu_types"))?);
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), Arc::clone(&entries)));
        Ok(entries)
    }

    /// Forget the cached catalog (after a launch met no capacity).
    pub fn invalidate(&self) {
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// The instance type a native GPU id names: an instance type name as it is
/// (`gpu_8x_a100`), or a GPU fragment with the count (`a100_sxm4` → `gpu_1x_a100_sxm4`).
pub fn native_instance_type(req: &ComputeRequest) -> Option<String> {
    let id = req.native_gpu.as_deref()?;
    Some(if id.starts_with("gpu_") {
        id.to_string()
    } else {
        format!("gpu_{}x_{id}", req.gpu_count.max(1))
    })
}

fn what(req: &ComputeRequest) -> String {
    if let Some(t) = req.opt_str("instance_type") {
        return format!("instance type {t}");
    }
    if let Some(t) = native_instance_type(req) {
        return format!("instance type {t}");
    }
    match req.gpu {
        Some(g) => format!("{} x {g}", req.gpu_count),
        None => {
            let mut s = "a CPU instance".to_string();
            if let Some(c) = req.cpus {
                s.push_str(&format!(" with at least {c} vCPUs"));
            }
            if let Some(m) = req.memory_gb {
                s.push_str(&format!(" and {m} GiB"));
            }
            s
        }
    }
}

/// The entries that can serve `req`, best first: the pinned `instance_type` option; or
/// for a GPU the exact `gpu_{n}x_{fragment}` name first, then any other type with that
/// GPU (or a more specific form factor of it) and count, cheapest first; for CPU-only
/// requests, GPU-less types meeting the `cpus`/`memory_gb` floors, cheapest first.
pub fn candidates<'a>(catalog: &'a [CatalogEntry], req: &ComputeRequest) -> Vec<&'a CatalogEntry> {
    let mut out: Vec<&CatalogEntry> = Vec::new();
    if let Some(pinned) = req
        .opt_str("instance_type")
        .map(str::to_string)
        .or_else(|| native_instance_type(req))
    {
        out.extend(catalog.iter().filter(|e| e.instance_type.name == pinned));
        return out;
    }
    match req.gpu {
        Some(g) => {
            let exact = translate::instance_type_name(g, req.gpu_count).ok();
            if let Some(name) = &exact {
                // One fragment can mean two form factors (`gpu_1x_a100` is PCIe,
                // `gpu_8x_a100` SXM4): the exact name counts only if its GPU is the one asked.
                out.extend(catalog.iter().filter(|e| {
                    &e.instance_type.name == name
                        && e.instance_type.gpu().is_none_or(|o| g.covers(o))
                }));
            }
            let mut others: Vec<&CatalogEntry> = catalog
                .iter()
                .filter(|e| Some(&e.instance_type.name) != exact.as_ref())
                .filter(|e| e.instance_type.specs.gpus == req.gpu_count)
                .filter(|e| {
                    e.instance_type
                        .gpu()
                        .is_some_and(|o| translate::gpu_satisfies(o, g))
                })
                .collect();
            others.sort_by_key(|e| e.instance_type.price_cents_per_hour);
            out.extend(others);
        }
        None => {
            let mut cpu: Vec<&CatalogEntry> = catalog
                .iter()
                .filter(|e| e.instance_type.specs.gpus == 0)
                .filter(|e| req.cpus.is_none_or(|c| e.instance_type.specs.vcpus >= c))
                .filter(|e| {
                    req.memory_gb
                        .is_none_or(|m| e.instance_type.specs.memory_gib >= m)
                })
                .collect();
            cpu.sort_by_key(|e| e.instance_type.price_cents_per_hour);
            out.extend(cpu);
        }
    }
    out
}

/// Choose instance type and region for `req`: region hints (in order) intersected with
/// the regions that have capacity now; with no hints, the first region with capacity.
///
/// An instance type the catalog does not list at all cannot be checked for capacity; it
/// is launched only in an explicitly hinted region (Lambda's launch answer is then the
/// judge), and refused without one.
///
/// # Errors
/// - `Capacity` naming what was asked, where, and what has capacity now (other regions
///   for the same type, or other instance types) when nothing matches;
/// - `Validation` naming `gpu`/`cpus`/`provider_opts.instance_type` when the catalog lists
///   no such type and no region was given.
pub fn choose(
    catalog: &[CatalogEntry],
    req: &ComputeRequest,
    ssh_key_names: Vec<String>,
) -> Result<(LaunchTarget, Option<CatalogEntry>)> {
    let cands = candidates(catalog, req);
    let hints: Vec<&str> = req.region_hints.iter().map(|h| h.trim()).collect();
    if cands.is_empty() {
        let (field, name) = match (req.opt_str("instance_type"), req.gpu) {
            (Some(t), _) => ("provider_opts.instance_type", Some(t.to_string())),
            (None, None) if req.native_gpu.is_some() => ("gpu", native_instance_type(req)),
            (None, Some(g)) => (
                "gpu",
                Some(translate::instance_type_name(g, req.gpu_count)?),
            ),
            (None, None) => ("cpus", None),
        };
        if let (Some(name), Some(region)) = (&name, hints.first()) {
            return Ok((LaunchTarget::new(name, *region, ssh_key_names), None));
        }
        let listed: Vec<&str> = catalog
            .iter()
            .map(|e| e.instance_type.name.as_str())
            .collect();
        return Err(Error::validation(
            field,
            format!(
                "Lambda lists no instance type for {}{}; listed: {}{}",
                what(req),
                name.as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    listed.join(", ")
                },
                if name.is_some() {
                    "; name a region with --region to launch it anyway"
                } else {
                    ""
                },
            ),
        )
        .with_provider(NAME));
    }
    for e in &cands {
        let region = if hints.is_empty() {
            e.regions.first().map(|r| r.name.clone())
        } else {
            hints
                .iter()
                .find(|h| e.has_capacity_in(h))
                .map(|h| h.to_string())
        };
        if let Some(region) = region {
            return Ok((
                LaunchTarget::new(e.instance_type.name.clone(), region, ssh_key_names),
                Some((*e).clone()),
            ));
        }
    }
    let asked_where = if hints.is_empty() {
        "any region".to_string()
    } else {
        hints.join(", ")
    };
    let types: Vec<&str> = cands
        .iter()
        .map(|e| e.instance_type.name.as_str())
        .collect();
    let elsewhere: Vec<String> = cands
        .iter()
        .filter(|e| !e.regions.is_empty())
        .map(|e| {
            format!(
                "{} in {}",
                e.instance_type.name,
                e.region_names().join(", ")
            )
        })
        .collect();
    let available = if elsewhere.is_empty() {
        let others: Vec<String> = catalog
            .iter()
            .filter(|e| !e.regions.is_empty())
            .take(8)
            .map(|e| {
                format!(
                    "{} in {}",
                    e.instance_type.name,
                    e.region_names().join(", ")
                )
            })
            .collect();
        if others.is_empty() {
            "no instance type has capacity anywhere right now".to_string()
        } else {
            format!("available now instead: {}", others.join("; "))
        }
    } else {
        format!("available in other regions: {}", elsewhere.join("; "))
    };
    Err(Error::new(
        ErrorKind::Capacity,
        format!(
            "Lambda has no capacity for {} ({}) in {asked_where} right now; {available}",
            what(req),
            types.join(", ")
        ),
    )
    .with_provider(NAME)
    .with_operation("spawn"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Gpu;

    fn cat() -> Vec<CatalogEntry> {
        let path = format!(
            "{}/tests/fixtures/lambda/samples/m_instance_types_response.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        translate::catalog(&v["data"]).unwrap()
    }

    fn key() -> Vec<String> {
        vec!["k".to_string()]
    }

    fn gpu(g: Gpu, n: u32) -> crate::spec::ComputeRequestBuilder {
        ComputeRequest::builder().gpu(g).gpu_count(n).image("i")
    }

    #[test]
    fn first_region_with_capacity_without_hints() {
        let (t, e) = choose(&cat(), &gpu(Gpu::A10, 1).build().unwrap(), key()).unwrap();
        assert_eq!(t.instance_type, "gpu_1x_a10");
        assert_eq!(t.region, "us-east-1");
        assert_eq!(t.ssh_key_names, key());
        assert!(e.is_some());
    }

    #[test]
    fn hints_are_intersected_in_order() {
        let req = gpu(Gpu::A10, 1)
            .region("eu-nowhere-1")
            .region("us-west-1")
            .region("us-east-1")
            .build()
            .unwrap();
        assert_eq!(choose(&cat(), &req, key()).unwrap().0.region, "us-west-1");
    }

    #[test]
    fn capacity_error_names_ask_and_availability() {
        let req = gpu(Gpu::A10, 1).region("europe-central-1").build().unwrap();
        let e = choose(&cat(), &req, key()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Capacity);
        let m = e.message();
        assert!(
            m.contains("1 x a10") && m.contains("europe-central-1"),
            "{m}"
        );
        assert!(m.contains("gpu_1x_a10 in us-east-1, us-west-1"), "{m}");
        // No region at all: GH200 has none; the message offers what has capacity now.
        let e = choose(&cat(), &gpu(Gpu::GH200, 1).build().unwrap(), key()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Capacity);
        assert!(e.message().contains("any region"), "{e}");
        assert!(e.message().contains("available now instead: gpu_"), "{e}");
    }

    #[test]
    fn other_names_for_the_same_gpu_are_found() {
        // gpu_8x_a100 is the 40 GB SXM4 type whose name does not follow a100_sxm4.
        let (t, _) = choose(&cat(), &gpu(Gpu::A100_40G, 8).build().unwrap(), key()).unwrap();
        assert_eq!(t.instance_type, "gpu_8x_a100");
        // The 1x SXM4 type has capacity and wins over the PCIe one without.
        let (t, _) = choose(&cat(), &gpu(Gpu::A100_40G, 1).build().unwrap(), key()).unwrap();
        assert_eq!(t.instance_type, "gpu_1x_a100_sxm4");
        // h100 (any form factor) takes the SXM type.
        let (t, _) = choose(&cat(), &gpu(Gpu::H100, 2).build().unwrap(), key()).unwrap();
        assert_eq!(t.instance_type, "gpu_2x_h100_sxm5");
    }

    #[test]
    fn a_native_id_names_the_instance_type() {
        // A fragment, with the count.
        let r = ComputeRequest::builder()
            .native_gpu("v100")
            .gpu_count(8)
            .image("i")
            .build()
            .unwrap();
        assert_eq!(native_instance_type(&r).as_deref(), Some("gpu_8x_v100"));
        let names: Vec<String> = candidates(&cat(), &r)
            .iter()
            .map(|e| e.instance_type.name.clone())
            .collect();
        assert!(names.iter().all(|n| n == "gpu_8x_v100"), "{names:?}");
        // A whole instance type name, as it is.
        let r = ComputeRequest::builder()
            .native_gpu("gpu_1x_rtx6000")
            .image("i")
            .build()
            .unwrap();
        assert_eq!(native_instance_type(&r).as_deref(), Some("gpu_1x_rtx6000"));
        // Unlisted without a region: refused naming gpu.
        let r = ComputeRequest::builder()
            .native_gpu("x200")
            .image("i")
            .build()
            .unwrap();
        let e = choose(&cat(), &r, key()).unwrap_err();
        assert!(
            e.message().starts_with("gpu: ") && e.message().contains("gpu_1x_x200"),
            "{e}"
        );
    }

    #[test]
    fn a_form_factor_in_the_name_is_held() {
        // gpu_8x_a100 shares the PCIe types' fragment but is SXM4: never for a PCIe ask.
        let r = gpu(Gpu::A100_PCIE_40G, 8).build().unwrap();
        assert!(candidates(&cat(), &r).is_empty());
        let (t, _) = choose(&cat(), &gpu(Gpu::A100_SXM4_40G, 8).build().unwrap(), key()).unwrap();
        assert_eq!(t.instance_type, "gpu_8x_a100");
        // An 80 GB ask never takes a 40 GB type.
        let r = gpu(Gpu::A100_SXM4_80G, 8).build().unwrap();
        let all = cat();
        let names: Vec<&str> = candidates(&all, &r)
            .iter()
            .map(|e| e.instance_type.name.as_str())
            .collect();
        assert_eq!(names, vec!["gpu_8x_a100_80gb_sxm4"]);
    }

    #[test]
    fn unlisted_types_need_a_region() {
        let req = gpu(Gpu::A10, 2).build().unwrap();
        let e = choose(&cat(), &req, key()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("gpu: "), "{e}");
        assert!(
            e.message().contains("gpu_2x_a10") && e.message().contains("--region"),
            "{e}"
        );
        let req = gpu(Gpu::A10, 2).region("us-west-1").build().unwrap();
        let (t, e) = choose(&cat(), &req, key()).unwrap();
        assert_eq!(
            (t.instance_type.as_str(), t.region.as_str()),
            ("gpu_2x_a10", "us-west-1")
        );
        assert!(e.is_none());
    }

    #[test]
    fn cpu_and_pinned_types() {
        let cpu = ComputeRequest::builder()
            .cpus(2)
            .image("i")
            .build()
            .unwrap();
        let e = choose(&cat(), &cpu, key()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Capacity, "{e}");
        assert!(e.message().contains("cpu_4x_general"), "{e}");
        let big = ComputeRequest::builder()
            .cpus(64)
            .image("i")
            .build()
            .unwrap();
        assert_eq!(
            choose(&cat(), &big, key()).unwrap_err().kind(),
            ErrorKind::Validation
        );
        let pinned = ComputeRequest::builder()
            .gpu(Gpu::H100)
            .image("i")
            .provider_opt("instance_type", "gpu_1x_h100_pcie")
            .build()
            .unwrap();
        let (t, _) = choose(&cat(), &pinned, key()).unwrap();
        assert_eq!(
            (t.instance_type.as_str(), t.region.as_str()),
            ("gpu_1x_h100_pcie", "us-west-3")
        );
    }
}
