//! Spend: accrued cost per session (cost per hour × billed time, stopped-but-billing
//! storage included through rate changes seen in provider listings), totals per user,
//! per user this calendar month (UTC) and overall, caps, and reconciliation against
//! provider billing.
//!
//! Every cap compares against the larger of the estimate and the provider's last
//! reconciled bill ([`Session::spent_usd`](super::Session::spent_usd)): a bill can lag, and
//! can also run ahead of the estimate. A live session counts in full towards the current
//! month (it may have started last month: counted on the safe side).

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::providers::mock::Mock;

/// Per-user limits. Every limit is off unless set.
///
/// A spawn that would break a limit is refused with [`ErrorKind::Forbidden`] naming the
/// limit; a session that crosses one later (its rate changed, time passed) is
/// terminated with reason [`Budget`](super::TerminateReason::Budget).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpendLimits {
    /// Most sessions one user may have at once.
    pub max_sessions_per_user: Option<usize>,
    /// Most USD per hour one user's sessions may bill together.
    pub max_usd_per_hour_per_user: Option<f64>,
    /// Most USD one user may spend in total (closed sessions included).
    pub max_total_usd_per_user: Option<f64>,
    /// Most USD one user may spend per calendar month (UTC; closed sessions of the
    /// month included). Needs a store that keeps closed spend by time
    /// ([`SessionStore::closed_spend_since`](super::store::SessionStore::closed_spend_since));
    /// refused at start otherwise.
    pub max_usd_per_user_per_month: Option<f64>,
    /// Most USD the whole store may spend, all users together (closed sessions included).
    pub max_total_usd: Option<f64>,
}

impl SpendLimits {
    /// No limits.
    pub fn none() -> SpendLimits {
        SpendLimits::default()
    }
    /// Cap concurrent sessions per user.
    pub fn with_max_sessions_per_user(mut self, n: usize) -> SpendLimits {
        self.max_sessions_per_user = Some(n);
        self
    }
    /// Cap USD per hour per user.
    pub fn with_max_usd_per_hour_per_user(mut self, usd: f64) -> SpendLimits {
        self.max_usd_per_hour_per_user = Some(usd);
        self
    }
    /// Cap total USD per user.
    pub fn with_max_total_usd_per_user(mut self, usd: f64) -> SpendLimits {
        self.max_total_usd_per_user = Some(usd);
        self
    }
    /// Cap USD per user per calendar month (UTC).
    pub fn with_max_usd_per_user_per_month(mut self, usd: f64) -> SpendLimits {
        self.max_usd_per_user_per_month = Some(usd);
        self
    }
    /// Cap the USD of every user together.
    pub fn with_max_total_usd(mut self, usd: f64) -> SpendLimits {
        self.max_total_usd = Some(usd);
        self
    }

    /// Validate (called by the orchestrator builder).
    ///
    /// # Errors
    /// `Validation` naming the limit.
    pub fn validate(&self) -> Result<()> {
        if self.max_sessions_per_user == Some(0) {
            return Err(Error::validation(
                "max_sessions_per_user",
                "must be at least 1",
            ));
        }
        for (field, v) in [
            ("max_usd_per_hour_per_user", self.max_usd_per_hour_per_user),
            ("max_total_usd_per_user", self.max_total_usd_per_user),
            (
                "max_usd_per_user_per_month",
                self.max_usd_per_user_per_month,
            ),
            ("max_total_usd", self.max_total_usd),
        ] {
            if let Some(v) = v {
                if !v.is_finite() || v <= 0.0 {
                    return Err(Error::validation(
                        field,
                        format!("{v} is not allowed; use a positive amount of USD"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One user's spend right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserSpend {
    /// Tracked sessions.
    pub sessions: usize,
    /// USD per hour billing now.
    pub usd_per_hour: f64,
    /// USD accrued by tracked sessions.
    pub live_usd: f64,
    /// USD spent by sessions already closed.
    pub closed_usd: f64,
    /// USD of this calendar month (UTC): tracked sessions in full, plus the sessions
    /// closed this month (when the store keeps closed spend by time).
    #[serde(default)]
    pub month_usd: f64,
}

impl UserSpend {
    /// Live plus closed.
    pub fn total_usd(&self) -> f64 {
        self.live_usd + self.closed_usd
    }
}

/// Spend per user and overall.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SpendReport {
    /// When computed.
    pub at: Option<DateTime<Utc>>,
    /// Per user.
    pub users: BTreeMap<String, UserSpend>,
    /// Per session id: estimated USD accrued.
    pub sessions: BTreeMap<String, f64>,
    /// Sum over users of live + closed USD (what `max_total_usd` is compared with).
    pub total_usd: f64,
    /// Sum of every tracked session's current rate.
    pub usd_per_hour: f64,
    /// Provider-billed minus estimated USD over the sessions reconciled so far.
    pub reconciliation_drift_usd: f64,
}

/// The first instant of the calendar month (UTC) holding `t`.
pub fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{Datelike, TimeZone};
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// Which limit a spawn would break, if any; `total_usd` is every user's spend together.
pub(crate) fn refuse_spawn(
    limits: &SpendLimits,
    user: &str,
    spend: &UserSpend,
    total_usd: f64,
) -> Result<()> {
    let forbid = |msg: String| Err(Error::new(ErrorKind::Forbidden, msg).with_operation("spawn"));
    if let Some(n) = limits.max_sessions_per_user {
        if spend.sessions >= n {
            return forbid(format!(
                "user {user} already has {} sessions (limit max_sessions_per_user = {n}); stop one first",
                spend.sessions
            ));
        }
    }
    if let Some(r) = limits.max_usd_per_hour_per_user {
        if spend.usd_per_hour >= r {
            return forbid(format!(
                "user {user} already bills ${:.2}/h (limit max_usd_per_hour_per_user = ${r:.2}/h); stop a session first",
                spend.usd_per_hour
            ));
        }
    }
    if let Some(t) = limits.max_total_usd_per_user {
        if spend.total_usd() >= t {
            return forbid(format!(
                "user {user} has spent ${:.2} (limit max_total_usd_per_user = ${t:.2}); raise the limit to spawn more",
                spend.total_usd()
            ));
        }
    }
    if let Some(m) = limits.max_usd_per_user_per_month {
        if spend.month_usd >= m {
            return forbid(format!(
                "user {user} has spent ${:.2} this month (limit max_usd_per_user_per_month = ${m:.2}); wait for next month or raise the limit",
                spend.month_usd
            ));
        }
    }
    if let Some(t) = limits.max_total_usd {
        if total_usd >= t {
            return forbid(format!(
                "all users together have spent ${total_usd:.2} (limit max_total_usd = ${t:.2}); raise the limit to spawn more"
            ));
        }
    }
    Ok(())
}

/// Which cap a user's running total crossed, if any (`None` when within limits).
pub(crate) fn crossed(limits: &SpendLimits, spend: &UserSpend) -> Option<&'static str> {
    if limits
        .max_usd_per_hour_per_user
        .is_some_and(|r| spend.usd_per_hour > r + 1e-9)
    {
        return Some("max_usd_per_hour_per_user");
    }
    if limits
        .max_total_usd_per_user
        .is_some_and(|t| spend.total_usd() >= t)
    {
        return Some("max_total_usd_per_user");
    }
    if limits
        .max_usd_per_user_per_month
        .is_some_and(|m| spend.month_usd >= m)
    {
        return Some("max_usd_per_user_per_month");
    }
    None
}

/// Whether every user's spend together reached `max_total_usd`.
pub(crate) fn crossed_total(limits: &SpendLimits, total_usd: f64) -> bool {
    limits.max_total_usd.is_some_and(|t| total_usd >= t)
}

/// A provider's own billing, to reconcile the orchestrator's estimates against.
///
/// The orchestrator calls it every `reconcile_interval` with the compute ids it tracks
/// on that provider and records, per session, what the provider billed
/// ([`Session::billed_usd`](super::Session::billed_usd)) and the overall drift
/// (estimate vs billed) in [`SpendReport::reconciliation_drift_usd`] and a gauge.
///
/// Implemented here for [`Mock`] (its exact accrual) and, with the `runpod` feature, for
/// RunPod (its `/v2/billing/pods` hourly buckets). Register one with
/// [`OrchestratorBuilder::billing`](super::OrchestratorBuilder::billing).
#[async_trait]
pub trait BillingSource: Send + Sync + Debug {
    /// USD billed for each of `compute_ids` since `since` (ids the provider does not know
    /// are left out). A partial answer is fine: only returned ids are reconciled.
    ///
    /// # Errors
    /// Whatever the billing call fails with; the round is skipped.
    async fn billed_usd(
        &self,
        compute_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, f64>>;
}

/// RunPod's billing API (`/v2/billing/pods`, hourly buckets): the USD RunPod billed
/// each pod since `since`, summed over the buckets that name it.
#[cfg(feature = "runpod")]
#[async_trait]
impl BillingSource for crate::providers::runpod::RunPod {
    async fn billed_usd(
        &self,
        compute_ids: &[String],
        since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, f64>> {
        use crate::providers::runpod::{BillingQuery, BucketSize};
        let end = Utc::now().max(since + chrono::Duration::seconds(1));
        let q = BillingQuery::range(since, end, BucketSize::Hour);
        let summary = self.billing().pods(&q, None).await?;
        let mut out = BTreeMap::new();
        for r in summary.records {
            if let Some(id) = r.resource_id.filter(|id| compute_ids.contains(id)) {
                *out.entry(id).or_insert(0.0) += r.total;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl BillingSource for Mock {
    async fn billed_usd(
        &self,
        compute_ids: &[String],
        _since: DateTime<Utc>,
    ) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for id in compute_ids {
            match self.accrued_usd(id) {
                Ok(usd) => {
                    out.insert(id.clone(), usd);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_with_named_limit() {
        let l = SpendLimits::none()
            .with_max_sessions_per_user(2)
            .with_max_usd_per_hour_per_user(5.0)
            .with_max_total_usd_per_user(10.0);
        l.validate().unwrap();
        let ok = UserSpend {
            sessions: 1,
            usd_per_hour: 1.0,
            live_usd: 1.0,
            closed_usd: 1.0,
            month_usd: 0.0,
        };
        refuse_spawn(&l, "u", &ok, 0.0).unwrap();
        let e = refuse_spawn(&l, "u", &UserSpend { sessions: 2, ..ok }, 0.0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert!(e.message().contains("max_sessions_per_user"));
        let e = refuse_spawn(
            &l,
            "u",
            &UserSpend {
                usd_per_hour: 5.0,
                ..ok
            },
            0.0,
        )
        .unwrap_err();
        assert!(e.message().contains("max_usd_per_hour_per_user"));
        let e = refuse_spawn(
            &l,
            "u",
            &UserSpend {
                closed_usd: 9.5,
                ..ok
            },
            0.0,
        )
        .unwrap_err();
        assert!(e.message().contains("max_total_usd_per_user"));
        assert_eq!(
            crossed(
                &l,
                &UserSpend {
                    usd_per_hour: 6.0,
                    ..ok
                }
            ),
            Some("max_usd_per_hour_per_user")
        );
        assert_eq!(crossed(&l, &ok), None);
        assert!(SpendLimits::none()
            .with_max_sessions_per_user(0)
            .validate()
            .is_err());
    }

    #[test]
    fn caps_hold_from_the_exact_amount_on() {
        let l = SpendLimits::none()
            .with_max_total_usd_per_user(10.0)
            .with_max_usd_per_user_per_month(4.0)
            .with_max_total_usd(100.0);
        l.validate().unwrap();
        let under = UserSpend {
            sessions: 1,
            usd_per_hour: 1.0,
            live_usd: 2.0,
            closed_usd: 7.99,
            month_usd: 3.99,
        };
        refuse_spawn(&l, "u", &under, 99.99).unwrap();
        assert_eq!(crossed(&l, &under), None);
        assert!(!crossed_total(&l, 99.99));
        // Exactly at a cap: refused and crossed.
        let at_total = UserSpend {
            closed_usd: 8.0,
            ..under
        };
        let e = refuse_spawn(&l, "u", &at_total, 0.0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert!(e.message().contains("max_total_usd_per_user"), "{e}");
        assert_eq!(crossed(&l, &at_total), Some("max_total_usd_per_user"));
        let at_month = UserSpend {
            month_usd: 4.0,
            ..under
        };
        let e = refuse_spawn(&l, "u", &at_month, 0.0).unwrap_err();
        assert!(e.message().contains("max_usd_per_user_per_month"), "{e}");
        assert!(e.message().contains("$4.00 this month"), "{e}");
        assert_eq!(crossed(&l, &at_month), Some("max_usd_per_user_per_month"));
        let e = refuse_spawn(&l, "u", &under, 100.0).unwrap_err();
        assert!(e.message().contains("max_total_usd = $100.00"), "{e}");
        assert!(crossed_total(&l, 100.0));
        // Unset caps never refuse.
        refuse_spawn(&SpendLimits::none(), "u", &at_month, 1e12).unwrap();
        assert!(!crossed_total(&SpendLimits::none(), 1e12));
        for bad in [
            SpendLimits::none().with_max_total_usd(0.0),
            SpendLimits::none().with_max_total_usd(f64::INFINITY),
            SpendLimits::none().with_max_usd_per_user_per_month(-1.0),
            SpendLimits::none().with_max_usd_per_user_per_month(f64::NAN),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.message().starts_with("max_"), "{e}");
        }
    }

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            month_start(t("2026-03-31T23:59:59.999Z")),
            t("2026-03-01T00:00:00Z")
        );
        assert_eq!(
            month_start(t("2026-04-01T00:00:00Z")),
            t("2026-04-01T00:00:00Z")
        );
        assert_eq!(
            month_start(t("2026-12-15T08:00:00+05:00")),
            t("2026-12-01T00:00:00Z")
        );
    }
}
