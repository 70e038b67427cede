//! `atlas demo`: the main job, narrated, on the embedded mock cloud.
//!
//! Spawns an H100 with an HTTP port and bearer auth, waits for it with progress lines,
//! reads it back, lists it, terminates it and shows that `get` then answers not found.
//! State lives in SQLite under the data directory (`.atlas/` beside `atlas.toml`), so
//! `atlas ls` in another shell sees the machine while the demo runs. Whatever fails, the
//! demo terminates what it spawned before returning; on Ctrl-C (or SIGTERM) too, after
//! the create call in flight has answered, and it then exits 130 (143).

use std::time::Duration;

use cloud_atlas::providers::mock::MOCK_DB_FILE;
use cloud_atlas::{
    AuthMode, Checked, Compute, ComputeRequest, Error, ErrorKind, Gpu, ListFilter, Provider,
    ProviderExt, Result,
};

use crate::cmd::compute::{credential_lines, endpoint_text, gpu_text};
use crate::context::Context;
use crate::output::{price, Out};
use crate::signal::{Sig, Signals};
use crate::wait::{self, Progress};

const IMAGE: &str = "ghcr.io/cloud-atlas/demo-infer:latest";
const NAME: &str = "atlas-demo";
const WAIT: Duration = Duration::from_secs(120);

/// `atlas demo`.
pub(crate) async fn run(ctx: &Context) -> Result<()> {
    if ctx.provider_explicit && ctx.provider != "mock" {
        return Err(Error::validation(
            "provider",
            format!(
                "the demo runs on the mock cloud only (it spawns and terminates a machine); drop --provider {} or use --provider mock",
                ctx.provider
            ),
        ));
    }
    let out = &ctx.out;
    let p = ctx.build("mock")?;
    let db = ctx.config.data_dir.join(MOCK_DB_FILE);
    out.text(&format!(
        "atlas demo: the main job on the embedded mock cloud\n  state: {} (shared by every `atlas --provider mock` command)",
        db.display()
    ))?;

    let req = ComputeRequest::builder()
        .gpu(Gpu::H100)
        .image(IMAGE)
        .port("8000/http")
        .auth(AuthMode::Bearer)
        .name(NAME)
        .label("purpose", "demo")
        .build()?;
    out.text(&format!(
        "\n1. spawn 1× h100, image {IMAGE}, port 8000/http, bearer auth\n   $ atlas spawn --gpu h100 --image {IMAGE} --port 8000/http --auth bearer --name {NAME}"
    ))?;
    let mut signals = Signals::install()?;
    let (spawned, caught) = signals.shielded(p.spawn(&req)).await;
    let spawned = match (spawned, caught) {
        (Ok(c), Some(sig)) => end_interrupted(&p, &c, sig).await,
        (Err(e), Some(sig)) => {
            crate::exit::report(&e);
            sig.exit()
        }
        (spawned, None) => spawned?,
    };
    match signals.interruptible(after_spawn(out, &p, &spawned)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            // Never leave the demo's machine billing, even on the mock.
            let _ = p.terminate_if_exists(&spawned.id).await;
            Err(e)
        }
        Err(sig) => end_interrupted(&p, &spawned, sig).await,
    }
}

/// Interrupted: terminate the demo's machine, say so on stderr, exit 130/143.
async fn end_interrupted(p: &Checked, c: &Compute, sig: Sig) -> ! {
    eprintln!(
        "interrupted ({}): terminating the demo machine {}",
        sig.name(),
        c.id
    );
    match tokio::time::timeout(Duration::from_secs(60), p.terminate_if_exists(&c.id)).await {
        Ok(Ok(_)) => eprintln!("terminated {}", c.id),
        Ok(Err(e)) => crate::exit::report_text(
            e.kind().as_str(),
            &format!(
                "could not terminate {}: {e}; it bills until `atlas terminate {}`",
                c.id, c.id
            ),
            e.provider(),
            crate::exit::code(e.kind()),
        ),
        Err(_) => crate::exit::report_text(
            ErrorKind::Timeout.as_str(),
            &format!(
                "terminating {} did not finish in 60s; check with `atlas get {}`",
                c.id, c.id
            ),
            Some(c.provider.as_str()),
            crate::exit::code(ErrorKind::Timeout),
        ),
    }
    sig.exit()
}

async fn after_spawn(out: &Out, p: &Checked, spawned: &Compute) -> Result<()> {
    let id = &spawned.id;
    out.text(&format!(
        "   → {id} is {}, {}, {}",
        spawned.status,
        gpu_text(spawned),
        price(spawned.cost_per_hour)
    ))?;
    for line in credential_lines(spawned) {
        out.text(&format!("   {line}"))?;
    }

    out.text(&format!(
        "\n2. wait until it runs\n   $ atlas spawn … --wait   (or poll `atlas get {id}`)"
    ))?;
    let mut progress = Progress::on_stdout("   ");
    let running = wait::until_running(p, id, WAIT, &mut progress).await?;
    drop(progress);

    out.text(&format!("\n3. get it\n   $ atlas get {id}"))?;
    let got = p.get(id).await?;
    out.text(&format!(
        "   → {} {}, {} in {}, {} at {}",
        got.id,
        got.status,
        gpu_text(&got),
        got.region.as_deref().unwrap_or("-"),
        price(got.cost_per_hour),
        endpoint_text(&running),
    ))?;
    out.text("   (reads carry only the token's hash; the token itself was shown once, above)")?;

    out.text("\n4. list\n   $ atlas ls")?;
    let listed = p.list(&ListFilter::all()).await?;
    for c in &listed {
        let mark = if &c.id == id { "  ← ours" } else { "" };
        out.text(&format!(
            "   {}  {:<12} {}{mark}",
            c.id,
            c.status.as_str(),
            c.name.as_deref().unwrap_or("-")
        ))?;
    }
    if !listed.iter().any(|c| &c.id == id) {
        return Err(Error::new(
            ErrorKind::Unknown,
            format!("demo: {id} is missing from the listing"),
        ));
    }

    let accrued = got.raw.get("accrued_usd").and_then(|v| v.as_f64());
    out.text(&format!(
        "\n5. terminate (billing stops)\n   $ atlas terminate {id}"
    ))?;
    p.terminate(id).await?;
    match accrued {
        Some(usd) => out.text(&format!("   → terminated; it cost ${usd:.6}"))?,
        None => out.text("   → terminated")?,
    }

    out.text(&format!("\n6. get it again\n   $ atlas get {id}"))?;
    match p.get(id).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            out.text(&format!("   → {e}"))?;
            out.text(&format!(
                "   (the CLI exits {} for not found)",
                crate::exit::code(ErrorKind::NotFound)
            ))?;
        }
        Err(e) => return Err(e),
        Ok(c) => {
            return Err(Error::new(
                ErrorKind::Unknown,
                format!("demo: {} is still {} after terminate", c.id, c.status),
            ))
        }
    }
    out.text("\ndone: spawn → wait → get → ls → terminate → not found, on the mock cloud.\nSame commands on a real cloud: add --provider runpod (RUNPOD_API_KEY), lambda, vast or fly.")
}
