//! A fault proxy in front of any provider server: every request passes through, except
//! the create, whose 2xx answer comes back cut in half, so it cannot be decoded (as
//! when a connection breaks mid-body or a gateway mangles it). The provider must treat
//! that create as ambiguous and look for the launch by listing.
//!
//! [`Create::Forwarded`] sends the create on, so the upstream server makes the machine;
//! [`Create::Swallowed`] answers it here, so nothing is made. Either way the proxy
//! counts the creates it saw.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use axum::Router;

/// What happens to the create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Sent upstream (the machine is made); the 2xx answer is cut in half.
    Forwarded,
    /// Not sent upstream (nothing is made); answered `200` with a cut JSON body.
    Swallowed,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    method: &'static str,
    path_prefix: &'static str,
    create: Create,
    creates: Arc<AtomicUsize>,
    http: reqwest::Client,
}

/// A running proxy.
pub struct Garble {
    base: String,
    creates: Arc<AtomicUsize>,
}

impl Garble {
    /// Proxy `upstream`; the create is `method` on a path starting with `path_prefix`.
    pub async fn start(
        upstream: &str,
        method: &'static str,
        path_prefix: &'static str,
        create: Create,
    ) -> Garble {
        let creates = Arc::new(AtomicUsize::new(0));
        let state = Proxy {
            upstream: upstream.trim_end_matches('/').to_string(),
            method,
            path_prefix,
            create,
            creates: Arc::clone(&creates),
            http: reqwest::Client::new(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        Garble { base, creates }
    }

    /// The proxy's base URL (append the same path prefix the upstream base has).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// How many creates the proxy saw.
    pub fn creates(&self) -> usize {
        self.creates.load(Ordering::SeqCst)
    }
}

fn cut(body: &[u8]) -> Vec<u8> {
    let half = &body[..body.len() / 2];
    if serde_json::from_slice::<serde_json::Value>(half).is_ok() {
        // Too short to be broken by halving (`{}`): make sure it is not JSON.
        return b"{\"id\": ".to_vec();
    }
    half.to_vec()
}

async fn forward(State(p): State<Proxy>, rq: Request) -> Response {
    let method = rq.method().clone();
    let target = rq
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let is_create = method.as_str() == p.method && rq.uri().path().starts_with(p.path_prefix);
    let headers = rq.headers().clone();
    let body = to_bytes(rq.into_body(), usize::MAX).await.unwrap();
    if is_create {
        p.creates.fetch_add(1, Ordering::SeqCst);
        if p.create == Create::Swallowed {
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from(cut(br#"{"id": "never-made", "name": "x"}"#)))
                .unwrap();
        }
    }
    let mut out = p
        .http
        .request(method, format!("{}{target}", p.upstream))
        .body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let resp = out.send().await.unwrap();
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    let mut bytes = resp.bytes().await.unwrap().to_vec();
    if is_create && status.is_success() {
        bytes = cut(&bytes);
    }
    let mut r = Response::builder().status(status.as_u16());
    for (k, v) in &resp_headers {
        if k != HeaderName::from_static("content-length") && k != "transfer-encoding" {
            r = r.header(k, v);
        }
    }
    r.body(Body::from(bytes)).unwrap()
}

/// What every provider must say when its cut create made nothing: the decode error,
/// still ambiguous, naming the launch and saying a new spawn is safe.
pub fn assert_nothing_created(e: &cloud_atlas::Error, req: &cloud_atlas::ComputeRequest) {
    assert!(e.is_ambiguous(), "{e:?}");
    let m = e.message();
    assert!(
        m.contains("could not decode"),
        "the create error is kept: {m}"
    );
    assert!(m.contains(&req.launch_name()), "names the launch: {m}");
    assert!(m.contains("nothing was created"), "{m}");
}
