//! What every handler shares: the orchestrator, the providers, access control, the event
//! hub and the options.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cloud_atlas::orchestrator::{Orchestrator, SessionStore};
use cloud_atlas::Provider;

use crate::access::Access;
use crate::events::Hub;

/// Shared state behind an `Arc` (cheap to clone into every handler).
#[derive(Debug, Clone)]
pub(crate) struct AppState(pub(crate) Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) orch: Orchestrator,
    pub(crate) providers: BTreeMap<String, Arc<dyn Provider>>,
    pub(crate) default_provider: String,
    pub(crate) store: Option<Arc<dyn SessionStore>>,
    pub(crate) access: Access,
    pub(crate) hub: Arc<Hub>,
    pub(crate) allow_destructive: bool,
    pub(crate) metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The last GPU catalog answer (as JSON) and when it was fetched.
    pub(crate) catalog: Mutex<Option<(Instant, serde_json::Value)>>,
    pub(crate) openapi: String,
}
