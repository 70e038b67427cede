//! The public conformance suite against the Lambda provider on Prism running Lambda's
//! published 1.8.3 spec (canned answers: every call must validate and decode; the strict
//! Prism guard fails the case on any spec violation).
//!
//! The spec's only catalog example lists `gpu_1x_gh200` in `us-west-1`; the suite spawns
//! its default GPU (a10), which the example catalog does not list, so the region is named
//! explicitly (the provider then leaves the capacity judgement to the launch endpoint).

mod support;

use std::time::Duration;

use cloud_atlas::providers::lambda::{Lambda, LambdaBuilder, LambdaLimits};
use cloud_atlas::testing::{Guarded, SuiteOptions};
use support::prism::StrictPrism as Prism;

fn guarded() -> Guarded<Prism, Lambda> {
    let prism = Prism::start("lambda/cloud-api-1.8.3.openapi.json");
    let lambda = LambdaBuilder::default()
        .with_api_key("lambda-conformance-key-0123")
        .with_base_url(prism.base_url())
        .with_limits(LambdaLimits::new(
            Duration::from_millis(5),
            Duration::from_millis(5),
        ))
        .build()
        .unwrap();
    Guarded::new(prism, lambda)
}

fn options() -> SuiteOptions {
    let mut opts = SuiteOptions::contract_server();
    opts.region = Some("us-west-1".into());
    opts.provider_opts
        .insert("ssh_key".into(), "my-public-key".into());
    opts
}

cloud_atlas::conformance_tests!(guarded(), options());
