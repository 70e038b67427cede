//! Fuzz the duration flags' parser (`--max-runtime 2h`, `--idle-ttl 15m`, …): no
//! panic, and a parsed duration prints back to one that parses to the same value.

#![no_main]

use cloud_atlas::spec::parse_duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration("fuzz", text) {
        let shown = humantime_like(d);
        let again = parse_duration("fuzz", &shown).expect("a printed duration parses");
        assert_eq!(again, d, "{text:?} -> {shown:?}");
    }
});

/// Whole seconds plus nanoseconds, in the unit syntax the parser reads.
fn humantime_like(d: std::time::Duration) -> String {
    format!("{}s {}ns", d.as_secs(), d.subsec_nanos())
}
