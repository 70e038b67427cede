//! Templates (`/v2/templates`): reusable pod and endpoint container configurations.
//!
//! API: <https://docs.runpod.io/api-reference-v2/templates/list-templates>

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ratelimit::Rest;
use super::resource::{Kind, Resource};
use crate::error::Result;

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

const KIND: Kind = Kind {
    path: "/v2/templates",
    list_key: "templates",
    id_required: "a template id is required",
    ops: [
        "templates.list",
        "templates.get",
        "templates.create",
        "templates.update",
        "templates.delete",
    ],
};

/// The templates surface.
#[derive(Debug, Clone)]
pub struct TemplatesApi {
    res: Resource,
}

impl TemplatesApi {
    pub(crate) fn new(rest: Rest) -> TemplatesApi {
        TemplatesApi {
            res: Resource::new(rest, KIND),
        }
    }

    /// Every template of the account.
    ///
    /// # Errors
    /// Request errors; an unexpected body is a `Provider` error naming the field.
    pub async fn list(&self) -> Result<Vec<Template>> {
        self.res.list().await
    }

    /// One template.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn get(&self, id: &str) -> Result<Template> {
        self.res.get(id).await
    }

    /// Create a template from a `CreateTemplateRequest` body (`name`, `image`, …).
    ///
    /// # Errors
    /// `Validation` when RunPod rejects the body.
    pub async fn create(&self, body: &Value) -> Result<Template> {
        self.res.create(body.clone()).await
    }

    /// Change fields of a template (`UpdateTemplateRequest`).
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Validation` for a rejected body.
    pub async fn update(&self, id: &str, body: &Value) -> Result<Template> {
        self.res.update(id, body.clone()).await
    }

    /// Delete a template.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.res.delete(id).await
    }
}
