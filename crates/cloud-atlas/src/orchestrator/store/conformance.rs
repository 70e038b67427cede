//! The public conformance suite for [`SessionStore`] implementations.
//!
//! Run it from a test on your own store:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cloud_atlas::orchestrator::store::{run_store_conformance, MemorySessionStore};
//! run_store_conformance(&MemorySessionStore::new()).await.unwrap();
//! # }
//! ```
//!
//! It uses random session and user ids and forgets what it wrote (adding closed spend
//! only to its own random users), so it can run against a store already in use.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::SessionStore;
use crate::error::ErrorKind;
use crate::orchestrator::session::{Session, SessionRequest, SessionState};
use crate::spec::{AuthMode, ComputeRequest, Gpu};

/// A failed conformance case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConformanceFailure {
    /// The case.
    pub case: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for StoreConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "session store conformance case `{}` failed: {}",
            self.case, self.message
        )
    }
}

impl std::error::Error for StoreConformanceFailure {}

type CaseResult = Result<(), StoreConformanceFailure>;

fn fail(case: &'static str, message: impl Into<String>) -> StoreConformanceFailure {
    StoreConformanceFailure {
        case,
        message: message.into(),
    }
}

fn check(case: &'static str, ok: bool, message: impl FnOnce() -> String) -> CaseResult {
    if ok {
        Ok(())
    } else {
        Err(fail(case, message()))
    }
}

macro_rules! call {
    ($case:expr, $e:expr) => {
        $e.await
            .map_err(|e| fail($case, format!("store call failed: {e}")))?
    };
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Equal up to millisecond precision of the timestamps.
fn same(a: &Session, b: &Session) -> bool {
    let norm = |s: &Session| {
        let mut s = s.clone();
        for t in [&mut s.created_at, &mut s.last_touch, &mut s.rate_since] {
            *t = crate::orchestrator::schedule::from_ms(ms(*t));
        }
        s.spawned_at = s
            .spawned_at
            .map(|t| crate::orchestrator::schedule::from_ms(ms(t)));
        s
    };
    norm(a) == norm(b)
}

fn sample(run: &str, n: &str, user: &str) -> Session {
    let compute = ComputeRequest::builder()
        .gpu(Gpu::L4)
        .image("conformance")
        .auth(AuthMode::Bearer)
        .build()
        .expect("a valid sample request");
    let req = SessionRequest::new("mock", user, compute).with_max_cost(1.5);
    let c = req.compute_request(None).expect("a valid sample name");
    let now = Utc::now();
    Session::intent(
        format!("{run}{n}"),
        &req,
        &c,
        Duration::from_secs(60),
        Duration::from_secs(3600),
        now,
    )
}

/// Run every case on `store`; the first failure is returned.
///
/// # Errors
/// The first [`StoreConformanceFailure`].
pub async fn run_store_conformance(
    store: &dyn SessionStore,
) -> Result<(), StoreConformanceFailure> {
    let run = format!("conf{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let result = cases(store, &run).await;
    if let Ok(all) = store.list().await {
        for s in all.iter().filter(|s| s.id.starts_with(&run)) {
            let _ = store.finish(&s.id, 0.0).await;
        }
    }
    result
}

async fn cases(store: &dyn SessionStore, run: &str) -> CaseResult {
    let user_a = format!("{run}-user-a");
    let user_b = format!("{run}-user-b");

    let c = "unknown_ids";
    check(
        c,
        call!(c, store.get(&format!("{run}missing"))).is_none(),
        || "get of an unknown id gave a session".into(),
    )?;
    check(
        c,
        !call!(c, store.finish(&format!("{run}missing"), 1.0)),
        || "finish of an unknown id said true".into(),
    )?;
    let e = store.update(&sample(run, "missing", &user_a)).await;
    check(
        c,
        matches!(&e, Err(e) if e.kind() == ErrorKind::NotFound),
        || format!("update of an unknown id gave {e:?}, want NotFound"),
    )?;

    let c = "insert_then_get";
    let mut s = sample(run, "a", &user_a);
    s.token_hash = Some("ab".repeat(32));
    call!(c, store.insert(&s));
    let got = call!(c, store.get(&s.id));
    check(c, got.as_ref().is_some_and(|g| same(g, &s)), || {
        format!("stored {s:?}, read back {got:?}")
    })?;
    check(c, store.insert(&s).await.is_err(), || {
        "a second insert of the same id succeeded".into()
    })?;

    let c = "update_replaces";
    s.compute_id = Some("mock-conf".into());
    s.state = SessionState::Active;
    s.spawned_at = Some(Utc::now());
    s.cost_per_hour = 0.43;
    s.http_url = Some("https://example.invalid".into());
    call!(c, store.update(&s));
    let got = call!(c, store.get(&s.id));
    check(c, got.as_ref().is_some_and(|g| same(g, &s)), || {
        format!("updated to {s:?}, read back {got:?}")
    })?;

    let c = "list_contains_all";
    let s2 = sample(run, "b", &user_b);
    call!(c, store.insert(&s2));
    let all = call!(c, store.list());
    let mine: Vec<&Session> = all.iter().filter(|x| x.id.starts_with(run)).collect();
    check(c, mine.len() == 2, || {
        format!("list gave {} of this run's 2 sessions", mine.len())
    })?;

    let c = "touch_many_is_monotonic";
    let later = s.last_touch + chrono::Duration::seconds(30);
    call!(
        c,
        store.touch_many(&[(s.id.clone(), later), (format!("{run}ghost"), later)])
    );
    let got = call!(c, store.get(&s.id)).ok_or_else(|| fail(c, "session vanished"))?;
    check(c, ms(got.last_touch) == ms(later), || {
        format!("last_touch {} after touching at {later}", got.last_touch)
    })?;
    call!(c, store.touch_many(&[(s.id.clone(), s.last_touch)]));
    let got = call!(c, store.get(&s.id)).ok_or_else(|| fail(c, "session vanished"))?;
    check(c, ms(got.last_touch) == ms(later), || {
        "an older heartbeat moved last_touch backwards".into()
    })?;
    call!(c, store.update(&s));
    let got = call!(c, store.get(&s.id)).ok_or_else(|| fail(c, "session vanished"))?;
    check(c, ms(got.last_touch) == ms(later), || {
        "update with an older last_touch moved it backwards".into()
    })?;
    check(
        c,
        call!(c, store.get(&format!("{run}ghost"))).is_none(),
        || "touch created a session".into(),
    )?;

    let c = "owners_claim_is_compare_and_set";
    let mut o = sample(run, "owned", &user_a);
    let (node_a, node_b) = (format!("{run}-node-a"), format!("{run}-node-b"));
    o.owner = Some(node_a.clone());
    call!(c, store.insert(&o));
    let got = call!(c, store.get(&o.id)).ok_or_else(|| fail(c, "session vanished"))?;
    check(c, got.owner.as_deref() == Some(node_a.as_str()), || {
        format!("inserted with owner {node_a}, read back {:?}", got.owner)
    })?;
    let mut stale = o.clone();
    stale.owner = Some(node_b.clone());
    stale.cost_per_hour = 0.5;
    call!(c, store.update(&stale));
    let got = call!(c, store.get(&o.id)).ok_or_else(|| fail(c, "session vanished"))?;
    check(c, got.owner.as_deref() == Some(node_a.as_str()), || {
        format!(
            "update changed the owner to {:?}; only claim may",
            got.owner
        )
    })?;
    check(c, !call!(c, store.claim(&o.id, None, &node_b)), || {
        "claim from the wrong owner (none) succeeded".into()
    })?;
    check(
        c,
        call!(c, store.claim(&o.id, Some(&node_a), &node_b)),
        || "claim from the right owner failed".into(),
    )?;
    check(
        c,
        !call!(c, store.claim(&o.id, Some(&node_a), &node_b)),
        || "a second claim from the previous owner succeeded (two winners)".into(),
    )?;
    let got = call!(c, store.get(&o.id)).ok_or_else(|| fail(c, "session vanished"))?;
    check(c, got.owner.as_deref() == Some(node_b.as_str()), || {
        format!("after the claim the owner is {:?}", got.owner)
    })?;
    check(
        c,
        !call!(c, store.claim(&format!("{run}ghost"), None, &node_b)),
        || "claim of an unknown id succeeded".into(),
    )?;
    call!(c, store.finish(&o.id, 0.0));

    let c = "owner_leases_renew_and_release";
    let until = crate::orchestrator::schedule::from_ms(ms(Utc::now()) + 60_000);
    call!(c, store.renew_owner(&node_a, until));
    let later = crate::orchestrator::schedule::from_ms(ms(until) + 1_000);
    call!(c, store.renew_owner(&node_a, later));
    let leases = call!(c, store.owners());
    check(
        c,
        leases.get(&node_a).map(|t| ms(*t)) == Some(ms(later)),
        || {
            format!(
                "lease of {node_a} after renewing: {:?}",
                leases.get(&node_a)
            )
        },
    )?;
    call!(c, store.release_owner(&node_a));
    call!(c, store.release_owner(&node_b));
    let leases = call!(c, store.owners());
    check(c, !leases.contains_key(&node_a), || {
        "a released lease is still listed".into()
    })?;

    let c = "finish_forgets_and_adds_spend";
    let before = call!(c, store.closed_spend())
        .get(&user_a)
        .copied()
        .unwrap_or(0.0);
    check(c, call!(c, store.finish(&s.id, 1.25)), || {
        "finish of a stored session said false".into()
    })?;
    check(c, call!(c, store.get(&s.id)).is_none(), || {
        "finished session still readable".into()
    })?;
    check(c, !call!(c, store.finish(&s.id, 1.25)), || {
        "second finish said true".into()
    })?;
    let after = call!(c, store.closed_spend())
        .get(&user_a)
        .copied()
        .unwrap_or(0.0);
    check(c, (after - before - 1.25).abs() < 1e-9, || {
        format!("closed spend went {before} -> {after}, want +1.25 once")
    })?;
    check(c, call!(c, store.finish(&s2.id, 0.5)), || {
        "finish said false".into()
    })?;
    let spend = call!(c, store.closed_spend());
    check(
        c,
        (spend.get(&user_b).copied().unwrap_or(0.0) - 0.5).abs() < 1e-9,
        || format!("user b closed spend {spend:?}"),
    )?;
    Ok(())
}
