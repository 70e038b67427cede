//! Live test against the real Fly Machines API. Ignored by default; run with
//! `cargo test -p cloud-atlas --test live_fly_machines -- --ignored` and
//! `FLY_API_TOKEN` + `FLY_APP_NAME` set. Without them it fails, never passes.

use std::time::Duration;

use cloud_atlas::providers::fly_machines::FlyMachinesBuilder;
use cloud_atlas::{ComputeRequest, Provider};

#[test]
#[ignore = "live: needs FLY_API_TOKEN and FLY_APP_NAME; spends money"]
fn live_fly_lifecycle() {
    let token =
        std::env::var("FLY_API_TOKEN").expect("live test: set FLY_API_TOKEN (and FLY_APP_NAME)");
    let app = std::env::var("FLY_APP_NAME").expect("live test: set FLY_APP_NAME");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let fly = FlyMachinesBuilder::default()
            .with_api_key(token)
            .with_app(app)
            .build()
            .unwrap();
        let req = ComputeRequest::builder()
            .image("nginx:alpine")
            .port("80/http")
            .name("atlas-live")
            .build()
            .unwrap();
        let c = fly.spawn(&req).await.unwrap();
        fly.wait_state(&c.id, "started", Duration::from_secs(60))
            .await
            .unwrap();
        fly.terminate(&c.id).await.unwrap();
    });
}
