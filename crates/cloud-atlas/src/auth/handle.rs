//! The credentials a spawn hands back once.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::secret::Secret;
use super::token;
use crate::spec::{AuthMode, ComputeRequest};

/// Env var through which a pod receives its URL-signing secret.
pub const SIGNING_SECRET_ENV: &str = "ATLAS_SIGNING_SECRET";

/// Browser-to-pod credentials made at spawn.
///
/// Only the spawn result carries raw secrets; stores keep [`AuthHandle::token_hash`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthHandle {
    /// Which scheme.
    pub mode: AuthMode,
    /// Raw bearer token (spawn result only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// SHA-256 hex of the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// `Authorization: Bearer …` header line (spawn result only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Secret>,
    /// Per-pod URL signing secret (spawn result only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<Secret>,
}

impl AuthHandle {
    /// Make credentials for `mode`, returning the handle and the env vars to inject
    /// into the machine. `AuthMode::None` gives `None` and no env.
    pub fn mint(mode: AuthMode) -> (Option<AuthHandle>, BTreeMap<String, String>) {
        match mode {
            AuthMode::Bearer => {
                let t = token::mint();
                let env = t.env();
                (
                    Some(AuthHandle {
                        mode,
                        token: Some(t.token),
                        token_hash: Some(t.hash),
                        header: Some(t.header),
                        signing_secret: None,
                    }),
                    env,
                )
            }
            AuthMode::SignedUrl => {
                let mut bytes = [0u8; 32];
                super::random_bytes(&mut bytes);
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
                let env = BTreeMap::from([(SIGNING_SECRET_ENV.to_string(), secret.clone())]);
                (
                    Some(AuthHandle {
                        mode,
                        token: None,
                        token_hash: None,
                        header: None,
                        signing_secret: Some(Secret::new(secret)),
                    }),
                    env,
                )
            }
            _ => (None, BTreeMap::new()),
        }
    }

    /// Mint credentials for `req.auth` and the env a provider's create sends: the
    /// minted variables, then the request's own `env` (a minted variable wins over a
    /// request variable of the same name, so a request cannot replace the credential).
    pub fn mint_for(req: &ComputeRequest) -> (Option<AuthHandle>, BTreeMap<String, String>) {
        let (auth, mut env) = AuthHandle::mint(req.auth);
        for (k, v) in &req.env {
            env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        (auth, env)
    }

    /// A copy without raw secrets (what stores and later reads may keep).
    pub fn redacted(&self) -> AuthHandle {
        AuthHandle {
            mode: self.mode,
            token: None,
            token_hash: self.token_hash.clone(),
            header: None,
            signing_secret: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::token::PRESHARED_KEY_ENV;
    use super::*;

    #[test]
    fn mint_for_merges_the_request_env_under_the_minted_one() {
        let req = ComputeRequest::builder()
            .image("img")
            .cpus(1)
            .env("A", "1")
            .env(PRESHARED_KEY_ENV, "chosen-by-the-caller")
            .auth(AuthMode::Bearer)
            .build()
            .unwrap();
        let (auth, env) = AuthHandle::mint_for(&req);
        let token = auth.unwrap().token.unwrap();
        assert_eq!(env[PRESHARED_KEY_ENV], token.expose());
        assert_eq!(env["A"], "1");
        assert_eq!(env.len(), 2);
    }
}
