//! Spend: accrued cost per session (cost per hour × billed time, stopped-but-billing
//! storage included through rate changes seen in provider listings), totals per user
//! and overall, caps, and reconciliation against provider billing.

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
    /// Sum over users of live + closed USD.
    pub total_usd: f64,
    /// Sum of every tracked session's current rate.
    pub usd_per_hour: f64,
    /// Provider-billed minus estimated USD over the sessions reconciled so far.
    pub reconciliation_drift_usd: f64,
}

/// Which limit a spawn would break, if any.
pub(crate) fn refuse_spawn(limits: &SpendLimits, user: &str, spend: &UserSpend) -> Result<()> {
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
    None
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
        };
        refuse_spawn(&l, "u", &ok).unwrap();
        let e = refuse_spawn(&l, "u", &UserSpend { sessions: 2, ..ok }).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert!(e.message().contains("max_sessions_per_user"));
        let e = refuse_spawn(
            &l,
            "u",
            &UserSpend {
                usd_per_hour: 5.0,
                ..ok
            },
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
}
