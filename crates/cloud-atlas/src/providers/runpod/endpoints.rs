//! Serverless endpoints (`/v2/serverless`): the management side of what
//! [`super::serverless`] sends jobs to.
//!
//! API: <https://docs.runpod.io/api-reference-v2/serverless/list-endpoints>

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ratelimit::Rest;
use super::resource::{Kind, Resource};
use crate::error::Result;

/// Worker scaling bounds of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct EndpointWorkers {
    /// Workers kept warm.
    #[serde(default)]
    pub min: u64,
    /// Most workers.
    #[serde(default)]
    pub max: u64,
    /// Seconds a worker idles before it is stopped.
    #[serde(default)]
    pub idle_timeout: Option<u32>,
}

/// A serverless endpoint, summarised; the full object is in `raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Endpoint {
    /// Endpoint id (the `{endpoint_id}` of the runtime API).
    pub id: String,
    /// Name.
    pub name: String,
    /// `QUEUE` or `LOAD_BALANCER`.
    #[serde(rename = "type", default)]
    pub endpoint_type: Option<String>,
    /// Container image.
    #[serde(default)]
    pub image: Option<String>,
    /// Worker bounds.
    #[serde(default)]
    pub workers: EndpointWorkers,
    /// Data centres it may run in.
    #[serde(default)]
    pub data_center_ids: Vec<String>,
    /// Execution timeout in milliseconds.
    #[serde(default)]
    pub timeout: Option<i64>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Native JSON.
    #[serde(skip_deserializing, default)]
    pub raw: Value,
}

const KIND: Kind = Kind {
    path: "/v2/serverless",
    list_key: "endpoints",
    id_required: "an endpoint id is required",
    ops: [
        "endpoints.list",
        "endpoints.get",
        "endpoints.create",
        "endpoints.update",
        "endpoints.delete",
    ],
};

/// The serverless-endpoints surface.
#[derive(Debug, Clone)]
pub struct EndpointsApi {
    res: Resource,
}

impl EndpointsApi {
    pub(crate) fn new(rest: Rest) -> EndpointsApi {
        EndpointsApi {
            res: Resource::new(rest, KIND),
        }
    }

    /// Every endpoint of the account.
    ///
    /// # Errors
    /// Request errors; an unexpected body is a `Provider` error naming the field.
    pub async fn list(&self) -> Result<Vec<Endpoint>> {
        self.res.list().await
    }

    /// One endpoint.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get(&self, id: &str) -> Result<Endpoint> {
        self.res.get(id).await
    }

    /// Create an endpoint from a `CreateEndpointRequest` body.
    ///
    /// # Errors
    /// `Validation` when RunPod rejects the body.
    ///
    /// # Cost
    /// Workers bill while running; `workers.min > 0` bills from creation.
    pub async fn create(&self, body: &Value) -> Result<Endpoint> {
        self.res.create(body.clone()).await
    }

    /// Change fields of an endpoint (`UpdateEndpointRequest`).
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Validation` for a rejected body.
    pub async fn update(&self, id: &str, body: &Value) -> Result<Endpoint> {
        self.res.update(id, body.clone()).await
    }

    /// Delete an endpoint.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.res.delete(id).await
    }
}
