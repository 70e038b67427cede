//! The `ErrorKind` → exit code table, and how errors reach the terminal: one line on
//! stderr, `error: …` for people, or with `-o json`/`-o jsonl` one JSON object for
//! programs (`{"kind", "message", "provider", "status", "exit_code"}`).

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use cloud_atlas::{Error, ErrorKind};
use serde::Serialize;

use crate::output::Format;

/// Exit code for usage errors (clap) and validation errors.
pub(crate) const USAGE: u8 = 2;

/// Whether errors go to stderr as JSON (`-o json`/`-o jsonl`); set once in `main`.
static JSON_ERRORS: AtomicBool = AtomicBool::new(false);

/// Print errors in the shape `format` asks for: JSON objects for `json`/`jsonl`, else lines.
pub(crate) fn set_format(format: Format) {
    JSON_ERRORS.store(
        matches!(format, Format::Json | Format::Jsonl),
        Ordering::Relaxed,
    );
}

/// The `-o`/`--output` value in a raw command line that clap refused, so a usage error
/// can follow the format the caller asked for. Stops at `--` (what follows belongs to
/// the machine's command); the last one given wins.
pub(crate) fn format_in_args<I, S>(args: I) -> Format
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut format = Format::Table;
    let mut take_next = false;
    for arg in args {
        let Some(arg) = arg.as_ref().to_str() else {
            take_next = false;
            continue;
        };
        let value = if take_next {
            take_next = false;
            Some(arg)
        } else if arg == "--" {
            break;
        } else if arg == "-o" || arg == "--output" {
            take_next = true;
            None
        } else if let Some(v) = arg.strip_prefix("--output=") {
            Some(v)
        } else if let Some(v) = arg.strip_prefix("-o") {
            Some(v.strip_prefix('=').unwrap_or(v))
        } else {
            None
        };
        match value {
            Some("json") => format = Format::Json,
            Some("jsonl") => format = Format::Jsonl,
            Some("table") => format = Format::Table,
            _ => {}
        }
    }
    format
}

/// One error as a program reads it (`-o json`/`-o jsonl`).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorJson<'a> {
    /// [`ErrorKind::as_str`] (`not_found`, `validation`, …), or `interrupted`.
    pub(crate) kind: &'a str,
    /// What happened and what to do, one line.
    pub(crate) message: String,
    /// The provider, when known.
    pub(crate) provider: Option<&'a str>,
    /// The provider's HTTP status, when the error came from a response.
    pub(crate) status: Option<u16>,
    /// The process's exit code.
    pub(crate) exit_code: u8,
}
/// Exit code of a listing that is incomplete: `atlas ls --provider all` when at least
/// one provider could not be listed (each one named on stderr).
pub(crate) const INCOMPLETE: u8 = 12;

/// The exit code for an error kind (see the crate docs for the table).
pub(crate) fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Validation => USAGE,
        ErrorKind::Unauthorized | ErrorKind::Forbidden => 3,
        ErrorKind::NotFound => 4,
        ErrorKind::RateLimited => 5,
        ErrorKind::Timeout => 6,
        ErrorKind::Unsupported => 7,
        ErrorKind::Capacity => 8,
        ErrorKind::Provider => 9,
        ErrorKind::Transport => 10,
        ErrorKind::Conflict => 11,
        _ => 1,
    }
}

/// Print the error on stderr (one `error: <Display>` line, or one JSON object) and
/// return its exit code.
pub(crate) fn report(err: &Error) -> ExitCode {
    let code = code(err.kind());
    if JSON_ERRORS.load(Ordering::Relaxed) {
        let mut message = err.message().to_string();
        if let Some(src) = std::error::Error::source(err) {
            message = format!("{message}: {src}");
        }
        print_json(&ErrorJson {
            kind: err.kind().as_str(),
            message: one_line(&message),
            provider: err.provider(),
            status: err.status(),
            exit_code: code,
        });
    } else {
        print_line(&format!("error: {}", one_line(&err.to_string())));
    }
    ExitCode::from(code)
}

/// Print an error the CLI found itself (not an [`Error`]): `error: <message>`, or the
/// JSON object with `kind`, `provider` and `exit_code`.
pub(crate) fn report_text(kind: &str, message: &str, provider: Option<&str>, exit_code: u8) {
    if JSON_ERRORS.load(Ordering::Relaxed) {
        print_json(&ErrorJson {
            kind,
            message: one_line(message),
            provider,
            status: None,
            exit_code,
        });
    } else {
        print_line(&format!("error: {}", one_line(message)));
    }
}

/// Handle a clap parse failure: help and version go to stdout with code 0; usage
/// errors become one line on stderr (a `validation` JSON object with `-o json`) with
/// code 2.
pub(crate) fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as K;
    match err.kind() {
        K::DisplayHelp | K::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        K::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(USAGE)
        }
        _ => {
            let rendered = err.render().to_string();
            let text: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let msg = text.join(" ");
            let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
            report_text(
                ErrorKind::Validation.as_str(),
                &format!("{msg} (see --help)"),
                None,
                USAGE,
            );
            ExitCode::from(USAGE)
        }
    }
}

/// Collapse any line breaks so an error is always exactly one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_json(e: &ErrorJson<'_>) {
    match serde_json::to_string(e) {
        Ok(line) => print_line(&line),
        Err(_) => print_line(&format!("error: {}", e.message)),
    }
}

pub(crate) fn print_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_code() {
        let table = [
            (ErrorKind::Unknown, 1),
            (ErrorKind::Validation, 2),
            (ErrorKind::Unauthorized, 3),
            (ErrorKind::Forbidden, 3),
            (ErrorKind::NotFound, 4),
            (ErrorKind::RateLimited, 5),
            (ErrorKind::Timeout, 6),
            (ErrorKind::Unsupported, 7),
            (ErrorKind::Capacity, 8),
            (ErrorKind::Provider, 9),
            (ErrorKind::Transport, 10),
            (ErrorKind::Conflict, 11),
        ];
        for (kind, want) in table {
            assert_eq!(code(kind), want, "{kind}");
        }
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("a\n  b\r\n\nc"), "a b c");
    }

    #[test]
    fn output_format_is_found_in_a_refused_command_line() {
        let f = |args: &[&str]| format_in_args(args.iter().copied());
        assert_eq!(f(&["ls", "-o", "json", "--bogus"]), Format::Json);
        assert_eq!(f(&["--output=jsonl", "ls"]), Format::Jsonl);
        assert_eq!(f(&["-ojson", "ls"]), Format::Json);
        assert_eq!(f(&["-o=json"]), Format::Json);
        assert_eq!(f(&["--output", "json", "-o", "table"]), Format::Table);
        assert_eq!(f(&["ls", "--bogus"]), Format::Table);
        // After `--` the words are the machine's command, not ours.
        assert_eq!(f(&["spawn", "--", "tool", "-o", "json"]), Format::Table);
    }
}
