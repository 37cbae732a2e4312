//! `realtime_voice_server`: the reference backend of realtime-voice.
//!
//! It behaves like the production backend of the deployment checklist (a FastAPI relay of
//! OpenAI's Realtime API) without needing a key: the realtime WebSocket at
//! `/api/v1/interviews/{id}/realtime/connect` authenticates an HS256 JWT, enforces one socket per
//! interview, 10 appends per second and a frame size limit, applies the feature flag and the
//! md5 rollout, and talks to a simulated interviewer ([`interviewer`]) that speaks the GA or the
//! 2024 beta event names. Text and legacy audio endpoints, SQLite persistence, Prometheus metrics,
//! JSON logs, CORS and fault injection complete it. It also serves the demo (`www/`) and the
//! package (`pkg/`).
//!
//! ```text
//!  client ──ws──▶ ws.rs (auth, flag, limits, faults, pacing clock)
//!                   │ frames + now_ms            ▲ Output: Send / Close / turns / cost / metrics
//!                   ▼                            │
//!                interviewer.rs (sans-IO) ─ vad.rs, voice.rs, events.rs, usage.rs
//!  http.rs: health, metrics, dev token/faults/received, REST endpoints, static files (CSP)
//!  db.rs (SQLite)   metrics.rs   log.rs   faults.rs   received.rs   limits.rs   rollout.rs
//! ```
//!
//! Tests start it in-process with [`serve`] on an ephemeral port.

pub mod config;
pub mod db;
pub mod events;
pub mod faults;
pub mod http;
pub mod interviewer;
pub mod jwt;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod received;
pub mod rollout;
pub mod usage;
pub mod vad;
pub mod voice;
pub mod ws;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use config::{Config, ConfigError, ProtocolFlavor};

/// State shared by every request and connection.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// Persistence.
    pub db: db::Db,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Live sockets by interview.
    pub registry: limits::ConnectionRegistry,
    /// Armed faults.
    pub faults: faults::FaultRegistry,
    /// What connections received (dev inspection).
    pub received: received::ReceivedStore,
    /// Connection id counter.
    pub conn_seq: AtomicU64,
    /// Set to true when the server shuts down: live sessions close with 1001.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Live realtime sessions, so shutdown can wait for their close frames.
    pub live_sessions: tokio::sync::watch::Sender<usize>,
}

/// Why the server could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The database could not be opened.
    Db(db::DbError),
    /// Accepting connections failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "{e}"),
            Self::Io(e) => write!(f, "server I/O error: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Builds the shared state (opens the database).
pub fn state(config: Config) -> Result<Arc<AppState>, ServeError> {
    let db = db::Db::open(config.database_path.as_deref()).map_err(ServeError::Db)?;
    Ok(Arc::new(AppState {
        config,
        db,
        metrics: metrics::Metrics::default(),
        registry: limits::ConnectionRegistry::default(),
        faults: faults::FaultRegistry::default(),
        received: received::ReceivedStore::default(),
        conn_seq: AtomicU64::new(1),
        shutdown: tokio::sync::watch::channel(false).0,
        live_sessions: tokio::sync::watch::channel(0).0,
    }))
}

/// Serves until the process ends.
pub async fn serve(config: Config, listener: tokio::net::TcpListener) -> Result<(), ServeError> {
    serve_with_shutdown(config, listener, std::future::pending()).await
}

/// Longest wait at shutdown for live sessions to send their 1001 close frames.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Serves until `shutdown` completes, then stops accepting, closes live realtime sessions with
/// 1001 "server shutting down" (clients reconnect elsewhere) and lets requests finish.
pub async fn serve_with_shutdown(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let st = state(config)?;
    let app = http::router(st.clone());
    let notify = st.clone();
    let signal = async move {
        shutdown.await;
        notify.shutdown.send_replace(true);
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await
        .map_err(ServeError::Io);
    // Upgraded sockets are not tracked by axum: wait (bounded) for the sessions to close.
    let mut live = st.live_sessions.subscribe();
    let drained = async {
        while *live.borrow_and_update() > 0 {
            if live.changed().await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, drained).await;
    served
}
