//! Signed store records: an HMAC-SHA256 over a record's fields with a key from
//! configuration, so a row edited or forged directly in the database (by someone with
//! access to it but not to the key) is reported as damaged and never acted on.
//!
//! What is signed: a session's id, user and body (its machine id, name, state, limits,
//! prices: everything that steers a terminate or a reaper decision); separately its owner
//! (changed by takeovers); and a node lease's node and expiry. Not signed: a session's
//! heartbeat column, which moves on every batch of touches; an edited heartbeat can only
//! postpone an idle end, never past the session's max runtime or caps.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, Result};

/// The key records are signed with. Its `Debug` never shows it.
#[derive(Clone)]
pub struct RecordKey(Vec<u8>);

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(<redacted>)")
    }
}

impl RecordKey {
    /// A key of at least 32 bytes (e.g. `openssl rand -hex 32`).
    ///
    /// # Errors
    /// `Validation` naming `record_key` when it is shorter.
    pub fn new(key: impl AsRef<[u8]>) -> Result<RecordKey> {
        let k = key.as_ref();
        if k.len() < 32 {
            return Err(Error::validation(
                "record_key",
                format!(
                    "is {} bytes; use at least 32 (e.g. openssl rand -hex 32)",
                    k.len()
                ),
            ));
        }
        Ok(RecordKey(k.to_vec()))
    }

    fn mac(&self, what: &str, fields: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for f in std::iter::once(what.as_bytes()).chain(fields.iter().copied()) {
            // Length-prefixed, so no two field lists sign the same bytes.
            mac.update(&(f.len() as u64).to_be_bytes());
            mac.update(f);
        }
        mac
    }

    /// The hex signature of record kind `what` with `fields`.
    pub(crate) fn sign(&self, what: &str, fields: &[&[u8]]) -> String {
        hex::encode(self.mac(what, fields).finalize().into_bytes())
    }

    /// Whether `sig` signs `fields` (constant-time comparison).
    pub(crate) fn verify(&self, what: &str, fields: &[&[u8]], sig: Option<&str>) -> bool {
        let Some(raw) = sig.and_then(|s| hex::decode(s).ok()) else {
            return false;
        };
        self.mac(what, fields).verify_slice(&raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_field_and_the_kind_and_keys_are_secret() {
        let k = RecordKey::new([7u8; 32]).unwrap();
        let s = k.sign("session", &[b"id", b"user", b"{}"]);
        assert!(k.verify("session", &[b"id", b"user", b"{}"], Some(&s)));
        assert!(!k.verify("session", &[b"id", b"user", b"{ }"], Some(&s)));
        assert!(!k.verify("owner", &[b"id", b"user", b"{}"], Some(&s)));
        // Field boundaries count: ("ab","c") is not ("a","bc").
        let t = k.sign("x", &[b"ab", b"c"]);
        assert!(!k.verify("x", &[b"a", b"bc"], Some(&t)));
        assert!(!k.verify("session", &[b"id", b"user", b"{}"], None));
        assert!(!k.verify("session", &[b"id", b"user", b"{}"], Some("zz")));
        let other = RecordKey::new([8u8; 32]).unwrap();
        assert!(!other.verify("session", &[b"id", b"user", b"{}"], Some(&s)));
        assert_eq!(format!("{k:?}"), "RecordKey(<redacted>)");
        let e = RecordKey::new(b"short").unwrap_err();
        assert!(e.to_string().contains("record_key"), "{e}");
    }
}
