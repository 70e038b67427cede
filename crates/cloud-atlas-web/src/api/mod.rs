//! The REST API under `/v1`, its OpenAPI document (generated from these handlers, so it
//! cannot drift), and the request plumbing every handler shares: authentication, strict
//! JSON bodies and query strings whose errors name the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::Modify;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub(crate) mod catalog;
pub(crate) mod events;
pub(crate) mod sessions;
pub(crate) mod spend;

/// A value's serde form as text (enums serialize as strings).
pub(crate) fn text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Largest JSON body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "cloud-atlas control plane",
        description = "Tracked per-user GPU sessions (idle TTL, max runtime, spend caps) across providers, their events, the GPU catalog and spend. Every route needs `Authorization: Bearer <admin token>` (or the dashboard's session cookie; then mutations need `X-CSRF-Token`). Errors are one JSON body: `{kind, message, field}`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "sessions", description = "Tracked sessions"),
        (name = "catalog", description = "Providers and GPU catalog"),
        (name = "spend", description = "Spend per user and in total"),
        (name = "events", description = "Server-sent events"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (ATLAS_ADMIN_TOKEN or the token file)",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::access::SESSION_COOKIE,
                "Dashboard session (POST /auth/session); mutations also need X-CSRF-Token",
            ))),
        );
    }
}

/// The `/v1` routes (state still to be given) and their OpenAPI document.
pub(crate) fn router() -> (axum::Router<AppState>, OpenApi) {
    let (r, mut doc) = OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(sessions::create, sessions::list))
        .routes(routes!(sessions::get))
        .routes(routes!(sessions::touch))
        .routes(routes!(sessions::stop))
        .routes(routes!(catalog::providers))
        .routes(routes!(catalog::gpus))
        .routes(routes!(spend::spend))
        .routes(routes!(events::stream))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/v1")]);
    (r, doc)
}

/// Authenticate every `/v1` request; the [`Principal`] goes into the request extensions.
pub(crate) async fn require_auth(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let client = crate::access::client_ip(&req);
    let (method, headers) = (req.method().clone(), req.headers().clone());
    match st.access.authenticate(&method, &headers, client).await {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The principal of an authenticated request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Caller> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::unauthorized("not authenticated"))
    }
}

/// The backticked name in a serde message (`unknown field `x``, `missing field `user``).
fn backticked(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// A serde error as a 400 naming the field (its path, or the field in the message).
fn decode_error(path: &str, inner: &str, what: &str) -> ApiError {
    let field = if path.is_empty() || path == "." {
        backticked(inner).map(str::to_string)
    } else {
        Some(
            path.split(['[', '.'])
                .next()
                .unwrap_or(path)
                .trim_matches('?')
                .to_string(),
        )
    };
    let inner = inner.split(" at line ").next().unwrap_or(inner);
    match field {
        Some(f) => ApiError::validation(&f, format!("{f}: {inner}")),
        None => ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation",
            format!("{what} is not valid: {inner}"),
        ),
    }
}

/// A JSON body: `Content-Type: application/json`, at most [`MAX_BODY_BYTES`], unknown
/// fields refused (the types say `deny_unknown_fields`), errors naming the field.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<JsonBody<T>> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes or could not be read"),
            )
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => Ok(JsonBody(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "validation",
                        format!("the body is not valid JSON: {inner}"),
                    ));
                }
                Err(decode_error(&path, &inner.to_string(), "the body"))
            }
        }
    }
}

/// A query string decoded strictly (unknown parameters refused, errors naming them).
#[derive(Debug)]
pub(crate) struct StrictQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<StrictQuery<T>> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded_deserializer(q);
        match de {
            Ok(v) => Ok(StrictQuery(v)),
            Err(m) => Err(decode_error("", &m, "the query string")),
        }
    }
}

/// Decode a query string through axum's own decoder (serde_urlencoded underneath).
fn serde_urlencoded_deserializer<T: DeserializeOwned>(q: &str) -> Result<T, String> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|_| "the query string is not valid".to_string())?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| e.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_fields() {
        let e = decode_error(
            "",
            "unknown field `colour`, expected one of `user`",
            "the body",
        );
        assert_eq!(e.body.field.as_deref(), Some("colour"));
        let e = decode_error("gpu_count", "invalid type: string \"x\", expected u32", "b");
        assert_eq!(e.body.field.as_deref(), Some("gpu_count"));
        assert!(e.body.message.starts_with("gpu_count: "));
        let e = decode_error("env.HF", "invalid type", "b");
        assert_eq!(e.body.field.as_deref(), Some("env"));
    }
}
