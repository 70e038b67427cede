//! Persistent shared file systems (`/api/v1/file-systems`, `/api/v1/filesystems`).
//!
//! A file system lives in one region and is mounted at launch by name
//! (`network_volume_id` or provider option `file_systems`).
//! API: <https://docs.lambda.ai/api/cloud#listFilesystems>.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::translate::{decode, Region};
use crate::error::{Error, Result};
use crate::http::{ApiClient, Idempotency};

/// A shared file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileSystem {
    /// Id.
    pub id: String,
    /// Name (what launches refer to).
    pub name: String,
    /// Default mount point on instances.
    #[serde(default)]
    pub mount_point: String,
    /// Creation time.
    #[serde(default)]
    pub created: Option<DateTime<Utc>>,
    /// Whether an instance has it mounted (mounted file systems cannot be deleted).
    #[serde(default)]
    pub is_in_use: bool,
    /// Region.
    pub region: Region,
    /// Approximate bytes used (updated every few hours).
    #[serde(default)]
    pub bytes_used: Option<u64>,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

/// The file system endpoints.
#[derive(Debug, Clone)]
pub struct FileSystemsApi {
    api: ApiClient,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether `name` is a valid file system name: 1-60 characters, letters first, then
/// letters, digits and `-`.
pub fn valid_name(name: &str) -> bool {
    let letters = name.chars().take_while(char::is_ascii_alphabetic).count();
    letters >= 1 && name.len() <= 60 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl FileSystemsApi {
    pub(crate) fn new(api: ApiClient) -> FileSystemsApi {
        FileSystemsApi { api }
    }

    /// `GET /api/v1/file-systems`.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn list(&self) -> Result<Vec<FileSystem>> {
        let v: Value = self
            .api
            .get("/api/v1/file-systems")
            .operation("file_systems.list")
            .json()
            .await?;
        Ok(decode::<Data<Vec<FileSystem>>>(&v, "file system list")?.data)
    }

    /// `POST /api/v1/filesystems`: create `name` in `region`.
    ///
    /// # Cost
    /// File systems bill for storage until deleted.
    ///
    /// # Errors
    /// `Validation` for a bad name; `Validation` (`global/duplicate`) when it exists.
    pub async fn create(&self, name: &str, region: &str) -> Result<FileSystem> {
        if !valid_name(name) {
            return Err(Error::validation(
                "name",
                format!("{name:?} is not allowed; use 1-60 letters, digits and -, starting with a letter"),
            ));
        }
        let v: Value = self
            .api
            .post("/api/v1/filesystems")
            .body(json!({ "name": name, "region": region }))
            .idempotency(Idempotency::Unsafe)
            .operation("file_systems.create")
            .json()
            .await?;
        Ok(decode::<Data<FileSystem>>(&v, "file system")?.data)
    }

    /// `DELETE /api/v1/filesystems/{id}`.
    ///
    /// # Errors
    /// `NotFound` when gone; `Validation` while an instance has it mounted.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.api
            .delete(&format!("/api/v1/filesystems/{}", enc(id)))
            .operation("file_systems.delete")
            .send()
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_decodes() {
        let v = json!({"data": [{"id": "398578a2336b49079e74043f0bd2cfe8", "name": "my-filesystem",
            "mount_point": "/lambda/nfs/my-filesystem", "created": "2019-08-24T14:15:22Z",
            "created_by": {"id": "3da5a70a57a7422ea8a7203f98b2198b", "email": "me@example.com", "status": "active"},
            "is_in_use": true, "region": {"name": "us-west-1", "description": "California, USA"}, "bytes_used": 0}]});
        let fs = decode::<Data<Vec<FileSystem>>>(&v, "fs").unwrap().data;
        assert_eq!(fs[0].name, "my-filesystem");
        assert!(fs[0].is_in_use);
        assert_eq!(fs[0].region.name, "us-west-1");
        assert!(fs[0].created.is_some());
    }

    #[test]
    fn names() {
        assert!(valid_name("my-filesystem"));
        assert!(valid_name("Data2"));
        assert!(!valid_name("2data"));
        assert!(!valid_name("my_fs"));
        assert!(!valid_name(""));
    }
}
