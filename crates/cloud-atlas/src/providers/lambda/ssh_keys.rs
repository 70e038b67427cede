//! SSH keys on the Lambda account (`/api/v1/ssh-keys`). Lambda needs one to launch.
//!
//! API: <https://docs.lambda.ai/api/cloud#listSSHKeys>.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::translate::decode;
use crate::auth::Secret;
use crate::error::{Error, Result};
use crate::http::{ApiClient, Idempotency};

/// An SSH key stored on the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SshKey {
    /// Key id.
    pub id: String,
    /// Key name (what launches refer to).
    pub name: String,
    /// The public key.
    pub public_key: String,
    /// The private key, only when Lambda just generated the pair (it keeps no copy).
    /// `Debug` shows a fingerprint only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// The SSH key endpoints.
#[derive(Debug, Clone)]
pub struct SshKeysApi {
    api: ApiClient,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl SshKeysApi {
    pub(crate) fn new(api: ApiClient) -> SshKeysApi {
        SshKeysApi { api }
    }

    /// `GET /api/v1/ssh-keys`.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn list(&self) -> Result<Vec<SshKey>> {
        let v: Value = self
            .api
            .get("/api/v1/ssh-keys")
            .operation("ssh_keys.list")
            .json()
            .await?;
        Ok(decode::<Data<Vec<SshKey>>>(&v, "SSH key list")?.data)
    }

    /// `POST /api/v1/ssh-keys`: upload `public_key` under `name`, or with `None` have
    /// Lambda generate a pair and return the private key once (save it: Lambda keeps no copy).
    ///
    /// # Errors
    /// `Validation` for an empty or over-long name or key (1-64 and 1-4096 characters).
    pub async fn add(&self, name: &str, public_key: Option<&str>) -> Result<SshKey> {
        if name.is_empty() || name.chars().count() > 64 {
            return Err(Error::validation(
                "name",
                "SSH key names are 1-64 characters",
            ));
        }
        let mut body = json!({ "name": name });
        if let Some(k) = public_key {
            let k = k.trim();
            if k.is_empty() || k.len() > 4096 {
                return Err(Error::validation(
                    "public_key",
                    "must be 1-4096 characters (an OpenSSH public key line)",
                ));
            }
            body["public_key"] = json!(k);
        }
        let v: Value = self
            .api
            .post("/api/v1/ssh-keys")
            .body(body)
            .idempotency(Idempotency::Unsafe)
            .operation("ssh_keys.add")
            .json()
            .await?;
        Ok(decode::<Data<SshKey>>(&v, "SSH key")?.data)
    }

    /// `DELETE /api/v1/ssh-keys/{id}`.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.api
            .delete(&format!("/api/v1/ssh-keys/{}", enc(id)))
            .operation("ssh_keys.delete")
            .send()
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_decodes() {
        let path = format!(
            "{}/tests/fixtures/lambda/samples/m_ssh_keys_response.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let keys = decode::<Data<Vec<SshKey>>>(&v, "keys").unwrap().data;
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name, "yubikey");
        assert!(keys[0].public_key.starts_with("ssh-rsa "));
        assert!(keys[0].private_key.is_none());
    }

    #[test]
    fn generated_private_key_is_hidden_from_debug() {
        let v = json!({"data": {"id": "i", "name": "n", "public_key": "ssh-ed25519 AAAA", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nsecret-material"}});
        let k = decode::<Data<SshKey>>(&v, "key").unwrap().data;
        assert!(!format!("{k:?}").contains("secret-material"));
        assert!(k.private_key.unwrap().expose().contains("secret-material"));
    }
}
