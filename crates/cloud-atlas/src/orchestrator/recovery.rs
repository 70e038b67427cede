//! Re-adoption of stored sessions at start.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Inner, SessionState, SessionStore, TerminateReason};
use crate::error::Result;
use crate::provider::Provider;
use crate::spec::{Compute, ListFilter};

impl Inner {
    /// Re-adopt every stored session; resolve dangling intents by launch name.
    pub(super) async fn readopt(self: &Arc<Self>) -> Result<()> {
        let stored = self.store.list().await?;
        let mut listings: BTreeMap<String, Option<Vec<Compute>>> = BTreeMap::new();
        for s in stored {
            let Ok(p) = self.provider(&s.provider).map(Arc::clone) else {
                tracing::warn!(session.id = %s.id, provider = %s.provider, "stored session on a provider not configured here; left in the store");
                continue;
            };
            match s.state {
                SessionState::Pending => {
                    let listing = match listings.get(&s.provider) {
                        Some(l) => l.clone(),
                        None => {
                            let l = p.list(&ListFilter::all()).await.ok();
                            listings.insert(s.provider.clone(), l.clone());
                            l
                        }
                    };
                    let Some(listing) = listing else {
                        tracing::warn!(session.id = %s.id, "cannot list the provider; intent left for the reaper");
                        continue;
                    };
                    match listing
                        .iter()
                        .find(|c| c.name.as_deref() == Some(s.name.as_str()))
                    {
                        Some(c) => {
                            let mut s = s.clone();
                            s.adopt(c, self.clock.now());
                            self.store.update(&s).await?;
                            tracing::info!(session.id = %s.id, compute.id = %c.id, "adopted the machine of a dangling spawn intent");
                            let l = self.insert_live(s);
                            self.schedule(&l);
                        }
                        None => {
                            self.store.finish(&s.id, 0.0).await?;
                            tracing::info!(session.id = %s.id, "dropped a dangling spawn intent with no machine");
                        }
                    }
                }
                SessionState::Active => {
                    let l = self.insert_live(s);
                    self.schedule(&l);
                }
                SessionState::Terminating | SessionState::Terminated => {
                    let reason = s.terminate_reason.unwrap_or(TerminateReason::Shutdown);
                    let l = self.insert_live(s);
                    self.begin_terminate(&l, reason);
                }
            }
        }
        Ok(())
    }
}
