use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::providers::mock::Mock;
use crate::spec::{Capabilities, Compute, ComputeRequest, ListFilter};

/// Forwards to `inner`, counting catalog calls.
#[derive(Debug)]
struct Counting<P> {
    inner: P,
    catalog_calls: AtomicUsize,
}

impl<P> Counting<P> {
    fn new(inner: P) -> Arc<Counting<P>> {
        Arc::new(Counting {
            inner,
            catalog_calls: AtomicUsize::new(0),
        })
    }
    fn shared(self: &Arc<Self>) -> Arc<dyn Provider>
    where
        P: Provider,
    {
        let me: Arc<Self> = Arc::clone(self);
        me
    }
    fn calls(&self) -> usize {
        self.catalog_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<P: Provider> Provider for Counting<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        self.inner.spawn(req).await
    }
    async fn get(&self, id: &str) -> Result<Compute> {
        self.inner.get(id).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        self.inner.list(filter).await
    }
    async fn stop(&self, id: &str) -> Result<()> {
        self.inner.stop(id).await
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.inner.start(id).await
    }
    async fn terminate(&self, id: &str) -> Result<()> {
        self.inner.terminate(id).await
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.catalog_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.gpu_types().await
    }
}

/// A provider with a fixed catalog (or a fixed failure), answering after `delay`.
#[derive(Debug)]
struct Fixed {
    name: &'static str,
    catalog: std::result::Result<Vec<GpuType>, ErrorKind>,
    delay: Duration,
}

impl Fixed {
    fn new(name: &'static str, catalog: Vec<GpuType>) -> Fixed {
        Fixed {
            name,
            catalog: Ok(catalog),
            delay: Duration::ZERO,
        }
    }
    fn failing(name: &'static str, kind: ErrorKind) -> Fixed {
        Fixed {
            name,
            catalog: Err(kind),
            delay: Duration::ZERO,
        }
    }
    fn no(&self) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "catalog only"))
    }
}

#[async_trait]
impl Provider for Fixed {
    fn name(&self) -> &str {
        self.name
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn spawn(&self, _req: &ComputeRequest) -> Result<Compute> {
        self.no().map(|()| unreachable!())
    }
    async fn get(&self, _id: &str) -> Result<Compute> {
        self.no().map(|()| unreachable!())
    }
    async fn list(&self, _filter: &ListFilter) -> Result<Vec<Compute>> {
        self.no().map(|()| unreachable!())
    }
    async fn stop(&self, _id: &str) -> Result<()> {
        self.no()
    }
    async fn start(&self, _id: &str) -> Result<()> {
        self.no()
    }
    async fn terminate(&self, _id: &str) -> Result<()> {
        self.no()
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        tokio::time::sleep(self.delay).await;
        match &self.catalog {
            Ok(c) => Ok(c.clone()),
            Err(kind) => Err(Error::new(*kind, "the catalog endpoint answered 503")),
        }
    }
}

fn entry(provider: &str, id: &str, gpu: Gpu, count: u32, on_demand: f64) -> GpuType {
    let mut t = GpuType::new(provider, id, id);
    t.gpu = Some(gpu);
    t.gpu_count = count;
    t.price_on_demand = Some(on_demand);
    t.available = Some(true);
    t.regions = vec!["us-west-1".into()];
    t
}

fn ids(p: &Placement) -> Vec<(String, String)> {
    p.offers
        .iter()
        .map(|o| (o.provider.clone(), o.id.clone()))
        .collect()
}

#[tokio::test]
async fn offers_from_every_provider_are_ranked_by_price() {
    let cheap = Fixed::new(
        "cheap",
        vec![
            entry("cheap", "h100-a", Gpu::H100, 1, 1.99),
            entry("cheap", "a10-a", Gpu::A10, 1, 0.10),
        ],
    );
    let placer = Placer::new()
        .with_provider(Arc::new(Mock::in_memory()))
        .with_provider(Arc::new(cheap));
    let p = placer
        .offers(&Requirements::gpu(Gpu::H100, 1))
        .await
        .unwrap();
    // cheap's 1.99 on-demand beats the mock's 2.39 community price (0.8 × 2.99).
    assert_eq!(
        ids(&p),
        [
            ("cheap".into(), "h100-a".into()),
            ("mock".into(), "h100".into())
        ]
    );
    assert_eq!(p.offers[1].pricing, Pricing::Community);
    assert!((p.offers[1].price_per_hour - 2.39).abs() < 1e-9);
    assert!(p.complete());
    assert_eq!(p.providers.len(), 2);
    assert_eq!(p.best().unwrap().provider, "cheap");

    // Any GPU: the whole catalog of both, cheapest first.
    let p = placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert_eq!(p.offers[0].id, "a10-a");
    assert!(p
        .offers
        .windows(2)
        .all(|w| w[0].price_per_hour <= w[1].price_per_hour));
    assert_eq!(p.providers[0].offers, Gpu::ALL.len());
}

#[tokio::test]
async fn spot_max_price_regions_and_availability_filter() {
    let placer = Placer::new().with_provider(Arc::new(Mock::in_memory()));
    let mut req = Requirements::gpu(Gpu::H100, 1);
    req.spot = true;
    let p = placer.offers(&req).await.unwrap();
    assert_eq!(p.offers[0].pricing, Pricing::Spot);
    assert!((p.offers[0].price_per_hour - 1.5).abs() < 1e-9);

    req.max_price = Some(1.0);
    assert!(placer.offers(&req).await.unwrap().offers.is_empty());

    let mut req = Requirements::gpu(Gpu::H100, 1);
    req.regions = vec!["MOCK-LOCAL-2".into()];
    let p = placer.offers(&req).await.unwrap();
    assert_eq!(p.offers[0].regions, ["mock-local-2"]);
    req.regions = vec!["eu-north-9".into()];
    assert!(placer.offers(&req).await.unwrap().offers.is_empty());

    // The mock's MI300X is out of stock: listed as unavailable, left out on request.
    let mut req = Requirements::gpu(Gpu::MI300X, 1);
    let p = placer.offers(&req).await.unwrap();
    assert_eq!(p.offers[0].available, Some(false));
    assert!(p.best().is_none());
    req.available_only = true;
    assert!(placer.offers(&req).await.unwrap().offers.is_empty());
}

#[tokio::test]
async fn counts_scale_per_gpu_prices_and_respect_fixed_shapes() {
    // Per-GPU catalog (the mock): 4 × H100 is four times the price.
    let placer = Placer::new().with_provider(Arc::new(Mock::in_memory()));
    let p = placer
        .offers(&Requirements::gpu(Gpu::H100, 4))
        .await
        .unwrap();
    assert_eq!(p.offers[0].gpu_count, 4);
    assert!((p.offers[0].price_per_hour - 4.0 * 2.39).abs() < 1e-9);

    // Fixed shapes (Lambda-like): only the exact count, at the listed price; CPU types
    // only for CPU requirements.
    let mut cpu = GpuType::new("shapes", "cpu_4x_general", "4 vCPU");
    cpu.gpu_count = 0;
    cpu.price_on_demand = Some(0.2);
    cpu.regions = vec!["us-west-1".into()];
    let shapes = Fixed::new(
        "shapes",
        vec![
            entry("shapes", "gpu_1x_h100", Gpu::H100, 1, 3.0),
            entry("shapes", "gpu_2x_h100", Gpu::H100, 2, 5.5),
            cpu,
        ],
    );
    let placer = Placer::new().with_provider(Arc::new(shapes));
    let p = placer
        .offers(&Requirements::gpu(Gpu::H100, 2))
        .await
        .unwrap();
    assert_eq!(ids(&p), [("shapes".into(), "gpu_2x_h100".into())]);
    assert!((p.offers[0].price_per_hour - 5.5).abs() < 1e-9);
    assert!(placer
        .offers(&Requirements::gpu(Gpu::H100, 4))
        .await
        .unwrap()
        .offers
        .is_empty());
    let p = placer.offers(&Requirements::cpu()).await.unwrap();
    assert_eq!(ids(&p), [("shapes".into(), "cpu_4x_general".into())]);
    assert_eq!(p.offers[0].gpu_count, 0);
}

#[tokio::test]
async fn a_cache_hit_does_not_ask_the_provider_again_within_the_ttl() {
    let mock = Counting::new(Mock::in_memory());
    let placer = Placer::new().with_provider(mock.shared());
    let first = placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert!(!first.providers[0].cached);
    assert_eq!(mock.calls(), 1);
    // Other requirements, same catalog: filtered from the cache.
    let second = placer
        .offers(&Requirements::gpu(Gpu::A10, 1))
        .await
        .unwrap();
    assert!(second.providers[0].cached);
    assert_eq!(second.offers.len(), 1);
    assert_eq!(mock.calls(), 1, "served from the cache");
    placer.invalidate();
    placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert_eq!(mock.calls(), 2, "asked again after invalidate");
}

#[tokio::test]
async fn the_ttl_is_per_provider_and_expires() {
    let short = Counting::new(Fixed::new(
        "short",
        vec![entry("short", "x", Gpu::A10, 1, 1.0)],
    ));
    let long = Counting::new(Mock::in_memory());
    let placer = Placer::new()
        .with_provider(short.shared())
        .with_provider(long.shared())
        .with_ttl("short", Duration::from_millis(50));
    placer.offers(&Requirements::any_gpu()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let p = placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert_eq!(short.calls(), 2, "expired after its 50 ms TTL");
    assert_eq!(long.calls(), 1, "the default 30 s TTL still holds");
    assert!(!p.providers[0].cached);
    assert!(p.providers[1].cached);

    let never = Counting::new(Mock::in_memory());
    let placer = Placer::new()
        .with_provider(never.shared())
        .with_ttl("mock", Duration::ZERO);
    placer.offers(&Requirements::any_gpu()).await.unwrap();
    placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert_eq!(never.calls(), 2, "TTL zero: never cached");
}

#[tokio::test]
async fn failures_are_reported_per_provider_not_fatal_and_not_cached() {
    let failing = Counting::new(Fixed::failing("flaky", ErrorKind::Provider));
    let placer = Placer::new()
        .with_provider(Arc::new(Mock::in_memory()))
        .with_provider(failing.shared())
        .with_unavailable(
            "runpod",
            &Error::new(ErrorKind::Unauthorized, "set RUNPOD_API_KEY"),
        );
    let p = placer
        .offers(&Requirements::gpu(Gpu::H100, 1))
        .await
        .unwrap();
    assert_eq!(ids(&p), [("mock".into(), "h100".into())]);
    assert!(!p.complete());
    let names: Vec<&str> = p.providers.iter().map(|r| r.provider.as_str()).collect();
    assert_eq!(names, ["mock", "flaky", "runpod"]);
    let e = p.providers[1].error.as_ref().unwrap();
    assert_eq!(e.kind(), ErrorKind::Provider);
    assert_eq!(e.provider(), Some("flaky"));
    let e = p.providers[2].error.as_ref().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("RUNPOD_API_KEY"));
    placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert_eq!(failing.calls(), 2, "a failure is asked again");

    // Allowed providers: the others are not asked at all.
    let mut req = Requirements::any_gpu();
    req.providers = Some(vec!["Mock".into()]);
    let p = placer.offers(&req).await.unwrap();
    assert!(p.complete());
    assert_eq!(p.providers.len(), 1);
    assert_eq!(failing.calls(), 2);
}

#[tokio::test]
async fn providers_are_asked_concurrently_and_a_slow_one_times_out() {
    let slow = |name: &'static str, ms: u64| {
        let mut f = Fixed::new(name, vec![entry(name, "x", Gpu::A10, 1, 1.0)]);
        f.delay = Duration::from_millis(ms);
        Arc::new(f)
    };
    let placer = Placer::new()
        .with_provider(slow("a", 300))
        .with_provider(slow("b", 300))
        .with_provider(slow("c", 300));
    let started = Instant::now();
    let p = placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert_eq!(p.offers.len(), 3);
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );

    let placer = Placer::new()
        .with_provider(slow("slow", 5_000))
        .with_provider(Arc::new(Mock::in_memory()))
        .with_timeout(Duration::from_millis(100));
    let p = placer
        .offers(&Requirements::gpu(Gpu::A10, 1))
        .await
        .unwrap();
    assert_eq!(p.offers.len(), 1);
    assert_eq!(
        p.providers[0].error.as_ref().unwrap().kind(),
        ErrorKind::Timeout
    );
}

#[tokio::test]
async fn bad_requirements_are_refused_before_asking() {
    let mock = Counting::new(Mock::in_memory());
    let placer = Placer::new().with_provider(mock.shared());
    let cases: [(Requirements, &str); 4] = [
        (Requirements::gpu(Gpu::H100, 0), "gpu_count"),
        (
            Requirements {
                max_price: Some(f64::NAN),
                ..Requirements::default()
            },
            "max_price",
        ),
        (
            Requirements {
                regions: vec![" ".into()],
                ..Requirements::default()
            },
            "regions",
        ),
        (
            Requirements {
                providers: Some(vec![String::new()]),
                ..Requirements::default()
            },
            "providers",
        ),
    ];
    for (req, field) in cases {
        let e = placer.offers(&req).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with(field), "{field}: {e}");
    }
    assert_eq!(mock.calls(), 0);
}
