//! The logs HTTP client.

use std::sync::Arc;
use std::time::Duration;

use super::{parse_page, LogPage, LogQuery};
use crate::auth::Secret;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::fly::apps::require_app_name;
use crate::fly::token_kind::FlyAuth;
use crate::fly::tokens::AppTokens;
use crate::http::{ApiAuth, ApiClient, HttpClient, RetryConfig};

/// Where Fly's logs API lives.
pub const DEFAULT_LOGS_URL: &str = "https://api.fly.io";
/// Env var overriding [`DEFAULT_LOGS_URL`].
pub const LOGS_URL_ENV: &str = "ATLAS_FLY_LOGS_URL";

/// Builds a [`LogsClient`].
#[derive(Debug)]
pub struct LogsClientBuilder {
    base_url: String,
    http: Option<HttpClient>,
    retry: RetryConfig,
    timeout: Duration,
    tokens: Option<Arc<dyn AppTokens>>,
}

impl LogsClientBuilder {
    /// Defaults: `https://api.fly.io`, the shared HTTP client, default retries.
    pub fn new() -> LogsClientBuilder {
        LogsClientBuilder {
            base_url: DEFAULT_LOGS_URL.to_string(),
            http: None,
            retry: RetryConfig::default(),
            timeout: Duration::from_secs(30),
            tokens: None,
        }
    }

    /// The base URL from `ATLAS_FLY_LOGS_URL` in `config`'s environment, if set.
    pub fn from_config(config: &Config) -> LogsClientBuilder {
        let b = LogsClientBuilder::new();
        match config.env(LOGS_URL_ENV).filter(|s| !s.trim().is_empty()) {
            Some(u) => b.with_base_url(u.trim()),
            None => b,
        }
    }

    /// Talk to this server instead of `https://api.fly.io`.
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }
    /// Use this HTTP client.
    pub fn with_http(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }
    /// Retry policy for each fetch (transport errors, 429, 5xx).
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }
    /// Time for one fetch.
    pub fn with_timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Where tokens come from (a [`TokenResolver`](crate::fly::tokens::TokenResolver)).
    pub fn with_tokens(mut self, tokens: Arc<dyn AppTokens>) -> Self {
        self.tokens = Some(tokens);
        self
    }
    /// One fixed token for every app.
    pub fn with_token(self, token: Secret) -> Self {
        self.with_tokens(Arc::new(crate::fly::tokens::StaticToken(token)))
    }

    /// The client.
    ///
    /// # Errors
    /// `Validation` when no token source was given or the base URL is not http(s).
    pub fn build(self) -> Result<LogsClient> {
        let tokens = self.tokens.ok_or_else(|| {
            Error::validation(
                "tokens",
                "the logs client needs a token source: call with_tokens() or with_token()",
            )
        })?;
        // Validate the URL once, now.
        ApiClient::new(
            HttpClient::shared(),
            "fly",
            "logs",
            &self.base_url,
            ApiAuth::None,
        )?;
        Ok(LogsClient {
            base_url: self.base_url.trim_end_matches('/').to_string(),
            http: self.http.unwrap_or_else(HttpClient::shared),
            retry: self.retry,
            timeout: self.timeout,
            tokens,
        })
    }
}

impl Default for LogsClientBuilder {
    fn default() -> Self {
        LogsClientBuilder::new()
    }
}

/// Fetches pages of an app's logs.
#[derive(Debug, Clone)]
pub struct LogsClient {
    base_url: String,
    http: HttpClient,
    retry: RetryConfig,
    timeout: Duration,
    tokens: Arc<dyn AppTokens>,
}

impl LogsClient {
    /// A builder.
    pub fn builder() -> LogsClientBuilder {
        LogsClientBuilder::new()
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Fetch one page with the app's current token; a 401 is returned as is.
    ///
    /// # Errors
    /// `Validation` for a bad app name; `Unauthorized` on 401, `NotFound` for an
    /// unknown app, `RateLimited`/`Provider`/`Transport` after retries.
    pub async fn fetch(&self, query: &LogQuery) -> Result<LogPage> {
        require_app_name("app", &query.app)?;
        let token = self.tokens.token(&query.app).await?;
        self.fetch_with_token(query, &token).await
    }

    /// Fetch one page; on a 401, refresh the app's token once and try once more.
    ///
    /// # Errors
    /// As [`fetch`](Self::fetch); a second 401 is `Unauthorized`.
    pub async fn fetch_with_retry(&self, query: &LogQuery) -> Result<LogPage> {
        match self.fetch(query).await {
            Err(e) if e.kind() == ErrorKind::Unauthorized && e.status() == Some(401) => {
                tracing::info!(fly.app = %query.app, "logs API said 401; refreshing the token once");
                let token = self.tokens.refresh(&query.app).await?;
                self.fetch_with_token(query, &token).await
            }
            other => other,
        }
    }

    async fn fetch_with_token(&self, query: &LogQuery, token: &Secret) -> Result<LogPage> {
        let auth = FlyAuth::parse(token.expose()).ok_or_else(|| {
            Error::new(ErrorKind::Unauthorized, "the Fly token is empty").with_provider("fly")
        })?;
        let api = ApiClient::new(
            self.http.clone(),
            "fly",
            "logs",
            &self.base_url,
            ApiAuth::Scheme(auth.scheme, auth.credential.clone()),
        )?
        .with_retry(self.retry);
        let path = format!("/api/v1/apps/{}/logs", query.app);
        let span = tracing::info_span!(
            "atlas.fly.logs.fetch",
            fly.app = %query.app,
            http.response.status_code = tracing::field::Empty,
            fly.logs.count = tracing::field::Empty,
        );
        let resp = api
            .get(&path)
            .query("next_token", query.next_token.as_deref().unwrap_or(""))
            .query_opt("region", query.region.as_deref())
            .query_opt("instance", query.instance.as_deref())
            .operation("logs")
            .timeout(self.timeout)
            .send();
        let resp = tracing::Instrument::instrument(resp, span.clone()).await;
        match resp {
            Ok(r) => {
                let page = parse_page(&query.app, &r.text());
                span.record("http.response.status_code", r.status);
                span.record("fly.logs.count", page.entries.len());
                crate::fly::telemetry::log_fetch(&query.app, Some(r.status), page.entries.len());
                if page.skipped > 0 {
                    tracing::debug!(parent: &span, skipped = page.skipped, "skipped malformed log entries");
                }
                Ok(page)
            }
            Err(e) => {
                if let Some(s) = e.status() {
                    span.record("http.response.status_code", s);
                }
                crate::fly::telemetry::log_fetch(&query.app, e.status(), 0);
                Err(e)
            }
        }
    }
}
