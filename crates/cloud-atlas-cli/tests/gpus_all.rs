//! `atlas gpus --provider all`: every configured provider's offers in one table sorted by
//! price (PROVIDER column), a failing provider reported on stderr and in JSON, exit 12.

mod common;

use std::time::{Duration, Instant};

use common::{assert_lambda_reported, with_broken_lambda, MockWorld};

fn prices(stdout: &str) -> Vec<f64> {
    stdout
        .lines()
        .filter(|l| l.contains("mock"))
        .map(|l| {
            let cell = l
                .split_whitespace()
                .find(|c| c.starts_with('$'))
                .unwrap_or_else(|| panic!("a price in {l:?}"));
            cell.trim_start_matches('$')
                .trim_end_matches("/h")
                .parse::<f64>()
                .unwrap()
        })
        .collect()
}

#[test]
fn offers_of_every_provider_sorted_by_price_and_a_failing_one_is_reported() {
    let w = MockWorld::new("[mock]\nout_of_stock = [\"h100\"]\n");

    // Only the mock configured: complete, exit 0, cheapest first.
    let r = w.run(&["--provider", "all", "gpus"]).ok();
    assert!(r.stdout.contains("PROVIDER"), "{r:#?}");
    assert!(r.stdout.contains("AVAILABLE"), "{r:#?}");
    assert!(r.stderr.is_empty(), "{r:#?}");
    let p = prices(&r.stdout);
    assert!(p.len() > 10, "{r:#?}");
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "sorted by price: {p:?}");

    // Lambda unreachable: the mock's offers are still listed, one error line, exit 12.
    let started = Instant::now();
    let r = with_broken_lambda(&w, &["--provider", "all", "gpus", "--timeout", "2s"]);
    assert_lambda_reported(&r);
    assert!(started.elapsed() < Duration::from_secs(15), "{r:#?}");
    assert_eq!(prices(&r.stdout).len(), p.len(), "{r:#?}");

    // JSON: offers plus one entry per provider, the failure with its kind and exit code;
    // --gpu filters every provider; availability comes through.
    let r = with_broken_lambda(
        &w,
        &[
            "--provider",
            "all",
            "gpus",
            "--gpu",
            "h100",
            "--timeout",
            "1s",
            "-o",
            "json",
        ],
    );
    assert_lambda_reported(&r);
    let v = r.json();
    let offers = v["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 1, "{v:#?}");
    assert_eq!(offers[0]["provider"], "mock");
    assert_eq!(offers[0]["gpu"], "h100");
    assert_eq!(offers[0]["available"], false, "out_of_stock in atlas.toml");
    assert!(offers[0]["price_per_hour"].as_f64().unwrap() > 0.0);
    let providers = v["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|e| e["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mock", "lambda"], "{v:#?}");
    assert_eq!(providers[0]["ok"], true);
    assert_eq!(providers[0]["offers"], 1);
    assert_eq!(providers[1]["ok"], false);
    assert_eq!(providers[1]["error"]["kind"], "timeout", "{v:#?}");
    assert_eq!(providers[1]["error"]["exit_code"], 6);
    assert!(providers[1].get("offers").is_none());

    let r = w.run(&["gpus", "--help"]).ok();
    assert!(r.stdout.contains("--provider all"), "{r:#?}");
    assert!(r.stdout.contains("12 when at least one failed"), "{r:#?}");
}
