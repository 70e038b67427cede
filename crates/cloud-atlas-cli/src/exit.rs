//! The `ErrorKind` → exit code table, and how errors reach the terminal: one line on stderr.

use std::io::Write;
use std::process::ExitCode;

use cloud_atlas::{Error, ErrorKind};

/// Exit code for usage errors (clap) and validation errors.
pub(crate) const USAGE: u8 = 2;

/// Exit code of a listing that is incomplete: `atlas ls --provider all` when at least
/// one provider could not be listed (each one named on stderr).
pub(crate) const INCOMPLETE: u8 = 11;

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
        _ => 1,
    }
}

/// Print `error: <Display of the error>` as one line on stderr and return its exit code.
pub(crate) fn report(err: &Error) -> ExitCode {
    print_line(&format!("error: {}", one_line(&err.to_string())));
    ExitCode::from(code(err.kind()))
}

/// Handle a clap parse failure: help and version go to stdout with code 0; usage
/// errors become one line on stderr with code 2.
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
            print_line(&format!("error: {msg} (see --help)"));
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
        ];
        for (kind, want) in table {
            assert_eq!(code(kind), want, "{kind}");
        }
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("a\n  b\r\n\nc"), "a b c");
    }
}
