//! Fuzz Lambda Cloud's JSON translation (instance-type catalog, instances, ports tag):
//! no panic, and every catalog entry turns into a GPU type.

#![no_main]

use cloud_atlas::providers::lambda::translate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = translate::parse_ports_tag(&text);
    let _ = translate::status(&text);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let body = v.get("data").unwrap_or(&v);
    if let Ok(entries) = translate::catalog(body) {
        for e in &entries {
            let _ = translate::gpu_type(e);
            let _ = e.instance_type.price_per_hour();
        }
    }
    let _ = translate::compute(body);
    if let Some(items) = body.as_array() {
        for item in items {
            let _ = translate::compute(item);
        }
    }
    let _ = translate::redact_instance(v);
});
