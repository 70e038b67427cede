//! `atlas lambda …`: Lambda Cloud account resources a user looks for next to compute —
//! SSH keys (Lambda needs one to launch), shared file systems, instance types with the
//! regions that have capacity now, and instance restarts.
//!
//! These commands always talk to Lambda (`--provider` may be omitted or `lambda`);
//! `--api-key` and `--base-url` apply to them, as do `LAMBDA_API_KEY`,
//! `ATLAS_LAMBDA_BASE_URL` and `[providers.lambda]` in `atlas.toml`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cloud_atlas::files;
use cloud_atlas::providers::lambda::{FileSystem, Lambda, LambdaBuilder, SshKey};
use cloud_atlas::{Error, Result};
use comfy_table::Cell;
use serde::Serialize;

use crate::context::Context;
use crate::output::{or_dash, price, Out};

/// `atlas lambda <command>`.
#[derive(Debug, Subcommand)]
pub(crate) enum LambdaCommand {
    /// SSH keys on the account (a launch needs one: --provider-opt ssh_key=NAME)
    SshKeys {
        #[command(subcommand)]
        command: SshKeysCommand,
    },
    /// Shared file systems (mount at spawn with --network-volume NAME)
    FileSystems {
        #[command(subcommand)]
        command: FileSystemsCommand,
    },
    /// Instance types with prices and the regions that have capacity now
    InstanceTypes(InstanceTypesArgs),
    /// Reboot an instance
    Restart(IdArgs),
}

/// `atlas lambda ssh-keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SshKeysCommand {
    /// List SSH keys
    #[command(alias = "ls")]
    List,
    /// Add a public key, or have Lambda generate a pair (the private key is shown once)
    Add(SshKeyAddArgs),
    /// Delete an SSH key by id
    #[command(alias = "rm")]
    Delete(IdArgs),
}

/// Arguments of `atlas lambda ssh-keys add`.
#[derive(Debug, Args)]
pub(crate) struct SshKeyAddArgs {
    /// Name of the key (what --provider-opt ssh_key=NAME refers to)
    name: String,
    /// Public key file to upload (e.g. ~/.ssh/id_ed25519.pub); omit to generate a pair
    #[arg(long, value_name = "FILE")]
    public_key_file: Option<PathBuf>,
    /// Where to save a generated private key (written 0600); without it, it is printed
    #[arg(long, value_name = "FILE", conflicts_with = "public_key_file")]
    save_private_key: Option<PathBuf>,
}

/// `atlas lambda file-systems …`.
#[derive(Debug, Subcommand)]
pub(crate) enum FileSystemsCommand {
    /// List file systems
    #[command(alias = "ls")]
    List,
    /// Create a file system in a region (bills for storage until deleted)
    Create(FsCreateArgs),
    /// Delete a file system by id (it must not be mounted)
    #[command(alias = "rm")]
    Delete(IdArgs),
}

/// Arguments of `atlas lambda file-systems create`.
#[derive(Debug, Args)]
pub(crate) struct FsCreateArgs {
    /// Name: letters first, then letters, digits and -
    name: String,
    /// Region, e.g. us-west-1
    #[arg(long, value_name = "REGION")]
    region: String,
}

/// Arguments of `atlas lambda instance-types`.
#[derive(Debug, Args)]
pub(crate) struct InstanceTypesArgs {
    /// Only types with capacity somewhere right now
    #[arg(long)]
    available: bool,
}

/// A positional id.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// Id
    id: String,
}

fn lambda(ctx: &Context) -> Result<Lambda> {
    if ctx.provider != "lambda" {
        return Err(Error::validation(
            "provider",
            format!(
                "`atlas lambda` commands always use Lambda, not {:?}; drop --provider or pass --provider lambda",
                ctx.provider
            ),
        ));
    }
    LambdaBuilder::from_settings(ctx.settings("lambda")).build()
}

/// Run `atlas lambda …`.
pub(crate) async fn run(ctx: &Context, command: LambdaCommand) -> Result<()> {
    let l = lambda(ctx)?;
    match command {
        LambdaCommand::SshKeys { command } => ssh_keys(ctx, &l, command).await,
        LambdaCommand::FileSystems { command } => file_systems(ctx, &l, command).await,
        LambdaCommand::InstanceTypes(a) => instance_types(ctx, &l, a).await,
        LambdaCommand::Restart(a) => {
            let c = l.restart(&a.id).await?;
            ctx.out.one(&c, |out, c| {
                out.kv_table(vec![
                    ("id", Cell::new(&c.id)),
                    ("status", out.status_cell(c.status.as_str())),
                    ("ip", Cell::new(or_dash(c.public_ip.as_deref()))),
                ])
                .to_string()
            })
        }
    }
}

/// JSON shape of deletions.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    id: &'a str,
    deleted: bool,
}

async fn ssh_keys(ctx: &Context, l: &Lambda, command: SshKeysCommand) -> Result<()> {
    match command {
        SshKeysCommand::List => {
            let keys = l.ssh_keys().list().await?;
            ctx.out.many(&keys, keys_table)
        }
        SshKeysCommand::Add(a) => {
            let public = match &a.public_key_file {
                Some(p) => Some(
                    files::read_file_to_string(p, files::MAX_SECRET_BYTES).map_err(|e| {
                        Error::validation(
                            "public_key_file",
                            format!("cannot read {}: {e}", p.display()),
                        )
                    })?,
                ),
                None => None,
            };
            let mut key = l.ssh_keys().add(&a.name, public.as_deref()).await?;
            if let (Some(path), Some(private)) = (&a.save_private_key, &key.private_key) {
                write_private(path, private.expose())?;
                key.private_key = None;
                eprintln!(
                    "private key saved to {} (0600); Lambda keeps no copy",
                    path.display()
                );
            } else if key.private_key.is_some() {
                eprintln!("save the private key now: Lambda keeps no copy");
            }
            ctx.out.one(&key, |out, k| {
                let mut rows = vec![
                    ("id", Cell::new(&k.id)),
                    ("name", Cell::new(&k.name)),
                    ("public key", Cell::new(&k.public_key)),
                ];
                if let Some(p) = &k.private_key {
                    rows.push(("private key", Cell::new(p.expose())));
                }
                out.kv_table(rows).to_string()
            })
        }
        SshKeysCommand::Delete(a) => {
            l.ssh_keys().delete(&a.id).await?;
            ctx.out.one(
                &Deleted {
                    id: &a.id,
                    deleted: true,
                },
                |_, d| format!("deleted {}", d.id),
            )
        }
    }
}

fn write_private(path: &std::path::Path, key: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        Error::validation(
            "save_private_key",
            format!("cannot create {}: {e}", path.display()),
        )
    })?;
    f.write_all(key.as_bytes()).map_err(|e| {
        Error::validation(
            "save_private_key",
            format!("cannot write {}: {e}", path.display()),
        )
    })
}

fn keys_table(out: &Out, keys: &[SshKey]) -> String {
    let mut t = out.table(&["ID", "NAME", "PUBLIC KEY"]);
    for k in keys {
        let short: String = k.public_key.chars().take(40).collect();
        let ellipsis = if k.public_key.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        t.add_row(vec![
            Cell::new(&k.id),
            Cell::new(&k.name),
            Cell::new(format!("{short}{ellipsis}")),
        ]);
    }
    t.to_string()
}

async fn file_systems(ctx: &Context, l: &Lambda, command: FileSystemsCommand) -> Result<()> {
    match command {
        FileSystemsCommand::List => {
            let fs = l.file_systems().list().await?;
            ctx.out.many(&fs, fs_table)
        }
        FileSystemsCommand::Create(a) => {
            let fs = l.file_systems().create(&a.name, &a.region).await?;
            ctx.out
                .one(&fs, |out, f| fs_table(out, std::slice::from_ref(f)))
        }
        FileSystemsCommand::Delete(a) => {
            l.file_systems().delete(&a.id).await?;
            ctx.out.one(
                &Deleted {
                    id: &a.id,
                    deleted: true,
                },
                |_, d| format!("deleted {}", d.id),
            )
        }
    }
}

fn fs_table(out: &Out, items: &[FileSystem]) -> String {
    let mut t = out.table(&["ID", "NAME", "REGION", "MOUNT POINT", "IN USE", "USED"]);
    for f in items {
        t.add_row(vec![
            Cell::new(&f.id),
            Cell::new(&f.name),
            Cell::new(&f.region.name),
            Cell::new(&f.mount_point),
            Cell::new(if f.is_in_use { "yes" } else { "no" }),
            Cell::new(or_dash(
                f.bytes_used.map(|b| format!("{:.1} GB", b as f64 / 1e9)),
            )),
        ]);
    }
    t.to_string()
}

async fn instance_types(ctx: &Context, l: &Lambda, a: InstanceTypesArgs) -> Result<()> {
    let mut entries: Vec<_> = l.catalog().refresh().await?.iter().cloned().collect();
    if a.available {
        entries.retain(|e| !e.regions.is_empty());
    }
    entries.sort_by_key(|e| e.instance_type.price_cents_per_hour);
    ctx.out.many(&entries, |out, entries| {
        let mut t = out.table(&[
            "INSTANCE TYPE",
            "GPU",
            "GPUS",
            "VCPUS",
            "RAM",
            "PRICE",
            "REGIONS WITH CAPACITY",
        ]);
        for e in entries {
            let it = &e.instance_type;
            t.add_row(vec![
                Cell::new(&it.name),
                Cell::new(or_dash(it.gpu())),
                Cell::new(it.specs.gpus),
                Cell::new(it.specs.vcpus),
                Cell::new(format!("{} GiB", it.specs.memory_gib)),
                Cell::new(price(Some(it.price_per_hour()))),
                Cell::new(if e.regions.is_empty() {
                    "none".to_string()
                } else {
                    e.region_names().join(", ")
                }),
            ]);
        }
        t.to_string()
    })
}
