//! Parsers for flags that carry limits, run by clap before anything else happens: a
//! duration outside its flag's range or an amount that is not a positive number of
//! dollars is a one-line usage error (exit 2) naming the flag and what is allowed,
//! before any provider is built, let alone called.
//!
//! Every duration flag takes `value_name = "DURATION"` and [`duration`]; every amount
//! flag `value_name = "USD"` and [`usd`] (a test walks the command tree to hold every
//! such flag to that).

use std::time::Duration;

use cloud_atlas::spec::{duration_in, DurationRange};

/// Largest amount a `USD` flag takes.
pub(crate) const MAX_USD: f64 = 1_000_000.0;

/// A clap value parser for a duration in `range` (`90s`, `15m`, `2h`, `1h30m`).
pub(crate) fn duration(
    range: DurationRange,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s: &str| duration_in(s, range)
}

/// `--max-runtime`, `--idle-ttl`: 1s to 365d.
pub(crate) fn limit(s: &str) -> Result<Duration, String> {
    duration_in(s, DurationRange::LIMIT)
}

/// `--timeout` of a command that waits: 1s to 7d.
pub(crate) fn wait(s: &str) -> Result<Duration, String> {
    duration_in(s, DurationRange::WAIT)
}

/// A clap value parser for an amount of US dollars: a finite number above 0, at most
/// [`MAX_USD`] (`2.5`, `$2.50`).
pub(crate) fn usd(s: &str) -> Result<f64, String> {
    let v = s.trim().trim_start_matches('$');
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= MAX_USD => Ok(x),
        _ => Err(format!(
            "{s:?} is not an amount; allowed: dollars above 0 and at most {MAX_USD}, e.g. 2.50"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every `<DURATION>` option is parsed (and so bounded) by clap into a `Duration`,
    /// and every option clap parses into a `Duration` is named `<DURATION>`, which is
    /// what `tests/duration_flags.rs` walks the help tree for.
    #[test]
    fn every_duration_flag_is_typed_and_named_duration() {
        fn walk(cmd: &clap::Command, path: &str, found: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let named = a
                    .get_value_names()
                    .is_some_and(|v| v.iter().any(|n| n.as_str() == "DURATION"));
                let typed = a.get_value_parser().type_id()
                    == clap::builder::ValueParser::new(limit).type_id();
                let id = format!("{path} --{}", a.get_id());
                assert_eq!(
                    named, typed,
                    "{id}: <DURATION> and a Duration parser go together"
                );
                if named {
                    found.push(id);
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut found = Vec::new();
        walk(&crate::Cli::command(), "atlas", &mut found);
        assert!(found.len() >= 10, "{found:?}");
    }

    #[test]
    fn durations_are_bounded_per_flag() {
        assert_eq!(limit("2h"), Ok(Duration::from_secs(7200)));
        let e = limit("300000000000y").unwrap_err();
        assert!(e.contains("allowed: 1s to 365d"), "{e}");
        assert!(wait("8d").unwrap_err().contains("1s to 7d"));
        assert!(wait("0s").is_err());
        assert!(duration(DurationRange::ANY)("0s").is_ok());
    }

    #[test]
    fn amounts_are_positive_finite_dollars() {
        assert_eq!(usd("2.5"), Ok(2.5));
        assert_eq!(usd("$0.50"), Ok(0.5));
        for bad in ["NaN", "nan", "inf", "-inf", "-1", "0", "1e308", "lots", ""] {
            let e = usd(bad).unwrap_err();
            assert!(e.contains("allowed: dollars above 0"), "{bad}: {e}");
        }
    }
}
