//! A string that must never show up in logs or `Debug` output.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A secret string (API key, bearer token, signing secret).
///
/// `Debug` and `Display` print only a short fingerprint (`sha256:1a2b3c4d`), so a
/// secret inside any struct can be logged safely. [`Secret::expose`] hands out the
/// value. Serializing **does** write the value: serialization is how a secret is
/// deliberately handed to a user (a spawn result printed once) or to its own 0600
/// file; never serialize a secret into telemetry.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret value. Call only where the value must leave the process.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A short, non-reversible fingerprint (first 8 hex chars of SHA-256).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

/// The first 8 hex characters of SHA-256 over `value`, prefixed `sha256:`.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..8])
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        Ok(Secret(String::deserialize(d)?))
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_value() {
        let s = Secret::new("canary-key-123");
        assert!(!format!("{s:?}").contains("canary"));
        assert!(!format!("{s}").contains("canary"));
        assert_eq!(s.expose(), "canary-key-123");
    }
}
