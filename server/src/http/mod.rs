//! HTTP: the router and what every route shares — CORS, the access log, the request timeout,
//! security headers, JSON errors. The routes live in [`api`] (REST, bearer token checked before
//! any body is read), [`dev`] (dev-only tokens, faults, received audio) and [`static_files`]
//! (the demo and the package, with the CSP); [`listener`] caps connections and sets keepalive.

pub mod api;
pub mod dev;
pub mod listener;
pub mod static_files;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::log::{log, Level};
use crate::store::{DbError, StoreError};
use crate::AppState;

pub use static_files::csp;

/// Builds the application router.
pub fn router(st: Arc<AppState>) -> Router {
    let cfg = &st.config;
    let api = Router::new()
        .route("/api/v1/interviews/{id}", get(api::get_interview))
        .route(
            "/api/v1/interviews/{id}/messages",
            post(api::post_message)
                .layer(DefaultBodyLimit::max(cfg.limits.max_message_body_bytes))
                .layer(declared_limit(cfg.limits.max_message_body_bytes)),
        )
        .route(
            "/api/v1/interviews/{id}/audio",
            post(api::post_audio)
                .layer(DefaultBodyLimit::max(api::MAX_AUDIO_UPLOAD))
                .layer(declared_limit(api::MAX_AUDIO_UPLOAD)),
        )
        // After routing, before the handler and its body extractor: no token, no body read.
        .route_layer(axum::middleware::from_fn_with_state(
            st.clone(),
            api::require_bearer,
        ));
    let mut r = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(api::metrics))
        .route("/demo-config.json", get(static_files::demo_config))
        .route(
            "/api/v1/interviews/{id}/realtime/connect",
            get(crate::ws::connect),
        )
        .merge(api);
    if cfg.relay.simulated_openai_key.is_some() {
        r = r.route("/v1/realtime", get(crate::ws::openai_compat::realtime));
    }
    if cfg.dev {
        let mut d = Router::new()
            .route("/dev/token", post(dev::token))
            .route("/dev/interviews/{id}/received", get(dev::received));
        if cfg.faults {
            d = d
                .route("/dev/faults", post(dev::faults))
                .route("/dev/upstream/faults", post(crate::ws::openai_compat::arm));
        }
        d = d.route(
            "/dev/upstream/sessions",
            get(crate::ws::openai_compat::sessions),
        );
        r = r.merge(
            d.layer(DefaultBodyLimit::max(dev::MAX_DEV_BODY))
                .layer(declared_limit(dev::MAX_DEV_BODY))
                .route_layer(axum::middleware::from_fn(dev::require_json)),
        );
    }
    let timeout = Duration::from_millis(cfg.limits.http_request_timeout_ms);
    let r = static_files::serve(r, cfg)
        .layer(axum::middleware::map_response_with_state(
            static_files::SecurityHeaders::new(cfg),
            static_files::security_headers,
        ))
        .layer(axum::middleware::from_fn(access_log))
        .layer(RequestBodyTimeoutLayer::new(timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    let r = match cors_layer(cfg.dev, cfg.cors_allowed_origins.as_deref()) {
        Some(c) => r.layer(c),
        None => r,
    };
    r.with_state(st)
}

/// A layer refusing (413, body unread) a request whose declared `Content-Length` exceeds `max`;
/// [`DefaultBodyLimit`] still bounds bodies without a declared length.
fn declared_limit(
    max: usize,
) -> axum::middleware::FromFnLayer<
    impl Fn(axum::extract::Request, axum::middleware::Next) -> BoxedResponse + Clone,
    (),
    (axum::extract::Request,),
> {
    axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            Box::pin(async move {
                if declared.is_some_and(|n| n > max as u64) {
                    return ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the body is over the {max} bytes this route accepts"),
                    )
                    .into_response();
                }
                next.run(req).await
            }) as BoxedResponse
        },
    )
}

/// A boxed response future (the type of [`declared_limit`]'s middleware).
type BoxedResponse = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// Whether `origin` is a page served from this machine (`http://127.0.0.1:*`, `localhost`, `[::1]`).
pub fn is_loopback_origin(origin: &[u8]) -> bool {
    let Some(rest) = origin.strip_prefix(b"http://") else {
        return false;
    };
    let host_end = if rest.starts_with(b"[") {
        rest.iter().position(|&b| b == b']').map(|p| p + 1)
    } else {
        Some(rest.iter().position(|&b| b == b':').unwrap_or(rest.len()))
    };
    let Some(end) = host_end else { return false };
    let (host, port) = rest.split_at(end);
    let port_ok = port.is_empty()
        || (port.len() > 1 && port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit));
    port_ok && matches!(host, b"127.0.0.1" | b"localhost" | b"[::1]")
}

/// CORS: the allow-list when CORS_ALLOWED_ORIGINS is set; in dev without a list, pages served
/// from this machine (loopback origins) only — never any origin; none (same origin) in
/// production without a list.
fn cors_layer(dev: bool, origins: Option<&[String]>) -> Option<CorsLayer> {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    match origins {
        Some(list) => {
            let vals: Vec<HeaderValue> = list
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect();
            Some(base.allow_origin(AllowOrigin::list(vals)))
        }
        None if dev => Some(base.allow_origin(AllowOrigin::predicate(|o, _| {
            is_loopback_origin(o.as_bytes())
        }))),
        None => None,
    }
}

/// Logs API and dev requests: method, path (never the query string: it may hold a token),
/// status and duration. Health checks and static files are not logged.
async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_string();
    let logged = path.starts_with("/api/") || path.starts_with("/dev/");
    let method = req.method().to_string();
    let t0 = std::time::Instant::now();
    let res = next.run(req).await;
    if logged {
        log(
            Level::Info,
            "http",
            &[
                ("method", method.into()),
                ("path", path.chars().take(256).collect::<String>().into()),
                ("status", res.status().as_u16().into()),
                ("ms", (t0.elapsed().as_millis() as u64).into()),
            ],
        );
    }
    res
}

/// An error answered as JSON `{"error": ...}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status and message (never a token or user text).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e @ DbError::OwnedByOther { .. }) => {
                Self::new(StatusCode::FORBIDDEN, e.to_string())
            }
            StoreError::Db(e) if e.is_unavailable() => {
                log(
                    Level::Error,
                    "database error",
                    &[("error", e.to_string().into())],
                );
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
            }
            _ => {
                log(
                    Level::Error,
                    "database error",
                    &[("error", e.to_string().into())],
                );
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database error")
            }
        }
    }
}

/// Longest a readiness check waits for each dependency.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /ready`: 200 `ready` when the database and the coordination backend answer, else 503
/// with which one does not (for a load balancer's health check; `/health` is liveness only).
async fn ready(State(st): State<Arc<AppState>>) -> Response {
    let db = tokio::time::timeout(READY_TIMEOUT, st.store.call(|db| db.ping()))
        .await
        .is_ok_and(|r| r.is_ok());
    let coord = tokio::time::timeout(READY_TIMEOUT, st.coord.ready())
        .await
        .is_ok_and(|r| r.is_ok());
    if db && coord {
        return "ready".into_response();
    }
    let body = json!({"ready": false, "database": db, "coordination": coord});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins() {
        for o in [
            "http://127.0.0.1:8080",
            "http://localhost:5173",
            "http://[::1]:9",
            "http://localhost",
        ] {
            assert!(is_loopback_origin(o.as_bytes()), "{o}");
        }
        for o in [
            "https://evil.example",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example:80",
            "http://127.0.0.1:80@evil.example",
            "null",
            "https://127.0.0.1:8080",
        ] {
            assert!(!is_loopback_origin(o.as_bytes()), "{o}");
        }
    }
}
