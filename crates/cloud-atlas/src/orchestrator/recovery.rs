//! Re-adoption of stored sessions at start.
//!
//! Which dangling spawn intent is adopted, dropped or left alone is decided by
//! [`decide_intent`], a pure function of (intent, provider listing, now, grace).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Inner, Session, SessionState, TerminateReason};
use crate::error::Result;
use crate::spec::{Compute, ListFilter};

/// What start does with a stored spawn intent (a `pending` session).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum IntentDecision<'a> {
    /// Younger than the grace window: another process sharing the store may be spawning
    /// it right now, so it is neither adopted nor dropped here (its owner records it;
    /// an abandoned one is resolved by a later start or the reaper once it is older).
    LeaveYoung,
    /// The provider could not be listed: left for a later start or the reaper.
    LeaveUnlisted,
    /// Its machine exists (found by launch name): adopt it.
    Adopt(&'a Compute),
    /// Old enough and no machine carries its launch name: drop the intent.
    Drop,
}

/// Decide a stored intent: young ones (`created_at + grace > now`) are left alone;
/// older ones are adopted when `listing` holds a machine with the launch name, dropped
/// when it holds none, and left when the listing failed (`None`).
pub(super) fn decide_intent<'a>(
    s: &Session,
    listing: Option<&'a [Compute]>,
    now: DateTime<Utc>,
    grace: Duration,
) -> IntentDecision<'a> {
    if crate::spec::utc_after(s.created_at, grace) > now {
        return IntentDecision::LeaveYoung;
    }
    let Some(listing) = listing else {
        return IntentDecision::LeaveUnlisted;
    };
    match listing
        .iter()
        .find(|c| c.name.as_deref() == Some(s.name.as_str()))
    {
        Some(c) => IntentDecision::Adopt(c),
        None => IntentDecision::Drop,
    }
}

impl Inner {
    /// Re-adopt every stored session; resolve dangling intents older than the grace
    /// window by launch name (see [`decide_intent`]).
    pub(super) async fn readopt(self: &Arc<Self>) -> Result<()> {
        let stored = self.store.list().await?;
        let mut listings: BTreeMap<String, Option<Vec<Compute>>> = BTreeMap::new();
        let grace = self.cfg.reaper.grace;
        for s in stored {
            let Ok(p) = self.provider(&s.provider).map(Arc::clone) else {
                tracing::warn!(session.id = %s.id, provider = %s.provider, "stored session on a provider not configured here; left in the store");
                continue;
            };
            match s.state {
                SessionState::Pending => {
                    let now = self.clock.now();
                    if decide_intent(&s, None, now, grace) == IntentDecision::LeaveYoung {
                        tracing::debug!(session.id = %s.id, "spawn intent younger than the grace window; left to its owner");
                        continue;
                    }
                    if !listings.contains_key(&s.provider) {
                        let l = p.list(&ListFilter::all()).await.ok();
                        listings.insert(s.provider.clone(), l);
                    }
                    let listing = listings.get(&s.provider).and_then(|l| l.as_deref());
                    match decide_intent(&s, listing, now, grace) {
                        IntentDecision::LeaveYoung => {}
                        IntentDecision::LeaveUnlisted => {
                            tracing::warn!(session.id = %s.id, "cannot list the provider; intent left for the reaper");
                        }
                        IntentDecision::Adopt(c) => {
                            let mut s = s.clone();
                            s.adopt(c, self.clock.now());
                            self.store.update(&s).await?;
                            tracing::info!(session.id = %s.id, compute.id = %c.id, "adopted the machine of a dangling spawn intent");
                            let l = self.insert_live(s);
                            self.schedule(&l);
                        }
                        IntentDecision::Drop => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ComputeStatus;

    const GRACE: Duration = Duration::from_secs(600);

    fn intent(created_at: DateTime<Utc>) -> Session {
        let compute = crate::ComputeRequest::builder()
            .image("app")
            .build()
            .unwrap();
        let req = super::super::SessionRequest::new("mock", "u", compute);
        let creq = req.compute_request(None).unwrap();
        let d = Duration::from_secs(60);
        Session::intent(
            "0123456789abcdef0123456789abcdef".into(),
            &req,
            &creq,
            d,
            d,
            created_at,
        )
    }

    fn machine(name: &str) -> Compute {
        let mut c = Compute::new("m-1", "mock", ComputeStatus::Running);
        c.name = Some(name.to_string());
        c
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn young_intents_are_left_whatever_the_listing_says() {
        let s = intent(at(0));
        let listed = [machine(&s.name)];
        for l in [None, Some(&[][..]), Some(&listed[..])] {
            assert_eq!(
                decide_intent(&s, l, at(599), GRACE),
                IntentDecision::LeaveYoung
            );
        }
    }

    #[test]
    fn the_grace_boundary_belongs_to_the_old_side() {
        let s = intent(at(0));
        // created_at + grace == now: old enough (`>` leaves, `<=` decides).
        assert_eq!(
            decide_intent(&s, Some(&[]), at(600), GRACE),
            IntentDecision::Drop
        );
        assert_eq!(
            decide_intent(&s, Some(&[]), at(599), GRACE),
            IntentDecision::LeaveYoung
        );
    }

    #[test]
    fn old_intents_are_adopted_by_launch_name_or_dropped() {
        let s = intent(at(0));
        let listed = [machine("atlas-s-b"), machine(&s.name)];
        match decide_intent(&s, Some(&listed), at(601), GRACE) {
            IntentDecision::Adopt(c) => assert_eq!(c.name.as_deref(), Some(s.name.as_str())),
            d => panic!("expected adopt, got {d:?}"),
        }
        let other = [machine("atlas-s-b")];
        assert_eq!(
            decide_intent(&s, Some(&other), at(601), GRACE),
            IntentDecision::Drop
        );
        assert_eq!(
            decide_intent(&s, None, at(601), GRACE),
            IntentDecision::LeaveUnlisted
        );
    }

    #[test]
    fn a_huge_grace_never_panics_and_leaves_the_intent() {
        let s = intent(at(0));
        assert_eq!(
            decide_intent(&s, Some(&[]), at(10), Duration::MAX),
            IntentDecision::LeaveYoung
        );
    }
}
