//! Live tests against the real Lambda Cloud API. Run with
//! `LAMBDA_API_KEY=… cargo test -p cloud-atlas --test live_lambda -- --ignored`.
//! Without the key they fail with a message; they never pass by skipping.
//!
//! They cover the known gaps between Prism and the real cloud: a catalog with many types
//! and real capacity, real SSH keys, and one real launch (cheapest GPU with capacity,
//! plain VM, terminated at the end even when an assertion fails).

use std::time::Duration;

use cloud_atlas::providers::lambda::{Lambda, LAMBDA_API_KEY_ENV};
use cloud_atlas::{ComputeRequest, ComputeStatus, ErrorKind, ListFilter, Provider, ProviderExt};

fn live() -> Lambda {
    let key = std::env::var(LAMBDA_API_KEY_ENV)
        .or_else(|_| std::env::var("LAMBDA_LABS_API_KEY"))
        .unwrap_or_default();
    assert!(
        !key.trim().is_empty(),
        "live test needs {LAMBDA_API_KEY_ENV}: export a key from https://cloud.lambda.ai/api-keys"
    );
    Lambda::from_env().expect("build the Lambda provider from the environment")
}

#[tokio::test]
#[ignore = "live: needs LAMBDA_API_KEY"]
async fn live_catalog_and_account_reads() {
    let lambda = live();
    let types = lambda.gpu_types().await.unwrap();
    assert!(!types.is_empty(), "Lambda listed no instance types");
    assert!(types.iter().all(|t| t.price_on_demand.is_some()));
    assert!(
        types.iter().any(|t| t.gpu.is_some()),
        "no type mapped to a canonical GPU: {types:?}"
    );
    lambda.ssh_keys().list().await.unwrap();
    lambda.file_systems().list().await.unwrap();
    lambda.firewall().list().await.unwrap();
    lambda.list(&ListFilter::all()).await.unwrap();
    let e = lambda
        .get("00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

struct Cleanup<'a>(&'a Lambda, Option<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.1.take() {
            let lambda = self.0.clone();
            let _ = std::thread::spawn(move || {
                tokio::runtime::Runtime::new()
                    .unwrap()
                    .block_on(async { lambda.terminate_if_exists(&id).await })
            })
            .join();
        }
    }
}

#[tokio::test]
#[ignore = "live: needs LAMBDA_API_KEY and an SSH key on the account; spends money"]
async fn live_spawn_get_terminate() {
    let lambda = live();
    let key = match std::env::var("LAMBDA_SSH_KEY") {
        Ok(k) => k,
        Err(_) => {
            let keys = lambda.ssh_keys().list().await.unwrap();
            keys.first()
                .expect("add an SSH key to the account or set LAMBDA_SSH_KEY")
                .name
                .clone()
        }
    };
    let mut types = lambda.gpu_types().await.unwrap();
    types.retain(|t| t.gpu.is_some() && t.available == Some(true));
    types.sort_by(|a, b| a.price_on_demand.partial_cmp(&b.price_on_demand).unwrap());
    let cheapest = types.first().expect("no GPU type has capacity right now");
    let req = ComputeRequest::builder()
        .gpu(cheapest.gpu.unwrap())
        .gpu_count(cheapest.gpu_count)
        .image("lambda-stack")
        .name("atlas-live")
        .provider_opt("instance_type", cheapest.id.clone())
        .provider_opt("ssh_key", key)
        .build()
        .unwrap();
    let c = lambda.spawn(&req).await.unwrap();
    let mut guard = Cleanup(&lambda, Some(c.id.clone()));
    let listed = lambda
        .list(&ListFilter::all().with_name(req.launch_name()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let up = lambda
        .wait_for(&c.id, ComputeStatus::Running, Duration::from_secs(900))
        .await
        .unwrap();
    assert!(up.public_ip.is_some());
    lambda.terminate(&c.id).await.unwrap();
    guard.1 = None;
}
