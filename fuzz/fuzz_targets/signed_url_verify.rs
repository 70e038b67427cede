//! Fuzz `signed_url::verify`: it must never panic, and whatever it accepts must be a
//! URL that `sign` gives the same verdict for.
//!
//! Input: first byte picks the clock; the rest is split into secret and URL at the
//! first NUL (no NUL: a fixed 32-byte secret). Stable-toolchain counterpart:
//! `crates/cloud-atlas/tests/auth_signed_url.rs`.

#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use cloud_atlas::auth::{signed_url, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&clock, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (secret, url) = text
        .split_once('\0')
        .unwrap_or(("fuzz-secret-0123456789abcdef-0123", &text));
    let secret = Secret::new(secret);
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(clock) * 1_000_000_000 / 255);
    if let Ok(v) = signed_url::verify(url, &secret, now) {
        // Accepted: re-signing with the same expiry must verify too (signing needs a
        // secret of at least 32 bytes; verification takes shorter foreign ones).
        if secret.expose().len() >= signed_url::MIN_SECRET_BYTES {
            let at = UNIX_EPOCH + Duration::from_secs(v.expires_at);
            let again =
                signed_url::sign_at(url, &secret, Duration::ZERO, at).expect("verified URL signs");
            assert!(signed_url::verify(&again, &secret, at).is_ok());
        }
    }
});
