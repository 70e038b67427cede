//! Access control: the admin token, dashboard sign-in sessions (HttpOnly, SameSite=Strict
//! cookie + CSRF token), and slowing down repeated bad tokens.
//!
//! # Rules
//! - Every `/v1` route needs `Authorization: Bearer <admin token>` **or** a dashboard
//!   session cookie. Tokens are compared as SHA-256 digests with [`subtle`] (constant time,
//!   whatever the candidate's length).
//! - A request authenticated by the cookie that changes anything (any method but
//!   GET/HEAD/OPTIONS) must carry the session's CSRF token in `X-CSRF-Token`, and an
//!   `Origin` header, when present, must name this server.
//! - Bearer requests need no CSRF token: a browser never attaches the header on its own.
//! - A client (by IP; one shared bucket when the app gives no peer address) that sent
//!   [`MAX_FAILURES`] bad tokens within [`FAILURE_WINDOW`] gets `429` with `Retry-After`
//!   without its token being checked; every bad token is answered after [`FAILURE_DELAY`].
//!   The table is bounded ([`MAX_TRACKED_CLIENTS`]), and so is the session table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request};
use base64::Engine;
use cloud_atlas::{Error, ErrorKind, Result};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Env var holding the admin token (wins over the token file).
pub const ADMIN_TOKEN_ENV: &str = "ATLAS_ADMIN_TOKEN";
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "atlas_session";
/// Header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Bad tokens from one client within [`FAILURE_WINDOW`] before it is refused with 429.
pub const MAX_FAILURES: u32 = 5;
/// Window over which bad tokens are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long every bad-token answer is held back.
pub const FAILURE_DELAY: Duration = Duration::from_millis(400);
/// Clients whose failures are remembered at most (oldest forgotten first).
pub const MAX_TRACKED_CLIENTS: usize = 4096;
/// Dashboard sessions held at most (oldest signed out first).
pub const MAX_SESSIONS: usize = 1024;
/// Life of a dashboard session.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin token, held only as its SHA-256 digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// 32 random bytes, base64url.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Where the admin token came from, and whether it is new (print it once).
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenSource {
    /// From [`ADMIN_TOKEN_ENV`].
    Env,
    /// Read from this file.
    File(PathBuf),
    /// Created in this file just now: the raw token is returned this once.
    Created(PathBuf, String),
    /// Given by the embedding application.
    Given,
}

impl AdminToken {
    /// Use `token` as the admin token.
    ///
    /// # Errors
    /// `Validation` when shorter than [`MIN_TOKEN_LEN`] or not printable ASCII.
    pub fn new(token: &str) -> Result<AdminToken> {
        let t = token.trim();
        if t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::validation(
                "admin_token",
                format!(
                    "must be at least {MIN_TOKEN_LEN} printable ASCII characters without spaces"
                ),
            ));
        }
        Ok(AdminToken { digest: digest(t) })
    }

    /// Whether `candidate` is the token (constant time).
    pub fn verify(&self, candidate: &str) -> bool {
        bool::from(digest(candidate.trim()).ct_eq(&self.digest))
    }

    /// The token from `env_value` (usually `$ATLAS_ADMIN_TOKEN`), else from `file`,
    /// else a new random token written to `file` (0600, in a 0700 folder created here).
    ///
    /// # Errors
    /// `Validation` for a bad token; `Unknown` naming the file when it cannot be read,
    /// created, or is readable by others (the message says how to fix it).
    pub fn resolve(env_value: Option<&str>, file: &Path) -> Result<(AdminToken, TokenSource)> {
        if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
            return Ok((AdminToken::new(v)?, TokenSource::Env));
        }
        if file.exists() {
            check_private(file)?;
            let t = std::fs::read_to_string(file).map_err(|e| {
                Error::new(
                    ErrorKind::Unknown,
                    format!("cannot read the admin token file {}: {e}", file.display()),
                )
            })?;
            return Ok((AdminToken::new(&t)?, TokenSource::File(file.to_path_buf())));
        }
        if let Some(dir) = file.parent() {
            if !dir.exists() {
                cloud_atlas::config::ensure_private_dir(dir)?;
            }
        }
        let token = format!("atlas_admin_{}", random_token());
        write_private(file, &token)?;
        Ok((
            AdminToken::new(&token)?,
            TokenSource::Created(file.to_path_buf(), token),
        ))
    }
}

#[cfg(unix)]
fn check_private(file: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file)
        .map_err(|e| {
            Error::new(
                ErrorKind::Unknown,
                format!("cannot read {}: {e}", file.display()),
            )
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::Unknown,
            format!(
                "the admin token file {} is readable by others (mode {:o}); run chmod 600 on it",
                file.display(),
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_file: &Path) -> Result<()> {
    Ok(())
}

fn write_private(file: &Path, token: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let err = |e: std::io::Error| {
        Error::new(
            ErrorKind::Unknown,
            format!("cannot create the admin token file {}: {e}", file.display()),
        )
    };
    let mut f = o.open(file).map_err(err)?;
    f.write_all(token.as_bytes()).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)
}

/// One dashboard session.
#[derive(Debug, Clone)]
struct CookieSession {
    csrf: String,
    expires: Instant,
}

/// How a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `Authorization: Bearer <admin token>`.
    Bearer,
    /// The dashboard's session cookie.
    Cookie,
}

/// Admin token, dashboard sessions and the bad-token table.
#[derive(Debug)]
pub struct Access {
    token: AdminToken,
    sessions: Mutex<HashMap<[u8; 32], CookieSession>>,
    failures: Mutex<HashMap<Option<IpAddr>, (u32, Instant)>>,
}

impl Access {
    /// Access control around `token`.
    pub fn new(token: AdminToken) -> Access {
        Access {
            token,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuse with 429 a client over the bad-token limit, before looking at its token.
    fn check_throttle(&self, client: Option<IpAddr>) -> std::result::Result<(), ApiError> {
        let f = Access::lock(&self.failures);
        if let Some((n, since)) = f.get(&client) {
            let age = since.elapsed();
            if *n >= MAX_FAILURES && age < FAILURE_WINDOW {
                let mut e = ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "too many bad tokens from this client; wait and retry with the right admin token",
                );
                e.retry_after = Some((FAILURE_WINDOW - age).as_secs().max(1));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Count a bad token; the caller then waits [`FAILURE_DELAY`].
    fn record_failure(&self, client: Option<IpAddr>) {
        metrics::counter!("atlas_web_auth_failures_total").increment(1);
        let mut f = Access::lock(&self.failures);
        let now = Instant::now();
        if f.len() >= MAX_TRACKED_CLIENTS && !f.contains_key(&client) {
            f.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            if f.len() >= MAX_TRACKED_CLIENTS {
                if let Some(oldest) = f.iter().min_by_key(|(_, (_, s))| *s).map(|(k, _)| *k) {
                    f.remove(&oldest);
                }
            }
        }
        let e = f.entry(client).or_insert((0, now));
        if now.duration_since(e.1) >= FAILURE_WINDOW {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }

    fn clear_failures(&self, client: Option<IpAddr>) {
        Access::lock(&self.failures).remove(&client);
    }

    /// Check a candidate admin token from `client`: throttled, delayed when wrong.
    ///
    /// # Errors
    /// 429 when throttled; 401 when wrong.
    pub async fn check_token(
        &self,
        client: Option<IpAddr>,
        candidate: &str,
    ) -> std::result::Result<(), ApiError> {
        self.check_throttle(client)?;
        if self.token.verify(candidate) {
            self.clear_failures(client);
            return Ok(());
        }
        self.record_failure(client);
        tokio::time::sleep(FAILURE_DELAY).await;
        Err(ApiError::unauthorized(
            "the admin token is wrong (see ATLAS_ADMIN_TOKEN or the token file atlas serve printed)",
        ))
    }

    /// Start a dashboard session: returns (cookie value, CSRF token).
    pub fn open_session(&self) -> (String, String) {
        let sid = random_token();
        let csrf = random_token();
        let mut s = Access::lock(&self.sessions);
        let now = Instant::now();
        if s.len() >= MAX_SESSIONS {
            s.retain(|_, c| c.expires > now);
            if s.len() >= MAX_SESSIONS {
                if let Some(k) = s.iter().min_by_key(|(_, c)| c.expires).map(|(k, _)| *k) {
                    s.remove(&k);
                }
            }
        }
        s.insert(
            digest(&sid),
            CookieSession {
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        metrics::gauge!("atlas_web_dashboard_sessions").set(s.len() as f64);
        (sid, csrf)
    }

    /// End the session of this cookie value.
    pub fn close_session(&self, sid: &str) {
        let mut s = Access::lock(&self.sessions);
        s.remove(&digest(sid));
        metrics::gauge!("atlas_web_dashboard_sessions").set(s.len() as f64);
    }

    /// The CSRF token of a live session.
    pub fn session_csrf(&self, sid: &str) -> Option<String> {
        let s = Access::lock(&self.sessions);
        s.get(&digest(sid))
            .filter(|c| c.expires > Instant::now())
            .map(|c| c.csrf.clone())
    }

    /// Authenticate a `/v1` request (see the [module rules](self)).
    ///
    /// # Errors
    /// 401 without valid credentials, 429 when throttled, 403 `csrf` for a cookie
    /// mutation without the right CSRF token or from another origin.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> std::result::Result<Principal, ApiError> {
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            let v = v.to_str().unwrap_or("");
            let Some(t) = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
            else {
                return Err(ApiError::unauthorized(
                    "Authorization must be `Bearer <admin token>`",
                ));
            };
            self.check_token(client, t).await?;
            return Ok(Principal::Bearer);
        }
        let Some(sid) = cookie(headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthorized(
                "sign in: send Authorization: Bearer <admin token> (ATLAS_ADMIN_TOKEN or the token file atlas serve printed)",
            ));
        };
        let Some(csrf) = self.session_csrf(sid) else {
            return Err(ApiError::unauthorized(
                "the dashboard session expired or was signed out; sign in again",
            ));
        };
        if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            check_same_origin(headers)?;
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !bool::from(digest(sent).ct_eq(&digest(&csrf))) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token for this dashboard session",
                ));
            }
        }
        Ok(Principal::Cookie)
    }
}

/// The peer address, when the server was started with connect info.
pub(crate) fn client_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// A cookie's value from the `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// An `Origin` header, when sent, must match `Host` (cookie mutations only).
pub(crate) fn check_same_origin(headers: &HeaderMap) -> std::result::Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf",
            format!("cross-origin request from {origin} refused"),
        ))
    }
}

/// The `Set-Cookie` value for a new session (or, with `None`, one that clears it).
pub(crate) fn session_cookie(sid: Option<&str>) -> String {
    match sid {
        Some(v) => format!(
            "{SESSION_COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_digest_and_short_ones_are_refused() {
        let t = AdminToken::new("a-very-long-admin-token").unwrap();
        assert!(t.verify("a-very-long-admin-token"));
        assert!(!t.verify("a-very-long-admin-tokeN"));
        assert!(!t.verify(""));
        assert!(AdminToken::new("short").is_err());
        assert_eq!(format!("{t:?}"), "AdminToken(…)");
    }

    #[test]
    fn created_token_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server").join("admin-token");
        let (_, src) = AdminToken::resolve(None, &file).unwrap();
        let TokenSource::Created(_, raw) = src else {
            panic!("expected a new token")
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, 0o600);
            let d = std::fs::metadata(file.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(d, 0o700);
        }
        let (t, src) = AdminToken::resolve(None, &file).unwrap();
        assert!(matches!(src, TokenSource::File(_)));
        assert!(t.verify(&raw));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = AdminToken::resolve(None, &file).unwrap_err();
            assert!(e.message().contains("chmod 600"), "{e}");
        }
        let (_, src) = AdminToken::resolve(Some("env-token-0123456789"), &file).unwrap();
        assert!(matches!(src, TokenSource::Env));
    }

    #[tokio::test(start_paused = true)]
    async fn bad_tokens_are_throttled_per_client_with_bounded_memory() {
        let a = Access::new(AdminToken::new("the-right-admin-token").unwrap());
        let ip: Option<IpAddr> = Some("127.0.0.9".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            let e = a.check_token(ip, "wrong").await.unwrap_err();
            assert_eq!(e.status, 401);
        }
        let e = a
            .check_token(ip, "the-right-admin-token")
            .await
            .unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.retry_after.is_some());
        // Another client is unaffected.
        a.check_token(None, "the-right-admin-token").await.unwrap();
        tokio::time::advance(FAILURE_WINDOW).await;
        // std Instant is not paused: emulate the window passing by clearing.
        a.clear_failures(ip);
        a.check_token(ip, "the-right-admin-token").await.unwrap();
        for i in 0..(MAX_TRACKED_CLIENTS + 10) {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            a.record_failure(Some(ip));
        }
        assert!(Access::lock(&a.failures).len() <= MAX_TRACKED_CLIENTS);
    }

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; atlas_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        h.insert(header::HOST, "127.0.0.1:7878".parse().unwrap());
        assert!(check_same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://127.0.0.1:7878".parse().unwrap());
        assert!(check_same_origin(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(check_same_origin(&h).is_err());
        assert!(session_cookie(Some("v")).contains("HttpOnly; SameSite=Strict"));
    }
}
