//! Fuzz Vast.ai's JSON translation (offer search, instances, pages, contracts): no
//! panic, and offers become catalog entries.

#![no_main]

use cloud_atlas::providers::vast::translate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = translate::launch_id_from_label(&text);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let offers = translate::offers(&v);
    let _ = translate::catalog(&offers, &offers);
    for o in &offers {
        let _ = translate::offer_entry(o, true);
        let _ = o.price_per_gpu();
        let _ = o.country();
    }
    let _ = translate::compute(&v);
    let _ = translate::status(&v);
    let _ = translate::extra_env(&v);
    let _ = translate::port_bindings(&v);
    let _ = translate::next_token(&v);
    for inst in translate::page_instances(&v) {
        let _ = translate::compute(&inst);
    }
    if let Some(inst) = translate::shown_instance(&v) {
        let _ = translate::compute(&inst);
    }
    let _ = translate::new_contract(&v);
});
