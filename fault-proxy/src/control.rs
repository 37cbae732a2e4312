//! The control API: an HTTP JSON server with which browser tests and the E2E suite create
//! proxies and set their faults (`fetch` from another loopback origin, hence CORS `*`).
//!
//! | Request | Response |
//! |---|---|
//! | `GET /health` | `{"ok":true}` |
//! | `POST /proxies` `{"upstream":"127.0.0.1:18080"}` | `{"id":1,"port":40123}` |
//! | `GET /proxies/{id}` | the [`ProxyState`] |
//! | `PUT /proxies/{id}/faults` a [`Faults`] object | the state |
//! | `POST /proxies/{id}/blackhole-existing` | the state |
//! | `POST /proxies/{id}/reset` | the state |
//! | `DELETE /proxies/{id}` | `{}` |
//!
//! Errors are JSON too: `{"error":"..."}` with 400 (bad body, non-loopback upstream), 404
//! (unknown proxy or route), 405, 429 (more than [`MAX_PROXIES`]) or 500.

use crate::{FaultProxy, Faults};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tower_http::cors::{Any, CorsLayer};

/// Most proxies the control server keeps at once; creating one more answers 429.
pub const MAX_PROXIES: usize = 64;

/// The proxies a control server manages, by id.
#[derive(Debug, Default)]
pub struct Control {
    inner: Mutex<Proxies>,
}

#[derive(Debug, Default)]
struct Proxies {
    next_id: u64,
    by_id: HashMap<u64, FaultProxy>,
}

impl Control {
    fn proxies(&self) -> MutexGuard<'_, Proxies> {
        // Each operation on the map is a single insert, remove or read: never half done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A proxy as the API reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyState {
    /// The id in `/proxies/{id}`.
    pub id: u64,
    /// The port on 127.0.0.1 that clients connect to instead of the upstream's.
    pub port: u16,
    /// Where connections are forwarded.
    pub upstream: SocketAddr,
    /// Connections open now (including dead ones).
    pub connections: usize,
    /// The current fault set.
    pub faults: Faults,
}

impl ProxyState {
    fn of(id: u64, proxy: &FaultProxy) -> Self {
        ProxyState {
            id,
            port: proxy.local_addr().port(),
            upstream: proxy.upstream(),
            connections: proxy.connections(),
            faults: proxy.faults(),
        }
    }
}

/// Body of `POST /proxies`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    upstream: String,
}

/// Why a control request failed; each maps to a status and a JSON `{"error": ...}`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// The request was malformed (body, path) or asked for something refused.
    BadRequest(String),
    /// No proxy with this id.
    NoSuchProxy(u64),
    /// No such route.
    NotFound,
    /// The route exists, not with this method.
    MethodNotAllowed,
    /// [`MAX_PROXIES`] are open already.
    TooManyProxies {
        /// The limit.
        max: usize,
    },
    /// Starting a proxy failed (binding its listener).
    Start(std::io::Error),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::BadRequest(why) => write!(f, "bad request: {why}"),
            ControlError::NoSuchProxy(id) => write!(f, "no proxy with id {id}"),
            ControlError::NotFound => write!(f, "no such route"),
            ControlError::MethodNotAllowed => write!(f, "method not allowed on this route"),
            ControlError::TooManyProxies { max } => {
                write!(f, "{max} proxies are open already: delete some")
            }
            ControlError::Start(e) => write!(f, "could not start a proxy: {e}"),
        }
    }
}

impl std::error::Error for ControlError {}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::NoSuchProxy(_) | ControlError::NotFound => StatusCode::NOT_FOUND,
            ControlError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ControlError::TooManyProxies { .. } => StatusCode::TOO_MANY_REQUESTS,
            ControlError::Start(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<BytesRejection> for ControlError {
    fn from(rejection: BytesRejection) -> Self {
        ControlError::BadRequest(rejection.body_text())
    }
}

/// Parses a JSON body whatever its `Content-Type`: a `fetch` with a string body and no headers
/// sends `text/plain`, and a test helper should not fail on that.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ControlError> {
    serde_json::from_slice(&body?).map_err(|e| ControlError::BadRequest(format!("body: {e}")))
}

impl From<PathRejection> for ControlError {
    fn from(rejection: PathRejection) -> Self {
        ControlError::BadRequest(rejection.body_text())
    }
}

type Shared = Arc<Control>;

/// The control API's routes, with CORS `*` (preflight included) and JSON errors.
pub fn router() -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any);
    Router::new()
        .route("/health", get(health))
        .route("/proxies", post(create))
        .route("/proxies/{id}", get(state).delete(delete))
        .route("/proxies/{id}/faults", put(set_faults))
        .route("/proxies/{id}/blackhole-existing", post(blackhole_existing))
        .route("/proxies/{id}/reset", post(reset))
        .fallback(|| async { ControlError::NotFound })
        .method_not_allowed_fallback(|| async { ControlError::MethodNotAllowed })
        .with_state(Shared::default())
        .layer(cors)
}

/// Serves [`router`] on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "ok": true }))
}

async fn create(
    State(control): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ControlError> {
    let request: CreateRequest = parse_body(body)?;
    let upstream: SocketAddr = request.upstream.parse().map_err(|_| {
        ControlError::BadRequest(format!("upstream {:?} is not an IP:port", request.upstream))
    })?;
    if !upstream.ip().is_loopback() {
        return Err(ControlError::BadRequest(format!(
            "upstream {upstream} is not a loopback address: the fault lab only proxies to this machine"
        )));
    }
    if control.proxies().by_id.len() >= MAX_PROXIES {
        return Err(ControlError::TooManyProxies { max: MAX_PROXIES });
    }
    let proxy = FaultProxy::start(upstream)
        .await
        .map_err(ControlError::Start)?;
    let port = proxy.local_addr().port();
    let mut proxies = control.proxies();
    // Checked again: another request may have created one while this one was starting.
    if proxies.by_id.len() >= MAX_PROXIES {
        return Err(ControlError::TooManyProxies { max: MAX_PROXIES });
    }
    proxies.next_id += 1;
    let id = proxies.next_id;
    proxies.by_id.insert(id, proxy);
    Ok(Json(json!({ "id": id, "port": port })))
}

/// Runs `act` on proxy `id` and answers its state.
fn with_proxy(
    control: &Control,
    id: Result<Path<u64>, PathRejection>,
    act: impl FnOnce(&FaultProxy),
) -> Result<Json<ProxyState>, ControlError> {
    let Path(id) = id?;
    let proxies = control.proxies();
    let proxy = proxies
        .by_id
        .get(&id)
        .ok_or(ControlError::NoSuchProxy(id))?;
    act(proxy);
    Ok(Json(ProxyState::of(id, proxy)))
}

async fn state(
    State(control): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<ProxyState>, ControlError> {
    with_proxy(&control, id, |_| {})
}

async fn set_faults(
    State(control): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ProxyState>, ControlError> {
    let faults: Faults = parse_body(body)?;
    with_proxy(&control, id, |proxy| proxy.set(faults))
}

async fn blackhole_existing(
    State(control): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<ProxyState>, ControlError> {
    with_proxy(&control, id, FaultProxy::blackhole_existing)
}

async fn reset(
    State(control): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<ProxyState>, ControlError> {
    with_proxy(&control, id, FaultProxy::reset_all)
}

async fn delete(
    State(control): State<Shared>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<serde_json::Value>, ControlError> {
    let Path(id) = id?;
    // Dropping the proxy stops it; done outside the lock.
    let removed = control.proxies().by_id.remove(&id);
    match removed {
        Some(proxy) => {
            drop(proxy);
            Ok(Json(json!({})))
        }
        None => Err(ControlError::NoSuchProxy(id)),
    }
}
