//! Calls to REST v2's pod endpoints (`/v2/pods…`).
//!
//! API: <https://docs.runpod.io/api-reference-v2/pods/list-pods>. `GET /v2/pods` is not
//! paginated in v2: one response holds every pod of the account (cluster members only
//! with `includeClusterPods=true`), and it takes no status or name filter, so filters
//! are applied client-side.

use serde_json::Value;

use super::logs::enc;
use super::ratelimit::Rest;
use crate::error::{Error, ErrorKind, Result};
use crate::http::Idempotency;

/// A state transition for `POST /v2/pods/{id}/action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PodAction {
    /// Boot an `EXITED` or `ERROR` pod.
    Start,
    /// Stop a running or provisioning pod, keeping its disk.
    Stop,
    /// Restart a `RUNNING` pod's container in place.
    Restart,
    /// Delete the pod (as `DELETE /v2/pods/{id}`).
    Terminate,
}

impl PodAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PodAction::Start => "start",
            PodAction::Stop => "stop",
            PodAction::Restart => "restart",
            PodAction::Terminate => "terminate",
        }
    }
}

/// The pods surface (native JSON in and out; see [`super::translate`] for spec types).
#[derive(Debug, Clone)]
pub struct PodsApi {
    rest: Rest,
}

impl PodsApi {
    pub(crate) fn new(rest: Rest) -> PodsApi {
        PodsApi { rest }
    }

    /// `POST /v2/pods` with a `CreatePodRequest` body. Unsafe: never replayed once sent;
    /// an ambiguous failure comes back with [`Error::is_ambiguous`].
    ///
    /// # Cost
    /// Starts billing.
    pub async fn create(&self, body: &Value) -> Result<Value> {
        let rq = self
            .rest
            .api()
            .post("/v2/pods")
            .body(body.clone())
            .idempotency(Idempotency::Unsafe)
            .operation("spawn");
        self.rest.json(rq).await
    }

    /// `GET /v2/pods/{id}`.
    pub async fn get(&self, id: &str) -> Result<Value> {
        check_id(id)?;
        let rq = self
            .rest
            .api()
            .get(&format!("/v2/pods/{}", enc(id)))
            .operation("get");
        self.rest.json(rq).await
    }

    /// `GET /v2/pods`: every pod (v2 returns them all in one response).
    pub async fn list(&self, include_cluster_pods: bool) -> Result<Vec<Value>> {
        let mut rq = self.rest.api().get("/v2/pods").operation("list");
        if include_cluster_pods {
            rq = rq.query("includeClusterPods", true);
        }
        let v: Value = self.rest.json(rq).await?;
        match v.get("pods").and_then(Value::as_array) {
            Some(pods) => Ok(pods.clone()),
            None => Err(
                Error::new(ErrorKind::Provider, "the pod listing has no `pods` array")
                    .with_provider("runpod")
                    .with_operation("list"),
            ),
        }
    }

    /// `POST /v2/pods/{id}/action`. Returns the updated pod (`None` for terminate).
    ///
    /// # Errors
    /// `Validation` (HTTP 409) when the pod's status does not allow the action.
    pub async fn action(&self, id: &str, action: PodAction) -> Result<Option<Value>> {
        check_id(id)?;
        let rq = self
            .rest
            .api()
            .post(&format!("/v2/pods/{}/action", enc(id)))
            .body(serde_json::json!({"action": action.as_str()}))
            .idempotency(Idempotency::Idempotent)
            .operation(action.as_str());
        let resp = self.rest.send(rq).await?;
        if resp.body.is_empty() {
            Ok(None)
        } else {
            resp.json().map(Some)
        }
    }

    /// `PATCH /v2/pods/{id}` with an `UpdatePodRequest` body; returns the updated pod.
    pub async fn update(&self, id: &str, body: &Value) -> Result<Value> {
        check_id(id)?;
        let rq = self
            .rest
            .api()
            .patch(&format!("/v2/pods/{}", enc(id)))
            .body(body.clone())
            .idempotency(Idempotency::Idempotent)
            .operation("update");
        self.rest.json(rq).await
    }

    /// `DELETE /v2/pods/{id}`.
    ///
    /// # Errors
    /// `NotFound` when the pod is already gone.
    pub async fn delete(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let rq = self
            .rest
            .api()
            .delete(&format!("/v2/pods/{}", enc(id)))
            .operation("terminate");
        self.rest.send(rq).await.map(|_| ())
    }
}

fn check_id(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::validation("id", "a pod id is required"));
    }
    Ok(())
}
