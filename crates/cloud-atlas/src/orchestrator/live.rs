//! The live session table: tracked sessions in memory, indexed for a cheap `touch`,
//! and the per-state gauges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::schedule::Beat;
use super::{lock, Cmd, Inner, Session, SessionState};

/// One tracked session in memory. `repr(C)` keeps what `touch` reads (the heartbeat
/// and the terminating flag) at the front, in the cache line of the `Arc` header.
#[derive(Debug)]
#[repr(C)]
pub(super) struct Live {
    pub(super) beat: Beat,
    pub(super) terminating: AtomicBool,
    pub(super) running_seen: AtomicBool,
    pub(super) id: Arc<str>,
    pub(super) rec: Mutex<Session>,
    pub(super) span: tracing::Span,
}

/// Live sessions, keyed for a cheap `touch`: our ids are 32 lowercase hex characters,
/// held as their 128-bit value (hashing and comparing 16 inline bytes, no pointer to
/// follow); any other id (a foreign store's) goes to a plain map.
#[derive(Debug, Default)]
pub(super) struct LiveMap {
    pub(super) hex: HashMap<u128, Arc<Live>, std::hash::BuildHasherDefault<IdHasher>>,
    pub(super) other: HashMap<Arc<str>, Arc<Live>>,
}

impl LiveMap {
    fn key(id: &str) -> Option<u128> {
        if id.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for b in id.bytes() {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | u128::from(d);
        }
        Some(v)
    }
    pub(super) fn get(&self, id: &str) -> Option<&Arc<Live>> {
        match LiveMap::key(id) {
            Some(k) => self.hex.get(&k),
            None => self.other.get(id),
        }
    }
    pub(super) fn insert(&mut self, l: Arc<Live>) {
        match LiveMap::key(&l.id) {
            Some(k) => {
                self.hex.insert(k, l);
            }
            None => {
                self.other.insert(Arc::clone(&l.id), l);
            }
        }
    }
    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<Live>> {
        match LiveMap::key(id) {
            Some(k) => self.hex.remove(&k),
            None => self.other.remove(id),
        }
    }
    pub(super) fn values(&self) -> impl Iterator<Item = &Arc<Live>> {
        self.hex.values().chain(self.other.values())
    }
    pub(super) fn len(&self) -> usize {
        self.hex.len() + self.other.len()
    }
}

/// Hasher for random 128-bit ids: their low 64 bits are already uniformly distributed.
#[derive(Debug, Default)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

impl Live {
    pub(super) fn new(rec: Session) -> Arc<Live> {
        let span = tracing::info_span!(
            "atlas.session",
            session.id = %rec.id,
            user.id = %rec.user_id,
            provider = %rec.provider,
            compute.id = tracing::field::Empty,
        );
        if let Some(c) = &rec.compute_id {
            span.record("compute.id", c.as_str());
        }
        Arc::new(Live {
            id: Arc::from(rec.id.as_str()),
            beat: Beat::new(rec.last_touch),
            rec: Mutex::new(rec),
            terminating: AtomicBool::new(false),
            running_seen: AtomicBool::new(false),
            span,
        })
    }

    pub(super) fn snapshot(&self) -> Session {
        let mut s = lock(&self.rec).clone();
        s.last_touch = s.last_touch.max(self.beat.last());
        s
    }
}

/// Live sessions keyed by session id.
pub(super) type LiveSet = HashMap<Arc<str>, Arc<Live>>;

impl Inner {
    pub(super) fn get_live(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(super) fn state_of(l: &Live) -> SessionState {
        if l.terminating.load(Ordering::Acquire) {
            SessionState::Terminating
        } else {
            lock(&l.rec).state
        }
    }

    /// Adjust the count of sessions in `state` (and its gauge): O(1), no scan.
    pub(super) fn bump(&self, state: SessionState, delta: i64) {
        let i = match state {
            SessionState::Pending => 0,
            SessionState::Active => 1,
            _ => 2,
        };
        let n = self.states[i].fetch_add(delta, Ordering::AcqRel) + delta;
        metrics::gauge!("atlas_sessions", "state" => state.as_str()).set(n as f64);
    }

    /// Count a live session as terminating (called once, by whoever flipped the flag).
    pub(super) fn bump_terminating(&self, l: &Live) {
        let prev = lock(&l.rec).state;
        if prev != SessionState::Terminating {
            self.bump(prev, -1);
            self.bump(SessionState::Terminating, 1);
        }
    }

    pub(super) fn insert_live(&self, rec: Session) -> Arc<Live> {
        let user = rec.user_id.clone();
        let l = Live::new(rec);
        self.bump(Inner::state_of(&l), 1);
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(Arc::clone(&l));
        lock(&self.by_user)
            .entry(user)
            .or_default()
            .insert(Arc::clone(&l.id), Arc::clone(&l));
        l
    }

    pub(super) fn forget_memory(&self, id: &Arc<str>) {
        let removed = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        if let Some(l) = removed {
            self.bump(Inner::state_of(&l), -1);
            let user = lock(&l.rec).user_id.clone();
            let mut by_user = lock(&self.by_user);
            if let Some(m) = by_user.get_mut(&user) {
                m.remove(id);
                if m.is_empty() {
                    by_user.remove(&user);
                }
            }
        }
        let _ = self.cmd.send(Cmd::Cancel(Arc::clone(id)));
    }
}
