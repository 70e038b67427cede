//! The one HTTP layer every provider uses.
//!
//! - One pooled `reqwest` client (rustls) shared by all providers ([`HttpClient::shared`]).
//! - Per-request timeouts; retries with jittered exponential backoff, bounded in count and
//!   total time, on transport errors, 408, 429 and 5xx, honouring `Retry-After`.
//! - Every request declares its [`Idempotency`]; an [`Idempotency::Unsafe`] request (a
//!   create) is replayed only when the connection never opened or the provider declined
//!   it with 429. Any other failure of an unsafe request, a 2xx body that cannot be
//!   decoded included, is marked [`Error::is_ambiguous`] and goes back to the caller.
//! - Redaction of the API key and secret-looking values in URLs, headers and bodies.
//! - A `tracing` span and `metrics` counter + histogram per attempt ([`telemetry`]).

pub mod budget;
pub mod pace;
pub mod redact;
pub mod retry;
pub mod telemetry;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;
use url::Url;

pub use pace::Pacer;
pub use redact::{redact_raw, redact_text, redact_url, ENV_REDACTED, REDACTED};
pub use retry::{parse_retry_after, Idempotency, RetryConfig};

use crate::auth::Secret;
use crate::error::{Error, ErrorKind, Result};

/// Transport knobs shared by every provider.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Default time for one whole attempt, body included.
    pub request_timeout: Duration,
    /// User-Agent header.
    pub user_agent: String,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            user_agent: format!("cloud-atlas/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A pooled HTTP client (cheap to clone).
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    options: Arc<HttpOptions>,
}

impl HttpClient {
    /// The process-wide pooled client with default options.
    pub fn shared() -> HttpClient {
        static SHARED: OnceLock<HttpClient> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                HttpClient::new(HttpOptions::default()).expect("default HTTP client builds")
            })
            .clone()
    }

    /// A client with its own pool and options.
    ///
    /// # Errors
    /// `Transport` when the TLS backend cannot initialise.
    pub fn new(options: HttpOptions) -> Result<HttpClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Transport, "could not build HTTP client").with_source(e)
            })?;
        Ok(HttpClient {
            client,
            options: Arc::new(options),
        })
    }

    /// The options.
    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// The pooled reqwest client, for crate-internal plain requests (readiness probes).
    pub(crate) fn reqwest_client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// How a provider API authenticates.
#[derive(Debug, Clone)]
pub enum ApiAuth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <secret>`.
    Bearer(Secret),
    /// `Authorization: <scheme> <secret>` (e.g. `FlyV1`).
    Scheme(&'static str, Secret),
    /// A named header carrying the secret.
    Header(HeaderName, Secret),
}

impl ApiAuth {
    fn secret(&self) -> Option<&Secret> {
        match self {
            ApiAuth::None => None,
            ApiAuth::Bearer(s) | ApiAuth::Scheme(_, s) | ApiAuth::Header(_, s) => Some(s),
        }
    }
}

/// Turns a non-success response into an [`Error`]: `(status, headers, redacted body)`.
pub type ErrorParser = Arc<dyn Fn(u16, &HeaderMap, &str) -> Error + Send + Sync>;

/// The default error parser: kind from the status, body as message.
pub fn default_parse_error(status: u16, _headers: &HeaderMap, body: &str) -> Error {
    let msg = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| {
                    e.as_str().map(str::to_string).or_else(|| {
                        e.get("message")
                            .and_then(|m| m.as_str())
                            .map(str::to_string)
                    })
                })
                .or_else(|| {
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .or_else(|| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
        })
        .unwrap_or_else(|| {
            let t = body.trim();
            if t.is_empty() {
                format!("HTTP {status}")
            } else {
                t.chars().take(300).collect()
            }
        });
    Error::new(ErrorKind::from_status(status), msg)
}

/// One provider API: base URL, auth, retry policy, pacing and error mapping.
#[derive(Clone)]
pub struct ApiClient {
    http: HttpClient,
    provider: &'static str,
    api: &'static str,
    base: String,
    auth: ApiAuth,
    retry: RetryConfig,
    pacer: Option<Arc<Pacer>>,
    parse_error: ErrorParser,
    extra_headers: HeaderMap,
    /// The auth secret, shared with responses so decode errors can be redacted.
    secret: Option<Arc<Secret>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("provider", &self.provider)
            .field("api", &self.api)
            .field("base", &self.base)
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client for `provider`'s `api` (e.g. `("runpod", "rest")`) at `base_url`.
    ///
    /// # Errors
    /// `Validation` naming `base_url` when it is not an http(s) URL.
    pub fn new(
        http: HttpClient,
        provider: &'static str,
        api: &'static str,
        base_url: &str,
        auth: ApiAuth,
    ) -> Result<ApiClient> {
        let parsed = Url::parse(base_url).map_err(|e| {
            Error::validation("base_url", format!("{base_url:?} is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::validation(
                "base_url",
                format!("{base_url:?} must start with http:// or https://"),
            ));
        }
        Ok(ApiClient {
            http,
            provider,
            api,
            base: base_url.trim_end_matches('/').to_string(),
            secret: auth.secret().cloned().map(Arc::new),
            auth,
            retry: RetryConfig::default(),
            pacer: None,
            parse_error: Arc::new(default_parse_error),
            extra_headers: HeaderMap::new(),
        })
    }

    /// Set the retry policy.
    pub fn with_retry(mut self, retry: RetryConfig) -> ApiClient {
        self.retry = retry;
        self
    }
    /// Pace every request through `pacer`.
    pub fn with_pacer(mut self, pacer: Arc<Pacer>) -> ApiClient {
        self.pacer = Some(pacer);
        self
    }
    /// Map error responses with `f` (the provider's `parse_error`).
    pub fn with_error_parser(
        mut self,
        f: impl Fn(u16, &HeaderMap, &str) -> Error + Send + Sync + 'static,
    ) -> ApiClient {
        self.parse_error = Arc::new(f);
        self
    }
    /// Send this header on every request.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> ApiClient {
        self.extra_headers.insert(name, value);
        self
    }
    /// The base URL (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }
    /// The provider name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }
    /// The retry policy.
    pub fn retry_config(&self) -> RetryConfig {
        self.retry
    }
    /// The pacer, if any.
    pub fn pacer(&self) -> Option<&Arc<Pacer>> {
        self.pacer.as_ref()
    }

    /// Start a request: `path` is appended to the base URL (`/v2/pods`).
    pub fn request(&self, method: Method, path: &str) -> ApiRequest<'_> {
        ApiRequest {
            api: self,
            idempotency: Idempotency::for_method(&method),
            method,
            path: path.to_string(),
            query: Vec::new(),
            body: None,
            operation: "request",
            timeout: None,
            headers: HeaderMap::new(),
        }
    }
    /// `GET path`.
    pub fn get(&self, path: &str) -> ApiRequest<'_> {
        self.request(Method::GET, path)
    }
    /// `POST path` (Unsafe unless changed).
    pub fn post(&self, path: &str) -> ApiRequest<'_> {
        self.request(Method::POST, path)
    }
    /// `PUT path`.
    pub fn put(&self, path: &str) -> ApiRequest<'_> {
        self.request(Method::PUT, path)
    }
    /// `PATCH path`.
    pub fn patch(&self, path: &str) -> ApiRequest<'_> {
        self.request(Method::PATCH, path)
    }
    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> ApiRequest<'_> {
        self.request(Method::DELETE, path)
    }

    /// Redact this client's secret and secret-looking fields from `text`.
    pub fn redact(&self, text: &str) -> String {
        match self.auth.secret() {
            Some(s) => redact_text(text, &[s.expose()]),
            None => redact_text(text, &[]),
        }
    }

    fn redactor(&self, query: &[(String, String)]) -> Redactor {
        Redactor {
            secret: self.secret.clone(),
            query: query
                .iter()
                .filter(|(k, _)| redact::is_secret_name(k))
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }
}

/// A request being built; finish with [`send`](Self::send), [`json`](Self::json) or [`send_streaming`](Self::send_streaming).
#[derive(Debug)]
pub struct ApiRequest<'a> {
    api: &'a ApiClient,
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<serde_json::Value>,
    idempotency: Idempotency,
    operation: &'static str,
    timeout: Option<Duration>,
    headers: HeaderMap,
}

/// The secrets one request carries (the client's key, secret-looking query values),
/// for redacting what the provider sends back.
#[derive(Clone, Default)]
struct Redactor {
    secret: Option<Arc<Secret>>,
    query: Vec<String>,
}

impl Redactor {
    fn redact(&self, text: &str) -> String {
        let mut known: Vec<&str> = Vec::with_capacity(1 + self.query.len());
        if let Some(s) = &self.secret {
            known.push(s.expose());
        }
        known.extend(self.query.iter().map(String::as_str));
        redact_text(text, &known)
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor")
    }
}

/// A response whose status was a success, with its body read.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    redactor: Redactor,
    /// The request was [`Idempotency::Unsafe`]: a body that cannot be decoded leaves
    /// its effect unknown, so decode errors are marked [`Error::is_ambiguous`].
    ambiguous_on_decode: bool,
}

impl ApiResponse {
    /// Decode the body as JSON; a failure is a `Provider` error naming the JSON path,
    /// with the body (redacted) as `raw`. For an [`Idempotency::Unsafe`] request (a
    /// create) the failure is also [ambiguous](Error::is_ambiguous): the provider
    /// answered 2xx, so the create may have happened, and the caller reconciles.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        // Fast path without path tracking; decode again only to name the failing path.
        if let Ok(v) = serde_json::from_slice(&self.body) {
            return Ok(v);
        }
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let text = String::from_utf8_lossy(&self.body);
            // serde quotes the offending value, which may be anything the provider sent.
            let why = self.redactor.redact(&e.inner().to_string());
            let err = Error::new(
                ErrorKind::Provider,
                format!("could not decode the response at `{path}`: {why}"),
            )
            .with_status(self.status)
            .with_raw(self.redactor.redact(&text));
            if self.ambiguous_on_decode {
                err.with_ambiguous().with_message_suffix(
                    "; the provider accepted the request, so it may have taken effect",
                )
            } else {
                err
            }
        })
    }
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

enum Attempt {
    /// A success head; the body is not read yet.
    Head(reqwest::Response),
    /// A success with its whole body.
    Full(ApiResponse),
    Retry {
        err: Error,
        wait: Option<Duration>,
    },
    Fail(Error),
}

/// The redacted URL, formatted only when a span or event is actually recorded.
struct ShownUrl<'a>(&'a Url);

impl std::fmt::Display for ShownUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.0))
    }
}

impl<'a> ApiRequest<'a> {
    /// Add a query parameter.
    pub fn query(mut self, k: impl Into<String>, v: impl ToString) -> Self {
        self.query.push((k.into(), v.to_string()));
        self
    }
    /// Add a query parameter when `v` is `Some`.
    pub fn query_opt(self, k: impl Into<String>, v: Option<impl ToString>) -> Self {
        match v {
            Some(v) => self.query(k, v),
            None => self,
        }
    }
    /// Send a JSON body.
    pub fn json_body(mut self, body: &impl Serialize) -> Result<Self> {
        self.body = Some(serde_json::to_value(body)?);
        Ok(self)
    }
    /// Send this JSON value as the body.
    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
    /// Declare whether this request may be replayed.
    pub fn idempotency(mut self, i: Idempotency) -> Self {
        self.idempotency = i;
        self
    }
    /// Name the operation (`spawn`, `get`, …) for errors and spans.
    pub fn operation(mut self, op: &'static str) -> Self {
        self.operation = op;
        self
    }
    /// Time for one whole attempt (default from [`HttpOptions::request_timeout`]).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// Add a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    fn url(&self) -> Result<Url> {
        let mut url = Url::parse(&format!("{}{}", self.api.base, self.path)).map_err(|e| {
            Error::validation("base_url", format!("bad URL for {}: {e}", self.path))
        })?;
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(self.query.iter());
        }
        Ok(url)
    }

    fn context(&self, e: Error) -> Error {
        e.with_provider(self.api.provider)
            .with_operation(self.operation)
    }

    /// Send with retries and read the whole body; non-2xx becomes an [`Error`].
    ///
    /// The body is read inside the retry loop: a replayable request whose body fails
    /// or times out is retried; for an [`Idempotency::Unsafe`] one the error is
    /// ambiguous (the provider answered, so the create happened).
    pub async fn send(self) -> Result<ApiResponse> {
        let timeout = self
            .timeout
            .unwrap_or(self.api.http.options.request_timeout);
        match self.send_inner(Some(timeout), true).await? {
            Attempt::Full(r) => Ok(r),
            Attempt::Head(resp) => match self.read_body(&resp.url().clone(), resp).await {
                Attempt::Full(r) => Ok(r),
                Attempt::Retry { err, .. } | Attempt::Fail(err) => Err(self.context(err)),
                Attempt::Head(_) => Err(self.context(Error::new(
                    ErrorKind::Unknown,
                    "the response body was not read",
                ))),
            },
            Attempt::Retry { err, .. } | Attempt::Fail(err) => Err(self.context(err)),
        }
    }

    /// Send with retries and decode the JSON body into `T`.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T> {
        let provider = self.api.provider;
        let op = self.operation;
        self.send()
            .await?
            .json()
            .map_err(|e| e.with_provider(provider).with_operation(op))
    }

    /// Send with retries up to the response head; the body is left to stream
    /// (server-sent events, logs). The head must arrive within the request timeout
    /// ([`timeout`](Self::timeout) or [`HttpOptions::request_timeout`]); no timeout is
    /// applied to the body.
    pub async fn send_streaming(self) -> Result<reqwest::Response> {
        match self.send_inner(None, false).await? {
            Attempt::Head(r) => Ok(r),
            Attempt::Full(_) => Err(self.context(Error::new(
                ErrorKind::Unknown,
                "the response body was read although streaming was asked for",
            ))),
            Attempt::Retry { err, .. } | Attempt::Fail(err) => Err(self.context(err)),
        }
    }

    /// The retry loop. Returns `Ok(Attempt::Head)` or `Ok(Attempt::Full)` (when
    /// `buffered`); every failure comes back as `Err` with context.
    async fn send_inner(&self, timeout: Option<Duration>, buffered: bool) -> Result<Attempt> {
        let url = self.url()?;
        let span = tracing::info_span!(
            "atlas.http",
            otel.name = %format_args!("{} {}", self.method, self.operation),
            provider = self.api.provider,
            api = self.api.api,
            http.request.method = %self.method,
            url.full = %ShownUrl(&url),
            http.response.status_code = tracing::field::Empty,
            http.request.resend_count = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        async move {
            let started = Instant::now();
            let mut backoff = self.api.retry.backoff();
            let mut retries = 0usize;
            let mut last: Option<Error> = None;
            loop {
                if let Some(p) = &self.api.pacer {
                    p.acquire().await;
                }
                if budget::remaining() == Some(Duration::ZERO) {
                    let e = last.take().unwrap_or_else(|| {
                        Error::new(ErrorKind::Timeout, "no time was left to send the request")
                    });
                    return Err(self.context(out_of_budget(e, retries)));
                }
                let attempt = match self.attempt(&url, timeout.map(budget::cap)).await {
                    Attempt::Head(resp) if buffered => self.read_body(&url, resp).await,
                    other => other,
                };
                let (err, wait) = match attempt {
                    done @ (Attempt::Head(_) | Attempt::Full(_)) => {
                        if retries > 0 {
                            tracing::Span::current().record("http.request.resend_count", retries);
                        }
                        return Ok(done);
                    }
                    Attempt::Fail(e) => {
                        tracing::Span::current().record("error.type", e.kind().as_str());
                        return Err(self.context(e));
                    }
                    Attempt::Retry { err, wait } => (err, wait),
                };
                let Some(next) = backoff.next() else {
                    tracing::Span::current().record("error.type", err.kind().as_str());
                    return Err(
                        self.context(err.with_message_suffix(&format!("after {retries} retries")))
                    );
                };
                let wait = wait.unwrap_or(next);
                if budget::remaining().is_some_and(|left| wait >= left) {
                    tracing::Span::current().record("error.type", err.kind().as_str());
                    return Err(self.context(out_of_budget(err, retries)));
                }
                let elapsed = started.elapsed();
                if elapsed.saturating_add(wait) > self.api.retry.retry_timeout {
                    tracing::Span::current().record("error.type", err.kind().as_str());
                    return Err(self.context(err.with_message_suffix(&format!(
                        "after {retries} retries in {:.1}s (retry budget {}s)",
                        elapsed.as_secs_f64(),
                        self.api.retry.retry_timeout.as_secs_f64()
                    ))));
                }
                if let (Some(p), Some(ra)) = (&self.api.pacer, err.retry_after()) {
                    p.hold_for(ra).await;
                }
                retries += 1;
                tracing::info!(
                    target: RETRY_TARGET,
                    "{} {}: {}; retrying in {:.1}s (retry {retries})",
                    self.api.provider,
                    self.operation,
                    err.message(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                last = Some(err);
            }
        }
        .instrument(span)
        .await
    }

    /// Read a success response's whole body (within the attempt's timeout).
    async fn read_body(&self, url: &Url, mut resp: reqwest::Response) -> Attempt {
        let status = resp.status().as_u16();
        let headers = std::mem::take(resp.headers_mut());
        match resp.bytes().await {
            Ok(body) => Attempt::Full(ApiResponse {
                status,
                headers,
                body,
                redactor: self.api.redactor(&self.query),
                ambiguous_on_decode: !self.idempotency.replayable(),
            }),
            Err(e) => {
                let timed_out = e.is_timeout();
                let kind = if timed_out {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Transport
                };
                let err = Error::new(
                    kind,
                    format!(
                        "reading the response body from {} failed{}",
                        host_of(url),
                        if timed_out { " (timed out)" } else { "" }
                    ),
                )
                .with_status(status)
                .with_source(strip_url(e));
                if self.idempotency.replayable() {
                    Attempt::Retry { err, wait: None }
                } else {
                    Attempt::Fail(err.with_ambiguous().with_message_suffix(
                        "; the provider accepted the request, so it may have taken effect",
                    ))
                }
            }
        }
    }

    async fn attempt(&self, url: &Url, timeout: Option<Duration>) -> Attempt {
        let mut rb = self
            .api
            .http
            .client
            .request(self.method.clone(), url.clone());
        if !self.api.extra_headers.is_empty() {
            rb = rb.headers(self.api.extra_headers.clone());
        }
        if !self.headers.is_empty() {
            rb = rb.headers(self.headers.clone());
        }
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        rb = match &self.api.auth {
            ApiAuth::None => rb,
            ApiAuth::Bearer(s) => rb.bearer_auth(s.expose()),
            ApiAuth::Scheme(scheme, s) => rb.header(
                reqwest::header::AUTHORIZATION,
                format!("{scheme} {}", s.expose()),
            ),
            ApiAuth::Header(name, s) => rb.header(name.clone(), s.expose()),
        };
        if let Some(b) = &self.body {
            rb = rb.json(b);
        }
        let t0 = Instant::now();
        let method = &self.method;
        let sent =
            match timeout {
                Some(_) => rb.send().await,
                // Streaming: reqwest's timeout would cut the body, so bound only the head.
                None => {
                    let head = budget::cap(
                        self.timeout
                            .unwrap_or(self.api.http.options.request_timeout),
                    );
                    match tokio::time::timeout(head, rb.send()).await {
                        Ok(r) => r,
                        Err(_) => {
                            telemetry::record(
                                self.api.provider,
                                self.api.api,
                                method,
                                None,
                                t0.elapsed(),
                            );
                            let err = Error::new(
                                ErrorKind::Timeout,
                                format!(
                                    "timed out after {:.1}s waiting for the response head from {}",
                                    head.as_secs_f64(),
                                    host_of(url)
                                ),
                            );
                            return if self.idempotency.replayable() {
                                Attempt::Retry { err, wait: None }
                            } else {
                                Attempt::Fail(err.with_ambiguous().with_message_suffix(
                                    "; the request may have reached the provider",
                                ))
                            };
                        }
                    }
                }
            };
        match sent {
            Err(e) => {
                telemetry::record(self.api.provider, self.api.api, method, None, t0.elapsed());
                let connect = e.is_connect();
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Transport
                };
                let what = if connect {
                    "could not connect".to_string()
                } else if e.is_timeout() {
                    "timed out waiting for the response".to_string()
                } else {
                    "the connection failed".to_string()
                };
                let mut err = Error::new(kind, format!("{what} to {}", host_of(url)))
                    .with_source(strip_url(e));
                if connect || self.idempotency.replayable() {
                    Attempt::Retry { err, wait: None }
                } else {
                    err = err
                        .with_ambiguous()
                        .with_message_suffix("; the request may have reached the provider");
                    Attempt::Fail(err)
                }
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                telemetry::record(
                    self.api.provider,
                    self.api.api,
                    method,
                    Some(status),
                    t0.elapsed(),
                );
                tracing::Span::current().record("http.response.status_code", status);
                if resp.status().is_success() {
                    return Attempt::Head(resp);
                }
                let headers = resp.headers().clone();
                let retry_after = headers
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                let text = resp.text().await.unwrap_or_default();
                let redacted = self.api.redactor(&self.query).redact(&text);
                let mut err = (self.api.parse_error)(status, &headers, &redacted)
                    .with_status(status)
                    .with_raw(redacted);
                if let Some(ra) = retry_after {
                    err = err.with_retry_after(ra);
                }
                let retryable_kind = !matches!(
                    err.kind(),
                    ErrorKind::Capacity | ErrorKind::Forbidden | ErrorKind::Validation
                );
                // A 429 is a refusal (nothing was done), so even a create may be sent again.
                if retry::retryable_status(status)
                    && retryable_kind
                    && (self.idempotency.replayable() || retry::declined(status))
                {
                    Attempt::Retry {
                        err,
                        wait: retry_after,
                    }
                } else {
                    if status >= 500 && !self.idempotency.replayable() {
                        err = err.with_ambiguous();
                    }
                    Attempt::Fail(err)
                }
            }
        }
    }
}

/// The `tracing` target of the one-line notice each retry emits (at `INFO`): what
/// failed and when the next attempt goes. The CLI shows these on a terminal or with `-v`.
pub const RETRY_TARGET: &str = "atlas::retry";

/// `err`, its message saying the call's time budget ran out.
fn out_of_budget(err: Error, retries: usize) -> Error {
    err.with_kind(ErrorKind::Timeout).with_message_suffix(&format!(
        "; the call's time budget ran out after {retries} retries (raise it with --call-timeout or ATLAS_TIMEOUT)"
    ))
}

fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "the provider".to_string(),
    }
}

/// reqwest errors print their URL, which may carry secrets; drop it.
fn strip_url(e: reqwest::Error) -> reqwest::Error {
    e.without_url()
}

impl Error {
    /// Append to the message.
    pub(crate) fn with_message_suffix(self, suffix: &str) -> Error {
        let sep = if suffix.starts_with(';') { "" } else { " " };
        let m = format!("{}{sep}{suffix}", self.message());
        self.with_message(m)
    }
}
