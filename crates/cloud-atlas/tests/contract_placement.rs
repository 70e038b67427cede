//! Placement across providers: RunPod, Lambda and Vast.ai against Prism running their
//! published specs (every request validates), plus the mock, asked concurrently; and
//! Lambda's recorded catalog sample (several shapes, regions with capacity) served as
//! recorded.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use cloud_atlas::http::RetryConfig;
use cloud_atlas::placement::{Placer, Pricing, Requirements};
use cloud_atlas::providers::lambda::{LambdaBuilder, LambdaLimits};
use cloud_atlas::providers::mock::Mock;
use cloud_atlas::providers::runpod::RunPod;
use cloud_atlas::providers::vast::VastBuilder;
use cloud_atlas::{Checked, Gpu, Provider};
use serde_json::Value;
use support::prism::{fixture, Prism};

fn runpod(base: &str) -> Arc<dyn Provider> {
    let p = RunPod::builder()
        .with_api_key("rp_placeholder_key")
        .with_base_url(base)
        .with_serverless_base_url(base)
        .with_rate_limit_max_wait(Duration::from_millis(20))
        .build()
        .unwrap();
    Arc::new(Checked::new(Arc::new(p)))
}

fn lambda(base: &str) -> Arc<dyn Provider> {
    let p = LambdaBuilder::default()
        .with_api_key("lambda-test-key-0123456789")
        .with_base_url(base)
        .with_limits(LambdaLimits::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
        ))
        .build()
        .unwrap();
    Arc::new(Checked::new(Arc::new(p)))
}

fn vast(base: &str) -> Arc<dyn Provider> {
    let p = VastBuilder::default()
        .with_api_key("vast-test-key-0123456789")
        .with_base_url(base)
        .with_pacing(1000.0, 1000)
        .with_retry(RetryConfig {
            init_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_retries: 4,
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    Arc::new(Checked::new(Arc::new(p)))
}

#[tokio::test]
async fn every_provider_is_asked_and_offers_are_ranked_by_price() {
    let rp = Prism::start("runpod/rest-v2.openapi.json");
    let lm = Prism::start("lambda/cloud-api-1.8.3.openapi.json");
    let va = Prism::start("vast/openapi.patched.yaml");
    let placer = Placer::new()
        .with_provider(runpod(&rp.base_url()))
        .with_provider(lambda(&lm.base_url()))
        .with_provider(vast(&va.base_url()))
        .with_provider(Arc::new(Mock::in_memory()));
    let p = placer.offers(&Requirements::any_gpu()).await.unwrap();
    for r in &p.providers {
        assert!(r.ok(), "{r:?}");
        assert!(r.offers > 0, "{r:?}");
        assert!(!r.cached);
    }
    let names: Vec<&str> = p.providers.iter().map(|r| r.provider.as_str()).collect();
    assert_eq!(names, ["runpod", "lambda", "vast", "mock"]);
    assert!(p.complete());
    assert!(p
        .offers
        .windows(2)
        .all(|w| w[0].price_per_hour <= w[1].price_per_hour));
    // RunPod's spec example: RTX 4090 at $0.44 on demand.
    let r4090 = p
        .offers
        .iter()
        .find(|o| o.provider == "runpod" && o.gpu == Some(Gpu::RTX_4090))
        .unwrap();
    assert!(r4090.price_per_hour <= 0.44, "{r4090:?}");
    // Lambda's spec example: gpu_1x_gh200 at $1.49 with capacity in us-west-1.
    let gh = p.offers.iter().find(|o| o.provider == "lambda").unwrap();
    assert_eq!(gh.id, "gpu_1x_gh200");
    assert!((gh.price_per_hour - 1.49).abs() < 1e-9);
    assert_eq!(gh.regions, ["us-west-1"]);
    assert!(p.offers.iter().any(|o| o.provider == "vast"));

    // Within the TTL nothing is asked again, whatever the requirements.
    let counts = [rp.request_count(), lm.request_count(), va.request_count()];
    let mut req = Requirements::gpu(Gpu::GH200, 1);
    req.regions = vec!["us-west-1".into()];
    let again = placer.offers(&req).await.unwrap();
    assert!(again.providers.iter().all(|r| r.cached));
    assert_eq!(again.best().unwrap().provider, "lambda");
    assert_eq!(
        [rp.request_count(), lm.request_count(), va.request_count()],
        counts
    );

    // Spot allowed: Vast's bid prices count.
    let mut req = Requirements::any_gpu();
    req.spot = true;
    req.providers = Some(vec!["vast".into()]);
    let spot = placer.offers(&req).await.unwrap();
    assert!(
        spot.offers.iter().any(|o| o.pricing == Pricing::Spot),
        "{spot:?}"
    );

    rp.assert_no_violations();
    lm.assert_no_violations();
    va.assert_no_violations();
}

/// Lambda's recorded `instance-types` answer (fixed shapes, some without capacity).
async fn lambda_samples() -> String {
    let text =
        std::fs::read_to_string(fixture("lambda/samples/m_instance_types_response.json")).unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let app = Router::new().route(
        "/api/v1/instance-types",
        get(move || {
            let b = body.clone();
            async move { Json(b) }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    base
}

#[tokio::test]
async fn lambda_recorded_catalog_offers_fixed_shapes_with_live_regions() {
    let base = lambda_samples().await;
    let placer = Placer::new().with_provider(lambda(&base));
    let p = placer.offers(&Requirements::any_gpu()).await.unwrap();
    assert!(p.complete(), "{:?}", p.providers);

    // Eight B200s: the 8x shape at its listed price, in the regions with capacity.
    let p = placer
        .offers(&Requirements::gpu(Gpu::B200, 8))
        .await
        .unwrap();
    assert_eq!(p.offers.len(), 1, "{p:?}");
    let b = &p.offers[0];
    assert_eq!(b.id, "gpu_8x_b200_sxm6");
    assert_eq!(b.gpu_count, 8);
    assert!((b.price_per_hour - 39.92).abs() < 1e-9);
    assert_eq!(b.regions, ["australia-east-1", "us-east-1"]);
    assert_eq!(b.available, Some(true));
    // Lambda sells shapes, not counts: no 2 × B200, and one GH200 is not doubled.
    assert!(placer
        .offers(&Requirements::gpu(Gpu::B200, 2))
        .await
        .unwrap()
        .offers
        .is_empty());
    assert!(placer
        .offers(&Requirements::gpu(Gpu::GH200, 2))
        .await
        .unwrap()
        .offers
        .is_empty());
    // GH200 has no region with capacity: offered as unavailable, best() skips it.
    let p = placer
        .offers(&Requirements::gpu(Gpu::GH200, 1))
        .await
        .unwrap();
    assert_eq!(p.offers[0].available, Some(false));
    assert!(p.best().is_none());
    // A region filter narrows to it; a price ceiling drops what costs more.
    let mut req = Requirements::gpu(Gpu::B200, 8);
    req.regions = vec!["us-east-1".into()];
    let p = placer.offers(&req).await.unwrap();
    assert_eq!(p.offers[0].regions, ["us-east-1"]);
    req.max_price = Some(30.0);
    assert!(placer.offers(&req).await.unwrap().offers.is_empty());
}
