//! Injectable failures for users' tests: capacity, rate limits, latency, flaky
//! transport, and a 500 after the machine was created ([`Mock::inject`]).

use std::collections::VecDeque;
use std::time::Duration;

use super::state::lock;
use super::{Mock, NAME};
use crate::error::{Error, ErrorKind, Result};

/// Which call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MockOp {
    /// `spawn`.
    Spawn,
    /// `get`.
    Get,
    /// `list`.
    List,
    /// `stop`.
    Stop,
    /// `start`.
    Start,
    /// `terminate`.
    Terminate,
    /// `gpu_types`.
    GpuTypes,
    /// Any call.
    Any,
}

/// A failure to inject.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// `Capacity`: no machine of that kind.
    Capacity,
    /// `RateLimited` with a `retry_after`.
    RateLimited(Duration),
    /// `Transport`: the connection dropped (nothing happened upstream).
    Transport,
    /// `Provider` HTTP 500 **after** the machine was created (spawn only): the
    /// ambiguous failure real clouds produce. The machine exists and bills.
    ErrorAfterCreate,
    /// `Provider` HTTP 503 before anything happened.
    Unavailable,
}

/// Faults queued and knobs set on one mock (in memory; never shared across processes).
#[derive(Debug, Default)]
pub(super) struct Faults {
    queue: VecDeque<(MockOp, Fault)>,
    latency: Duration,
    /// Every n-th call fails with `Transport` (0 = never).
    flaky_every: u32,
    calls: u32,
}

impl Mock {
    /// Make the next `times` calls of `op` fail with `fault` (queued in order).
    pub fn inject(&self, op: MockOp, fault: Fault, times: u32) {
        let mut f = lock(&self.inner.faults);
        for _ in 0..times {
            f.queue.push_back((op, fault.clone()));
        }
    }

    /// Add `latency` to every call.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.inner.faults).latency = latency;
    }

    /// Make every `n`-th call fail with `Transport` (0 turns it off).
    pub fn set_flaky_every(&self, n: u32) {
        lock(&self.inner.faults).flaky_every = n;
    }

    /// Drop all injected faults, latency and flakiness.
    pub fn clear_faults(&self) {
        *lock(&self.inner.faults) = Faults::default();
    }

    /// Apply latency and the next fault for `op`: `Err` for a fault that fails the call
    /// before anything happens, `Ok(Some(ErrorAfterCreate))` for one that fails a spawn
    /// after the machine exists.
    pub(super) async fn before(&self, op: MockOp) -> Result<Option<Fault>> {
        let (latency, fault) = {
            let mut f = lock(&self.inner.faults);
            f.calls += 1;
            let flaky = f.flaky_every > 0 && f.calls % f.flaky_every == 0;
            let pos = f
                .queue
                .iter()
                .position(|(o, _)| *o == op || *o == MockOp::Any);
            let fault = pos.and_then(|p| f.queue.remove(p)).map(|(_, fl)| fl);
            (
                f.latency,
                if flaky { Some(Fault::Transport) } else { fault },
            )
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            None => Ok(None),
            Some(Fault::ErrorAfterCreate) if op == MockOp::Spawn => {
                Ok(Some(Fault::ErrorAfterCreate))
            }
            Some(f) => Err(fault_error(&f)),
        }
    }
}

/// The error a fault produces.
pub(super) fn fault_error(f: &Fault) -> Error {
    let e = match f {
        Fault::Capacity => Error::new(
            ErrorKind::Capacity,
            "injected: no machines of that kind are available; try another GPU or region",
        ),
        Fault::RateLimited(d) => Error::new(ErrorKind::RateLimited, "injected: too many requests")
            .with_status(429)
            .with_retry_after(*d),
        Fault::Transport => Error::new(
            ErrorKind::Transport,
            "injected: connection reset before the request was sent",
        ),
        Fault::Unavailable => {
            Error::new(ErrorKind::Provider, "injected: service unavailable").with_status(503)
        }
        Fault::ErrorAfterCreate => {
            Error::new(ErrorKind::Provider, "injected: internal error after create")
                .with_status(500)
                .with_ambiguous()
        }
    };
    e.with_provider(NAME)
}
