//! Fuzz `atlas.toml` loading through the real path (`Config::load_with` on a file):
//! no panic; a loaded config gives provider settings for every table it has.

#![no_main]

use std::collections::BTreeMap;
use std::io::Write;

use cloud_atlas::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let mut f = tempfile_in(&dir);
    f.1.write_all(data).unwrap();
    drop(f.1);
    let env = BTreeMap::new();
    if let Ok(c) = Config::load_with(&dir, Some(&f.0), &env, None) {
        for p in cloud_atlas::providers::known() {
            let _ = c.provider_settings(p);
        }
    }
    let _ = std::fs::remove_file(&f.0);
});

/// A file of our own in `dir` (one per process: libFuzzer runs inputs one at a time).
fn tempfile_in(dir: &std::path::Path) -> (std::path::PathBuf, std::fs::File) {
    let p = dir.join(format!("atlas-fuzz-{}.toml", std::process::id()));
    let f = std::fs::File::create(&p).unwrap();
    (p, f)
}
