//! The dashboard at `/`: three embedded files (no build step, no CDN), and the sign-in
//! routes that turn the admin token into an HttpOnly, SameSite=Strict session cookie.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::access::{client_ip, cookie, session_cookie, SESSION_COOKIE};
use crate::api::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("index.html");
/// Its script.
pub const APP_JS: &str = include_str!("app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("app.css");

fn asset(ct: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// Body of `POST /auth/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    token: String,
}

/// What the sign-in routes answer: the CSRF token for mutations, and the server's switches.
#[derive(Debug, Serialize)]
pub(crate) struct SessionInfo {
    csrf: String,
    allow_destructive: bool,
    default_provider: String,
}

/// `POST /auth/session {"token": …}`: sign in (throttled like every bad token).
pub(crate) async fn sign_in(State(st): State<AppState>, req: Request) -> ApiResult<Response> {
    let ip = client_ip(&req);
    crate::access::check_same_origin(req.headers())?;
    let JsonBody(b) =
        <JsonBody<SignIn> as axum::extract::FromRequest<AppState>>::from_request(req, &st).await?;
    st.access.check_token(ip, &b.token).await?;
    let (sid, csrf) = st.access.open_session();
    let mut r = Json(SessionInfo {
        csrf,
        allow_destructive: st.allow_destructive,
        default_provider: st.default_provider.clone(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(Some(&sid))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /auth/session`: the CSRF token of the cookie's session (for a reloaded page).
pub(crate) async fn current(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionInfo>> {
    let csrf = cookie(&headers, SESSION_COOKIE)
        .and_then(|sid| st.access.session_csrf(sid))
        .ok_or_else(|| ApiError::unauthorized("not signed in"))?;
    Ok(Json(SessionInfo {
        csrf,
        allow_destructive: st.allow_destructive,
        default_provider: st.default_provider.clone(),
    }))
}

/// `DELETE /auth/session`: sign out.
pub(crate) async fn sign_out(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    crate::access::check_same_origin(&headers)?;
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        st.access.close_session(sid);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(None)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}
