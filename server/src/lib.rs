//! `realtime_voice_server`: the reference backend of realtime-voice.
//!
//! It behaves like the production backend of the deployment checklist (a FastAPI relay of
//! OpenAI's Realtime API) without needing a key: the realtime WebSocket at
//! `/api/v1/interviews/{id}/realtime/connect` authenticates an HS256 JWT, enforces one socket per
//! interview (with take-back by the same client), audio and event budgets, a frame size limit,
//! pings and an idle timeout, applies the feature flag and the
//! md5 rollout, and talks to a simulated interviewer ([`interviewer`]) that speaks the GA or the
//! 2024 beta event names — or, with `OPENAI_API_KEY`, relays to OpenAI's GA Realtime API. Text and legacy audio endpoints, SQLite or Postgres persistence, Redis coordination for several instances, Prometheus metrics,
//! JSON logs, CORS and fault injection complete it. It also serves the demo (`www/`) and the
//! package (`pkg/`).
//!
//! ```text
//!  client ──ws──▶ ws/ admission (auth, origin, owner, rollout) → coord (one per interview,
//!                   │  take-back 4410) → session loop (ping, idle timeout, write deadlines,
//!                   │  limits, faults, pacing clock)
//!                   │ events + now_ms            ▲ Output: Send / Close / turns / cost / metrics
//!                   ▼                            │
//!                upstream/simulated (sans-IO interviewer: script, input, response, session,
//!                tools, vad, voice) ─ upstream/events, upstream/usage (shared price table)
//!             or ws/relay_session → upstream/openai (relay mode, OPENAI_API_KEY): policy,
//!                relay task per interview (grace period, renewal + replay, cost), pool
//!  ws/openai_compat: the simulated interviewer as OpenAI's /v1/realtime (tests, E2E)
//!  http/: api (bearer before body), dev (tokens, faults, received), static_files (CSP),
//!         listener (connection cap, TCP keepalive)
//!  store/ (SQLite | Postgres on its own thread, versioned migrations)
//!  coord/ (in memory | Redis: interview locks with leases, take-back, budgets, relay registry)
//!  auth/ (JWT, ids)   metrics   log   faults   received
//! ```
//!
//! Tests start it in-process with [`serve`] on an ephemeral port.

pub mod auth;
pub mod config;
pub mod coord;
pub mod faults;
pub mod http;
pub mod log;
pub mod metrics;
pub mod received;
pub mod rollout;
pub mod store;
pub mod upstream;
pub mod ws;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use auth::jwt;
pub use config::{Config, ConfigError, ProtocolFlavor};
pub use upstream::simulated as interviewer;

/// State shared by every request and connection.
#[derive(Debug)]
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// Persistence: SQLite or Postgres on its own thread.
    pub store: store::Store,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Coordination, in memory or in Redis: one live socket per interview (take-back by the
    /// same client), per-interview budgets that survive reconnects, the relay registry.
    pub coord: coord::Coord,
    /// The server's monotonic clock origin (see [`AppState::clock_ms`]).
    pub epoch: Instant,
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
    /// Relays to OpenAI by interview (relay mode), attached or within their grace period.
    pub relays: upstream::openai::pool::RelayPool,
    /// What the simulated OpenAI-compatible endpoint's sessions received (tests, dev).
    pub upstream_log: ws::openai_compat::UpstreamLog,
}

impl AppState {
    /// Milliseconds since the server started, monotonic: the clock of state shared between
    /// connections (in-memory budgets).
    pub fn clock_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Why the server could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The database could not be opened or migrated.
    Db(store::StoreError),
    /// Redis (REDIS_URL) could not be reached.
    Coord(coord::CoordError),
    /// Accepting connections failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "{e}"),
            Self::Coord(e) => write!(f, "coordination: {e}"),
            Self::Io(e) => write!(f, "server I/O error: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Builds the shared state: opens (and migrates) the database, connects to Redis when
/// configured.
pub async fn state(config: Config) -> Result<Arc<AppState>, ServeError> {
    let store = store::Store::open(config.database.clone())
        .await
        .map_err(ServeError::Db)?;
    let coord = coord::Coord::open(config.redis_url.as_deref(), config.redis_lock_lease_ms)
        .await
        .map_err(ServeError::Coord)?;
    Ok(Arc::new(AppState {
        config,
        store,
        metrics: metrics::Metrics::default(),
        coord,
        epoch: Instant::now(),
        faults: faults::FaultRegistry::default(),
        received: received::ReceivedStore::default(),
        conn_seq: AtomicU64::new(1),
        shutdown: tokio::sync::watch::channel(false).0,
        live_sessions: tokio::sync::watch::channel(0).0,
        relays: upstream::openai::pool::RelayPool::default(),
        upstream_log: ws::openai_compat::UpstreamLog::default(),
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
    let st = state(config).await?;
    if let Some(stops) = st.coord.relay_stops() {
        tokio::spawn(stop_relays(Arc::downgrade(&st), stops));
    }
    if st.config.dev {
        log::log(
            log::Level::Warn,
            "DEV MODE: /dev/token mints tokens for any user; never expose this server",
            &[
                ("addr", st.config.addr.to_string().into()),
                (
                    "dev_secret",
                    (st.config.jwt_secret == config::DEV_JWT_SECRET).into(),
                ),
            ],
        );
    }
    let app = http::router(st.clone());
    let listener = http::listener::CappedListener::new(listener, st.config.limits.max_connections);
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
    // The interviews of this instance are free for the others at once, not after the lease.
    let _ = tokio::time::timeout(Duration::from_secs(1), st.coord.settle()).await;
    served
}

/// Stops the relays whose browser another instance now serves (Redis coordination).
async fn stop_relays(
    st: std::sync::Weak<AppState>,
    mut stops: tokio::sync::broadcast::Receiver<String>,
) {
    loop {
        match stops.recv().await {
            Ok(interview) => match st.upgrade() {
                Some(st) => st.relays.stop(&interview),
                None => return,
            },
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
