//! Instances: rent (`PUT /api/v0/asks/{offer}/`), show, list (`/api/v1/instances/`,
//! keyset paging), state changes and destroy.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::translate;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{ApiClient, Idempotency};
use crate::providers::reconcile::no_id;

/// Instances per page of `/api/v1/instances/` (the service's maximum).
pub const PAGE_SIZE: u32 = 25;
/// Most pages one listing follows (250,000 instances) before it fails rather than loop.
pub const MAX_PAGES: usize = 10_000;

/// Client for Vast's instance endpoints.
#[derive(Debug, Clone)]
pub struct InstancesApi {
    api: ApiClient,
}

impl InstancesApi {
    pub(crate) fn new(api: ApiClient) -> InstancesApi {
        InstancesApi { api }
    }

    /// Rent offer `offer_id` with `body`; returns the new instance id.
    ///
    /// Unsafe: never replayed once it may have reached Vast (except after a 429). An
    /// answer that cannot be decoded, or without `new_contract`, is an
    /// [ambiguous](Error::is_ambiguous) `Provider` error carrying Vast's message: the
    /// caller reconciles by listing.
    pub async fn rent(&self, offer_id: u64, body: Value) -> Result<u64> {
        let answer: Value = self
            .api
            .put(&format!("/api/v0/asks/{offer_id}/"))
            .body(body)
            .idempotency(Idempotency::Unsafe)
            .operation("spawn")
            .json()
            .await?;
        translate::new_contract(&answer).ok_or_else(|| {
            let said = answer
                .get("msg")
                .or_else(|| answer.get("error"))
                .and_then(Value::as_str);
            no_id(translate::NAME, "instance", said)
        })
    }

    /// `GET /api/v0/instances/{id}/?owner=me`; `None` when Vast shows no such instance.
    pub async fn get(&self, id: u64) -> Result<Option<Value>> {
        let answer: Value = self
            .api
            .get(&format!("/api/v0/instances/{id}/"))
            .query("owner", "me")
            .operation("get")
            .json()
            .await?;
        Ok(translate::shown_instance(&answer))
    }

    /// One page of `/api/v1/instances/`: instances and the next token.
    ///
    /// Query values follow the `vastai` client: objects JSON-encoded
    /// (`select_filters={"label":{"eq":"…"}}`), strings as they are.
    pub async fn list_page(
        &self,
        after: Option<&str>,
        filters: Option<&Value>,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let mut rq = self
            .api
            .get("/api/v1/instances/")
            .query("limit", PAGE_SIZE)
            .query("order_by", json!([{"col": "id", "dir": "asc"}]).to_string())
            .operation("list");
        if let Some(f) = filters {
            rq = rq.query("select_filters", f.to_string());
        }
        if let Some(t) = after {
            rq = rq.query("after_token", t);
        }
        let page: Value = rq.json().await?;
        Ok((
            translate::page_instances(&page),
            translate::next_token(&page),
        ))
    }

    /// Every instance matching `filters`, following `next_token` to the last page.
    ///
    /// # Errors
    /// Any page failing fails the whole listing (never a partial list); a token that
    /// repeats, or more than [`MAX_PAGES`] pages, is a `Provider` error.
    pub async fn list_all(&self, filters: Option<&Value>) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let (items, next) = self.list_page(token.as_deref(), filters).await?;
            out.extend(items);
            match next {
                None => return Ok(out),
                Some(t) => {
                    if !seen.insert(t.clone()) {
                        return Err(Error::new(
                            ErrorKind::Provider,
                            format!("Vast repeated the paging token after {} instances; the listing is not complete", out.len()),
                        )
                        .with_provider(translate::NAME)
                        .with_operation("list"));
                    }
                    token = Some(t);
                }
            }
        }
        Err(Error::new(
            ErrorKind::Provider,
            format!("Vast's instance listing did not end after {MAX_PAGES} pages"),
        )
        .with_provider(translate::NAME)
        .with_operation("list"))
    }

    /// `PUT /api/v0/instances/{id}/` with `{"state": "running"|"stopped"}`.
    pub async fn set_state(&self, id: u64, state: &'static str) -> Result<()> {
        let op = if state == "running" { "start" } else { "stop" };
        let answer: Value = self
            .api
            .put(&format!("/api/v0/instances/{id}/"))
            .body(json!({ "state": state }))
            .idempotency(Idempotency::Idempotent)
            .operation(op)
            .json()
            .await?;
        check_success(&answer, op)
    }

    /// `DELETE /api/v0/instances/{id}/`.
    pub async fn destroy(&self, id: u64) -> Result<()> {
        let answer: Value = self
            .api
            .delete(&format!("/api/v0/instances/{id}/"))
            .operation("terminate")
            .json()
            .await?;
        check_success(&answer, "terminate")
    }
}

fn check_success(answer: &Value, op: &'static str) -> Result<()> {
    if answer.get("success").and_then(Value::as_bool) == Some(false) {
        let msg = answer
            .get("msg")
            .or_else(|| answer.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("Vast answered success: false");
        let kind = if msg.to_ascii_lowercase().contains("not found") {
            ErrorKind::NotFound
        } else {
            ErrorKind::Provider
        };
        return Err(Error::new(kind, msg.to_string())
            .with_provider(translate::NAME)
            .with_operation(op));
    }
    Ok(())
}
