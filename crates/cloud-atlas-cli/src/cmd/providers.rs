//! `atlas providers`: the providers this build knows, what they can do, and whether a key
//! is configured (and from where; never the key itself).

use cloud_atlas::config::api_key_env_vars;
use cloud_atlas::{providers, Provider, Result};
use comfy_table::Cell;
use serde::Serialize;

use crate::context::Context;
use crate::output::Out;

/// One row of `atlas providers` (also its JSON shape).
#[derive(Debug, Serialize)]
pub(crate) struct ProviderInfo {
    name: String,
    /// Whether this is the provider commands use by default.
    default: bool,
    /// Whether the provider could be built with the current configuration.
    available: bool,
    /// Declared capabilities (empty when the provider cannot be built yet).
    capabilities: Vec<String>,
    max_gpus_per_instance: Option<u32>,
    api_key: KeyInfo,
    /// What to do when it is not available.
    note: Option<String>,
}

/// Where a provider's key comes from. Holds no secret.
#[derive(Debug, Serialize)]
pub(crate) struct KeyInfo {
    required: bool,
    configured: bool,
    /// `--api-key`, `atlas.toml [providers.runpod]` or the env var's name.
    source: Option<String>,
    env_vars: Vec<&'static str>,
}

/// Gather the rows.
pub(crate) fn collect(ctx: &Context) -> Vec<ProviderInfo> {
    providers::known()
        .into_iter()
        .map(|name| {
            let settings = ctx.settings(name);
            let env_vars = api_key_env_vars(name).to_vec();
            let key = KeyInfo {
                required: !env_vars.is_empty(),
                configured: settings.api_key.is_some(),
                source: settings.api_key_source.clone(),
                env_vars,
            };
            // Building is offline (no request is sent); it tells whether the config is complete.
            let (available, capabilities, max_gpus, note) = match ctx.build(name) {
                Ok(p) => {
                    let caps = p.capabilities();
                    (
                        true,
                        caps.iter().map(|c| c.to_string()).collect(),
                        caps.max_gpus_per_instance(),
                        None,
                    )
                }
                Err(e) => (false, Vec::new(), None, Some(e.message().to_string())),
            };
            ProviderInfo {
                name: name.to_string(),
                default: name == ctx.provider,
                available,
                capabilities,
                max_gpus_per_instance: max_gpus,
                api_key: key,
                note,
            }
        })
        .collect()
}

/// `atlas providers`.
pub(crate) fn run(ctx: &Context) -> Result<()> {
    let rows = collect(ctx);
    ctx.out.many(&rows, table)
}

fn table(out: &Out, rows: &[ProviderInfo]) -> String {
    let mut t = out.table(&["PROVIDER", "STATUS", "API KEY", "CAPABILITIES"]);
    for r in rows {
        let name = if r.default {
            format!("{} (default)", r.name)
        } else {
            r.name.clone()
        };
        let status = if r.available { "ready" } else { "unavailable" };
        let key = match (&r.api_key.source, r.api_key.required) {
            (Some(src), _) => format!("set ({src})"),
            (None, true) => format!("missing: set {}", r.api_key.env_vars.join(" or ")),
            (None, false) => "not needed".to_string(),
        };
        let caps = match (&r.note, r.capabilities.is_empty()) {
            (Some(note), true) => note.clone(),
            _ => {
                let mut c = r.capabilities.join(", ");
                if let Some(n) = r.max_gpus_per_instance {
                    c.push_str(&format!(" (≤{n} GPUs)"));
                }
                c
            }
        };
        t.add_row(vec![
            Cell::new(name),
            out.status_cell(status),
            Cell::new(key),
            Cell::new(caps),
        ]);
    }
    t.to_string()
}
