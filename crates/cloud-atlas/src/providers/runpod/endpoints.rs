//! Serverless endpoints (`/v2/serverless`): the management side of what
//! [`super::serverless`] sends jobs to.
//!
//! API: <https://docs.runpod.io/api-reference-v2/serverless/list-endpoints>

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::logs::enc;
use super::ratelimit::Rest;
use super::{decode, decode_list};
use crate::error::{Error, Result};
use crate::http::Idempotency;

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

/// The serverless-endpoints surface.
#[derive(Debug, Clone)]
pub struct EndpointsApi {
    rest: Rest,
}

impl EndpointsApi {
    pub(crate) fn new(rest: Rest) -> EndpointsApi {
        EndpointsApi { rest }
    }

    /// Every endpoint of the account.
    ///
    /// # Errors
    /// Request errors; an unexpected body is a `Provider` error naming the field.
    pub async fn list(&self) -> Result<Vec<Endpoint>> {
        let rq = self
            .rest
            .api()
            .get("/v2/serverless")
            .operation("endpoints.list");
        let v: Value = self.rest.json(rq).await?;
        decode_list(&v, "endpoints")
    }

    /// One endpoint.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get(&self, id: &str) -> Result<Endpoint> {
        check(id)?;
        let rq = self
            .rest
            .api()
            .get(&format!("/v2/serverless/{}", enc(id)))
            .operation("endpoints.get");
        decode(&self.rest.json(rq).await?)
    }

    /// Create an endpoint from a `CreateEndpointRequest` body.
    ///
    /// # Errors
    /// `Validation` when RunPod rejects the body.
    ///
    /// # Cost
    /// Workers bill while running; `workers.min > 0` bills from creation.
    pub async fn create(&self, body: &Value) -> Result<Endpoint> {
        let rq = self
            .rest
            .api()
            .post("/v2/serverless")
            .body(body.clone())
            .idempotency(Idempotency::Unsafe)
            .operation("endpoints.create");
        decode(&self.rest.json(rq).await?)
    }

    /// Change fields of an endpoint (`UpdateEndpointRequest`).
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Validation` for a rejected body.
    pub async fn update(&self, id: &str, body: &Value) -> Result<Endpoint> {
        check(id)?;
        let rq = self
            .rest
            .api()
            .patch(&format!("/v2/serverless/{}", enc(id)))
            .body(body.clone())
            .idempotency(Idempotency::Idempotent)
            .operation("endpoints.update");
        decode(&self.rest.json(rq).await?)
    }

    /// Delete an endpoint.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete(&self, id: &str) -> Result<()> {
        check(id)?;
        let rq = self
            .rest
            .api()
            .delete(&format!("/v2/serverless/{}", enc(id)))
            .operation("endpoints.delete");
        self.rest.send(rq).await.map(|_| ())
    }
}

fn check(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::validation("id", "an endpoint id is required"));
    }
    Ok(())
}
