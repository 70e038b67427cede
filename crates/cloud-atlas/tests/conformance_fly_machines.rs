//! The public conformance suite against the Fly Machines provider on Prism running
//! Fly's published Machines spec (canned answers: every call must validate and decode).

mod support;

use std::time::Duration;

use cloud_atlas::providers::fly_machines::{FlyLimits, FlyMachines, FlyMachinesBuilder};
use cloud_atlas::testing::{Guarded, SuiteOptions};
use support::prism::StrictPrism as Prism;

fn guarded() -> Guarded<Prism, FlyMachines> {
    let prism = Prism::start("fly/machines-openapi3.json");
    let fly = FlyMachinesBuilder::default()
        .with_api_key("fm2_placeholder")
        .with_base_url(prism.base_url())
        .with_app("conformance-app")
        .with_limits(FlyLimits {
            action_interval: Duration::from_millis(5),
            action_burst: 10,
            get_interval: Duration::from_millis(5),
            get_burst: 10,
        })
        .build()
        .unwrap();
    Guarded::new(prism, fly)
}

fn options() -> SuiteOptions {
    let mut opts = SuiteOptions::contract_server();
    opts.cpu_only = true;
    opts
}

cloud_atlas::conformance_tests!(guarded(), options());
