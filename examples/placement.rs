//! Placement across providers: ask every provider's `gpu_types`, rank the offers for one
//! GPU model by on-demand price, and report the providers that failed instead of hiding
//! them. Runs on mock clouds (one healthy, one whose catalog call fails with an injected
//! 503), so it needs no keys; swap in `RunPod::from_env()?`, `Lambda::from_env()?`, … .
//!
//! `cargo run -p cloud-atlas-examples --example placement` (its test runs under `cargo test`).

use cloud_atlas::providers::mock::{Fault, Mock, MockOp};
use cloud_atlas::{Gpu, GpuType, Provider};

/// Offers for `gpu` from every provider, cheapest first, and `(provider, error)` for each
/// provider that could not answer.
async fn place(
    providers: &[(&str, &dyn Provider)],
    gpu: Gpu,
) -> (Vec<GpuType>, Vec<(String, cloud_atlas::Error)>) {
    let answers = futures::future::join_all(providers.iter().map(|(_, p)| p.gpu_types())).await;
    let mut offers = Vec::new();
    let mut failures = Vec::new();
    for ((name, _), answer) in providers.iter().zip(answers) {
        match answer {
            Ok(types) => offers.extend(
                types
                    .into_iter()
                    .filter(|t| t.gpu == Some(gpu) && t.price_on_demand.is_some()),
            ),
            Err(e) => failures.push((name.to_string(), e)),
        }
    }
    let price = |t: &GpuType| t.price_on_demand.unwrap_or(f64::INFINITY);
    offers.sort_by(|a, b| price(a).total_cmp(&price(b)));
    (offers, failures)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let healthy = Mock::in_memory();
    let down = Mock::in_memory();
    down.inject(MockOp::GpuTypes, Fault::Unavailable, 1);
    let (offers, failures) = place(&[("mock-a", &healthy), ("mock-b", &down)], Gpu::H100).await;
    for o in &offers {
        println!(
            "{:>8} {:<12} ${:.2}/h",
            o.provider,
            o.id,
            o.price_on_demand.unwrap_or(0.0)
        );
    }
    for (p, e) in &failures {
        println!("{p}: no answer: {e}");
    }
    anyhow::ensure!(!offers.is_empty(), "no provider offers an H100");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranks_offers_and_reports_failures() {
        let healthy = Mock::in_memory();
        let down = Mock::in_memory();
        down.inject(MockOp::GpuTypes, Fault::Unavailable, 1);
        let (offers, failures) = place(&[("mock-a", &healthy), ("mock-b", &down)], Gpu::H100).await;
        assert!(!offers.is_empty());
        assert!(offers.iter().all(|o| o.gpu == Some(Gpu::H100)));
        assert!(offers
            .windows(2)
            .all(|w| w[0].price_on_demand <= w[1].price_on_demand));
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "mock-b");
    }
}
