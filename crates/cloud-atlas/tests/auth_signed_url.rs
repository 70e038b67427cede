//! Property tests for signed URLs: round-trips, tamper evidence, and no panics on
//! arbitrary input (the stable-toolchain counterpart of `fuzz/fuzz_targets/signed_url_verify.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloud_atlas::auth::signed_url::{self, VerifyError};
use cloud_atlas::auth::Secret;
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// What a server decodes from a path-and-query: the normalized path and the parameters.
fn decoded(path_and_query: &str) -> (String, BTreeMap<Vec<u8>, Vec<u8>>) {
    let url = url::Url::parse(&format!("http://h{path_and_query}")).unwrap();
    (
        url.path().to_string(),
        signed_url::parse_query(url.query().unwrap_or("")),
    )
}

/// Percent-encode loosely: `+` for space, hex case alternating (any spelling is
/// fine, the signature covers the decoded bytes).
fn loose_encode(s: &str) -> String {
    s.bytes()
        .enumerate()
        .map(|(i, b)| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => char::from(b).to_string(),
            b' ' => "+".to_string(),
            _ if i % 2 == 0 => format!("%{b:02x}"),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

prop_compose! {
    fn path()(segs in prop::collection::vec("[^/?#\\\\]{0,10}", 0..4)) -> String {
        format!("/{}", segs.join("/"))
    }
}

prop_compose! {
    /// Parameters from arbitrary unicode strings, spelled with raw unicode and loose escapes.
    fn structured_query()(pairs in prop::collection::vec(("\\PC{0,8}", "\\PC{0,8}"), 0..6)) -> String {
        pairs
            .iter()
            .map(|(k, v)| {
                let raw = |s: &str| s.replace(['&', '=', '#', '%', '+'], "_");
                if k.len() % 2 == 0 { format!("{}={}", raw(k), raw(v)) } else { format!("{}={}", loose_encode(k), loose_encode(v)) }
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn any_query() -> impl Strategy<Value = String> {
    prop_oneof![structured_query(), "[^#]{0,40}"]
}

fn secret() -> impl Strategy<Value = Secret> {
    "\\PC{32,48}".prop_map(Secret::new)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify_round_trips(path in path(), query in any_query(), secret in secret(), ttl in 0u64..1_000_000) {
        let input = format!("{path}?{query}");
        let signed = signed_url::sign_at(&input, &secret, Duration::from_secs(ttl), at(NOW)).unwrap();
        let verified = signed_url::verify(&signed, &secret, at(NOW + ttl));
        prop_assert_eq!(verified.map(|v| v.expires_at), Ok(NOW + ttl));
        // Signing keeps what the server will decode, less any old exp/sig.
        let (p0, mut q0) = decoded(&input);
        let (p1, mut q1) = decoded(&signed);
        prop_assert_eq!(p0, p1);
        q0.remove(&b"exp"[..]);
        q0.remove(&b"sig"[..]);
        q1.remove(&b"exp"[..]);
        q1.remove(&b"sig"[..]);
        prop_assert_eq!(q0, q1);
        // Absolute URLs verify too, and past expiry they are Expired.
        let abs = signed_url::sign_at(&format!("https://pod.example:8443{input}"), &secret, Duration::from_secs(ttl), at(NOW)).unwrap();
        prop_assert!(signed_url::verify(&abs, &secret, at(NOW)).is_ok());
        prop_assert_eq!(
            signed_url::verify(&abs, &secret, at(NOW + ttl + 1)),
            Err(VerifyError::Expired { expired_at: NOW + ttl })
        );
    }

    /// Any single-byte change of the signed query fails (bad signature, expired or
    /// malformed), unless it is only another spelling of the same decoded parameters
    /// (`+` ↔ raw space, `%2f` ↔ `%2F`), which the canonical form treats as equal.
    #[test]
    fn any_single_byte_change_of_the_query_fails(
        path in path(),
        query in any_query(),
        secret in secret(),
        pos in any::<prop::sample::Index>(),
        byte in 0u8..0x80,
    ) {
        let signed = signed_url::sign_at(&format!("{path}?{query}"), &secret, Duration::from_secs(600), at(NOW)).unwrap();
        let q_start = signed.find('?').unwrap() + 1;
        let i = q_start + pos.index(signed.len() - q_start);
        prop_assume!(signed.as_bytes()[i] != byte);
        let mut bytes = signed.clone().into_bytes();
        bytes[i] = byte;
        let tampered = String::from_utf8(bytes).unwrap();
        match signed_url::verify(&tampered, &secret, at(NOW)) {
            Err(_) => {}
            Ok(_) => prop_assert_eq!(decoded(&tampered), decoded(&signed), "{} verified", tampered),
        }
    }

    #[test]
    fn any_single_byte_change_of_the_path_fails(
        path in path(),
        secret in secret(),
        pos in any::<prop::sample::Index>(),
        byte in 0x21u8..0x7f,
    ) {
        let signed = signed_url::sign_at(&format!("{path}?a=1"), &secret, Duration::from_secs(600), at(NOW)).unwrap();
        let q = signed.find('?').unwrap();
        let i = pos.index(q);
        prop_assume!(signed.as_bytes()[i] != byte);
        let mut bytes = signed.clone().into_bytes();
        bytes[i] = byte;
        let tampered = String::from_utf8(bytes).unwrap();
        match signed_url::verify(&tampered, &secret, at(NOW)) {
            Err(_) => {}
            Ok(_) => prop_assert_eq!(decoded(&tampered).0, decoded(&signed).0, "{} verified", tampered),
        }
    }

    /// `verify` never panics, whatever it is given.
    #[test]
    fn verify_never_panics_on_arbitrary_strings(input in any::<String>(), secret in any::<String>(), now in any::<u64>()) {
        let now = UNIX_EPOCH.checked_add(Duration::from_secs(now)).unwrap_or(UNIX_EPOCH);
        let _ = signed_url::verify(&input, &Secret::new(secret.clone()), now);
        let _ = signed_url::sign_at(&input, &Secret::new(secret), Duration::from_secs(1), now);
    }

    /// The same, with URL-shaped input so the parser gets past its first checks.
    #[test]
    fn verify_never_panics_on_url_shaped_input(
        prefix in prop_oneof![Just(""), Just("https://h:1"), Just("ws://[::1]"), Just("http://h")],
        rest in "(/[a-z%+&=?#.~ \\x00-\\x1f\\u{80}-\\u{10ffff}]{0,12}){0,3}(\\?((exp|sig|[a-z%+]{0,3})=[0-9a-zA-Z%+_\\-]{0,25}&?){0,5})?",
        now in any::<u64>(),
    ) {
        let now = UNIX_EPOCH.checked_add(Duration::from_secs(now)).unwrap_or(UNIX_EPOCH);
        let _ = signed_url::verify(&format!("{prefix}{rest}"), &Secret::new("k"), now);
    }
}

// ---------------------------------------------------------------------------------------
// Only the canonical spelling of the credential is accepted.

const LONG_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A signed path whose signature holds both `-` and `_` (so its standard-base64
/// spelling differs), with the signature split out.
fn signed_with_url_safe_chars() -> (String, String) {
    let secret = Secret::new(LONG_SECRET);
    for i in 0..10_000 {
        let url = signed_url::sign_at(
            &format!("/media/a.mp4?n={i}"),
            &secret,
            Duration::from_secs(60),
            at(NOW),
        )
        .unwrap();
        let sig = url.split("sig=").nth(1).unwrap().split('&').next().unwrap();
        if sig.contains('-') && sig.contains('_') {
            return (url.clone(), sig.to_string());
        }
    }
    unreachable!("one in a few signatures holds both characters")
}

#[test]
fn the_standard_base64_spelling_of_a_signature_is_refused() {
    let secret = Secret::new(LONG_SECRET);
    let (url, sig) = signed_with_url_safe_chars();
    assert!(signed_url::verify(&url, &secret, at(NOW)).is_ok());
    let standard = sig.replace('-', "+").replace('_', "/");
    for spelled in [
        standard.replace('+', "%2B").replace('/', "%2F"),
        standard.clone(),
        format!("{sig}="),
        format!("{sig}%3D"),
        // The canonical characters, percent-encoded.
        sig.replace('-', "%2D"),
        format!("%{:02X}{}", sig.as_bytes()[0], &sig[1..]),
    ] {
        let forged = url.replace(&format!("sig={sig}"), &format!("sig={spelled}"));
        assert_ne!(forged, url);
        assert!(
            signed_url::verify(&forged, &secret, at(NOW)).is_err(),
            "{forged} verified"
        );
    }
}

#[test]
fn duplicate_sig_or_exp_parameters_are_refused() {
    let secret = Secret::new(LONG_SECRET);
    let (url, sig) = signed_with_url_safe_chars();
    let (path, query) = url.split_once('?').unwrap();
    let exp = query
        .split('&')
        .find_map(|p| p.strip_prefix("exp="))
        .unwrap();
    let dup = |extra_first: &str| format!("{path}?{extra_first}&{query}");
    for (forged, what) in [
        (dup("sig=AAAA"), "sig"),
        (dup(&format!("sig={sig}")), "sig"),
        (dup("s%69g=AAAA"), "sig"),
        (dup("exp=1"), "exp"),
        (dup(&format!("exp={exp}")), "exp"),
        (format!("{url}&sig={sig}"), "sig"),
    ] {
        match signed_url::verify(&forged, &secret, at(NOW)) {
            Err(VerifyError::Malformed(m)) => {
                assert!(m.as_str().contains(what), "{forged}: {m}")
            }
            other => panic!("{forged}: {other:?}"),
        }
    }
}

#[test]
fn signing_refuses_secrets_shorter_than_32_bytes() {
    for short in ["", "s3cr3t", &LONG_SECRET[..31]] {
        let e = signed_url::sign("/v", &Secret::new(short), Duration::from_secs(60)).unwrap_err();
        assert_eq!(e.kind(), cloud_atlas::ErrorKind::Validation);
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert!(!short.is_empty() && !e.to_string().contains(short) || short.is_empty());
    }
    assert!(signed_url::sign("/v", &Secret::new(LONG_SECRET), Duration::from_secs(60)).is_ok());
    // 32 bytes, not 32 characters: 11 three-byte characters are 33 bytes.
    assert!(signed_url::sign("/v", &Secret::new("✓".repeat(11)), Duration::from_secs(60)).is_ok());
}
