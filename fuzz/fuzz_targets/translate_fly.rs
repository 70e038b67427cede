//! Fuzz Fly Machines' JSON translation (machines, states): no panic.

#![no_main]

use cloud_atlas::providers::fly_machines::translate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = translate::status(&text);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = translate::compute("fuzz-app", "m1".to_string(), &v);
    if let Some(items) = v.as_array() {
        for item in items {
            let _ = translate::compute("fuzz-app", "m1".to_string(), item);
        }
    }
});
