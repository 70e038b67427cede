//! Pod logs: `GET /v2/pods/{id}/logs`, server-sent events that never end on their own.
//!
//! Each event carries an `id:` (the event timestamp plus a sequence number) and a JSON
//! `data:` payload `{"ts", "source", "line"}`. SSE framing is parsed by
//! [`eventsource_stream`]. Two reads are offered:
//!
//! - [`LogsApi::recent`]: a bounded read of the last lines (`tail`), which returns after
//!   `tail` lines, or when no line came for an idle gap, or at an overall deadline.
//! - [`LogsApi::follow`]: a stream of lines that keeps going (reconnecting with `since`
//!   after a dropped connection, skipping lines already seen) until the caller drops it
//!   or calls [`LogStopper::stop`].
//!
//! API: <https://docs.runpod.io/api-reference-v2/pods/stream-pod-logs>

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::ratelimit::Rest;
use super::translate;
use crate::error::{Error, ErrorKind, Result};

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogLine {
    /// SSE event id (`{ts}/{sequence}`), used to skip lines already seen.
    pub id: String,
    /// Timestamp (RFC 3339), when given.
    pub ts: Option<String>,
    /// `container` or `system`.
    pub source: Option<String>,
    /// The text.
    pub line: String,
}

/// Which log source to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogSource {
    /// Container stdout/stderr.
    Container,
    /// Host lifecycle logs.
    System,
}

impl LogSource {
    fn as_str(self) -> &'static str {
        match self {
            LogSource::Container => "container",
            LogSource::System => "system",
        }
    }
}

/// What to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogQuery {
    /// Only this source (both when `None`).
    pub source: Option<LogSource>,
    /// Lines of history to send first (RunPod's default 100; at most 5000).
    pub tail: Option<u32>,
    /// Resume from this time (`tail` is then ignored by RunPod).
    pub since: Option<DateTime<Utc>>,
}

impl LogQuery {
    /// The last `n` lines (at most 5000).
    pub fn tail(n: u32) -> LogQuery {
        LogQuery {
            tail: Some(n.min(5000)),
            ..LogQuery::default()
        }
    }
    /// Only `source`.
    pub fn with_source(mut self, source: LogSource) -> LogQuery {
        self.source = Some(source);
        self
    }
    /// From `since` on.
    pub fn with_since(mut self, since: DateTime<Utc>) -> LogQuery {
        self.since = Some(since);
        self
    }
}

/// Bounds of [`LogsApi::recent_with`].
#[derive(Debug, Clone, Copy)]
pub struct RecentBounds {
    /// Stop when no line came for this long (default 2 s).
    pub idle: Duration,
    /// Stop at this overall deadline (default 15 s).
    pub max: Duration,
}

impl Default for RecentBounds {
    fn default() -> RecentBounds {
        RecentBounds {
            idle: Duration::from_secs(2),
            max: Duration::from_secs(15),
        }
    }
}

type EventStream = BoxStream<'static, Option<(String, String)>>;

/// The pod-logs surface.
#[derive(Debug, Clone)]
pub struct LogsApi {
    rest: Rest,
}

impl LogsApi {
    pub(crate) fn new(rest: Rest) -> LogsApi {
        LogsApi { rest }
    }

    async fn open(&self, pod_id: &str, q: &LogQuery, since: Option<&str>) -> Result<EventStream> {
        if pod_id.trim().is_empty() {
            return Err(Error::validation("id", "a pod id is required"));
        }
        let since = since.map(str::to_string).or_else(|| {
            q.since
                .map(|s| s.to_rfc3339_opts(SecondsFormat::Secs, true))
        });
        let rq = self
            .rest
            .api()
            .get(&format!("/v2/pods/{}/logs", enc(pod_id)))
            .query_opt("source", q.source.map(LogSource::as_str))
            .query_opt("tail", if since.is_none() { q.tail } else { None })
            .query_opt("since", since)
            .operation("logs");
        let resp = self.rest.streaming(rq).await?;
        // Each item: Some((id, data)) for an event, None for a broken stream. A blank
        // line is added at the end of the body so an event the server did not close
        // with one (Prism's example does not) is still delivered.
        let tail = futures::stream::once(async { Ok(bytes::Bytes::from_static(b"\n\n")) });
        let events = resp
            .bytes_stream()
            .chain(tail)
            .eventsource()
            .map(|ev| ev.ok().map(|e| (e.id, e.data)));
        Ok(events.boxed())
    }

    /// The last `tail` lines of a pod's logs (bounded by [`RecentBounds::default`]).
    ///
    /// # Errors
    /// `NotFound` when the pod does not exist; other request errors.
    pub async fn recent(&self, pod_id: &str, tail: u32) -> Result<Vec<LogLine>> {
        self.recent_with(pod_id, &LogQuery::tail(tail), RecentBounds::default())
            .await
    }

    /// A bounded read: returns after `query.tail` lines (100 when unset), an idle gap,
    /// the overall deadline, or the end of the stream, whichever comes first.
    ///
    /// # Errors
    /// `NotFound` when the pod does not exist; other request errors.
    pub async fn recent_with(
        &self,
        pod_id: &str,
        query: &LogQuery,
        bounds: RecentBounds,
    ) -> Result<Vec<LogLine>> {
        let limit = query.tail.unwrap_or(100) as usize;
        let deadline = crate::spec::deadline_in(bounds.max);
        let mut events = self.open(pod_id, query, None).await?;
        let mut out = Vec::new();
        while out.len() < limit {
            let wait = bounds
                .idle
                .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, events.next()).await {
                Ok(Some(Some((id, data)))) => {
                    if !data.is_empty() {
                        out.push(translate::log_line(&id, &data));
                    }
                }
                Ok(Some(None)) | Ok(None) | Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Follow a pod's logs until the returned stream is dropped or stopped.
    ///
    /// The first connection is made here, so a missing pod or a bad key fails at once.
    /// A dropped connection is reopened with `since` = the last line's timestamp
    /// (pauses growing from 500 ms to 30 s), and lines already seen are skipped.
    ///
    /// # Errors
    /// `NotFound` when the pod does not exist; other request errors. Later failures
    /// to reconnect that are permanent (pod gone, key revoked) end the stream with an error.
    pub async fn follow(&self, pod_id: &str, query: LogQuery) -> Result<LogFollow> {
        let first = self.open(pod_id, &query, None).await?;
        let cancel = CancellationToken::new();
        let st = FollowState {
            api: self.clone(),
            pod_id: pod_id.to_string(),
            query,
            conn: Some(first),
            last_id: None,
            last_ts: None,
            delay: INITIAL_RECONNECT,
            cancel: cancel.clone(),
            done: false,
        };
        let stream = futures::stream::unfold(st, follow_step).boxed();
        Ok(LogFollow { stream, cancel })
    }
}

const INITIAL_RECONNECT: Duration = Duration::from_millis(500);
const MAX_RECONNECT: Duration = Duration::from_secs(30);

struct FollowState {
    api: LogsApi,
    pod_id: String,
    query: LogQuery,
    conn: Option<EventStream>,
    last_id: Option<String>,
    last_ts: Option<String>,
    delay: Duration,
    cancel: CancellationToken,
    done: bool,
}

async fn follow_step(mut st: FollowState) -> Option<(Result<LogLine>, FollowState)> {
    loop {
        if st.done || st.cancel.is_cancelled() {
            return None;
        }
        let Some(conn) = st.conn.as_mut() else {
            let cancelled = tokio::select! {
                _ = st.cancel.cancelled() => true,
                _ = tokio::time::sleep(st.delay) => false,
            };
            if cancelled {
                return None;
            }
            st.delay = (st.delay * 2).min(MAX_RECONNECT);
            match st
                .api
                .open(&st.pod_id, &st.query, st.last_ts.as_deref())
                .await
            {
                Ok(c) => st.conn = Some(c),
                Err(e) if is_permanent(&e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "log stream reconnect failed; retrying");
                }
            }
            continue;
        };
        let next = tokio::select! {
            _ = st.cancel.cancelled() => return None,
            n = conn.next() => n,
        };
        match next {
            Some(Some((id, data))) => {
                if data.is_empty() {
                    continue;
                }
                if !id.is_empty()
                    && st
                        .last_id
                        .as_deref()
                        .is_some_and(|last| id.as_str() <= last)
                {
                    continue;
                }
                let line = translate::log_line(&id, &data);
                if !id.is_empty() {
                    st.last_id = Some(id);
                }
                if line.ts.is_some() {
                    st.last_ts.clone_from(&line.ts);
                }
                st.delay = INITIAL_RECONNECT;
                return Some((Ok(line), st));
            }
            Some(None) | None => st.conn = None,
        }
    }
}

fn is_permanent(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound
            | ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::Validation
    )
}

/// A followed log: a stream of lines that ends only when stopped or dropped (or on a
/// permanent error).
pub struct LogFollow {
    stream: BoxStream<'static, Result<LogLine>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for LogFollow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFollow")
            .field("stopped", &self.cancel.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl LogFollow {
    /// A handle that stops this stream from anywhere (e.g. a Ctrl-C handler).
    pub fn stopper(&self) -> LogStopper {
        LogStopper(self.cancel.clone())
    }
}

impl Stream for LogFollow {
    type Item = Result<LogLine>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.poll_next_unpin(cx)
    }
}

/// Stops a [`LogFollow`]; the stream then ends.
#[derive(Debug, Clone)]
pub struct LogStopper(CancellationToken);

impl LogStopper {
    /// End the stream (idempotent).
    pub fn stop(&self) {
        self.0.cancel();
    }
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
