//! Live tests against the real Vast.ai API. Ignored by default; run with
//! `VAST_API_KEY=… cargo test -p cloud-atlas --test live_vast -- --ignored`.
//! Without the key they fail loudly rather than pass.

use std::time::Duration;

use cloud_atlas::providers::vast::{OfferQuery, Vast};
use cloud_atlas::{ComputeRequest, ComputeStatus, Gpu, ListFilter, Provider, ProviderExt};

fn live() -> Vast {
    assert!(
        std::env::var("VAST_API_KEY").is_ok_and(|k| !k.trim().is_empty()),
        "live test: set VAST_API_KEY to a Vast.ai API key"
    );
    Vast::from_env().expect("build the Vast provider from VAST_API_KEY")
}

#[tokio::test]
#[ignore = "live: needs VAST_API_KEY"]
async fn live_catalog_and_listing() {
    let vast = live();
    let gpus = vast.gpu_types().await.unwrap();
    assert!(!gpus.is_empty(), "the marketplace always has offers");
    assert!(gpus
        .iter()
        .all(|g| g.lowest_price().is_some_and(|p| p > 0.0)));
    let q = OfferQuery::catalog(false);
    let offers = vast.offers(&q).await.unwrap();
    assert!(offers.windows(2).all(|w| w[0].dph_total <= w[1].dph_total));
    vast.list(&ListFilter::all()).await.unwrap();
}

#[tokio::test]
#[ignore = "live: needs VAST_API_KEY; spends money"]
async fn live_lifecycle_cheapest_rtx_3090() {
    let vast = live();
    let req = ComputeRequest::builder()
        .gpu(Gpu::RTX_3090)
        .image("nginx:alpine")
        .port("80/http")
        .container_disk_gb(10)
        .name("atlas-live")
        .build()
        .unwrap();
    let c = vast.spawn(&req).await.unwrap();
    let result: cloud_atlas::Result<()> = async {
        let up = vast
            .wait_for(&c.id, ComputeStatus::Running, Duration::from_secs(900))
            .await?;
        assert!(up.http_url().is_some(), "{up:?}");
        vast.stop(&c.id).await?;
        vast.wait_for(&c.id, ComputeStatus::Stopped, Duration::from_secs(300))
            .await?;
        Ok(())
    }
    .await;
    vast.terminate(&c.id).await.unwrap();
    result.unwrap();
}
