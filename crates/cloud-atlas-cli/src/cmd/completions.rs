//! `atlas completions <shell>`: shell completion scripts, generated from the clap definition.

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use cloud_atlas::{Error, ErrorKind, Result};

use crate::Cli;

/// Arguments of `atlas completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// Shell to generate completions for
    #[arg(value_enum)]
    shell: Shell,
}

/// Print the completion script for the shell on stdout.
pub(crate) fn run(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "atlas", &mut buf);
    let script = String::from_utf8(buf).map_err(|e| {
        Error::new(ErrorKind::Unknown, "completion script is not UTF-8").with_source(e)
    })?;
    crate::output::Out::new(crate::output::Format::Table).text(&script)
}
