//! Fuzz the `fly.toml` reader of app discovery: never a panic, and an accepted app
//! name is a valid one.

#![no_main]

use cloud_atlas::fly::apps::{app_from_toml, validate_app_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(app) = app_from_toml(text) {
        assert!(validate_app_name(&app).is_ok(), "{app:?}");
    }
});
