//! Preshared bearer tokens for browser-to-pod traffic.
//!
//! [`mint`] makes a token once; the caller hands the raw token to the browser and
//! keeps only its hash. The pod receives the raw token as `ATLAS_PRESHARED_KEY`
//! and checks requests with [`verify`] (or the tower layer).

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::secret::Secret;

/// Env var through which a pod receives its preshared key.
pub const PRESHARED_KEY_ENV: &str = "ATLAS_PRESHARED_KEY";

/// A freshly minted bearer token. The raw value exists only here, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MintedToken {
    /// The raw token (32 random bytes, base64url without padding).
    pub token: Secret,
    /// Lowercase hex SHA-256 of the token: the only thing to store.
    pub hash: String,
    /// `Authorization: Bearer <token>`.
    pub header: Secret,
}

impl MintedToken {
    /// `{"ATLAS_PRESHARED_KEY": token}` for the pod's environment.
    pub fn env(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            PRESHARED_KEY_ENV.to_string(),
            self.token.expose().to_string(),
        )])
    }
}

/// Mint a token: 32 bytes from the OS CSPRNG, base64url without padding.
pub fn mint() -> MintedToken {
    let mut bytes = [0u8; 32];
    super::random_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    MintedToken {
        header: Secret::new(format!("Authorization: Bearer {token}")),
        token: Secret::new(token),
        hash,
    }
}

/// Lowercase hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `candidate` hashes to `expected_hash`, compared in constant time.
pub fn verify(candidate: &str, expected_hash: &str) -> bool {
    let got = hash(candidate);
    let want = expected_hash.trim().to_ascii_lowercase();
    got.as_bytes().ct_eq(want.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_verify() {
        let t = mint();
        assert_eq!(t.token.expose().len(), 43);
        assert_eq!(t.hash.len(), 64);
        assert!(verify(t.token.expose(), &t.hash));
        assert!(!verify("nope", &t.hash));
        assert!(!format!("{t:?}").contains(t.token.expose()));
        assert_eq!(t.env()[PRESHARED_KEY_ENV], t.token.expose());
    }
}
