//! Output: tables for people, JSON and JSON lines for programs.
//!
//! Tables use comfy-table: on a terminal they wrap to its width and colour statuses
//! unless `NO_COLOR` is set; piped, they are plain ASCII without a width limit.
//! `json` is one document (an object or an array); `jsonl` is one compact object per line.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use cloud_atlas::{Error, ErrorKind, Result};
use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::Serialize;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable tables
    Table,
    /// One JSON document: an object, or an array for listings
    Json,
    /// One compact JSON object per line
    Jsonl,
}

/// Whether colour is allowed on a stream: it is a terminal and `NO_COLOR` is unset or empty.
fn color_allowed(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether logs on stderr may use colour.
pub(crate) fn stderr_color() -> bool {
    color_allowed(std::io::stderr().is_terminal())
}

/// A `tracing` layer that prints each retry notice of the HTTP layer
/// ([`RETRY_TARGET`](cloud_atlas::http::RETRY_TARGET)) as one plain line on stderr:
/// `retry: runpod list: HTTP 503; retrying in 0.4s (retry 1)`.
pub(crate) struct RetryNotices;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RetryNotices {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let line = m.0.replace(['\n', '\r'], " ");
        let _ = writeln!(std::io::stderr(), "retry: {line}");
    }
}

/// Narrowest terminal width tables wrap to; below it (or unknown) they do not wrap.
const MIN_WIDTH: u16 = 40;

/// Writes results to stdout in the chosen format.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    format: Format,
    tty: bool,
    color: bool,
}

impl Out {
    /// Output in `format` on stdout.
    pub(crate) fn new(format: Format) -> Out {
        let tty = std::io::stdout().is_terminal();
        Out {
            format,
            tty,
            color: color_allowed(tty),
        }
    }

    /// The chosen format.
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// Print one result: an object (`json`, `jsonl`) or what `table` renders.
    pub(crate) fn one<T: Serialize>(
        &self,
        value: &T,
        table: impl FnOnce(&Out, &T) -> String,
    ) -> Result<()> {
        match self.format {
            Format::Table => self.text(&table(self, value)),
            Format::Json => self.text(&to_json(value, true)?),
            Format::Jsonl => self.text(&to_json(value, false)?),
        }
    }

    /// Print a listing: an array (`json`), one object per line (`jsonl`) or what `table` renders.
    pub(crate) fn many<T: Serialize>(
        &self,
        items: &[T],
        table: impl FnOnce(&Out, &[T]) -> String,
    ) -> Result<()> {
        match self.format {
            Format::Table => self.text(&table(self, items)),
            Format::Json => self.text(&to_json(&items, true)?),
            Format::Jsonl => {
                let mut s = String::new();
                for item in items {
                    s.push_str(&to_json(item, false)?);
                    s.push('\n');
                }
                self.raw(&s)
            }
        }
    }

    /// Print `s` and a newline on stdout. A closed pipe (`atlas ls | head`) is not an error.
    pub(crate) fn text(&self, s: &str) -> Result<()> {
        let mut line = String::with_capacity(s.len() + 1);
        line.push_str(s.trim_end_matches('\n'));
        line.push('\n');
        self.raw(&line)
    }

    fn raw(&self, s: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Error::new(ErrorKind::Unknown, "cannot write to stdout").with_source(e)),
        }
    }

    /// A table with `header`, styled for where stdout goes.
    pub(crate) fn table(&self, header: &[&str]) -> Table {
        let mut t = self.base_table();
        t.set_header(header.iter().copied());
        t
    }

    /// A two-column key/value table without a header.
    pub(crate) fn kv_table(&self, rows: Vec<(&str, Cell)>) -> Table {
        let mut t = self.base_table();
        for (k, v) in rows {
            t.add_row(vec![Cell::new(k), v]);
        }
        t
    }

    fn base_table(&self) -> Table {
        let mut t = Table::new();
        if self.tty {
            t.load_preset(presets::UTF8_FULL_CONDENSED);
            // Fit the terminal, unless it reports no usable width (e.g. a pty without a size).
            if t.width().is_some_and(|w| w >= MIN_WIDTH) {
                t.set_content_arrangement(ContentArrangement::Dynamic);
            }
        } else {
            t.load_preset(presets::ASCII_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Disabled);
        }
        t
    }

    /// A cell for a status word, coloured by meaning when colour is allowed.
    pub(crate) fn status_cell(&self, status: &str) -> Cell {
        let cell = Cell::new(status);
        if !self.color {
            return cell;
        }
        match status {
            "running" | "completed" | "ok" | "ready" => cell.fg(Color::Green),
            "provisioning" | "starting" | "in_queue" | "in_progress" => cell.fg(Color::Yellow),
            "stopped" | "cancelled" => cell.fg(Color::Blue),
            "failed" | "terminated" | "timed_out" => cell.fg(Color::Red),
            _ => cell,
        }
    }
}

/// Serialize for output.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Result<String> {
    let r = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    r.map_err(|e| Error::new(ErrorKind::Unknown, "cannot encode the result as JSON").with_source(e))
}

/// `-` for a missing value.
pub(crate) fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A price per hour, `$2.99/h`, or `-`.
pub(crate) fn price(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |p| format!("${p:.2}/h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_is_one_object_per_line() {
        let v = serde_json::json!({"a": [1, 2], "b": {"c": "d"}});
        let line = to_json(&v, false).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), v);
    }

    #[test]
    fn tables_without_colour_have_plain_cells() {
        let out = Out {
            format: Format::Table,
            tty: false,
            color: false,
        };
        let mut t = out.table(&["STATUS"]);
        t.add_row(vec![out.status_cell("running")]);
        let s = t.to_string();
        assert!(s.contains("running"));
        assert!(!s.contains('\u{1b}'), "no escape codes: {s:?}");
    }

    #[test]
    fn formatting_helpers() {
        assert_eq!(price(Some(2.999)), "$3.00/h");
        assert_eq!(price(None), "-");
        assert_eq!(or_dash(None::<u32>), "-");
    }
}
