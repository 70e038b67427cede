//! Pod-side tower layers that enforce browser-to-pod auth (feature `tower`).
//!
//! A pod spawned with `auth: bearer` receives `ATLAS_PRESHARED_KEY`; one spawned with
//! `auth: signed_url` receives `ATLAS_SIGNING_SECRET`. Mount the matching layer in
//! front of the routes that must be private:
//!
//! | layer | accepts | rejects |
//! | --- | --- | --- |
//! | [`PresharedKeyLayer`] | `Authorization: Bearer <key>` | 401 + `WWW-Authenticate: Bearer` |
//! | [`SignedUrlLayer`] | a valid `?…&exp=…&sig=…` | 401 bad/malformed, **403 expired** |
//! | [`PresharedOrSignedLayer`] | either of the above | as above; 401s carry `WWW-Authenticate: Bearer` |
//!
//! # Status codes and bodies
//! Rejections have a `text/plain` body naming the reason (never the expected value):
//! - `401 missing bearer token` / `401 invalid bearer token` (with
//!   `WWW-Authenticate: Bearer` and, for a wrong token, `error="invalid_token"` per RFC 6750);
//! - `401 bad signature` / `401 malformed signed URL: <reason>`;
//! - `403 signed URL expired`: an expired URL is a credential that *was* valid, and
//!   presenting it again cannot help, so it gets 403 (not 401, which asks the client to
//!   authenticate) with its own body. Clients should ask their app server for a fresh URL.
//!
//! # Guarantees
//! - The bearer key is compared as a SHA-256 digest in constant time ([`subtle`]); the
//!   layer keeps only the digest, so [`PresharedKeyLayer::from_hash`] works without the key.
//! - Signature comparison is constant-time (see [`signed_url::verify`]).
//! - Keys and secrets never appear in `Debug` output or in responses.
//!
//! # Caveats
//! - Put a CORS layer *outside* these layers: a browser's CORS preflight (`OPTIONS`)
//!   carries no credentials and would otherwise be rejected.
//! - `sig` and `exp` stay in the query the inner service sees.
//! - The rejection body is built with `ResBody::from(Bytes)`, which axum's `Body`,
//!   `http_body_util::Full<Bytes>` and `String`-like bodies provide.
//!
//! # Examples
//! ```
//! use axum::{routing::get, Router};
//! use cloud_atlas::auth::layer::PresharedOrSignedLayer;
//! use cloud_atlas::auth::Secret;
//!
//! let auth = PresharedOrSignedLayer::new(Secret::new("bearer-key"), Secret::new("signing-secret"))?;
//! let app: Router = Router::new().route("/media/{name}", get(|| async { "bytes" })).layer(auth);
//! # Ok::<(), cloud_atlas::Error>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::{Either, Ready};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::handle::SIGNING_SECRET_ENV;
use super::secret::Secret;
use super::signed_url::{self, Malformed, VerifyError};
use super::token::{self, PRESHARED_KEY_ENV};
use crate::error::{Error, Result};

/// Checks `Authorization: Bearer <key>` against a preshared key.
#[derive(Clone)]
struct BearerCheck {
    hash: String,
}

impl BearerCheck {
    fn from_key(key: &Secret) -> Result<BearerCheck> {
        if key.expose().trim().is_empty() {
            return Err(Error::validation("preshared key", "must not be empty"));
        }
        Ok(BearerCheck {
            hash: token::hash(key.expose()),
        })
    }

    fn from_hash(hash: &str) -> Result<BearerCheck> {
        let hash = hash.trim().to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::validation(
                "preshared key hash",
                "must be 64 hex characters (SHA-256 of the key)",
            ));
        }
        Ok(BearerCheck { hash })
    }

    fn check(&self, headers: &HeaderMap) -> BearerOutcome {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return BearerOutcome::Missing;
        };
        let Some(candidate) = bearer_token(value) else {
            return BearerOutcome::Missing;
        };
        if token::verify(candidate, &self.hash) {
            BearerOutcome::Ok
        } else {
            BearerOutcome::Invalid
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive), if that is the scheme.
fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let (scheme, rest) = value.to_str().ok()?.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BearerOutcome {
    Ok,
    Missing,
    Invalid,
}

/// What a guarded service checks.
#[derive(Clone)]
enum Policy {
    Bearer(BearerCheck),
    Signed(Arc<Secret>),
    Either(BearerCheck, Arc<Secret>),
}

/// A rejection: status, reason body, optional `WWW-Authenticate`.
struct Rejection {
    status: StatusCode,
    body: String,
    challenge: Option<&'static str>,
}

const BEARER_CHALLENGE: &str = "Bearer";
const BEARER_INVALID_CHALLENGE: &str = "Bearer error=\"invalid_token\"";

impl Rejection {
    fn bearer(outcome: BearerOutcome) -> Rejection {
        match outcome {
            BearerOutcome::Invalid => Rejection {
                status: StatusCode::UNAUTHORIZED,
                body: "invalid bearer token".into(),
                challenge: Some(BEARER_INVALID_CHALLENGE),
            },
            _ => Rejection {
                status: StatusCode::UNAUTHORIZED,
                body: "missing bearer token".into(),
                challenge: Some(BEARER_CHALLENGE),
            },
        }
    }

    fn signed(err: &VerifyError) -> Rejection {
        match err {
            VerifyError::Expired { .. } => Rejection {
                status: StatusCode::FORBIDDEN,
                body: "signed URL expired".into(),
                challenge: None,
            },
            other => Rejection {
                status: StatusCode::UNAUTHORIZED,
                body: other.to_string(),
                challenge: None,
            },
        }
    }

    fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut res = Response::new(B::from(Bytes::from(self.body)));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(c) = self.challenge {
            res.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        res
    }
}

impl Policy {
    /// `None` lets the request through.
    fn decide<B>(&self, req: &Request<B>) -> Option<Rejection> {
        match self {
            Policy::Bearer(check) => match check.check(req.headers()) {
                BearerOutcome::Ok => None,
                other => Some(Rejection::bearer(other)),
            },
            Policy::Signed(secret) => signed_check(req, secret)
                .err()
                .map(|e| Rejection::signed(&e)),
            Policy::Either(check, secret) => {
                let bearer = check.check(req.headers());
                if bearer == BearerOutcome::Ok {
                    return None;
                }
                let signed = match signed_check(req, secret) {
                    Ok(()) => return None,
                    Err(e) => e,
                };
                let presented_signed_url =
                    !matches!(signed, VerifyError::Malformed(Malformed::MissingExp));
                let mut rejection = if matches!(signed, VerifyError::Expired { .. })
                    || (presented_signed_url && bearer == BearerOutcome::Missing)
                {
                    Rejection::signed(&signed)
                } else {
                    Rejection::bearer(bearer)
                };
                if rejection.status == StatusCode::UNAUTHORIZED && rejection.challenge.is_none() {
                    rejection.challenge = Some(BEARER_CHALLENGE);
                }
                Some(rejection)
            }
        }
    }
}

fn signed_check<B>(req: &Request<B>, secret: &Secret) -> std::result::Result<(), VerifyError> {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path(), |pq| pq.as_str());
    signed_url::verify(target, secret, SystemTime::now()).map(|_| ())
}

fn signing_secret(secret: Secret) -> Result<Arc<Secret>> {
    if secret.expose().is_empty() {
        return Err(Error::validation("signing secret", "must not be empty"));
    }
    Ok(Arc::new(secret))
}

fn env_secret(name: &str) -> Result<Secret> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        _ => Err(Error::validation(
            name,
            "is not set; the pod receives it when spawned with the matching `auth` mode",
        )),
    }
}

/// Requires `Authorization: Bearer <preshared key>`; see the [module docs](self).
#[derive(Clone)]
pub struct PresharedKeyLayer {
    check: BearerCheck,
}

impl PresharedKeyLayer {
    /// Guard with `key`.
    ///
    /// # Errors
    /// `Validation` when the key is empty.
    pub fn new(key: Secret) -> Result<PresharedKeyLayer> {
        Ok(PresharedKeyLayer {
            check: BearerCheck::from_key(&key)?,
        })
    }

    /// Guard with only the key's SHA-256 hex (as [`token::mint`] returns it).
    ///
    /// # Errors
    /// `Validation` when `hash` is not 64 hex characters.
    pub fn from_hash(hash: &str) -> Result<PresharedKeyLayer> {
        Ok(PresharedKeyLayer {
            check: BearerCheck::from_hash(hash)?,
        })
    }

    /// Guard with the key in `ATLAS_PRESHARED_KEY`.
    ///
    /// # Errors
    /// `Validation` naming the env var when it is unset or empty.
    pub fn from_env() -> Result<PresharedKeyLayer> {
        PresharedKeyLayer::new(env_secret(PRESHARED_KEY_ENV)?)
    }
}

/// Requires a valid signed URL; see the [module docs](self).
#[derive(Clone)]
pub struct SignedUrlLayer {
    secret: Arc<Secret>,
}

impl SignedUrlLayer {
    /// Guard with `secret` (its bytes as given).
    ///
    /// # Errors
    /// `Validation` when the secret is empty.
    pub fn new(secret: Secret) -> Result<SignedUrlLayer> {
        Ok(SignedUrlLayer {
            secret: signing_secret(secret)?,
        })
    }

    /// Guard with the secret in `ATLAS_SIGNING_SECRET`.
    ///
    /// # Errors
    /// `Validation` naming the env var when it is unset or empty.
    pub fn from_env() -> Result<SignedUrlLayer> {
        SignedUrlLayer::new(env_secret(SIGNING_SECRET_ENV)?)
    }
}

/// Accepts a matching bearer key **or** a valid signed URL; see the [module docs](self).
///
/// When both fail, an expired signed URL gets 403; a request that presented a signed
/// URL but no bearer token gets the signed-URL reason; otherwise the bearer reason.
/// Every 401 carries `WWW-Authenticate: Bearer`.
#[derive(Clone)]
pub struct PresharedOrSignedLayer {
    check: BearerCheck,
    secret: Arc<Secret>,
}

impl PresharedOrSignedLayer {
    /// Guard with a preshared `key` and a signing `secret`.
    ///
    /// # Errors
    /// `Validation` when either is empty.
    pub fn new(key: Secret, secret: Secret) -> Result<PresharedOrSignedLayer> {
        Ok(PresharedOrSignedLayer {
            check: BearerCheck::from_key(&key)?,
            secret: signing_secret(secret)?,
        })
    }

    /// Guard with `ATLAS_PRESHARED_KEY` and `ATLAS_SIGNING_SECRET`.
    ///
    /// # Errors
    /// `Validation` naming the env var that is unset or empty.
    pub fn from_env() -> Result<PresharedOrSignedLayer> {
        PresharedOrSignedLayer::new(
            env_secret(PRESHARED_KEY_ENV)?,
            env_secret(SIGNING_SECRET_ENV)?,
        )
    }
}

impl<S> Layer<S> for PresharedKeyLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            policy: Policy::Bearer(self.check.clone()),
        }
    }
}

impl<S> Layer<S> for SignedUrlLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            policy: Policy::Signed(Arc::clone(&self.secret)),
        }
    }
}

impl<S> Layer<S> for PresharedOrSignedLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            policy: Policy::Either(self.check.clone(), Arc::clone(&self.secret)),
        }
    }
}

/// The service the auth layers wrap around an inner service.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    policy: Policy,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<std::result::Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.policy.decide(&req) {
            None => Either::Left(self.inner.call(req)),
            Some(rejection) => {
                tracing::debug!(
                    status = rejection.status.as_u16(),
                    reason = %rejection.body,
                    path = req.uri().path(),
                    "auth rejected request"
                );
                Either::Right(futures::future::ready(Ok(rejection.into_response())))
            }
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the kind of check: no key, hash or secret.
        f.write_str(match self {
            Policy::Bearer(_) => "Bearer",
            Policy::Signed(_) => "SignedUrl",
            Policy::Either(..) => "BearerOrSignedUrl",
        })
    }
}

impl<S: fmt::Debug> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("policy", &self.policy)
            .field("inner", &self.inner)
            .finish()
    }
}

impl fmt::Debug for PresharedKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresharedKeyLayer").finish_non_exhaustive()
    }
}

impl fmt::Debug for SignedUrlLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedUrlLayer")
            .field("secret", &self.secret)
            .finish()
    }
}

impl fmt::Debug for PresharedOrSignedLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresharedOrSignedLayer")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::time::Duration;

    type Echo = tower::util::ServiceFn<
        fn(Request<String>) -> Ready<std::result::Result<Response<Vec<u8>>, Infallible>>,
    >;

    fn echo() -> Echo {
        fn ok(_req: Request<String>) -> Ready<std::result::Result<Response<Vec<u8>>, Infallible>> {
            futures::future::ready(Ok(Response::new(b"inner".to_vec())))
        }
        tower::service_fn(ok as fn(_) -> _)
    }

    async fn call<L: Layer<Echo, Service = AuthService<Echo>>>(
        layer: &L,
        req: Request<String>,
    ) -> Response<Vec<u8>> {
        use tower::ServiceExt;
        layer.layer(echo()).oneshot(req).await.unwrap()
    }

    fn get(uri: &str, bearer: Option<&str>) -> Request<String> {
        let mut b = Request::builder().uri(uri);
        if let Some(t) = bearer {
            b = b.header(AUTHORIZATION, t);
        }
        b.body(String::new()).unwrap()
    }

    #[tokio::test]
    async fn bearer_outcomes() {
        let l = PresharedKeyLayer::new(Secret::new("k-123")).unwrap();
        let r = call(&l, get("/x", None)).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(r.body(), b"missing bearer token");
        let r = call(&l, get("/x", Some("Basic azox"))).await;
        assert_eq!(r.status(), 401);
        let r = call(&l, get("/x", Some("Bearer k-124"))).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], BEARER_INVALID_CHALLENGE);
        assert_eq!(r.body(), b"invalid bearer token");
        let r = call(&l, get("/x", Some("bearer  k-123 "))).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.body(), b"inner");
        let by_hash = PresharedKeyLayer::from_hash(&token::hash("k-123")).unwrap();
        assert_eq!(
            call(&by_hash, get("/x", Some("Bearer k-123")))
                .await
                .status(),
            200
        );
    }

    #[tokio::test]
    async fn signed_outcomes() {
        let secret = Secret::new("sig-secret-0123456789abcdef-0123456");
        let l = SignedUrlLayer::new(secret.clone()).unwrap();
        let good = signed_url::sign("/m?a=1", &secret, Duration::from_secs(60)).unwrap();
        assert_eq!(call(&l, get(&good, None)).await.status(), 200);
        let old = SystemTime::now() - Duration::from_secs(120);
        let expired = signed_url::sign_at("/m?a=1", &secret, Duration::from_secs(60), old).unwrap();
        let r = call(&l, get(&expired, None)).await;
        assert_eq!(r.status(), 403);
        assert_eq!(r.body(), b"signed URL expired");
        let r = call(&l, get(&good.replace("a=1", "a=2"), None)).await;
        assert_eq!(
            (r.status().as_u16(), std::str::from_utf8(r.body()).unwrap()),
            (401, "bad signature")
        );
        let r = call(&l, get("/m?a=1", None)).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.body(), b"malformed signed URL: missing exp");
    }

    #[tokio::test]
    async fn either_outcomes() {
        let secret = Secret::new("sig-secret-0123456789abcdef-0123456");
        let l = PresharedOrSignedLayer::new(Secret::new("k-123"), secret.clone()).unwrap();
        let good = signed_url::sign("/m?a=1", &secret, Duration::from_secs(60)).unwrap();
        assert_eq!(
            call(&l, get("/m", Some("Bearer k-123"))).await.status(),
            200
        );
        assert_eq!(call(&l, get(&good, None)).await.status(), 200);
        assert_eq!(
            call(&l, get(&good, Some("Bearer wrong"))).await.status(),
            200
        );
        let r = call(&l, get("/m", None)).await;
        assert_eq!(
            (r.status().as_u16(), std::str::from_utf8(r.body()).unwrap()),
            (401, "missing bearer token")
        );
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r = call(&l, get(&good.replace("a=1", "a=2"), None)).await;
        assert_eq!(
            (r.status().as_u16(), std::str::from_utf8(r.body()).unwrap()),
            (401, "bad signature")
        );
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r = call(&l, get("/m", Some("Bearer nope"))).await;
        assert_eq!(
            (r.status().as_u16(), std::str::from_utf8(r.body()).unwrap()),
            (401, "invalid bearer token")
        );
        let old = SystemTime::now() - Duration::from_secs(120);
        let expired = signed_url::sign_at("/m", &secret, Duration::from_secs(60), old).unwrap();
        assert_eq!(call(&l, get(&expired, None)).await.status(), 403);
    }

    #[test]
    fn construction_rejects_empty_and_debug_hides_values() {
        assert!(PresharedKeyLayer::new(Secret::new(" ")).is_err());
        assert!(PresharedKeyLayer::from_hash("abc").is_err());
        assert!(SignedUrlLayer::new(Secret::new("")).is_err());
        let l = PresharedOrSignedLayer::new(Secret::new("canary-key"), Secret::new("canary-sec"))
            .unwrap();
        let shown = format!("{l:?} {:?}", l.layer(()));
        assert!(!shown.contains("canary"), "{shown}");
        assert!(!shown.contains(&token::hash("canary-key")), "{shown}");
    }

    #[test]
    fn unset_env_var_is_a_validation_error_naming_it() {
        let err = env_secret("ATLAS_TEST_NEVER_SET_4F1C").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Validation);
        assert!(
            err.to_string().contains("ATLAS_TEST_NEVER_SET_4F1C"),
            "{err}"
        );
    }
}
