//! `atlas mock seed`: put a machine on the local mock cloud as if someone else had
//! spawned it (back-dated with `--age`), to try the reaper without a real cloud.

use std::time::Duration;

use clap::{Args, Subcommand};
use cloud_atlas::providers::mock::Mock;
use cloud_atlas::spec::DurationRange;
use cloud_atlas::{Gpu, Result};

use crate::cmd::compute::detail_table;
use crate::context::Context;

/// `atlas mock …`.
#[derive(Debug, Subcommand)]
pub(crate) enum MockCmd {
    /// Create an untracked machine on the mock cloud (not through the orchestrator)
    Seed(SeedArgs),
}

/// Arguments of `atlas mock seed`.
#[derive(Debug, Args)]
pub(crate) struct SeedArgs {
    /// Machine name (the reaper only ever reaps names with its prefix, default atlas-)
    name: String,
    /// GPU model; omit for a CPU machine
    #[arg(long, value_name = "GPU")]
    gpu: Option<String>,
    /// How long ago it was created, 0s to 3650d, e.g. 30m
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::flags::duration(DurationRange::ANY))]
    age: Duration,
}

/// `atlas mock …`.
pub(crate) async fn run(ctx: &Context, cmd: MockCmd) -> Result<()> {
    match cmd {
        MockCmd::Seed(a) => {
            let gpu = a.gpu.as_deref().map(str::parse::<Gpu>).transpose()?;
            let age = a.age;
            if a.name.trim().is_empty() {
                return Err(cloud_atlas::Error::validation("name", "must not be empty"));
            }
            let mock = Mock::from_config(&ctx.config, &ctx.settings("mock"))?;
            let c = mock.seed(&a.name, gpu, age)?;
            ctx.out.one(&c, |out, c| detail_table(out, c).to_string())
        }
    }
}
