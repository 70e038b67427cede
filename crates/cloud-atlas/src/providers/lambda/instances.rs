//! Instance calls: list, get, launch, terminate, restart, rename.
//!
//! API: <https://docs.lambda.ai/api/cloud#listInstances> and the `instance-operations`
//! endpoints. Every call passes the provider's general pacer (about 1 request/s, set on
//! the shared [`ApiClient`]); launches also take a token from the launch pacer (about one
//! per 12 s), so normal use never meets a 429.

use std::sync::Arc;

use serde_json::{json, Value};

use super::translate::{redact_instance, NAME};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{ApiClient, Idempotency, Pacer};
use crate::providers::reconcile::no_id;

/// The instance endpoints.
#[derive(Debug, Clone)]
pub struct InstancesApi {
    api: ApiClient,
    launch_pacer: Arc<Pacer>,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn data(v: Value, op: &'static str) -> Result<Value> {
    match v {
        Value::Object(mut m) if m.contains_key("data") => {
            Ok(m.remove("data").unwrap_or(Value::Null))
        }
        _ => Err(
            Error::new(ErrorKind::Provider, "Lambda's response has no `data` field")
                .with_provider(NAME)
                .with_operation(op),
        ),
    }
}

fn array(v: Value, field: &str, op: &'static str) -> Result<Vec<Value>> {
    let v = if field.is_empty() {
        v
    } else {
        v.get(field).cloned().unwrap_or(Value::Null)
    };
    match v {
        Value::Array(items) => Ok(items.into_iter().map(redact_instance).collect()),
        _ => Err(Error::new(
            ErrorKind::Provider,
            format!(
                "Lambda's response has no `{}` array",
                if field.is_empty() { "data" } else { field }
            ),
        )
        .with_provider(NAME)
        .with_operation(op)),
    }
}

impl InstancesApi {
    pub(crate) fn new(api: ApiClient, launch_pacer: Arc<Pacer>) -> InstancesApi {
        InstancesApi { api, launch_pacer }
    }

    /// `GET /api/v1/instances`: every instance of the account, in one response
    /// (Lambda does not paginate this list). Jupyter tokens are redacted.
    ///
    /// # Errors
    /// Whatever the request fails with.
    pub async fn list(&self) -> Result<Vec<Value>> {
        let v: Value = self
            .api
            .get("/api/v1/instances")
            .operation("list")
            .json()
            .await?;
        array(data(v, "list")?, "", "list")
    }

    /// `GET /api/v1/instances/{id}` (Jupyter token redacted).
    ///
    /// # Errors
    /// `NotFound` when no such instance exists.
    pub async fn get(&self, id: &str) -> Result<Value> {
        let v: Value = self
            .api
            .get(&format!("/api/v1/instances/{}", enc(id)))
            .operation("get")
            .json()
            .await?;
        Ok(redact_instance(data(v, "get")?))
    }

    /// `POST /api/v1/instance-operations/launch`; returns the new instance ids.
    ///
    /// Unsafe: never replayed once it may have reached Lambda (except after a 429). An
    /// ambiguous failure (a timeout, a 5xx, a 2xx that cannot be decoded or names no
    /// instance) comes back with [`Error::is_ambiguous`]; the caller reconciles by listing.
    ///
    /// # Cost
    /// Starts billing.
    ///
    /// # Errors
    /// `Capacity`, `Validation`, `NotFound` (unknown SSH key or type), `RateLimited`, ….
    pub async fn launch(&self, body: Value) -> Result<Vec<String>> {
        self.launch_pacer.acquire().await;
        let v: Value = self
            .api
            .post("/api/v1/instance-operations/launch")
            .body(body)
            .idempotency(Idempotency::Unsafe)
            .operation("spawn")
            .json()
            .await?;
        let d = data(v, "spawn")?;
        let ids: Vec<String> = d
            .get("instance_ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Err(no_id(NAME, "instance", None));
        }
        Ok(ids)
    }

    /// `POST /api/v1/instance-operations/terminate`; returns the terminated instances.
    ///
    /// # Errors
    /// `NotFound` when an id does not exist.
    pub async fn terminate(&self, ids: &[&str]) -> Result<Vec<Value>> {
        let v: Value = self
            .api
            .post("/api/v1/instance-operations/terminate")
            .body(json!({ "instance_ids": ids }))
            .idempotency(Idempotency::Idempotent)
            .operation("terminate")
            .json()
            .await?;
        array(data(v, "terminate")?, "terminated_instances", "terminate")
    }

    /// `POST /api/v1/instance-operations/restart`; returns the restarted instances.
    ///
    /// # Errors
    /// `NotFound` when an id does not exist.
    pub async fn restart(&self, ids: &[&str]) -> Result<Vec<Value>> {
        let v: Value = self
            .api
            .post("/api/v1/instance-operations/restart")
            .body(json!({ "instance_ids": ids }))
            .idempotency(Idempotency::Idempotent)
            .operation("restart")
            .json()
            .await?;
        array(data(v, "restart")?, "restarted_instances", "restart")
    }

    /// `POST /api/v1/instances/{id}`: rename an instance (at most 64 characters).
    ///
    /// # Errors
    /// `Validation` for a name over 64 characters; `NotFound` when the instance is gone.
    pub async fn rename(&self, id: &str, name: &str) -> Result<Value> {
        if name.chars().count() > 64 {
            return Err(Error::validation(
                "name",
                "Lambda instance names are at most 64 characters",
            ));
        }
        let v: Value = self
            .api
            .post(&format!("/api/v1/instances/{}", enc(id)))
            .body(json!({ "name": name }))
            .idempotency(Idempotency::Idempotent)
            .operation("rename")
            .json()
            .await?;
        Ok(redact_instance(data(v, "rename")?))
    }
}
