//! Pure translation between spec types and Vast.ai JSON (no I/O).
//!
//! Every function here is tested from real bodies: the examples in Vast's published
//! spec and the shapes the official `vastai` CLI sends and receives (see the module
//! docs of [`super`] for the per-field decisions).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::spec::deadline::{self, SelfEnd};
use crate::spec::{
    CloudType, Compute, ComputeRequest, ComputeStatus, Gpu, GpuChoice, GpuType, PortBinding,
    Protocol, LAUNCH_ID_LABEL,
};

/// Provider name.
pub(crate) const NAME: &str = "vast";

/// Local disk in GB when the request names none (Vast's docs use 16 in their examples).
pub const DEFAULT_DISK_GB: u32 = 16;
/// Reliability floor for offers when the request names none.
pub const DEFAULT_MIN_RELIABILITY: f64 = 0.98;
/// Offers asked for per search when renting (the best few are tried in order).
pub const SPAWN_SEARCH_LIMIT: u32 = 32;
/// Offers asked for per catalog search.
pub const CATALOG_SEARCH_LIMIT: u32 = 1000;
/// Env var written onto the instance that records the requested ports and protocols
/// (`8000/http,22/tcp`), so a later `get` knows which mapped port is HTTP.
pub const PORTS_ENV: &str = "ATLAS_PORTS";
/// Default margin over an offer's `min_bid` for a spot bid (10 %).
pub const DEFAULT_BID_MARGIN: f64 = 0.10;

/// One rentable offer (an "ask") from `POST /api/v0/bundles/`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Offer {
    /// Offer (ask) id, the `{id}` of `PUT /api/v0/asks/{id}/`.
    pub id: u64,
    /// Host machine id.
    pub machine_id: Option<u64>,
    /// Vast's GPU name (`RTX 4090`).
    pub gpu_name: String,
    /// GPUs in the offer.
    pub num_gpus: u32,
    /// Memory per GPU in MB.
    pub gpu_ram_mb: Option<f64>,
    /// Total $/h including storage for the searched `allocated_storage`.
    pub dph_total: f64,
    /// Lowest accepted bid in $/h (interruptible).
    pub min_bid: Option<f64>,
    /// Reliability score 0–1.
    pub reliability: Option<f64>,
    /// `City, CC` as Vast reports it.
    pub geolocation: Option<String>,
    /// Highest CUDA version the host driver supports.
    pub cuda_max_good: Option<f64>,
    /// Free disk on the host in GB.
    pub disk_space: Option<f64>,
    /// Native JSON.
    pub raw: Value,
}

impl Offer {
    /// Two-letter country code from the `geolocation` (`"Oregon, US"` → `US`).
    pub fn country(&self) -> Option<String> {
        self.geolocation.as_deref().and_then(country_code)
    }

    /// $/h per GPU.
    pub fn price_per_gpu(&self) -> f64 {
        self.dph_total / f64::from(self.num_gpus.max(1))
    }
}

/// What to search the offer market for. Built from a request
/// ([`OfferQuery::for_request`]) or for the catalog ([`OfferQuery::catalog`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OfferQuery {
    /// Vast GPU names to accept (`["RTX 4090"]`); empty = any.
    pub gpu_names: Vec<String>,
    /// Memory per GPU to accept, in MB (`gpu_ram`, inclusive bounds): Vast's GPU names
    /// do not carry memory (`A100 SXM4` is a 40 GB or an 80 GB card), so a canonical GPU
    /// bounds it from [`Gpu::memory_mb_bounds`]; `None` = any (a native id, the catalog).
    pub gpu_ram_mb: Option<(u64, u64)>,
    /// Exact GPU count; `None` = any.
    pub num_gpus: Option<u32>,
    /// Interruptible (bid) pricing instead of on-demand.
    pub spot: bool,
    /// Only verified hosts (default true, as the CLI); `false` = any host (no filter,
    /// as the CLI's `verified=any`).
    pub verified: bool,
    /// Only data-centre hosts (Vast's "secure cloud").
    pub datacenter_only: bool,
    /// Reliability floor.
    pub min_reliability: Option<f64>,
    /// Price ceiling in $/h for the whole offer.
    pub max_price: Option<f64>,
    /// Two-letter country codes to accept; empty = anywhere.
    pub countries: Vec<String>,
    /// CUDA floor (`12.1`).
    pub min_cuda: Option<f64>,
    /// Disk to allocate in GB (prices include it).
    pub disk_gb: u32,
    /// Effective vCPU floor.
    pub min_cpus: Option<u32>,
    /// RAM floor in GB.
    pub min_ram_gb: Option<u32>,
    /// Most offers to return.
    pub limit: u32,
}

impl Default for OfferQuery {
    fn default() -> OfferQuery {
        OfferQuery {
            gpu_names: Vec::new(),
            gpu_ram_mb: None,
            num_gpus: None,
            spot: false,
            verified: true,
            datacenter_only: false,
            min_reliability: Some(DEFAULT_MIN_RELIABILITY),
            max_price: None,
            countries: Vec::new(),
            min_cuda: None,
            disk_gb: DEFAULT_DISK_GB,
            min_cpus: None,
            min_ram_gb: None,
            limit: SPAWN_SEARCH_LIMIT,
        }
    }
}

impl OfferQuery {
    /// The whole market for the catalog: every GPU, verified, rentable, default disk.
    pub fn catalog(spot: bool) -> OfferQuery {
        OfferQuery {
            spot,
            limit: CATALOG_SEARCH_LIMIT,
            ..OfferQuery::default()
        }
    }

    /// Offers that can serve `req`.
    ///
    /// GPU (required: Vast rents GPU machines: every Vast name of the canonical GPU with
    /// its memory bounds, or a native `gpu_name` as given) and exact count; spot → bid pricing;
    /// `cloud_type = secure` → data-centre hosts only; region hints → countries
    /// (two-letter codes only); disk, vCPU and RAM floors; provider options
    /// `min_reliability`, `max_price`, `min_cuda`, `verified`.
    ///
    /// # Errors
    /// `Validation` naming the field for a CPU-only request, a region hint that is
    /// not a country code, or a provider option that is not a number/boolean.
    pub fn for_request(req: &ComputeRequest) -> Result<OfferQuery> {
        let (gpu_names, gpu_ram_mb) = match req.gpu_choice() {
            Some(GpuChoice::Canonical(g)) => (
                g.require_provider_ids(NAME)?
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                Some(g.memory_mb_bounds()),
            ),
            Some(GpuChoice::Native(id)) => (vec![id], None),
            None => {
                return Err(Error::validation(
                    "gpu",
                    "Vast.ai rents GPU machines only; name a GPU (e.g. --gpu rtx_4090)",
                ))
            }
        };
        let mut countries = Vec::new();
        for hint in &req.region_hints {
            let h = hint.trim();
            if h.len() == 2 && h.chars().all(|c| c.is_ascii_alphabetic()) {
                countries.push(h.to_ascii_uppercase());
            } else {
                return Err(Error::validation(
                    "region_hints",
                    format!("{hint:?} is not a region Vast.ai knows; Vast filters by two-letter country code (e.g. US, DE, CA)"),
                ));
            }
        }
        let verified = match req.provider_opts.get("verified") {
            None => true,
            Some(v) => opt_bool("verified", v)?,
        };
        Ok(OfferQuery {
            gpu_names,
            gpu_ram_mb,
            num_gpus: Some(req.gpu_count.max(1)),
            spot: req.spot,
            verified,
            datacenter_only: req.cloud_type == CloudType::Secure,
            min_reliability: Some(
                opt_f64(req, "min_reliability")?.unwrap_or(DEFAULT_MIN_RELIABILITY),
            ),
            max_price: opt_f64(req, "max_price")?,
            countries,
            min_cuda: opt_f64(req, "min_cuda")?,
            disk_gb: disk_gb(req),
            min_cpus: req.cpus,
            min_ram_gb: req.memory_gb,
            limit: SPAWN_SEARCH_LIMIT,
        })
    }

    /// Whether `offer` satisfies the parts of this query that matter for renting
    /// (checked client-side too, so an ignored filter never rents the wrong machine).
    /// With a memory bound, an offer that does not report `gpu_ram` is refused.
    pub fn accepts(&self, offer: &Offer) -> bool {
        self.gpu_ram_mb.is_none_or(|(lo, hi)| {
            offer
                .gpu_ram_mb
                .is_some_and(|m| m >= lo as f64 && m <= hi as f64)
        }) && (self.gpu_names.is_empty()
            || self
                .gpu_names
                .iter()
                .any(|g| g.eq_ignore_ascii_case(&offer.gpu_name)))
            && self.num_gpus.is_none_or(|n| n == offer.num_gpus)
            && self.max_price.is_none_or(|p| offer.dph_total <= p)
            && (self.countries.is_empty()
                || offer.country().is_some_and(|c| self.countries.contains(&c)))
    }
}

/// The search body for `POST /api/v0/bundles/`.
///
/// Filters are `{field: {op: value}}`. Fixed parts match the `vastai` CLI defaults
/// (`verified` unless the query says any host, `external: false`, `rentable: true`,
/// `rented: false`); `type` is
/// `ondemand` or `bid` (the spec's spelling, also the docs'); `order` sorts by price
/// then reliability — two `[field, direction]` pairs, which both the published spec
/// (that wrongly puts `minItems: 2` on the outer list) and the service accept.
pub fn search_body(q: &OfferQuery) -> Value {
    let mut b = Map::new();
    if q.verified {
        b.insert("verified".into(), json!({"eq": true}));
    }
    b.insert("external".into(), json!({"eq": false}));
    b.insert("rentable".into(), json!({"eq": true}));
    b.insert("rented".into(), json!({"eq": false}));
    if !q.gpu_names.is_empty() {
        b.insert("gpu_name".into(), json!({"in": q.gpu_names}));
    }
    if let Some((lo, hi)) = q.gpu_ram_mb {
        b.insert("gpu_ram".into(), json!({"gte": lo, "lte": hi}));
    }
    if let Some(n) = q.num_gpus {
        b.insert("num_gpus".into(), json!({"eq": n}));
    }
    if let Some(r) = q.min_reliability {
        b.insert("reliability".into(), json!({"gte": r}));
    }
    if let Some(p) = q.max_price {
        b.insert("dph_total".into(), json!({"lte": p}));
    }
    if !q.countries.is_empty() {
        b.insert("geolocation".into(), json!({"in": q.countries}));
    }
    if let Some(c) = q.min_cuda {
        b.insert("cuda_max_good".into(), json!({"gte": c}));
    }
    if q.datacenter_only {
        b.insert("datacenter".into(), json!({"eq": true}));
    }
    if let Some(c) = q.min_cpus {
        b.insert("cpu_cores_effective".into(), json!({"gte": c}));
    }
    if let Some(m) = q.min_ram_gb {
        b.insert("cpu_ram".into(), json!({"gte": u64::from(m) * 1024}));
    }
    b.insert("disk_space".into(), json!({"gte": q.disk_gb}));
    b.insert("allocated_storage".into(), json!(f64::from(q.disk_gb)));
    b.insert(
        "type".into(),
        json!(if q.spot { "bid" } else { "ondemand" }),
    );
    b.insert(
        "order".into(),
        json!([["dph_total", "asc"], ["reliability", "desc"]]),
    );
    b.insert("limit".into(), json!(q.limit));
    Value::Object(b)
}

/// Offers from a search answer, cheapest first (ties: more reliable first).
///
/// Accepts `{"offers": [...]}` and, as the spec's own example has it, `{"offers": {...}}`
/// (one offer as an object). Entries without an id, GPU name or price are skipped.
pub fn offers(body: &Value) -> Vec<Offer> {
    let list: Vec<&Value> = match body.get("offers") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    };
    let mut out: Vec<Offer> = list.into_iter().filter_map(offer).collect();
    out.sort_by(|a, b| {
        a.dph_total.total_cmp(&b.dph_total).then(
            b.reliability
                .unwrap_or(0.0)
                .total_cmp(&a.reliability.unwrap_or(0.0)),
        )
    });
    out
}

/// One offer from its JSON, if it has an id, a GPU name and a price.
pub fn offer(v: &Value) -> Option<Offer> {
    Some(Offer {
        id: as_u64(v.get("id")?)?,
        machine_id: v.get("machine_id").and_then(as_u64),
        gpu_name: v.get("gpu_name")?.as_str()?.to_string(),
        num_gpus: v
            .get("num_gpus")
            .and_then(as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1),
        gpu_ram_mb: num(v, "gpu_ram"),
        dph_total: num(v, "dph_total")?,
        min_bid: num(v, "min_bid"),
        reliability: num(v, "reliability2").or_else(|| num(v, "reliability")),
        geolocation: str_of(v, "geolocation"),
        cuda_max_good: num(v, "cuda_max_good"),
        disk_space: num(v, "disk_space"),
        raw: v.clone(),
    })
}

/// One offer as a catalog entry (`atlas vast offers`): id is the offer id, price is
/// the whole offer's $/h (on-demand, or the bid floor for spot searches).
pub fn offer_entry(o: &Offer, spot: bool) -> GpuType {
    let mut g = GpuType::new(
        NAME,
        o.id.to_string(),
        format!("{}x {}", o.num_gpus, o.gpu_name),
    );
    g.gpu = Gpu::from_provider_id_and_memory(NAME, &o.gpu_name, o.gpu_ram_mb);
    g.memory_gb = o.gpu_ram_mb.map(mb_to_gb);
    g.gpu_count = o.num_gpus;
    if spot {
        g.price_spot = Some(o.min_bid.unwrap_or(o.dph_total));
    } else {
        g.price_on_demand = Some(o.dph_total);
    }
    g.available = Some(true);
    g.stock = Some("1 offer".to_string());
    g.regions = o.country().into_iter().collect();
    g.raw = o.raw.clone();
    g
}

/// The GPU catalog from an on-demand search and a bid search: one entry per GPU
/// model, priced per GPU from the cheapest offer of each kind, cheapest first.
pub fn catalog(on_demand: &[Offer], bid: &[Offer]) -> Vec<GpuType> {
    // Keyed by Vast's name and the canonical GPU it resolves to with the offer's memory:
    // `A100 SXM4` 40 GB and 80 GB offers are two entries.
    type Key = (String, Option<Gpu>);
    let mut by_name: BTreeMap<Key, GpuType> = BTreeMap::new();
    let mut counts: BTreeMap<Key, (usize, BTreeSet<String>)> = BTreeMap::new();
    for (offers, spot) in [(on_demand, false), (bid, true)] {
        for o in offers {
            let gpu = Gpu::from_provider_id_and_memory(NAME, &o.gpu_name, o.gpu_ram_mb);
            let key: Key = (o.gpu_name.clone(), gpu);
            let e = by_name.entry(key.clone()).or_insert_with(|| {
                let name = match gpu {
                    Some(g) if Gpu::from_provider_id(NAME, &o.gpu_name).is_none() => {
                        format!("{} {} GB", o.gpu_name, g.memory_gb())
                    }
                    _ => o.gpu_name.clone(),
                };
                let mut g = GpuType::new(NAME, o.gpu_name.clone(), name);
                g.gpu = gpu;
                g.memory_gb = o.gpu_ram_mb.map(mb_to_gb);
                g.available = Some(true);
                g
            });
            if e.memory_gb.is_none() {
                e.memory_gb = o.gpu_ram_mb.map(mb_to_gb);
            }
            let per_gpu = if spot {
                o.min_bid.unwrap_or(o.dph_total) / f64::from(o.num_gpus.max(1))
            } else {
                o.price_per_gpu()
            };
            let slot = if spot {
                &mut e.price_spot
            } else {
                &mut e.price_on_demand
            };
            *slot = Some(slot.map_or(per_gpu, |p| p.min(per_gpu)));
            let c = counts.entry(key).or_default();
            if !spot {
                c.0 += 1;
            }
            if let Some(cc) = o.country() {
                c.1.insert(cc);
            }
        }
    }
    let mut out: Vec<GpuType> = by_name
        .into_iter()
        .map(|(name, mut g)| {
            if let Some((n, regions)) = counts.remove(&name) {
                g.stock = Some(format!("{n} on-demand offers"));
                g.regions = regions.into_iter().collect();
            }
            g
        })
        .collect();
    out.sort_by(|a, b| {
        a.lowest_price()
            .unwrap_or(f64::MAX)
            .total_cmp(&b.lowest_price().unwrap_or(f64::MAX))
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// Local disk in GB: `container_disk_gb` (default [`DEFAULT_DISK_GB`]).
pub fn disk_gb(req: &ComputeRequest) -> u32 {
    req.container_disk_gb.unwrap_or(DEFAULT_DISK_GB)
}

/// The spot bid for `offer`: provider option `bid_price` ($/h for the whole
/// machine), else the offer's `min_bid` plus [`DEFAULT_BID_MARGIN`], within
/// Vast's bounds 0.001–128.
///
/// # Errors
/// `Validation` naming `provider_opts.bid_price` when it is not a number in range.
pub fn bid_price(req: &ComputeRequest, offer: &Offer) -> Result<f64> {
    if let Some(p) = opt_f64(req, "bid_price")? {
        if !(0.001..=128.0).contains(&p) {
            return Err(Error::validation(
                "provider_opts.bid_price",
                format!("{p} is out of range; allowed: 0.001-128 ($/h for the whole machine)"),
            ));
        }
        return Ok(p);
    }
    let floor = offer.min_bid.unwrap_or(offer.dph_total);
    let bid = (floor * (1.0 + DEFAULT_BID_MARGIN) * 10_000.0).round() / 10_000.0;
    Ok(bid.clamp(0.001, 128.0))
}

/// The runtype to launch with: provider option `runtype`, else `ssh_direct` when an
/// `onstart` script is given (it runs after Vast's SSH entrypoint), else `args` (the
/// image's own entrypoint runs, as on every other provider).
///
/// # Errors
/// `Validation` naming `provider_opts.runtype` for a value Vast does not know.
pub fn runtype(req: &ComputeRequest) -> Result<&str> {
    const ALLOWED: &[&str] = &[
        "args",
        "ssh",
        "ssh_direct",
        "ssh_proxy",
        "jupyter",
        "jupyter_direct",
        "jupyter_proxy",
    ];
    match req.opt_str("runtype") {
        Some(r) if ALLOWED.contains(&r) => Ok(r),
        Some(r) => Err(Error::validation(
            "provider_opts.runtype",
            format!("{r:?} is not allowed; allowed: {}", ALLOWED.join(", ")),
        )),
        None if req.opt_str("onstart").is_some() => Ok("ssh_direct"),
        None => Ok("args"),
    }
}

/// The `env` object of the create body: the container env, one `-p P:P` (or
/// `-p P:P/udp`) key per requested port with value `"1"`, and [`PORTS_ENV`].
///
/// Sent as a JSON object, as Vast's docs and CLI do (the spec's "string of docker
/// flags" form is also accepted by the service but cannot carry values with spaces).
pub fn env_object(req: &ComputeRequest, env: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in env {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    for p in &req.ports {
        let key = match p.protocol {
            Protocol::Udp => format!("-p {0}:{0}/udp", p.port),
            _ => format!("-p {0}:{0}", p.port),
        };
        m.insert(key, Value::String("1".into()));
    }
    if !req.ports.is_empty() {
        let ports: Vec<String> = req.ports.iter().map(ToString::to_string).collect();
        m.insert(PORTS_ENV.into(), Value::String(ports.join(",")));
    }
    m
}

/// Longest `onstart` script Vast accepts (its API reference).
pub const ONSTART_MAX: usize = 4048;

/// The body of `PUT /api/v0/asks/{offer_id}/` for `req`.
///
/// `image`, `label` (= [`ComputeRequest::launch_name`], so an ambiguous rent can be
/// found by listing), `disk`, `runtype` ([`runtype`]), `env` ([`env_object`]),
/// `onstart`/`args_str` from provider options, `template_hash_id` from the request's
/// template, `price` for spot bids, and `cancel_unavail: true` so an offer that cannot
/// start now fails at once instead of leaving a stopped instance.
///
/// # Errors
/// `Validation` for a bad `runtype` option.
pub fn create_body(
    req: &ComputeRequest,
    env: &BTreeMap<String, String>,
    bid: Option<f64>,
) -> Result<Value> {
    let mut b = Map::new();
    let runtype = runtype(req)?;
    b.insert("image".into(), json!(req.image));
    b.insert("label".into(), json!(req.launch_name()));
    b.insert("disk".into(), json!(f64::from(disk_gb(req))));
    b.insert("runtype".into(), json!(runtype));
    b.insert("env".into(), Value::Object(env_object(req, env)));
    if let Some(s) = req.opt_str("onstart") {
        b.insert("onstart".into(), json!(s));
    }
    if let Some(s) = req.opt_str("args_str") {
        b.insert("args_str".into(), json!(s));
    }
    // The command: `args` (replaces the image's CMD) with the `args` runtype, else the
    // `onstart` script of the SSH/Jupyter runtypes; a max runtime wraps it so the
    // instance destroys itself with its own CONTAINER_API_KEY (spec::deadline).
    let argv = deadline::machine_command(NAME, req, Some(SelfEnd::Vast))?;
    if !argv.is_empty() {
        let field = if runtype == "args" {
            "args_str"
        } else {
            "onstart"
        };
        if b.contains_key(field) {
            return Err(Error::validation(
                &format!("provider_opts.{field}"),
                format!("give the command (`-- CMD ARGS…`) or provider option {field}, not both"),
            ));
        }
        if runtype == "args" {
            b.insert("args".into(), json!(argv));
        } else {
            let script = deadline::shell_join(&argv);
            if script.len() > ONSTART_MAX {
                return Err(Error::validation(
                    "command",
                    format!("becomes an onstart script over Vast's {ONSTART_MAX}-character limit; shorten it or use runtype args"),
                ));
            }
            b.insert("onstart".into(), json!(script));
        }
    }
    if let Some(t) = &req.template_id {
        b.insert("template_hash_id".into(), json!(t));
    }
    if let Some(p) = bid {
        b.insert("price".into(), json!(p));
    }
    b.insert("cancel_unavail".into(), json!(true));
    Ok(Value::Object(b))
}

/// Vast instance state → spec status.
///
/// `cur_state`/`next_state` `destroyed`/`unloaded` → terminated; `intended_status`
/// `stopped` → stopped (a stop in progress, or an outbid interruptible); then
/// `actual_status`: `running` → running; null, `scheduling`, `loading`, `created` →
/// provisioning (host found, image pulling); `starting` → starting; `stopped`/`exited`
/// with `intended_status: stopped` → stopped; `exited` while meant to run, `offline`
/// and anything else are kept as `Other` (not terminal: Vast may restart them).
pub fn status(inst: &Value) -> ComputeStatus {
    let s = |k: &str| {
        inst.get(k)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let actual = s("actual_status");
    let intended = s("intended_status");
    let cur = s("cur_state");
    if matches!(cur.as_deref(), Some("destroyed" | "unloaded"))
        || matches!(s("next_state").as_deref(), Some("destroyed"))
    {
        return ComputeStatus::Terminated;
    }
    if intended.as_deref() == Some("stopped") || cur.as_deref() == Some("stopped") {
        return ComputeStatus::Stopped;
    }
    match actual.as_deref() {
        Some("running") => ComputeStatus::Running,
        None | Some("" | "scheduling" | "loading" | "created" | "creating") => {
            ComputeStatus::Provisioning
        }
        Some("starting") => ComputeStatus::Starting,
        Some("stopped") => ComputeStatus::Stopped,
        Some(other) => ComputeStatus::Other(other.to_string()),
    }
}

/// Env pairs of an instance (`extra_env`: `[[k, v], ...]`, or `["K=V", ...]` as the
/// unpatched spec describes it).
pub fn extra_env(inst: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(a) = inst.get("extra_env").and_then(Value::as_array) {
        for e in a {
            match e {
                Value::Array(kv) if kv.len() == 2 => {
                    if let (Some(k), Some(v)) = (kv[0].as_str(), kv[1].as_str()) {
                        m.insert(k.to_string(), v.to_string());
                    }
                }
                Value::String(s) => {
                    if let Some((k, v)) = s.split_once('=') {
                        m.insert(k.to_string(), v.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    m
}

/// Port bindings of an instance: the Docker port map (`{"8000/tcp": [{"HostIp",
/// "HostPort"}]}`) to `public_ipaddr:HostPort`. Protocols come from [`PORTS_ENV`]
/// when the instance was spawned by cloud-atlas; otherwise 22 is TCP, other TCP
/// ports HTTP. Vast's direct ports are plain HTTP (no TLS): `http://ip:port`.
pub fn port_bindings(inst: &Value) -> Vec<PortBinding> {
    let ip = inst
        .get("public_ipaddr")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let declared: BTreeMap<u16, Protocol> = extra_env(inst)
        .get(PORTS_ENV)
        .map(|s| {
            s.split(',')
                .filter_map(|p| p.parse::<crate::spec::PortSpec>().ok())
                .map(|p| (p.port, p.protocol))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let Some(map) = inst.get("ports").and_then(Value::as_object) else {
        return out;
    };
    for (key, hosts) in map {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(internal) = port.parse::<u16>() else {
            continue;
        };
        let external = hosts
            .as_array()
            .and_then(|a| a.first())
            .and_then(|h| h.get("HostPort"))
            .and_then(|p| match p {
                Value::String(s) => s.parse::<u16>().ok(),
                other => as_u64(other).and_then(|n| u16::try_from(n).ok()),
            });
        let protocol = if proto.eq_ignore_ascii_case("udp") {
            Protocol::Udp
        } else if let Some(p) = declared.get(&internal) {
            *p
        } else if internal == 22 {
            Protocol::Tcp
        } else {
            Protocol::Http
        };
        let url = match (ip, external) {
            (Some(ip), Some(ext)) => Some(match protocol {
                Protocol::Http => format!("http://{ip}:{ext}"),
                Protocol::Udp => format!("udp://{ip}:{ext}"),
                _ => format!("tcp://{ip}:{ext}"),
            }),
            _ => None,
        };
        out.push(PortBinding::new(internal, external, protocol, url));
    }
    out.sort_by_key(|p| p.internal);
    out
}

/// The launch id at the end of a cloud-atlas label (`atlas-0123456789ab`).
pub fn launch_id_from_label(label: &str) -> Option<&str> {
    let (_, id) = label.rsplit_once('-')?;
    (id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// A Vast instance object as a [`Compute`].
pub fn compute(inst: &Value) -> Compute {
    let id = inst
        .get("id")
        .and_then(as_u64)
        .map(|n| n.to_string())
        .unwrap_or_default();
    let mut c = Compute::new(id, NAME, status(inst));
    c.public_ip = str_of(inst, "public_ipaddr").filter(|s| !s.trim().is_empty());
    c.ports = port_bindings(inst);
    if let Some(g) = str_of(inst, "gpu_name") {
        c.gpu = Gpu::from_provider_id_and_memory(NAME, &g, num(inst, "gpu_ram"));
    }
    c.gpu_count = inst
        .get("num_gpus")
        .and_then(as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    c.cost_per_hour = num(inst, "dph_total");
    c.region = str_of(inst, "geolocation");
    c.image = str_of(inst, "image_uuid");
    c.name = str_of(inst, "label").filter(|s| !s.is_empty());
    if let Some(id) = c.name.as_deref().and_then(launch_id_from_label) {
        c.labels.insert(LAUNCH_ID_LABEL.to_string(), id.to_string());
    }
    c.created_at = num(inst, "start_date").and_then(|s| {
        #[allow(clippy::cast_possible_truncation)]
        DateTime::<Utc>::from_timestamp(s.trunc() as i64, 0)
    });
    c.set_raw(inst.clone());
    c
}

/// The `next_token` of a `/api/v1/instances/` page (`None` when it is the last).
pub fn next_token(page: &Value) -> Option<String> {
    page.get("next_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The instances of a `/api/v1/instances/` page.
pub fn page_instances(page: &Value) -> Vec<Value> {
    page.get("instances")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The instance of a `GET /api/v0/instances/{id}/` answer (`{"instances": {...}}`);
/// `None` when Vast answers with no instance (`null`, `{}` or `[]`).
pub fn shown_instance(body: &Value) -> Option<Value> {
    match body.get("instances") {
        Some(v @ Value::Object(o)) if o.contains_key("id") => Some(v.clone()),
        Some(Value::Array(a)) => a.first().filter(|v| v.get("id").is_some()).cloned(),
        _ => None,
    }
}

/// The instance id from a rent answer (`{"success": true, "new_contract": 1234568}`).
pub fn new_contract(body: &Value) -> Option<u64> {
    if body.get("success").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    body.get("new_contract").and_then(as_u64)
}

fn country_code(geo: &str) -> Option<String> {
    let last = geo.rsplit(',').next()?.trim();
    (last.len() == 2 && last.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| last.to_ascii_uppercase())
}

fn mb_to_gb(mb: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let gb = (mb / 1024.0).round().max(0.0) as u32;
    gb
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
                .map(|f| {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    let u = f as u64;
                    u
                })
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn num(v: &Value, k: &str) -> Option<f64> {
    match v.get(k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Provider option `key` as a number (JSON number or numeric string).
///
/// # Errors
/// `Validation` naming `provider_opts.<key>` when it is neither.
pub fn opt_f64(req: &ComputeRequest, key: &str) -> Result<Option<f64>> {
    let Some(v) = req.provider_opts.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        _ => Err(Error::validation(
            &format!("provider_opts.{key}"),
            format!("{v} is not a number; use e.g. --provider-opt {key}=0.5"),
        )),
    }
}

fn opt_bool(key: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(Error::validation(
            &format!("provider_opts.{key}"),
            format!("{v} is not allowed; allowed: true, false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 200 example of `searchOffers` in Vast's published spec, verbatim (note:
    /// `offers` is one object there, although the schema says a list).
    const SPEC_OFFERS_EXAMPLE: &str = r#"{"offers": {"id": 12345678, "ask_contract_id": 12345678,
        "bundle_id": 987654321, "bundled_results": null, "bw_nvlink": 0, "compute_cap": 900,
        "cpu_arch": "amd64", "cpu_cores": 64, "cpu_cores_effective": 32, "cpu_ghz": 2.99,
        "cpu_ram": 65536, "cuda_max_good": 11.2, "direct_port_count": 42, "disk_space": 2048.5,
        "dlperf": 222.22, "dph_base": 0.123456, "dph_total": 0.234567, "driver_version": "999.99.99",
        "duration": 1234567.89, "geolocation": "Atlantis, AT", "gpu_arch": "nvidia",
        "gpu_name": "Imaginary RTX 9999", "gpu_ram": 24576, "gpu_total_ram": 49152, "host_id": 55555,
        "inet_down": 9876.5, "inet_up": 8765.4, "is_bid": false, "machine_id": 88888,
        "min_bid": 0.111111, "num_gpus": 4, "public_ipaddr": "203.0.113.42", "reliability": 0.9999,
        "rentable": true, "rented": false, "reliability2": 0.9999, "verification": "verified"}}"#;

    /// The `showInstance` example of the spec (abridged to the fields we read).
    const SPEC_INSTANCE: &str = r#"{"instances": {"id": 883, "actual_status": "running",
        "intended_status": "running", "cur_state": "running", "next_state": "running",
        "label": null, "image_uuid": "tensorflow/tensorflow:latest-gpu", "extra_env": [],
        "ssh_host": "ssh2281.vast.ai", "ssh_port": 10882, "machine_id": 178,
        "start_date": 1761008618.225083, "gpu_name": "RTX A5000", "num_gpus": 1,
        "ports": [8080, 8081], "public_ipaddr": "63.135.50.11", "geolocation": "Washington, US",
        "dph_total": 1.0020740740740741}}"#;

    /// One instance of the `/api/v1/instances` example (port map form).
    const V1_INSTANCE: &str = r#"{"id": 312, "actual_status": "running", "cur_state": "running",
        "next_state": "running", "intended_status": "running", "label": "ML Training Job 2025",
        "image_uuid": "nvidia/cuda:11.0.3-devel-ubuntu18.04",
        "extra_env": [["DOG", "CAT"], ["-p 70001:70001", "1"]], "public_ipaddr": "192.0.2.45",
        "ssh_port": 10600, "start_date": 1668804745.1223178, "gpu_name": "RTX 4090", "num_gpus": 1,
        "ports": {"8888/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8888"}],
                  "22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "20000"}]},
        "geolocation": "California, United States", "dph_total": 0.8021}"#;

    fn req() -> crate::spec::ComputeRequestBuilder {
        ComputeRequest::builder()
            .gpu(Gpu::RTX_4090)
            .image("vllm/vllm-openai:latest")
    }

    #[test]
    fn spec_offer_example_decodes_even_as_an_object() {
        let v: Value = serde_json::from_str(SPEC_OFFERS_EXAMPLE).unwrap();
        let o = offers(&v);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].id, 12_345_678);
        assert_eq!(o[0].num_gpus, 4);
        assert_eq!(o[0].country().as_deref(), Some("AT"));
        assert!((o[0].price_per_gpu() - 0.234_567 / 4.0).abs() < 1e-9);
        let e = offer_entry(&o[0], false);
        assert_eq!(e.id, "12345678");
        assert_eq!(e.memory_gb, Some(24));
        assert_eq!(e.gpu, None, "an imaginary GPU maps to no canonical GPU");
        assert_eq!(e.price_on_demand, Some(0.234_567));
        let s = offer_entry(&o[0], true);
        assert_eq!(s.price_spot, Some(0.111_111));
    }

    #[test]
    fn offers_sorted_cheapest_then_most_reliable() {
        let v = json!({"offers": [
            {"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.5, "reliability2": 0.99},
            {"id": 2, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.3, "reliability2": 0.95},
            {"id": 3, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.3, "reliability2": 0.999},
            {"gpu_name": "no id", "dph_total": 0.1}
        ]});
        let ids: Vec<u64> = offers(&v).iter().map(|o| o.id).collect();
        assert_eq!(ids, vec![3, 2, 1]);
    }

    #[test]
    fn search_body_from_request() {
        let r = req()
            .gpu_count(2)
            .region("us")
            .region("CA")
            .cpus(8)
            .memory_gb(32)
            .container_disk_gb(50)
            .cloud_type(CloudType::Secure)
            .provider_opt("max_price", "1.5")
            .provider_opt("min_cuda", 12.1)
            .build()
            .unwrap();
        let q = OfferQuery::for_request(&r).unwrap();
        let b = search_body(&q);
        assert_eq!(b["gpu_name"], json!({"in": ["RTX 4090"]}));
        assert_eq!(b["num_gpus"], json!({"eq": 2}));
        assert_eq!(b["geolocation"], json!({"in": ["US", "CA"]}));
        assert_eq!(b["dph_total"], json!({"lte": 1.5}));
        assert_eq!(b["cuda_max_good"], json!({"gte": 12.1}));
        assert_eq!(b["reliability"], json!({"gte": DEFAULT_MIN_RELIABILITY}));
        assert_eq!(b["datacenter"], json!({"eq": true}));
        assert_eq!(b["cpu_cores_effective"], json!({"gte": 8}));
        assert_eq!(b["cpu_ram"], json!({"gte": 32768}));
        assert_eq!(b["disk_space"], json!({"gte": 50}));
        assert_eq!(b["allocated_storage"], json!(50.0));
        assert_eq!(b["type"], "ondemand");
        assert_eq!(b["verified"], json!({"eq": true}));
        assert_eq!(b["rentable"], json!({"eq": true}));
        assert_eq!(b["rented"], json!({"eq": false}));
        assert_eq!(b["order"].as_array().unwrap().len(), 2);
        let spot = OfferQuery::for_request(&req().spot(true).build().unwrap()).unwrap();
        assert_eq!(search_body(&spot)["type"], "bid");
        let any_host = OfferQuery {
            verified: false,
            ..OfferQuery::default()
        };
        assert!(search_body(&any_host).get("verified").is_none());
    }

    #[test]
    fn request_errors_name_the_field() {
        let cpu = ComputeRequest::builder().image("i").build().unwrap();
        let e = OfferQuery::for_request(&cpu).unwrap_err();
        assert!(e.message().starts_with("gpu"), "{e}");
        let e = OfferQuery::for_request(&req().region("us-east-1").build().unwrap()).unwrap_err();
        assert!(e.message().starts_with("region_hints"), "{e}");
        let e = OfferQuery::for_request(&req().provider_opt("max_price", "cheap").build().unwrap())
            .unwrap_err();
        assert!(e.message().starts_with("provider_opts.max_price"), "{e}");
        let mi = ComputeRequest::builder()
            .gpu(Gpu::MI300X)
            .image("i")
            .build()
            .unwrap();
        let e = OfferQuery::for_request(&mi).unwrap_err();
        assert!(e.message().starts_with("gpu"), "{e}");
        assert!(
            e.message().contains("rtx_4090"),
            "lists what Vast offers: {e}"
        );
    }

    #[test]
    fn an_80gb_ask_bounds_gpu_ram_and_never_takes_a_40gb_card() {
        for g in [Gpu::A100_80G, Gpu::A100_SXM4_80G] {
            let r = ComputeRequest::builder().gpu(g).image("i").build().unwrap();
            let q = OfferQuery::for_request(&r).unwrap();
            let b = search_body(&q);
            let (lo, hi) = (
                b["gpu_ram"]["gte"].as_u64().unwrap(),
                b["gpu_ram"]["lte"].as_u64().unwrap(),
            );
            assert!(
                (61_441..=81_000).contains(&lo) && (81_920..95_000).contains(&hi),
                "{b}"
            );
            assert!(b["gpu_name"]["in"]
                .as_array()
                .unwrap()
                .contains(&json!("A100 SXM4")));
            let forty = offer(&json!({"id": 1, "gpu_name": "A100 SXM4", "num_gpus": 1, "dph_total": 0.5, "gpu_ram": 40960})).unwrap();
            let eighty = offer(&json!({"id": 2, "gpu_name": "A100 SXM4", "num_gpus": 1, "dph_total": 0.9, "gpu_ram": 81920})).unwrap();
            assert!(!q.accepts(&forty), "{g}: a 40 GB card for an 80 GB ask");
            assert!(q.accepts(&eighty), "{g}");
        }
        let r = ComputeRequest::builder()
            .gpu(Gpu::A100_SXM4_40G)
            .image("i")
            .build()
            .unwrap();
        let q = OfferQuery::for_request(&r).unwrap();
        let b = search_body(&q);
        assert!(b["gpu_ram"]["lte"].as_u64().unwrap() < 81_000, "{b}");
        // The same Vast name resolves by memory.
        assert_eq!(
            Gpu::from_provider_id_and_memory(NAME, "A100 SXM4", Some(40960.0)),
            Some(Gpu::A100_SXM4_40G)
        );
        assert_eq!(
            Gpu::from_provider_id_and_memory(NAME, "A100 SXM4", Some(81920.0)),
            Some(Gpu::A100_SXM4_80G)
        );
        assert_eq!(Gpu::from_provider_id(NAME, "A100 SXM4"), None);
    }

    #[test]
    fn a_native_gpu_name_is_sent_verbatim_without_a_memory_bound() {
        let r = ComputeRequest::builder()
            .native_gpu("RTX 5880Ada")
            .image("i")
            .build()
            .unwrap();
        let q = OfferQuery::for_request(&r).unwrap();
        let b = search_body(&q);
        assert_eq!(b["gpu_name"], json!({"in": ["RTX 5880Ada"]}));
        assert!(b.get("gpu_ram").is_none(), "{b}");
        let o =
            offer(&json!({"id": 1, "gpu_name": "RTX 5880Ada", "num_gpus": 1, "dph_total": 0.5}))
                .unwrap();
        assert!(q.accepts(&o));
    }

    #[test]
    fn catalog_splits_one_vast_name_by_memory() {
        let od = offers(&json!({"offers": [
            {"id": 1, "gpu_name": "A100 SXM4", "num_gpus": 1, "dph_total": 0.6, "gpu_ram": 40960},
            {"id": 2, "gpu_name": "A100 SXM4", "num_gpus": 1, "dph_total": 1.1, "gpu_ram": 81920}
        ]}));
        let cat = catalog(&od, &[]);
        assert_eq!(cat.len(), 2);
        assert_eq!(cat[0].gpu, Some(Gpu::A100_SXM4_40G));
        assert_eq!(cat[0].name, "A100 SXM4 40 GB");
        assert_eq!(cat[1].gpu, Some(Gpu::A100_SXM4_80G));
    }

    #[test]
    fn accepts_checks_gpu_count_price_and_country() {
        let q = OfferQuery::for_request(
            &req()
                .region("US")
                .provider_opt("max_price", 1.0)
                .build()
                .unwrap(),
        )
        .unwrap();
        let ok = offer(&json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "gpu_ram": 24564, "geolocation": "Oregon, US"})).unwrap();
        assert!(q.accepts(&ok));
        for bad in [
            json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "geolocation": "Oregon, US"}),
            json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "gpu_ram": 12288, "geolocation": "Oregon, US"}),
            json!({"id": 1, "gpu_name": "RTX 3090", "num_gpus": 1, "dph_total": 0.4, "geolocation": "Oregon, US"}),
            json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 2, "dph_total": 0.4, "geolocation": "Oregon, US"}),
            json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 1.4, "geolocation": "Oregon, US"}),
            json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "geolocation": "Quebec, CA"}),
        ] {
            assert!(!q.accepts(&offer(&bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn the_command_is_args_or_onstart_and_a_max_runtime_wraps_it() {
        let cmd = || req().command(["python", "-c", "print(1)"]);
        let plain = create_body(&cmd().build().unwrap(), &BTreeMap::new(), None).unwrap();
        assert_eq!(plain["runtype"], "args");
        assert_eq!(plain["args"], json!(["python", "-c", "print(1)"]));
        assert!(plain.get("onstart").is_none());

        let ssh = cmd().provider_opt("runtype", "ssh_direct").build().unwrap();
        let b = create_body(&ssh, &BTreeMap::new(), None).unwrap();
        assert_eq!(b["onstart"], "python -c 'print(1)'");
        assert!(b.get("args").is_none());

        let r = cmd()
            .max_runtime(std::time::Duration::from_secs(600))
            .build()
            .unwrap();
        let b = create_body(&r, &BTreeMap::new(), None).unwrap();
        let argv: Vec<String> = serde_json::from_value(b["args"].clone()).unwrap();
        assert_eq!(
            argv,
            deadline::wrap(
                &r.command,
                std::time::Duration::from_secs(600),
                SelfEnd::Vast
            )
        );
        // Wrapped into an onstart script, it stays under Vast's limit.
        let r = cmd()
            .provider_opt("runtype", "jupyter_direct")
            .max_runtime(std::time::Duration::from_secs(600))
            .build()
            .unwrap();
        let b = create_body(&r, &BTreeMap::new(), None).unwrap();
        let script = b["onstart"].as_str().unwrap();
        assert!(
            script.len() <= ONSTART_MAX && script.contains(" vast -- python"),
            "{script}"
        );

        for (opt, field) in [("args_str", "args_str"), ("onstart", "onstart")] {
            let e = create_body(
                &cmd().provider_opt(opt, "x").build().unwrap(),
                &BTreeMap::new(),
                None,
            )
            .unwrap_err();
            assert!(
                e.message().starts_with(&format!("provider_opts.{field}")),
                "{e}"
            );
        }
        let no_cmd = req()
            .max_runtime(std::time::Duration::from_secs(600))
            .build()
            .unwrap();
        let e = create_body(&no_cmd, &BTreeMap::new(), None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
    }

    #[test]
    fn create_body_matches_the_docs_shape() {
        let r = req()
            .port("8000/http")
            .port("5000/udp")
            .env("MODEL_ID", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B")
            .container_disk_gb(50)
            .provider_opt("onstart", "vllm serve $MODEL_ID --port 8000")
            .build()
            .unwrap();
        let b = create_body(&r, &r.env, None).unwrap();
        // The docs' "SSH with a vLLM server" example, plus our label and port record.
        assert_eq!(b["image"], "vllm/vllm-openai:latest");
        assert_eq!(b["disk"], json!(50.0));
        assert_eq!(b["runtype"], "ssh_direct");
        assert_eq!(b["onstart"], "vllm serve $MODEL_ID --port 8000");
        assert_eq!(b["label"], json!(r.launch_name()));
        assert_eq!(
            b["env"]["MODEL_ID"],
            "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"
        );
        assert_eq!(b["env"]["-p 8000:8000"], "1");
        assert_eq!(b["env"]["-p 5000:5000/udp"], "1");
        assert_eq!(b["env"][PORTS_ENV], "8000/http,5000/udp");
        assert_eq!(b["cancel_unavail"], true);
        assert!(b.get("price").is_none());
        let plain = create_body(&req().build().unwrap(), &BTreeMap::new(), Some(0.3)).unwrap();
        assert_eq!(plain["runtype"], "args");
        assert_eq!(plain["price"], json!(0.3));
        assert_eq!(plain["env"], json!({}));
        let e = create_body(
            &req().provider_opt("runtype", "vnc").build().unwrap(),
            &BTreeMap::new(),
            None,
        )
        .unwrap_err();
        assert!(e.message().starts_with("provider_opts.runtype"), "{e}");
    }

    #[test]
    fn bid_price_defaults_above_min_bid_and_checks_the_option() {
        let o = offer(&json!({"id": 1, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "min_bid": 0.2})).unwrap();
        assert!((bid_price(&req().build().unwrap(), &o).unwrap() - 0.22).abs() < 1e-9);
        let r = req().provider_opt("bid_price", "0.25").build().unwrap();
        assert!((bid_price(&r, &o).unwrap() - 0.25).abs() < 1e-12);
        let r = req().provider_opt("bid_price", 500).build().unwrap();
        assert!(bid_price(&r, &o)
            .unwrap_err()
            .message()
            .starts_with("provider_opts.bid_price"));
    }

    #[test]
    fn statuses() {
        let st = |v: Value| status(&v);
        assert_eq!(
            st(json!({"actual_status": "running", "intended_status": "running"})),
            ComputeStatus::Running
        );
        assert_eq!(
            st(json!({"actual_status": null, "intended_status": "running"})),
            ComputeStatus::Provisioning
        );
        assert_eq!(
            st(json!({"actual_status": "loading", "intended_status": "running"})),
            ComputeStatus::Provisioning
        );
        assert_eq!(
            st(json!({"actual_status": "running", "intended_status": "stopped"})),
            ComputeStatus::Stopped
        );
        assert_eq!(
            st(
                json!({"actual_status": "exited", "intended_status": "stopped", "cur_state": "stopped"})
            ),
            ComputeStatus::Stopped
        );
        assert_eq!(
            st(json!({"actual_status": "exited", "intended_status": "running"})),
            ComputeStatus::Other("exited".into())
        );
        assert_eq!(
            st(json!({"actual_status": "offline", "intended_status": "running"})),
            ComputeStatus::Other("offline".into())
        );
        assert_eq!(
            st(json!({"actual_status": "exited", "cur_state": "destroyed"})),
            ComputeStatus::Terminated
        );
    }

    #[test]
    fn spec_instance_example_translates() {
        let v: Value = serde_json::from_str(SPEC_INSTANCE).unwrap();
        let inst = shown_instance(&v).unwrap();
        let c = compute(&inst);
        assert_eq!(c.id, "883");
        assert_eq!(c.status, ComputeStatus::Running);
        assert_eq!(c.gpu, Some(Gpu::A5000));
        assert_eq!(c.gpu_count, 1);
        assert_eq!(c.public_ip.as_deref(), Some("63.135.50.11"));
        assert_eq!(c.region.as_deref(), Some("Washington, US"));
        assert!((c.cost_per_hour.unwrap() - 1.002_074_074).abs() < 1e-6);
        assert_eq!(c.created_at.unwrap().timestamp(), 1_761_008_618);
        assert!(
            c.ports.is_empty(),
            "the spec's integer list carries no mapping"
        );
        assert_eq!(c.name, None);
        assert_eq!(shown_instance(&json!({"instances": null})), None);
        assert_eq!(shown_instance(&json!({"instances": {}})), None);
    }

    #[test]
    fn v1_instance_ports_and_env() {
        let v: Value = serde_json::from_str(V1_INSTANCE).unwrap();
        let c = compute(&v);
        assert_eq!(c.gpu, Some(Gpu::RTX_4090));
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].internal, 22);
        assert_eq!(c.ports[0].protocol, Protocol::Tcp);
        assert_eq!(c.ports[0].url.as_deref(), Some("tcp://192.0.2.45:20000"));
        assert_eq!(c.ports[1].protocol, Protocol::Http);
        assert_eq!(c.ports[1].url.as_deref(), Some("http://192.0.2.45:8888"));
        assert_eq!(extra_env(&v)["DOG"], "CAT");
        assert_eq!(c.name.as_deref(), Some("ML Training Job 2025"));
        assert!(c.labels.is_empty());
    }

    #[test]
    fn declared_protocols_and_launch_id_come_back() {
        let v = json!({"id": 7, "actual_status": "running", "intended_status": "running",
            "label": "atlas-0123456789ab", "public_ipaddr": "198.51.100.7",
            "extra_env": [[PORTS_ENV, "8000/http,9000/tcp,5000/udp"]],
            "ports": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40001"}],
                      "9000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40002"}],
                      "5000/udp": [{"HostIp": "0.0.0.0", "HostPort": "40003"}]}});
        let c = compute(&v);
        assert_eq!(c.http_url(), Some("http://198.51.100.7:40001"));
        assert_eq!(c.ports[2].url.as_deref(), Some("tcp://198.51.100.7:40002"));
        assert_eq!(c.ports[0].url.as_deref(), Some("udp://198.51.100.7:40003"));
        assert_eq!(c.labels[LAUNCH_ID_LABEL], "0123456789ab");
        assert_eq!(launch_id_from_label("my-job"), None);
    }

    #[test]
    fn catalog_is_per_gpu_and_cheapest_first() {
        let od = offers(&json!({"offers": [
            {"id": 1, "gpu_name": "RTX 4090", "num_gpus": 2, "dph_total": 0.8, "gpu_ram": 24564, "geolocation": "Oregon, US"},
            {"id": 2, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.45, "geolocation": "Bavaria, DE"},
            {"id": 3, "gpu_name": "H100 SXM", "num_gpus": 8, "dph_total": 16.0, "gpu_ram": 81559}
        ]}));
        let bid = offers(&json!({"offers": [
            {"id": 4, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.3, "min_bid": 0.2}
        ]}));
        let cat = catalog(&od, &bid);
        assert_eq!(cat.len(), 2);
        assert_eq!(cat[0].gpu, Some(Gpu::RTX_4090));
        assert_eq!(cat[0].price_on_demand, Some(0.4));
        assert_eq!(cat[0].price_spot, Some(0.2));
        assert_eq!(cat[0].memory_gb, Some(24));
        assert_eq!(cat[0].regions, vec!["DE".to_string(), "US".to_string()]);
        assert_eq!(cat[0].stock.as_deref(), Some("2 on-demand offers"));
        assert_eq!(cat[1].gpu, Some(Gpu::H100_SXM));
        assert_eq!(cat[1].price_on_demand, Some(2.0));
    }

    #[test]
    fn paging_and_rent_answers() {
        assert_eq!(next_token(&json!({"next_token": null})), None);
        assert_eq!(
            next_token(&json!({"next_token": "abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            new_contract(&json!({"success": true, "new_contract": 1_234_568})),
            Some(1_234_568)
        );
        assert_eq!(
            new_contract(&json!({"success": false, "new_contract": 5})),
            None
        );
    }
}
