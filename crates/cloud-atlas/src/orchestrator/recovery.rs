//! Re-adoption of stored sessions at start.
//!
//! Which dangling spawn intent is adopted, dropped or left alone is decided by
//! [`decide_intent`], a pure function of (intent, provider listing, now, grace).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ownership::held_elsewhere;
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

/// Decide a stored intent no live node holds. `owner_gone`: it names an owner whose
/// lease has ended (so nobody is spawning it now); without one (a record from before
/// owners existed) young intents (`created_at + grace > now`) are left alone, as their
/// spawn may still be running. Otherwise it is adopted when `listing` holds a machine
/// with its launch name, and left when the listing failed (`None`). With no such
/// machine it is dropped once older than the grace window, and kept until then (a
/// listing can lag a create that reached the provider just before its owner died).
pub(super) fn decide_intent<'a>(
    s: &Session,
    listing: Option<&'a [Compute]>,
    now: DateTime<Utc>,
    grace: Duration,
    owner_gone: bool,
) -> IntentDecision<'a> {
    let young = crate::spec::utc_after(s.created_at, grace) > now;
    if young && !owner_gone {
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
        None if young => IntentDecision::LeaveYoung,
        None => IntentDecision::Drop,
    }
}

impl Inner {
    /// Re-adopt every stored session this node does not track yet and no other live node
    /// holds (see [`ownership`]); run at start and at every lease renewal, so the
    /// sessions of a node that stopped or died pass to a live one within a lease TTL.
    /// Each is taken over by compare-and-set; dangling intents older than the
    /// grace window by launch name (see [`decide_intent`]). Damaged records are reported
    /// and left alone (they can be stopped).
    ///
    /// [`ownership`]: super::ownership
    ///
    /// `at_start`: records naming this node as owner are from its previous run and are
    /// adopted too; later rounds leave this node's own records to the code that holds
    /// them (a spawn between its store write and its live entry, for one).
    pub(super) async fn readopt(self: &Arc<Self>, at_start: bool) -> Result<()> {
        let stored = self.store.list().await?;
        let (leases, _) = self.leases().await?;
        let mut listings: BTreeMap<String, Option<Vec<Compute>>> = BTreeMap::new();
        let grace = self.cfg.reaper.grace;
        for mut s in stored {
            let now = self.clock.now();
            let mine = s.owner.as_deref() == Some(self.node.as_str());
            if self.get_live(&s.id).is_some() || (mine && !at_start) {
                continue;
            }
            if let Some(why) = &s.damaged {
                tracing::warn!(session.id = %s.id, compute.id = ?s.compute_id, %why, "damaged session record left alone; `stop` terminates its machine and forgets it");
                continue;
            }
            if held_elsewhere(s.owner.as_deref(), &leases, Some(&self.node), now) {
                tracing::debug!(session.id = %s.id, owner = ?s.owner, "held by another live node; left to it");
                continue;
            }
            let Ok(p) = self.provider(&s.provider).map(Arc::clone) else {
                tracing::warn!(session.id = %s.id, provider = %s.provider, "stored session on a provider not configured here; left in the store");
                continue;
            };
            let owner_gone = s.owner.is_some();
            if !mine {
                if !self
                    .store
                    .claim(&s.id, s.owner.as_deref(), &self.node)
                    .await?
                {
                    tracing::debug!(session.id = %s.id, "taken over by another node first; left to it");
                    continue;
                }
                tracing::info!(session.id = %s.id, from = ?s.owner, "taken over: its owner's lease ended");
                let from = s.owner.replace(self.node.clone());
                self.events.emit(
                    &s.id,
                    s.compute_id.as_deref(),
                    now,
                    super::EventKind::TakenOver { from },
                );
            }
            match s.state {
                SessionState::Pending => {
                    if decide_intent(&s, None, now, grace, owner_gone) == IntentDecision::LeaveYoung
                    {
                        tracing::debug!(session.id = %s.id, "spawn intent younger than the grace window; kept pending");
                        continue;
                    }
                    if !listings.contains_key(&s.provider) {
                        let l = p.list(&ListFilter::all()).await.ok();
                        listings.insert(s.provider.clone(), l);
                    }
                    let listing = listings.get(&s.provider).and_then(|l| l.as_deref());
                    match decide_intent(&s, listing, now, grace, owner_gone) {
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
                decide_intent(&s, l, at(599), GRACE, false),
                IntentDecision::LeaveYoung
            );
        }
    }

    #[test]
    fn the_grace_boundary_belongs_to_the_old_side() {
        let s = intent(at(0));
        // created_at + grace == now: old enough (`>` leaves, `<=` decides).
        assert_eq!(
            decide_intent(&s, Some(&[]), at(600), GRACE, false),
            IntentDecision::Drop
        );
        assert_eq!(
            decide_intent(&s, Some(&[]), at(599), GRACE, false),
            IntentDecision::LeaveYoung
        );
    }

    #[test]
    fn old_intents_are_adopted_by_launch_name_or_dropped() {
        let s = intent(at(0));
        let listed = [machine("atlas-s-b"), machine(&s.name)];
        match decide_intent(&s, Some(&listed), at(601), GRACE, false) {
            IntentDecision::Adopt(c) => assert_eq!(c.name.as_deref(), Some(s.name.as_str())),
            d => panic!("expected adopt, got {d:?}"),
        }
        let other = [machine("atlas-s-b")];
        assert_eq!(
            decide_intent(&s, Some(&other), at(601), GRACE, false),
            IntentDecision::Drop
        );
        assert_eq!(
            decide_intent(&s, None, at(601), GRACE, false),
            IntentDecision::LeaveUnlisted
        );
    }

    #[test]
    fn an_intent_whose_owner_is_gone_is_adopted_at_once_but_dropped_only_when_old() {
        let s = intent(at(0));
        let listed = [machine(&s.name)];
        match decide_intent(&s, Some(&listed), at(1), GRACE, true) {
            IntentDecision::Adopt(c) => assert_eq!(c.name.as_deref(), Some(s.name.as_str())),
            d => panic!("expected adopt, got {d:?}"),
        }
        // Not listed yet: the create may still surface; kept until the grace window ends.
        assert_eq!(
            decide_intent(&s, Some(&[]), at(599), GRACE, true),
            IntentDecision::LeaveYoung
        );
        assert_eq!(
            decide_intent(&s, Some(&[]), at(600), GRACE, true),
            IntentDecision::Drop
        );
        assert_eq!(
            decide_intent(&s, None, at(1), GRACE, true),
            IntentDecision::LeaveUnlisted
        );
    }

    #[test]
    fn a_huge_grace_never_panics_and_leaves_the_intent() {
        let s = intent(at(0));
        assert_eq!(
            decide_intent(&s, Some(&[]), at(10), Duration::MAX, false),
            IntentDecision::LeaveYoung
        );
    }
}
