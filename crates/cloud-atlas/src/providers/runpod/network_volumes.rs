//! Network volumes (`/v2/network-volumes`): persistent storage that outlives pods.
//!
//! API: <https://docs.runpod.io/api-reference-v2/network-volumes/list-network-volumes>

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ratelimit::Rest;
use super::resource::{Kind, Resource};
use crate::error::{Error, Result};

/// A network volume, summarised; the full object is in `raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NetworkVolume {
    /// Volume id (pass as `network_volume_id` when spawning).
    pub id: String,
    /// Name (not unique).
    pub name: String,
    /// Size in GB.
    #[serde(rename = "size")]
    pub size_gb: u32,
    /// Data centre (pods using it must run there).
    pub data_center: String,
    /// Storage tier (`STANDARD`, `HIGH_PERFORMANCE`).
    #[serde(rename = "type", default)]
    pub volume_type: Option<String>,
    /// Native JSON.
    #[serde(skip_deserializing, default)]
    pub raw: Value,
}

const KIND: Kind = Kind {
    path: "/v2/network-volumes",
    list_key: "networkVolumes",
    id_required: "a network volume id is required",
    ops: [
        "network_volumes.list",
        "network_volumes.get",
        "network_volumes.create",
        "network_volumes.update",
        "network_volumes.delete",
    ],
};

/// The network-volumes surface.
#[derive(Debug, Clone)]
pub struct NetworkVolumesApi {
    res: Resource,
}

impl NetworkVolumesApi {
    pub(crate) fn new(rest: Rest) -> NetworkVolumesApi {
        NetworkVolumesApi {
            res: Resource::new(rest, KIND),
        }
    }

    /// Every network volume of the account.
    ///
    /// # Errors
    /// Request errors; an unexpected body is a `Provider` error naming the field.
    pub async fn list(&self) -> Result<Vec<NetworkVolume>> {
        self.res.list().await
    }

    /// One network volume.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get(&self, id: &str) -> Result<NetworkVolume> {
        self.res.get(id).await
    }

    /// Create a volume of `size_gb` (10-4096) in `data_center`.
    ///
    /// # Errors
    /// `Validation` naming the field for an empty name or data centre or a size out of range.
    ///
    /// # Cost
    /// Storage bills from creation until deletion.
    pub async fn create(
        &self,
        name: &str,
        size_gb: u32,
        data_center: &str,
    ) -> Result<NetworkVolume> {
        if name.trim().is_empty() {
            return Err(Error::validation("name", "is required"));
        }
        if data_center.trim().is_empty() {
            return Err(Error::validation(
                "data_center",
                "is required (e.g. EU-RO-1)",
            ));
        }
        check_size(size_gb)?;
        self.res
            .create(json!({"name": name, "size": size_gb, "dataCenter": data_center}))
            .await
    }

    /// Rename and/or grow a volume (RunPod volumes cannot shrink).
    ///
    /// # Errors
    /// `Validation` when neither is given or the size is out of range; `NotFound`.
    pub async fn update(
        &self,
        id: &str,
        name: Option<&str>,
        size_gb: Option<u32>,
    ) -> Result<NetworkVolume> {
        let mut body = serde_json::Map::new();
        if let Some(n) = name {
            body.insert("name".into(), json!(n));
        }
        if let Some(s) = size_gb {
            check_size(s)?;
            body.insert("size".into(), json!(s));
        }
        if body.is_empty() {
            return Err(Error::validation("update", "give a new name or size"));
        }
        self.res.update(id, Value::Object(body)).await
    }

    /// Delete a volume and its data.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.res.delete(id).await
    }
}

fn check_size(size_gb: u32) -> Result<()> {
    if !(10..=4096).contains(&size_gb) {
        return Err(Error::validation(
            "size_gb",
            format!("{size_gb} is out of range; allowed: 10-4096"),
        ));
    }
    Ok(())
}
