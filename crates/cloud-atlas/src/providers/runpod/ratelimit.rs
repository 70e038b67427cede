//! RunPod's `RateLimit` / `RateLimit-Policy` headers and the paced client that honours them.
//!
//! REST v2 sends, on every authenticated response (not only on 429s), the IETF
//! ratelimit-headers pair:
//!
//! ```text
//! RateLimit:        "minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012
//! RateLimit-Policy: "minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400
//! ```
//!
//! `r` is what is left in a window, `t` the seconds until it resets, `q` the window's
//! quota. [`RateGate`] reads them after every response and slows the next requests
//! **before** the server answers 429: a window with nothing left holds every request until
//! it resets; a window running low (at most a fifth of its quota left, or 10 requests when
//! the quota is unknown) spreads the remaining requests evenly over the time to reset.
//! Waits are capped ([`RateGate::new`]); past the cap the request goes out and a 429, if
//! it comes, is retried by the shared HTTP layer after its `Retry-After`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::error::Result;
use crate::http::{ApiClient, ApiRequest, ApiResponse};

/// One window of a `RateLimit` header, joined with its `RateLimit-Policy` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    /// Window name (`minute`, `hour`, `day`).
    pub name: String,
    /// Requests remaining in the window.
    pub remaining: u64,
    /// Seconds until the window resets.
    pub reset_secs: u64,
    /// The window's quota, when `RateLimit-Policy` names it.
    pub quota: Option<u64>,
}

/// Parse a structured-field list of `"name";k=v;k=v` members into `(name, params)`.
fn parse_members(value: &str) -> Vec<(String, Vec<(String, u64)>)> {
    value
        .split(',')
        .filter_map(|member| {
            let mut parts = member.split(';').map(str::trim);
            let name = parts.next()?.trim_matches('"').to_string();
            if name.is_empty() {
                return None;
            }
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.trim().to_string(), v.trim().parse().ok()?))
                })
                .collect();
            Some((name, params))
        })
        .collect()
}

fn param(params: &[(String, u64)], key: &str) -> Option<u64> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// Parse the `RateLimit` header value, with quotas from the `RateLimit-Policy` value.
///
/// Members without both `r` and `t` are skipped; malformed input gives no windows.
pub fn parse_rate_limit(rate_limit: &str, policy: Option<&str>) -> Vec<RateWindow> {
    let policy = policy.map(parse_members).unwrap_or_default();
    parse_members(rate_limit)
        .into_iter()
        .filter_map(|(name, params)| {
            let quota = policy
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, p)| param(p, "q"));
            Some(RateWindow {
                remaining: param(&params, "r")?,
                reset_secs: param(&params, "t")?,
                quota,
                name,
            })
        })
        .collect()
}

/// What a set of windows asks of the client: `(hold, spacing)`.
///
/// `hold` is how long to send nothing (a window is exhausted); `spacing` the least
/// time between requests (a window is running low).
pub fn pacing_for(windows: &[RateWindow]) -> (Duration, Duration) {
    let mut hold = Duration::ZERO;
    let mut spacing = Duration::ZERO;
    for w in windows {
        let reset = Duration::from_secs(w.reset_secs);
        if w.remaining == 0 {
            hold = hold.max(reset);
            continue;
        }
        let low = match w.quota {
            Some(q) => w.remaining.saturating_mul(5) <= q,
            None => w.remaining <= 10,
        };
        if low {
            spacing = spacing.max(reset / u32::try_from(w.remaining).unwrap_or(u32::MAX));
        }
    }
    (hold, spacing)
}

/// Client-side pacing driven by the server's rate-limit headers.
#[derive(Debug)]
pub struct RateGate {
    max_wait: Duration,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    not_before: Option<Instant>,
    spacing: Duration,
    last: Option<Instant>,
    windows: Vec<RateWindow>,
    waits: u64,
}

impl RateGate {
    /// A gate that never makes one request wait longer than `max_wait`.
    pub fn new(max_wait: Duration) -> RateGate {
        RateGate {
            max_wait,
            state: Mutex::new(GateState::default()),
        }
    }

    /// Read `RateLimit` / `RateLimit-Policy` from a response (any status).
    pub fn observe(&self, headers: &HeaderMap) {
        let Some(rl) = headers.get("ratelimit").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let policy = headers
            .get("ratelimit-policy")
            .and_then(|v| v.to_str().ok());
        let windows = parse_rate_limit(rl, policy);
        if windows.is_empty() {
            return;
        }
        let (hold, spacing) = pacing_for(&windows);
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !hold.is_zero() {
            let until = now + hold.min(self.max_wait);
            st.not_before = Some(st.not_before.map_or(until, |n| n.max(until)));
        }
        st.spacing = spacing.min(self.max_wait);
        st.windows = windows;
    }

    /// Wait until the next request may go out, and reserve its slot.
    pub async fn acquire(&self) {
        let target = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let mut target = now;
            if let Some(n) = st.not_before {
                target = target.max(n);
            }
            if let Some(last) = st.last {
                target = target.max(last + st.spacing);
            }
            target = target.min(now + self.max_wait);
            if target > now {
                st.waits += 1;
            }
            st.last = Some(target);
            if st.not_before.is_some_and(|n| n <= target) {
                st.not_before = None;
            }
            target
        };
        tokio::time::sleep_until(target).await;
    }

    /// The windows from the latest response that carried the headers.
    pub fn windows(&self) -> Vec<RateWindow> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .windows
            .clone()
    }

    /// How many requests this gate has delayed so far.
    pub fn delayed_requests(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .waits
    }
}

/// A RunPod API client whose every request passes a [`RateGate`] first and feeds the
/// response's rate-limit headers back into it.
#[derive(Debug, Clone)]
pub struct Rest {
    api: ApiClient,
    gate: Arc<RateGate>,
}

impl Rest {
    /// Wrap `api`; the error parser of `api` should also call [`RateGate::observe`]
    /// so error responses count too.
    pub fn new(api: ApiClient, gate: Arc<RateGate>) -> Rest {
        Rest { api, gate }
    }

    /// The underlying client (to start requests).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The gate.
    pub fn gate(&self) -> &Arc<RateGate> {
        &self.gate
    }

    /// Send `rq` (built from [`Rest::api`]) once the gate allows it.
    pub async fn send(&self, rq: ApiRequest<'_>) -> Result<ApiResponse> {
        self.gate.acquire().await;
        let resp = rq.send().await?;
        self.gate.observe(&resp.headers);
        Ok(resp)
    }

    /// Send and decode the JSON body.
    pub async fn json<T: DeserializeOwned>(&self, rq: ApiRequest<'_>) -> Result<T> {
        let provider = self.api.provider();
        self.send(rq)
            .await?
            .json()
            .map_err(|e| e.with_provider(provider))
    }

    /// Send and return the response with its body unread (server-sent events).
    pub async fn streaming(&self, rq: ApiRequest<'_>) -> Result<reqwest::Response> {
        self.gate.acquire().await;
        let resp = rq.send_streaming().await?;
        self.gate.observe(resp.headers());
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RL: &str = r#""minute";r=0;t=12, "hour";r=2800;t=1812, "day";r=49500;t=45012"#;
    const POLICY: &str = r#""minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400"#;

    #[test]
    fn parses_the_spec_examples() {
        let w = parse_rate_limit(RL, Some(POLICY));
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[0],
            RateWindow {
                name: "minute".into(),
                remaining: 0,
                reset_secs: 12,
                quota: Some(60)
            }
        );
        assert_eq!(w[2].quota, Some(50000));
        let (hold, spacing) = pacing_for(&w);
        assert_eq!(hold, Duration::from_secs(12));
        assert_eq!(spacing, Duration::ZERO);
    }

    #[test]
    fn low_windows_spread_requests() {
        let w = parse_rate_limit(r#""minute";r=10;t=20"#, Some(r#""minute";q=60;w=60"#));
        assert_eq!(pacing_for(&w), (Duration::ZERO, Duration::from_secs(2)));
        let w = parse_rate_limit(r#""minute";r=50;t=20"#, Some(r#""minute";q=60;w=60"#));
        assert_eq!(pacing_for(&w), (Duration::ZERO, Duration::ZERO));
        assert!(parse_rate_limit("garbage", None).is_empty());
        assert!(parse_rate_limit(r#""minute";r=x"#, None).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn gate_holds_after_exhausted_window() {
        let gate = RateGate::new(Duration::from_secs(60));
        let mut h = HeaderMap::new();
        h.insert("ratelimit", RL.parse().unwrap());
        h.insert("ratelimit-policy", POLICY.parse().unwrap());
        gate.acquire().await;
        gate.observe(&h);
        let t0 = Instant::now();
        gate.acquire().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(12));
        assert_eq!(gate.delayed_requests(), 1);
        assert_eq!(gate.windows().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gate_caps_waits() {
        let gate = RateGate::new(Duration::from_secs(1));
        let mut h = HeaderMap::new();
        h.insert("ratelimit", r#""hour";r=0;t=3000"#.parse().unwrap());
        gate.observe(&h);
        let t0 = Instant::now();
        gate.acquire().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(1));
    }
}
