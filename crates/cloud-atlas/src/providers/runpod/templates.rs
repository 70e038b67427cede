//! Templates (`/v2/templates`): reusable pod and endpoint container configurations.
//!
//! API: <https://docs.runpod.io/api-reference-v2/templates/list-templates>

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::logs::enc;
use super::ratelimit::Rest;
use super::{decode, decode_list};
use crate::error::{Error, Result};
use crate::http::Idempotency;

/// A template, summarised; the full object is in `raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Template {
    /// Template id (pass as `template_id` when spawning).
    pub id: String,
    /// Name.
    pub name: String,
    /// Container image.
    #[serde(default)]
    pub image: Option<String>,
    /// Whether it is a serverless template (pods cannot use those).
    #[serde(default)]
    pub serverless: bool,
    /// Whether it is public.
    #[serde(default)]
    pub public: bool,
    /// `NVIDIA`, `AMD` or `CPU`.
    #[serde(default)]
    pub category: Option<String>,
    /// Container disk in GB.
    #[serde(default)]
    pub disk: Option<u64>,
    /// Exposed ports (`8888/http`).
    #[serde(default)]
    pub ports: Vec<String>,
    /// Native JSON.
    #[serde(skip_deserializing, default)]
    pub raw: Value,
}

/// The templates surface.
#[derive(Debug, Clone)]
pub struct TemplatesApi {
    rest: Rest,
}

impl TemplatesApi {
    pub(crate) fn new(rest: Rest) -> TemplatesApi {
        TemplatesApi { rest }
    }

    /// Every template of the account.
    ///
    /// # Errors
    /// Request errors; an unexpected body is a `Provider` error naming the field.
    pub async fn list(&self) -> Result<Vec<Template>> {
        let rq = self
            .rest
            .api()
            .get("/v2/templates")
            .operation("templates.list");
        let v: Value = self.rest.json(rq).await?;
        decode_list(&v, "templates")
    }

    /// One template.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get(&self, id: &str) -> Result<Template> {
        check(id)?;
        let rq = self
            .rest
            .api()
            .get(&format!("/v2/templates/{}", enc(id)))
            .operation("templates.get");
        decode(&self.rest.json(rq).await?)
    }

    /// Create a template from a `CreateTemplateRequest` body (`name`, `image`, …).
    ///
    /// # Errors
    /// `Validation` when RunPod rejects the body.
    pub async fn create(&self, body: &Value) -> Result<Template> {
        let rq = self
            .rest
            .api()
            .post("/v2/templates")
            .body(body.clone())
            .idempotency(Idempotency::Unsafe)
            .operation("templates.create");
        decode(&self.rest.json(rq).await?)
    }

    /// Change fields of a template (`UpdateTemplateRequest`).
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Validation` for a rejected body.
    pub async fn update(&self, id: &str, body: &Value) -> Result<Template> {
        check(id)?;
        let rq = self
            .rest
            .api()
            .patch(&format!("/v2/templates/{}", enc(id)))
            .body(body.clone())
            .idempotency(Idempotency::Idempotent)
            .operation("templates.update");
        decode(&self.rest.json(rq).await?)
    }

    /// Delete a template.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete(&self, id: &str) -> Result<()> {
        check(id)?;
        let rq = self
            .rest
            .api()
            .delete(&format!("/v2/templates/{}", enc(id)))
            .operation("templates.delete");
        self.rest.send(rq).await.map(|_| ())
    }
}

fn check(id: &str) -> Result<()> {
    if id.trim().is_empty() {
        return Err(Error::validation("id", "a template id is required"));
    }
    Ok(())
}
