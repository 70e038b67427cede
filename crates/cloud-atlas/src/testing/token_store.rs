//! The public conformance suite for Fly [`TokenStore`] implementations (features
//! `testing` and `fly`).
//!
//! Run it from a test on your own store:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cloud_atlas::fly::tokens::MemoryTokenStore;
//! use cloud_atlas::testing::run_token_store_conformance;
//! run_token_store_conformance(&MemoryTokenStore::new()).await.unwrap();
//! # }
//! ```
//!
//! It uses app names starting with `conf-` plus a random suffix and removes what it
//! wrote, so it can run against a store that already holds tokens. What happens to a
//! damaged backing file is store-specific and is not checked here.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::auth::Secret;
use crate::fly::tokens::{StoredToken, TokenSlot, TokenSource, TokenStore};

/// A failed conformance case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStoreConformanceFailure {
    /// The case.
    pub case: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for TokenStoreConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "token store conformance case `{}` failed: {}",
            self.case, self.message
        )
    }
}

impl std::error::Error for TokenStoreConformanceFailure {}

type CaseResult = Result<(), TokenStoreConformanceFailure>;

fn fail(case: &'static str, message: impl Into<String>) -> TokenStoreConformanceFailure {
    TokenStoreConformanceFailure {
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

fn same(a: &StoredToken, b: &StoredToken) -> bool {
    a.token == b.token
        && a.origin == b.origin
        && ms(a.obtained_at) == ms(b.obtained_at)
        && a.expires_at.map(ms) == b.expires_at.map(ms)
}

fn sample(token: &str, origin: TokenSource, expires: bool) -> StoredToken {
    let now = Utc::now();
    StoredToken::new(Secret::new(token), origin)
        .with_obtained_at(now)
        .with_expires_at(expires.then(|| now + Duration::hours(24)))
}

/// Run every case on `store`; the first failure is returned.
///
/// # Errors
/// The first [`TokenStoreConformanceFailure`].
pub async fn run_token_store_conformance(
    store: &dyn TokenStore,
) -> Result<(), TokenStoreConformanceFailure> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let app = |n: &str| format!("conf-{}-{n}", &run[..12]);
    let result = cases(store, &app).await;
    // Best-effort cleanup of everything the cases may have written.
    for slot in TokenSlot::ALL {
        if let Ok(apps) = store.apps(slot).await {
            for a in apps.iter().filter(|a| a.starts_with(&app(""))) {
                let _ = store.remove(slot, a).await;
            }
        }
    }
    result
}

async fn cases(store: &dyn TokenStore, app: &dyn Fn(&str) -> String) -> CaseResult {
    // Missing entries.
    let c = "missing_is_none";
    for slot in TokenSlot::ALL {
        let got = call!(c, store.load(slot, &app("missing")));
        check(c, got.is_none(), || {
            format!("load({slot:?}) of an unknown app gave a token")
        })?;
    }

    // Round trip in both slots, with and without expiry.
    let c = "save_then_load";
    let a = app("roundtrip");
    let cached = sample("FlyV1 fm2_conformance,fm2_second", TokenSource::Cli, true);
    let manual = sample("fo1_manual-token", TokenSource::Manual, false);
    call!(c, store.save(TokenSlot::Cache, &a, &cached));
    call!(c, store.save(TokenSlot::Manual, &a, &manual));
    let got = call!(c, store.load(TokenSlot::Cache, &a));
    check(c, got.as_ref().is_some_and(|g| same(g, &cached)), || {
        format!("cache slot gave {got:?}, expected {cached:?}")
    })?;
    let got = call!(c, store.load(TokenSlot::Manual, &a));
    check(c, got.as_ref().is_some_and(|g| same(g, &manual)), || {
        format!("manual slot gave {got:?}, expected {manual:?}")
    })?;

    // Values survive byte for byte.
    let c = "token_bytes_preserved";
    let odd = sample("Bearer  a,b;c \"q\" ünï\tcode", TokenSource::Config, false);
    let a_odd = app("odd");
    call!(c, store.save(TokenSlot::Cache, &a_odd, &odd));
    let got = call!(c, store.load(TokenSlot::Cache, &a_odd));
    check(
        c,
        got.as_ref().is_some_and(|g| g.token == odd.token),
        || "a token with spaces, quotes, commas and non-ASCII did not come back unchanged".into(),
    )?;

    // Overwrite replaces.
    let c = "save_replaces";
    let newer = sample("FlyV1 fm2_newer", TokenSource::Cli, false);
    call!(c, store.save(TokenSlot::Cache, &a, &newer));
    let got = call!(c, store.load(TokenSlot::Cache, &a));
    check(c, got.as_ref().is_some_and(|g| same(g, &newer)), || {
        format!("after a second save the cache slot gave {got:?}")
    })?;

    // Slots are independent.
    let c = "slots_independent";
    let got = call!(c, store.load(TokenSlot::Manual, &a));
    check(c, got.as_ref().is_some_and(|g| same(g, &manual)), || {
        "saving to the cache slot changed the manual slot".into()
    })?;
    let only_manual = app("only-manual");
    call!(c, store.save(TokenSlot::Manual, &only_manual, &manual));
    let got = call!(c, store.load(TokenSlot::Cache, &only_manual));
    check(c, got.is_none(), || {
        "a manual token showed up in the cache slot".into()
    })?;

    // Apps are independent.
    let c = "apps_independent";
    let b = app("other");
    let got = call!(c, store.load(TokenSlot::Cache, &b));
    check(c, got.is_none(), || {
        "a token saved for one app showed up for another".into()
    })?;

    // Listing.
    let c = "apps_listed_sorted";
    let listed = call!(c, store.apps(TokenSlot::Cache));
    let ours: Vec<&String> = listed.iter().filter(|x| x.starts_with(&app(""))).collect();
    let mut want = vec![a.clone(), a_odd.clone()];
    want.sort();
    check(c, ours == want.iter().collect::<Vec<_>>(), || {
        format!("apps(cache) listed {ours:?}, expected {want:?}")
    })?;
    let mut sorted = listed.clone();
    sorted.sort();
    check(c, sorted == listed, || "apps() is not sorted".into())?;

    // Remove is idempotent and slot-specific.
    let c = "remove_idempotent";
    call!(c, store.remove(TokenSlot::Cache, &a));
    call!(c, store.remove(TokenSlot::Cache, &a));
    call!(c, store.remove(TokenSlot::Cache, &app("never-saved")));
    let got = call!(c, store.load(TokenSlot::Cache, &a));
    check(c, got.is_none(), || "remove did not remove".into())?;
    let got = call!(c, store.load(TokenSlot::Manual, &a));
    check(c, got.is_some(), || {
        "removing from the cache slot removed the manual token".into()
    })?;

    // Concurrent saves for different apps all persist.
    let c = "concurrent_saves_persist";
    let names: Vec<String> = (0..24).map(|i| app(&format!("par-{i:02}"))).collect();
    let tokens: Vec<StoredToken> = (0..24)
        .map(|i| sample(&format!("FlyV1 fm2_par{i}"), TokenSource::Cli, false))
        .collect();
    let saves = names
        .iter()
        .zip(&tokens)
        .map(|(n, t)| store.save(TokenSlot::Cache, n, t));
    for r in futures::future::join_all(saves).await {
        r.map_err(|e| fail(c, format!("store call failed: {e}")))?;
    }
    for (n, t) in names.iter().zip(&tokens) {
        let got = call!(c, store.load(TokenSlot::Cache, n));
        check(c, got.as_ref().is_some_and(|g| same(g, t)), || {
            format!("concurrent save for {n} was lost (got {got:?})")
        })?;
    }
    Ok(())
}
