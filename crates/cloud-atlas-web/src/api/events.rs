//! The `GET /v1/events` handler: a [`Hub`](crate::events::Hub) cursor as server-sent events.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::events::{EventData, Filter};
use crate::state::AppState;

/// Interval of keep-alive comments on an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this session's events.
    pub session: Option<String>,
    /// Only this user's sessions' events.
    pub user: Option<String>,
    /// Resume after this id (for clients that cannot set `Last-Event-ID`; the header wins).
    pub last_event_id: Option<String>,
}

/// Server-sent events of every session (or one session's, or one user's).
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "A `text/event-stream`; each event's `data` is an EventData object", content_type = "text/event-stream", body = EventData),
        (status = 401, description = "No or wrong admin token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn stream(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    let header_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let last = header_id.or(q.last_event_id).filter(|s| !s.is_empty());
    for (field, v) in [("session", &q.session), ("user", &q.user)] {
        if v.as_deref().is_some_and(|v| v.len() > 256) {
            return Err(ApiError::validation(
                field,
                format!("{field}: at most 256 characters"),
            ));
        }
    }
    let filter = Filter {
        session: q.session,
        user: q.user,
    };
    let cursor = st.hub.subscribe(last.as_deref(), filter);
    let gauge = SubscriberGauge::new();
    // Frames are built once per event and shared by every subscriber (a reference count,
    // no copy); a comment line every 15 s keeps idle connections open through proxies.
    let tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let s = futures::stream::unfold((cursor, gauge, tick), |(mut c, g, mut tick)| async move {
        let frame = tokio::select! {
            f = c.next() => f?,
            _ = tick.tick() => Bytes::from_static(b":\n\n"),
        };
        Some((Ok::<_, std::convert::Infallible>(frame), (c, g, tick)))
    });
    let mut r = Response::new(Body::from_stream(s));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}

/// Counts open streams in `atlas_web_sse_subscribers`.
struct SubscriberGauge;

static SUBSCRIBERS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

impl SubscriberGauge {
    fn new() -> SubscriberGauge {
        let n = SUBSCRIBERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        metrics::gauge!("atlas_web_sse_subscribers").set(n as f64);
        SubscriberGauge
    }
}

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        let n = SUBSCRIBERS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) - 1;
        metrics::gauge!("atlas_web_sse_subscribers").set(n as f64);
    }
}
