//! `/v1/spend`: spend per user and in total.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::StrictQuery;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// One user's spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserSpendView {
    /// Tracked sessions.
    pub sessions: usize,
    /// USD per hour billing now.
    pub usd_per_hour: f64,
    /// USD accrued by tracked sessions.
    pub live_usd: f64,
    /// USD spent by sessions already ended.
    pub closed_usd: f64,
    /// Live plus closed.
    pub total_usd: f64,
}

/// What `GET /v1/spend` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SpendView {
    /// When computed.
    pub at: Option<DateTime<Utc>>,
    /// Per user.
    pub users: BTreeMap<String, UserSpendView>,
    /// Live plus closed USD over all users.
    pub total_usd: f64,
    /// USD per hour billing now, all sessions.
    pub usd_per_hour: f64,
    /// Provider-billed minus estimated USD over the sessions reconciled so far.
    pub reconciliation_drift_usd: f64,
}

/// Filter of `GET /v1/spend`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SpendQuery {
    /// Only this user (the totals stay the totals of everyone).
    pub user: Option<String>,
}

/// Spend per user and in total (estimates at the recorded rates, reconciled with
/// provider billing where a provider has it).
#[utoipa::path(
    get,
    path = "/spend",
    tag = "spend",
    params(SpendQuery),
    responses(
        (status = 200, description = "Spend", body = SpendView),
        (status = 400, description = "A bad parameter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn spend(
    State(st): State<AppState>,
    StrictQuery(q): StrictQuery<SpendQuery>,
) -> ApiResult<Json<SpendView>> {
    let r = st.orch.spend();
    let users = r
        .users
        .iter()
        .filter(|(u, _)| q.user.as_deref().is_none_or(|w| w == u.as_str()))
        .map(|(u, s)| {
            (
                u.clone(),
                UserSpendView {
                    sessions: s.sessions,
                    usd_per_hour: s.usd_per_hour,
                    live_usd: s.live_usd,
                    closed_usd: s.closed_usd,
                    total_usd: s.total_usd(),
                },
            )
        })
        .collect();
    Ok(Json(SpendView {
        at: r.at,
        users,
        total_usd: r.total_usd,
        usd_per_hour: r.usd_per_hour,
        reconciliation_drift_usd: r.reconciliation_drift_usd,
    }))
}
