//! `atlas init [DIR] [--rust] [--dry-run]`: set a project up for cloud-atlas.
//!
//! - `atlas.toml`: written with commented defaults and `version` when missing; the
//!   providers whose key env var is set get a `[providers.X]` table, the others are
//!   commented out; Fly apps found by `fly.toml` discovery are noted. An existing file is
//!   only moved forward by the `atlas upgrade` steps; nothing else in it changes.
//! - The data directory (`data_dir`, default `.atlas`) is created `0700`.
//! - `.gitignore` gets the data directory once (created when missing).
//! - `--rust`: `cloud-atlas` (and `tokio`) added to the crate's `Cargo.toml` when missing,
//!   and a starter example `examples/atlas_quickstart.rs` written when missing.
//!
//! Every edit goes through `toml_edit` or appends, so re-running keeps every byte the
//! user wrote; a second run changes nothing. It prints what it changed and what it left;
//! `--dry-run` prints the unified diff and writes nothing.

use std::path::{Path, PathBuf};

use clap::Args;
use cloud_atlas::config::{self, CONFIG_FILE_NAME, CONFIG_VERSION};
use cloud_atlas::{fly, Error, Result};

use crate::cmd::edits::{self, Plan};
use crate::cmd::upgrade;
use crate::output::Out;

/// The data directory's name when `atlas.toml` sets no `data_dir`.
const DEFAULT_DATA_DIR: &str = ".atlas";
/// The starter example `--rust` writes.
const STARTER_EXAMPLE: &str = "examples/atlas_quickstart.rs";
/// The `cloud-atlas` version `--rust` depends on.
const CLOUD_ATLAS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Arguments of `atlas init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Project folder [default: the current folder; created when missing]
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Also add cloud-atlas to the crate's Cargo.toml and write a starter example
    #[arg(long)]
    rust: bool,
    /// With --rust: depend on a local cloud-atlas checkout (its crate folder) instead of crates.io
    #[arg(long, value_name = "PATH", requires = "rust")]
    cloud_atlas_path: Option<PathBuf>,
    /// Print the diff and what would change; write nothing
    #[arg(long)]
    dry_run: bool,
}

/// The providers `init` lists (those that take a key), with the name shown in comments.
fn providers() -> Vec<(&'static str, &'static str)> {
    cloud_atlas::providers::PROVIDERS
        .iter()
        .filter(|p| p.needs_key())
        .map(|p| (p.name, p.display_name))
        .collect()
}

/// `atlas init`.
///
/// # Errors
/// `Validation` for an `atlas.toml` or `Cargo.toml` that is not TOML, a config from a
/// newer atlas, or `--rust` without a `Cargo.toml`; `Unknown` when a file cannot be written.
pub(crate) fn run(args: &InitArgs, out: &Out) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if dir.exists() && !dir.is_dir() {
        return Err(Error::validation(
            "DIR",
            format!("{} is not a folder", dir.display()),
        ));
    }
    let mut plan = Plan::new(args.dry_run);
    if !dir.exists() {
        plan.note_change(format!("created {}/", dir.display()));
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let data_dir = atlas_toml(&dir, &env, &mut plan)?;
    data_and_gitignore(&dir, &data_dir, &mut plan)?;
    if args.rust {
        rust(&dir, args.cloud_atlas_path.as_deref(), &mut plan)?;
    }
    plan.finish(out, &dir)
}

/// Write or upgrade `atlas.toml`; returns the data directory it names.
fn atlas_toml(dir: &Path, env: &dyn Fn(&str) -> Option<String>, plan: &mut Plan) -> Result<String> {
    let path = dir.join(CONFIG_FILE_NAME);
    let apps = if dir.is_dir() {
        fly::discover_apps(dir, fly::DEFAULT_MAX_DEPTH)
            .map(|d| d.apps)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let present: Vec<&str> = providers()
        .iter()
        .filter(|(p, _)| config::api_key_env_vars(p).iter().any(|v| env(v).is_some()))
        .map(|(p, _)| *p)
        .collect();
    let Some(text) = edits::read_optional(&path)? else {
        let apps: Vec<(String, String)> = apps
            .iter()
            .map(|a| {
                let d = a
                    .dir
                    .strip_prefix(dir)
                    .unwrap_or(&a.dir)
                    .display()
                    .to_string();
                (a.app.clone(), if d.is_empty() { ".".into() } else { d })
            })
            .collect();
        let body = template(&present, &apps);
        let mut what = format!("created {CONFIG_FILE_NAME} (version {CONFIG_VERSION})");
        if !present.is_empty() {
            what.push_str(&format!(
                "; providers with a key in the environment: {}",
                present.join(", ")
            ));
        }
        if !apps.is_empty() {
            let names: Vec<&str> = apps.iter().map(|(a, _)| a.as_str()).collect();
            what.push_str(&format!("; Fly apps found: {}", names.join(", ")));
        }
        plan.write(&path, None, body, what);
        return Ok(DEFAULT_DATA_DIR.to_string());
    };
    let mut doc = edits::parse_doc(&path, &text)?;
    let changes = upgrade::upgrade_doc(Path::new(CONFIG_FILE_NAME), &mut doc)?;
    if changes.is_empty() {
        plan.leave(format!(
            "{CONFIG_FILE_NAME} (version {CONFIG_VERSION}, not touched)"
        ));
    } else {
        plan.write(&path, Some(text), doc.to_string(), changes.join("; "));
    }
    let tables = doc.get("providers").and_then(|p| p.as_table_like());
    for (p, _) in &providers() {
        let has_table = tables.is_some_and(|t| t.contains_key(p));
        let var = config::api_key_env_vars(p)[0];
        if present.contains(p) && !has_table {
            plan.leave(format!(
                "[providers.{p}] not added ({var} is set; uncomment or add the table to configure it)"
            ));
        }
    }
    let data_dir = doc
        .get("data_dir")
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_DATA_DIR)
        .to_string();
    Ok(data_dir)
}

/// The data directory (0700) and its `.gitignore` line.
fn data_and_gitignore(dir: &Path, data_dir: &str, plan: &mut Plan) -> Result<()> {
    let data = Path::new(data_dir);
    let full = if data.is_absolute() {
        data.to_path_buf()
    } else {
        dir.join(data)
    };
    plan.private_dir(&full, data_dir.trim_end_matches('/'));
    let rel = data_dir.trim_start_matches("./").trim_end_matches('/');
    if data.is_absolute() || rel.is_empty() || rel.starts_with("..") {
        plan.leave(format!(
            ".gitignore (the data directory {data_dir} is outside the project)"
        ));
        return Ok(());
    }
    let path = dir.join(".gitignore");
    let before = edits::read_optional(&path)?;
    let text = before.clone().unwrap_or_default();
    let ignored = text.lines().any(|l| {
        let l = l.trim();
        let l = l.strip_prefix('/').unwrap_or(l);
        let l = l.strip_suffix('/').unwrap_or(l);
        l == rel
    });
    if ignored {
        plan.leave(format!(".gitignore already ignores {rel}/"));
        return Ok(());
    }
    let mut after = text.clone();
    if !after.is_empty() && !after.ends_with('\n') {
        after.push('\n');
    }
    after.push_str(&format!(
        "# cloud-atlas state (mock cloud, sessions, tokens)\n/{rel}/\n"
    ));
    let what = if before.is_some() {
        format!("added /{rel}/ to .gitignore")
    } else {
        format!("created .gitignore with /{rel}/")
    };
    plan.write_plain(&path, before, after, what);
    Ok(())
}

/// `--rust`: dependencies in `Cargo.toml`, the starter example.
fn rust(dir: &Path, local: Option<&Path>, plan: &mut Plan) -> Result<()> {
    let path = dir.join("Cargo.toml");
    let text = edits::read_optional(&path)?.ok_or_else(|| {
        Error::validation(
            "--rust",
            format!(
                "no Cargo.toml in {}: run it in a crate (`cargo new`), or drop --rust",
                dir.display()
            ),
        )
    })?;
    let mut doc = edits::parse_doc(&path, &text)?;
    if doc.get("package").is_none() {
        return Err(Error::validation(
            "--rust",
            format!(
                "{} has no [package] (a workspace root?): run it in the member crate",
                path.display()
            ),
        ));
    }
    let deps = doc
        .entry("dependencies")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| Error::validation("Cargo.toml", "[dependencies] is not a table"))?;
    let mut added = Vec::new();
    if deps.contains_key("cloud-atlas") {
        plan.leave("Cargo.toml already depends on cloud-atlas");
    } else {
        let mut t = toml_edit::InlineTable::new();
        t.insert("version", CLOUD_ATLAS_VERSION.into());
        if let Some(p) = local {
            let p = std::fs::canonicalize(p).map_err(|e| {
                Error::validation(
                    "--cloud-atlas-path",
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            t.insert("path", p.display().to_string().into());
        }
        deps.insert("cloud-atlas", toml_edit::value(t));
        added.push("cloud-atlas");
    }
    if deps.contains_key("tokio") {
        plan.leave("Cargo.toml already depends on tokio");
    } else {
        let mut t = toml_edit::InlineTable::new();
        t.insert("version", "1".into());
        let mut f = toml_edit::Array::new();
        f.push("macros");
        f.push("rt-multi-thread");
        t.insert("features", toml_edit::Value::Array(f));
        deps.insert("tokio", toml_edit::value(t));
        added.push("tokio");
    }
    if !added.is_empty() {
        plan.write_plain(
            &path,
            Some(text),
            doc.to_string(),
            format!("added {} to Cargo.toml [dependencies]", added.join(", ")),
        );
    }
    let example = dir.join(STARTER_EXAMPLE);
    if example.exists() {
        plan.leave(format!("{STARTER_EXAMPLE} exists"));
    } else {
        let examples = dir.join("examples");
        if !examples.is_dir() {
            // Source folders are not private; created plainly on apply.
            plan.note_change("created examples/");
        }
        plan.write_plain(
            &example,
            None,
            STARTER.to_string(),
            format!("wrote {STARTER_EXAMPLE} (run: cargo run --example atlas_quickstart)"),
        );
    }
    Ok(())
}

/// The starter example `--rust` writes: spawn on the mock cloud, wait, terminate.
const STARTER: &str = r#"//! Starter example written by `atlas init --rust`: spawn compute on the embedded mock
//! cloud, wait until it runs, print its URL, terminate it. No keys, no bills.
//!
//! Run: `cargo run --example atlas_quickstart`. Swap `Mock::in_memory()` for
//! `RunPod::from_env()?` (or Lambda, Vast, FlyMachines) to run it on a real cloud.

use std::time::Duration;

use cloud_atlas::providers::mock::Mock;
use cloud_atlas::{ComputeRequest, ComputeStatus, Gpu, Provider, ProviderExt};

#[tokio::main]
async fn main() -> cloud_atlas::Result<()> {
    let cloud = Mock::in_memory();
    let req = ComputeRequest::builder()
        .gpu(Gpu::H100)
        .image("ghcr.io/acme/infer:latest")
        .port("8000/http")
        .build()?;
    let pod = cloud.spawn(&req).await?;
    let pod = cloud
        .wait_for(&pod.id, ComputeStatus::Running, Duration::from_secs(30))
        .await?;
    println!("{} is {:?} at {:?}", pod.id, pod.status, pod.http_url());
    cloud.terminate(&pod.id).await?;
    Ok(())
}
"#;

/// The text of a new `atlas.toml`.
fn template(present: &[&str], apps: &[(String, String)]) -> String {
    let mut s = String::new();
    s.push_str(
        "# cloud-atlas project configuration, written by `atlas init`.\n\
         # Commented lines show defaults: uncomment one to change it. `atlas init` and\n\
         # `atlas upgrade` edit this file in place and keep your changes and comments.\n\
         # Guides: docs/getting-started.md in the cloud-atlas repository.\n\n\
         # Format version of this file (`atlas upgrade` moves it forward).\n",
    );
    s.push_str(&format!("version = {CONFIG_VERSION}\n\n"));
    s.push_str(
        "# Provider used when --provider is not given. \"mock\" is the embedded mock cloud:\n\
         # no keys, no bills.\n\
         default_provider = \"mock\"\n\n\
         # State (mock cloud, sessions, tokens), relative to this file; kept out of git.\n\
         # data_dir = \".atlas\"\n\n\
         # Time budget of every provider call, retries included (default: 30s for reads,\n\
         # 2m for spawn and other writes); ATLAS_TIMEOUT and --call-timeout override it.\n\
         # timeout = \"30s\"\n\n\
         # The mock cloud's simulated delays.\n\
         # [mock]\n\
         # boot_delay = \"1500ms\"\n\
         # queue_delay = \"300ms\"\n\
         # exec_time = \"1500ms\"\n\
         # create_delay = \"0s\"\n\n\
         # Providers. Keys come from their env vars (an api_key here is read too, but keep\n\
         # keys out of files you commit).\n",
    );
    for (p, name) in &providers() {
        let var = config::api_key_env_vars(p)[0];
        s.push('\n');
        if present.contains(p) {
            s.push_str(&format!("# {name}: {var} is set in the environment.\n"));
            s.push_str(&format!("[providers.{p}]\n"));
            s.push_str("# base_url = \"http://127.0.0.1:4010\"   # e.g. a local contract server\n");
            if *p == "fly" {
                s.push_str(&fly_app_line(apps, false));
            }
        } else {
            s.push_str(&format!("# {name}: set {var}, then uncomment.\n"));
            s.push_str(&format!("# [providers.{p}]\n"));
            if *p == "fly" {
                s.push_str(&fly_app_line(apps, true));
            }
        }
    }
    if !apps.is_empty() {
        s.push_str("\n# Fly apps found by fly.toml discovery (`atlas fly apps`):\n");
        for (app, d) in apps {
            s.push_str(&format!("#   {app}  ({d})\n"));
        }
    }
    s.push_str(
        "\n# Tracked sessions (`atlas session`, `atlas reap`, `atlas serve`). Caps have no\n\
         # default: a commented cap is no cap. Every limit set is enforced or refused.\n\
         # [orchestrator]\n\
         # idle_ttl = \"15m\"\n\
         # max_runtime = \"8h\"\n\
         # heartbeat_flush = \"5s\"\n\
         # reaper = true\n\
         # reaper_prefix = \"atlas-session-\"\n\
         # reaper_grace = \"10m\"\n\
         # reaper_interval = \"60s\"\n\
         # max_sessions_per_user = 3\n\
         # max_usd_per_hour_per_user = 10.0\n\
         # max_total_usd_per_user = 100.0\n\
         # max_usd_per_user_per_month = 50.0\n\
         # max_total_usd = 1000.0\n",
    );
    s.push_str(
        "\n# `atlas serve`: the control plane (REST API, events, metrics, dashboard).\n\
         # [server]\n\
         # bind = \"127.0.0.1:7878\"\n\
         # providers = [\"mock\"]\n\
         # store = \"sqlite\"\n\
         # reaper = true\n\
         # shutdown = \"terminate\"\n\
         # allow_destructive = false\n",
    );
    s
}

/// The `app = …` line of `[providers.fly]`: the first discovered app, commented out when
/// the table is.
fn fly_app_line(apps: &[(String, String)], commented: bool) -> String {
    let hash = if commented { "# " } else { "" };
    match apps.first() {
        Some((app, _)) => format!("{hash}app = \"{app}\"   # found by fly.toml discovery\n"),
        None => "# app = \"my-app\"\n".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_loads_as_current_version() {
        let apps = vec![("web-app".to_string(), "web".to_string())];
        let body = template(&["runpod", "fly"], &apps);
        let doc: toml_edit::DocumentMut = body.parse().unwrap();
        assert_eq!(doc["version"].as_integer(), Some(i64::from(CONFIG_VERSION)));
        assert!(doc["providers"]["runpod"].is_table());
        assert_eq!(doc["providers"]["fly"]["app"].as_str(), Some("web-app"));
        assert!(doc["providers"].get("lambda").is_none());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CONFIG_FILE_NAME);
        std::fs::write(&p, &body).unwrap();
        let c = config::Config::load_with(dir.path(), Some(&p), &Default::default(), None).unwrap();
        assert_eq!(c.default_provider.as_deref(), Some("mock"));
        // Every commented key is a valid setting: uncommenting them all still loads.
        let uncommented: String = body
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || rest.contains(" = ") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&p, &uncommented).unwrap();
        let c = config::Config::load_with(dir.path(), Some(&p), &Default::default(), None)
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        cloud_atlas::orchestrator::OrchestratorSettings::from_table(&c.orchestrator)
            .unwrap_or_else(|e| panic!("[orchestrator]: {e}"));
        cloud_atlas_web::ServerConfig::from_table(&c.server)
            .unwrap_or_else(|e| panic!("[server]: {e}"));
    }
}
