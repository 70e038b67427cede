//! The `GET /v1/events` handler: a [`Hub`](crate::events::Hub) cursor as server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::events::{EventData, Filter};
use crate::state::AppState;

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
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
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
    let s = futures::stream::unfold((cursor, gauge), |(mut c, g)| async move {
        c.next().await.map(|e| (Ok(e), (c, g)))
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
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
