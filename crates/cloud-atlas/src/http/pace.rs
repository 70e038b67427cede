//! Client-side pacing so normal use never meets a 429.
//!
//! A small token bucket on `tokio::time`, hand-written rather than taken from a
//! rate-limit crate so that tests under tokio's paused clock stay deterministic.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `burst` requests at once, then one per `interval`.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    burst: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
    /// No request before this instant (set from a server's reset hint or Retry-After).
    hold_until: Option<Instant>,
}

impl Pacer {
    /// One request per `interval`, up to `burst` at once.
    pub fn new(interval: Duration, burst: u32) -> Pacer {
        let burst = burst.max(1);
        Pacer {
            interval,
            burst,
            state: Mutex::new(State {
                tokens: f64::from(burst),
                last: Instant::now(),
                hold_until: None,
            }),
        }
    }

    /// `n` requests per second, up to `burst` at once.
    pub fn per_second(n: f64, burst: u32) -> Pacer {
        Pacer::new(Duration::from_secs_f64(1.0 / n.max(0.001)), burst)
    }

    /// Wait until a request may be sent, and take its token.
    pub async fn acquire(&self) {
        let mut st = self.state.lock().await;
        if let Some(h) = st.hold_until.take() {
            tokio::time::sleep_until(h).await;
        }
        let now = Instant::now();
        let refill =
            now.duration_since(st.last).as_secs_f64() / self.interval.as_secs_f64().max(1e-9);
        st.tokens = (st.tokens + refill).min(f64::from(self.burst));
        st.last = now;
        if st.tokens < 1.0 {
            let wait = self.interval.mul_f64(1.0 - st.tokens);
            tokio::time::sleep(wait).await;
            st.tokens = 1.0;
            st.last = Instant::now();
        }
        st.tokens -= 1.0;
    }

    /// Hold every request until `d` from now (a 429's `Retry-After`, or an exhausted quota).
    pub async fn hold_for(&self, d: Duration) {
        let mut st = self.state.lock().await;
        let until = Instant::now() + d;
        st.hold_until = Some(st.hold_until.map_or(until, |h| h.max(until)));
        st.tokens = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_after_burst() {
        let p = Pacer::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        for _ in 0..4 {
            p.acquire().await;
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took < Duration::from_millis(2100),
            "{took:?}"
        );
    }
}
