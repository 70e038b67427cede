//! The public conformance suite against the Vast provider: on the local server with the
//! CLI's shapes (state changes: spawn → running → stop → start → terminate → NotFound),
//! and on Prism running the patched spec (canned answers: every call succeeds and decodes).

mod support;

use std::time::Duration;

use cloud_atlas::providers::vast::{Vast, VastBuilder};
use cloud_atlas::testing::SuiteOptions;
use cloud_atlas::Gpu;

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn vast(base: &str) -> Vast {
    VastBuilder::default()
        .with_api_key(KEY)
        .with_base_url(base)
        .with_pacing(1000.0, 1000)
        .with_reconcile(2, Duration::from_millis(10))
        .with_spot_check(2, Duration::from_millis(10))
        .build()
        .unwrap()
}

fn options(state: bool) -> SuiteOptions {
    SuiteOptions {
        gpu: Some(Gpu::RTX_4090),
        expect_state_changes: state,
        // The local servers keep state but run no commands.
        runs_commands: false,
        wait_timeout: Duration::from_secs(20),
        case_timeout: Duration::from_secs(60),
        ..SuiteOptions::default()
    }
}

mod on_the_cli_shaped_server {
    use super::*;
    cloud_atlas::conformance_tests!(vast(&support::vast_server::start(|_| {}).0), options(true));
}

mod on_prism_with_the_patched_spec {
    use super::*;
    use cloud_atlas::testing::Guarded;
    use support::prism::StrictPrism as Prism;

    /// Each case gets its own Prism, stopped when the case's provider is dropped.
    fn guarded() -> Guarded<Prism, Vast> {
        let prism = Prism::start("vast/openapi.patched.yaml");
        let provider = vast(&prism.base_url());
        Guarded::new(prism, provider)
    }

    cloud_atlas::conformance_tests!(guarded(), options(false));
}
