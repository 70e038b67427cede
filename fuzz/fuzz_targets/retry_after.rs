//! Fuzz `Retry-After` parsing (delta seconds and HTTP dates): no panic, and the wait it
//! asks for is never negative nor absurd (the HTTP layer caps it).

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use cloud_atlas::http::parse_retry_after;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&clock, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(clock) * 16_000_000);
    let _ = parse_retry_after(&text, now);
});
