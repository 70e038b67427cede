//! Calls to the Machines API's machine and app endpoints, paced per Fly's limits.
//!
//! Fly limits each action to about 1 request/s per machine (burst 3), and "get
//! machine" to 5/s (burst 10). Every call here takes a token from a pacer keyed by
//! action and target before it is sent, so normal use never meets a 429; a 429 that
//! comes anyway is retried by the shared HTTP layer after its `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::http::{ApiClient, Idempotency, Pacer};

/// Fly's documented per-action limits.
#[derive(Debug, Clone, Copy)]
pub struct FlyLimits {
    /// Interval between actions on one target (default 1 s).
    pub action_interval: Duration,
    /// Burst of actions on one target (default 3).
    pub action_burst: u32,
    /// Interval between gets of one machine (default 200 ms).
    pub get_interval: Duration,
    /// Burst of gets (default 10).
    pub get_burst: u32,
}

impl Default for FlyLimits {
    fn default() -> FlyLimits {
        FlyLimits {
            action_interval: Duration::from_secs(1),
            action_burst: 3,
            get_interval: Duration::from_millis(200),
            get_burst: 10,
        }
    }
}

/// The Machines API surface for one app at a time.
#[derive(Debug, Clone)]
pub struct MachinesApi {
    api: ApiClient,
    limits: FlyLimits,
    pacers: Arc<Mutex<HashMap<String, Arc<Pacer>>>>,
}

impl MachinesApi {
    pub(crate) fn new(api: ApiClient, limits: FlyLimits) -> MachinesApi {
        MachinesApi {
            api,
            limits,
            pacers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn pace(&self, action: &str, target: &str) {
        let pacer = {
            let mut map = self
                .pacers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.len() > 10_000 {
                map.clear();
            }
            let (interval, burst) = if action == "get" {
                (self.limits.get_interval, self.limits.get_burst)
            } else {
                (self.limits.action_interval, self.limits.action_burst)
            };
            Arc::clone(
                map.entry(format!("{action}:{target}"))
                    .or_insert_with(|| Arc::new(Pacer::new(interval, burst))),
            )
        };
        pacer.acquire().await;
    }

    /// `POST /apps/{app}/machines`. Unsafe: never replayed once sent.
    pub async fn create(&self, app: &str, body: Value) -> Result<Value> {
        self.pace("create", app).await;
        self.api
            .post(&format!("/apps/{}/machines", enc(app)))
            .body(body)
            .idempotency(Idempotency::Unsafe)
            .operation("spawn")
            .json()
            .await
    }

    /// `GET /apps/{app}/machines/{id}`.
    pub async fn get(&self, app: &str, id: &str) -> Result<Value> {
        self.pace("get", id).await;
        self.api
            .get(&format!("/apps/{}/machines/{}", enc(app), enc(id)))
            .operation("get")
            .json()
            .await
    }

    /// `GET /apps/{app}/machines` (one response holds every machine of the app).
    pub async fn list(&self, app: &str, region: Option<&str>) -> Result<Vec<Value>> {
        self.pace("list", app).await;
        self.api
            .get(&format!("/apps/{}/machines", enc(app)))
            .query_opt("region", region)
            .operation("list")
            .json()
            .await
    }

    /// `POST /apps/{app}/machines/{id}/{action}` for start, stop and suspend.
    pub async fn action(&self, app: &str, id: &str, action: &'static str) -> Result<()> {
        self.pace(action, id).await;
        let mut rq = self
            .api
            .post(&format!("/apps/{}/machines/{}/{action}", enc(app), enc(id)))
            .idempotency(Idempotency::Idempotent)
            .operation(action);
        if action == "stop" {
            rq = rq.body(serde_json::json!({}));
        }
        rq.send().await.map(|_| ())
    }

    /// `DELETE /apps/{app}/machines/{id}?force=true`.
    pub async fn destroy(&self, app: &str, id: &str) -> Result<()> {
        self.pace("destroy", id).await;
        self.api
            .delete(&format!("/apps/{}/machines/{}", enc(app), enc(id)))
            .query("force", "true")
            .operation("terminate")
            .send()
            .await
            .map(|_| ())
    }

    /// `GET /apps/{app}/machines/{id}/wait?state=…&timeout=…` — blocks server-side
    /// until the machine reaches `state` (`started`, `stopped`, `suspended`, `destroyed`).
    pub async fn wait(&self, app: &str, id: &str, state: &str, timeout: Duration) -> Result<()> {
        self.pace("wait", id).await;
        let secs = timeout.as_secs().clamp(1, 60);
        self.api
            .get(&format!("/apps/{}/machines/{}/wait", enc(app), enc(id)))
            .query("state", state)
            .query("timeout", secs)
            .timeout(Duration::from_secs(secs + 10))
            .operation("wait")
            .send()
            .await
            .map(|_| ())
    }

    /// `GET /apps?org_slug={org}`: the names of the organisation's apps (`personal` is
    /// the user's personal organisation).
    pub async fn list_apps(&self, org: &str) -> Result<Vec<String>> {
        self.pace("list_apps", org).await;
        let body: Value = self
            .api
            .get("/apps")
            .query("org_slug", org)
            .operation("list")
            .json()
            .await?;
        let apps = body
            .get("apps")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        Ok(apps
            .iter()
            .filter_map(|a| a.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// `GET /apps/{app}`.
    pub async fn get_app(&self, app: &str) -> Result<Value> {
        self.pace("get_app", app).await;
        self.api
            .get(&format!("/apps/{}", enc(app)))
            .operation("get_app")
            .json()
            .await
    }

    /// `POST /apps` with `app_name` and `org_slug`.
    pub async fn create_app(&self, app: &str, org: &str) -> Result<()> {
        self.pace("create_app", org).await;
        self.api
            .post("/apps")
            .body(serde_json::json!({"app_name": app, "org_slug": org}))
            .operation("create_app")
            .send()
            .await
            .map(|_| ())
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
