//! Durations from users: parsed once, bounded at parse time, added without overflow.
//!
//! Every duration a user gives (`--max-runtime 2h`, `idle_ttl = "15m"` in a config, a
//! stored request) goes through [`parse_duration`] or [`parse_duration_in`], which reject
//! what no deadline can mean (`300000000000y`) with a one-line `Validation` error naming
//! the field and the allowed range. Deadlines are then computed with [`instant_after`]
//! and [`utc_after`], which saturate instead of panicking or wrapping, so even a
//! `Duration::MAX` handed to a library call can never turn a deadline into "now".

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serializer};

use crate::error::{Error, Result};

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// The inclusive range a duration value must fall in.
///
/// `Display` writes it the way users type durations: `1s to 365d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DurationRange {
    /// Smallest allowed value.
    pub min: Duration,
    /// Largest allowed value.
    pub max: Duration,
}

impl DurationRange {
    /// What [`parse_duration`] allows: `0s to 3650d` (ten years, far beyond any
    /// deadline, far below what timestamps can hold).
    pub const ANY: DurationRange =
        DurationRange::new(Duration::ZERO, Duration::from_secs(3650 * DAY));
    /// Limits on a machine or session (`max_runtime`, `idle_ttl`): `1s to 365d`.
    pub const LIMIT: DurationRange =
        DurationRange::new(Duration::from_secs(1), Duration::from_secs(365 * DAY));
    /// How long a command waits for something (`--timeout`): `1s to 7d`.
    pub const WAIT: DurationRange =
        DurationRange::new(Duration::from_secs(1), Duration::from_secs(7 * DAY));

    /// A range from `min` to `max` (inclusive).
    pub const fn new(min: Duration, max: Duration) -> DurationRange {
        DurationRange { min, max }
    }

    /// Whether `d` is allowed.
    pub fn contains(&self, d: Duration) -> bool {
        self.min <= d && d <= self.max
    }

    /// `d` when it is allowed; else `Validation` naming `field` and this range.
    ///
    /// # Errors
    /// `Validation` naming `field`.
    pub fn check(&self, field: &str, d: Duration) -> Result<Duration> {
        if self.contains(d) {
            Ok(d)
        } else {
            Err(Error::validation(field, self.out_of_range(d)))
        }
    }

    /// The reason `d` is refused (without the field name), e.g. for a CLI flag parser.
    pub fn out_of_range(&self, d: Duration) -> String {
        format!("{} is out of range; allowed: {self}", Short(d))
    }
}

impl fmt::Display for DurationRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", Short(self.min), Short(self.max))
    }
}

/// A duration in the largest unit that writes it exactly (`365d`, `90m`, `1500ms`),
/// or humantime's form when none does.
struct Short(Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() != 0 {
            if d.subsec_nanos() % 1_000_000 == 0 && d.as_secs() < 1_000_000 {
                return write!(f, "{}ms", d.as_millis());
            }
            return write!(f, "{}", humantime::format_duration(d));
        }
        let s = d.as_secs();
        for (unit, name) in [(DAY, "d"), (HOUR, "h"), (MINUTE, "m")] {
            if s >= unit && s % unit == 0 {
                return write!(f, "{}{name}", s / unit);
            }
        }
        write!(f, "{s}s")
    }
}

/// The reason `s` is not a duration in `range` (without the field name).
///
/// # Errors
/// The reason, for callers that add the field themselves (CLI flag parsers).
pub fn duration_in(s: &str, range: DurationRange) -> std::result::Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        format!("{s:?} is not a duration; use e.g. 90s, 15m, 2h, 1h30m (allowed: {range})")
    })?;
    if range.contains(d) {
        Ok(d)
    } else {
        Err(format!("{s:?} is out of range; allowed: {range}"))
    }
}

/// Parse a duration like `15m`, `2h`, `90s`, `1h30m` in `range`; the error names `field`
/// and what is allowed.
///
/// # Errors
/// `Validation` naming `field` for text that is not a duration or lies outside `range`.
pub fn parse_duration_in(field: &str, s: &str, range: DurationRange) -> Result<Duration> {
    duration_in(s, range).map_err(|why| Error::validation(field, why))
}

/// Parse a duration like `15m`, `2h`, `90s`, `1h30m`, bounded to [`DurationRange::ANY`];
/// the error names `field`.
///
/// # Errors
/// `Validation` naming `field`.
pub fn parse_duration(field: &str, s: &str) -> Result<Duration> {
    parse_duration_in(field, s, DurationRange::ANY)
}

/// `start + d`, or a point thirty years after `start` when that cannot be represented:
/// a deadline that is practically never, instead of a panic.
pub fn instant_after(start: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * DAY);
    start
        .checked_add(d.min(FAR))
        .or_else(|| start.checked_add(Duration::from_secs(DAY)))
        .unwrap_or(start)
}

/// `now + d` as a deadline ([`instant_after`] from now).
pub fn deadline_in(d: Duration) -> tokio::time::Instant {
    instant_after(tokio::time::Instant::now(), d)
}

/// `t + d`, saturating at the latest time `chrono` can hold instead of panicking.
pub fn utc_after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, saturating at the earliest time `chrono` can hold.
pub fn utc_before(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Serde helper for `Option<Duration>` as humantime strings ("15m"); reading is bounded
/// to [`DurationRange::ANY`], so a stored or hand-written value cannot smuggle in a
/// duration no deadline can hold.
pub mod opt_duration {
    use super::*;
    /// Serialize.
    pub fn serialize<S: Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| duration_in(&s, DurationRange::ANY).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn parses_and_names_the_field() {
        assert_eq!(
            parse_duration("ttl", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        let e = parse_duration("idle_ttl", "soon").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("idle_ttl: "), "{e}");
        assert!(e.message().contains("15m"), "{e}");
    }

    #[test]
    fn absurd_values_are_refused_with_the_range() {
        for s in ["300000000000y", "300000000y", "3651d"] {
            let e = parse_duration("max_runtime", s).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation, "{s}");
            assert!(e.message().contains("allowed: 0s to 3650d"), "{s}: {e}");
        }
        let e = parse_duration_in("max_runtime", "366d", DurationRange::LIMIT).unwrap_err();
        assert!(e.message().starts_with("max_runtime: "), "{e}");
        assert!(e.message().contains("allowed: 1s to 365d"), "{e}");
        let e = parse_duration_in("timeout", "0s", DurationRange::WAIT).unwrap_err();
        assert!(e.message().contains("allowed: 1s to 7d"), "{e}");
        assert_eq!(
            parse_duration_in("t", "365d", DurationRange::LIMIT).unwrap(),
            Duration::from_secs(365 * DAY)
        );
    }

    #[test]
    fn ranges_print_as_users_type_them() {
        assert_eq!(DurationRange::LIMIT.to_string(), "1s to 365d");
        assert_eq!(
            DurationRange::new(Duration::from_millis(1500), Duration::from_secs(90 * 60))
                .to_string(),
            "1500ms to 90m"
        );
        assert_eq!(
            DurationRange::new(Duration::ZERO, Duration::from_secs(7200)).to_string(),
            "0s to 2h"
        );
    }

    #[test]
    fn deadlines_saturate_instead_of_panicking() {
        let now = tokio::time::Instant::now();
        assert!(instant_after(now, Duration::MAX) > now + Duration::from_secs(365 * DAY));
        assert_eq!(
            instant_after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let t = Utc::now();
        assert_eq!(utc_after(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(utc_before(t, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        // The bug this guards: an overflowing conversion read as zero, a deadline of "now".
        assert!(utc_after(t, Duration::from_secs(300_000_000 * 366 * DAY)) > t);
    }

    #[test]
    fn stored_durations_are_bounded_too() {
        #[derive(Debug, serde::Deserialize)]
        struct Row {
            #[serde(with = "opt_duration", default)]
            d: Option<Duration>,
        }
        let ok: Row = serde_json::from_str(r#"{"d":"15m"}"#).unwrap();
        assert_eq!(ok.d, Some(Duration::from_secs(900)));
        let bad = serde_json::from_str::<Row>(r#"{"d":"300000000000y"}"#).unwrap_err();
        assert!(bad.to_string().contains("out of range"), "{bad}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn no_text_makes_the_parser_or_a_deadline_panic(s in "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y)?") {
            if let Ok(d) = parse_duration("f", &s) {
                prop_assert!(DurationRange::ANY.contains(d));
                let _ = instant_after(tokio::time::Instant::now(), d);
                let _ = utc_after(Utc::now(), d);
            }
        }
    }
}
