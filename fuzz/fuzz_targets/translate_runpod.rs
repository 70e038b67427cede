//! Fuzz RunPod's JSON translation (pods, GPU types, jobs, stream polls, health, log
//! lines): whatever RunPod (or something in between) answers, no panic.

#![no_main]

use cloud_atlas::providers::runpod::translate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = translate::log_line("pod-1", &text);
    let _ = translate::status(&text);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = translate::compute(&v);
    let _ = translate::gpu_type(&v);
    let _ = translate::job("endpoint-1", &v);
    let _ = translate::stream_poll(&v);
    let _ = translate::health(&v);
    if let Some(items) = v.as_array() {
        for item in items {
            let _ = translate::compute(item);
            let _ = translate::gpu_type(item);
        }
    }
});
