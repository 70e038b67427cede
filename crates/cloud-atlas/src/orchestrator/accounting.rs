//! Spend accounting of the live sessions: per-user spend (this month too), caps over
//! users and the whole store, reconciling bills. Every figure is
//! [`Session::spent_usd`](super::Session::spent_usd): max(estimate, reconciled bill).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{lock, spend, Inner, Live, SpendReport, TerminateReason, UserSpend};
use crate::error::Result;

impl Inner {
    pub(super) fn user_spend(&self, user: &str, now: DateTime<Utc>) -> UserSpend {
        let mut u = UserSpend {
            closed_usd: lock(&self.closed_spend).get(user).copied().unwrap_or(0.0),
            ..UserSpend::default()
        };
        let mine: Vec<Arc<Live>> = lock(&self.by_user)
            .get(user)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for l in mine {
            let r = lock(&l.rec);
            u.sessions += 1;
            u.usd_per_hour += r.cost_per_hour;
            u.live_usd += r.spent_usd(now);
        }
        u.month_usd = u.live_usd + self.month_closed_usd(user, now);
        u
    }

    /// What `user`'s sessions closed this calendar month spent.
    fn month_closed_usd(&self, user: &str, now: DateTime<Utc>) -> f64 {
        let m = lock(&self.month_closed);
        if m.0 == spend::month_start(now) {
            m.1.get(user).copied().unwrap_or(0.0)
        } else {
            0.0
        }
    }

    pub(super) fn spend_report(&self) -> SpendReport {
        let now = self.clock.now();
        let mut r = SpendReport {
            at: Some(now),
            reconciliation_drift_usd: *lock(&self.drift),
            ..SpendReport::default()
        };
        for (u, usd) in lock(&self.closed_spend).iter() {
            r.users.entry(u.clone()).or_default().closed_usd = *usd;
        }
        let live = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in live.values() {
            let s = lock(&l.rec);
            let acc = s.spent_usd(now);
            let u = r.users.entry(s.user_id.clone()).or_default();
            u.sessions += 1;
            u.usd_per_hour += s.cost_per_hour;
            u.live_usd += acc;
            r.sessions.insert(s.id.clone(), acc);
            r.usd_per_hour += s.cost_per_hour;
        }
        drop(live);
        for (u, spend) in r.users.iter_mut() {
            spend.month_usd = spend.live_usd + self.month_closed_usd(u, now);
        }
        r.total_usd = r.users.values().map(UserSpend::total_usd).sum();
        metrics::gauge!("atlas_spend_usd").set(r.total_usd);
        metrics::gauge!("atlas_spend_usd_per_hour").set(r.usd_per_hour);
        r
    }

    /// Terminate sessions of users over a per-user cap (newest first for $/h, all for
    /// total and month), and every session once all users together reach `max_total_usd`.
    pub(super) fn check_user_caps(self: &Arc<Self>) {
        let report = self.spend_report();
        let limits = &self.cfg.limits;
        if spend::crossed_total(limits, report.total_usd) {
            tracing::warn!(
                total_usd = report.total_usd,
                "the store's spend reached max_total_usd; terminating every session"
            );
            let all: Vec<Arc<Live>> = self
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            for l in all {
                self.begin_terminate(&l, TerminateReason::Budget);
            }
            return;
        }
        for (user, spend) in &report.users {
            let Some(which) = spend::crossed(limits, spend) else {
                continue;
            };
            let mut mine: Vec<Arc<Live>> = lock(&self.by_user)
                .get(user)
                .map(|m| {
                    m.values()
                        .filter(|l| !l.terminating.load(Ordering::Relaxed))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            mine.sort_by_key(|l| std::cmp::Reverse(lock(&l.rec).created_at));
            tracing::warn!(user = %user, limit = which, "user crossed a spend cap; terminating sessions");
            let mut rate = spend.usd_per_hour;
            for l in mine {
                if which == "max_usd_per_hour_per_user"
                    && limits
                        .max_usd_per_hour_per_user
                        .is_some_and(|cap| rate <= cap + 1e-9)
                {
                    break;
                }
                rate -= lock(&l.rec).cost_per_hour;
                self.begin_terminate(&l, TerminateReason::Budget);
            }
        }
    }

    pub(super) async fn reconcile(self: &Arc<Self>) -> Result<()> {
        for (provider, source) in &self.billing {
            let lives: Vec<Arc<Live>> = self
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .filter(|l| lock(&l.rec).provider == *provider)
                .cloned()
                .collect();
            let by_cid: HashMap<String, Arc<Live>> = lives
                .into_iter()
                .filter_map(|l| {
                    let c = lock(&l.rec).compute_id.clone();
                    c.map(|c| (c, l))
                })
                .collect();
            if by_cid.is_empty() {
                continue;
            }
            let ids: Vec<String> = by_cid.keys().cloned().collect();
            let since = by_cid
                .values()
                .map(|l| lock(&l.rec).created_at)
                .min()
                .unwrap_or_else(|| self.clock.now());
            let billed = source.billed_usd(&ids, since).await?;
            let now = self.clock.now();
            let mut drift = 0.0;
            for (cid, usd) in billed {
                if let Some(l) = by_cid.get(&cid) {
                    let over = {
                        let mut r = lock(&l.rec);
                        drift += usd - r.accrued_usd(now);
                        r.billed_usd = Some(usd);
                        // The session's own cap, against a bill that ran ahead of the estimate.
                        r.max_cost_usd.is_some_and(|max| r.spent_usd(now) >= max)
                    };
                    if over {
                        self.begin_terminate(l, TerminateReason::Budget);
                    }
                }
            }
            *lock(&self.drift) = drift;
            metrics::gauge!("atlas_spend_reconciliation_drift_usd", "provider" => provider.clone())
                .set(drift);
        }
        // Per-user and store caps now count the bills just recorded.
        self.check_user_caps();
        Ok(())
    }
}
