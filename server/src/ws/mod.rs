//! The realtime WebSocket endpoint `GET /api/v1/interviews/{id}/realtime/connect`: the upgrade
//! ([`connect`]), then [`admission`] (auth, origin, owner, rollout), the interview lock with
//! take-back ([`crate::coord`]), the client [`limits`], and the [`session`] loop that runs the
//! upstream with a monotonic clock, pings, an idle timeout and a deadline on every write. Logs
//! carry ids, codes and figures only — never the query string, tokens or text.

pub mod admission;
pub mod limits;
pub mod openai_compat;
mod relay_session;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;

use crate::config::ProtocolFlavor;
use crate::AppState;

/// Close code sent to a connection whose interview was taken over by a newer connection of the
/// same client (it presented this connection's session id as `resume`).
pub const CLOSE_TAKEN_OVER: u16 = 4410;
/// Close code refusing a second connection to an interview that has one.
pub const CLOSE_BUSY: u16 = 4409;
/// Close code when a service the server depends on (Redis, the database) is unavailable: "try
/// again later", which clients retry with backoff (never an auth failure).
pub const CLOSE_TRY_LATER: u16 = 1013;
/// The reason sent with [`CLOSE_TRY_LATER`].
pub const TRY_LATER_REASON: &str = "service unavailable, try again later";

/// Checks one client event against the connection's limits and the interview's shared budgets.
pub(crate) async fn check_event(
    st: &AppState,
    limits: &mut limits::ConnectionLimits,
    interview_id: &str,
    now_ms: u64,
    kind: limits::EventKind,
) -> limits::Verdict {
    match limits.begin(now_ms, kind) {
        limits::Gate::Decided(v) => v,
        limits::Gate::Ask { budget, amount } => {
            let granted = st
                .coord
                .take(
                    &st.config.limits,
                    interview_id,
                    budget,
                    st.clock_ms(),
                    amount,
                )
                .await;
            limits.finish(now_ms, kind, granted)
        }
    }
}

/// What the upgrade request carried, extracted before the upgrade.
#[derive(Debug)]
pub struct Request {
    /// The interview in the path.
    pub interview_id: String,
    /// From `?token=` or the `bearer.<jwt>` subprotocol.
    pub token: Option<String>,
    /// `?resume=`: the previous connection's session id (take-back proof).
    pub resume: Option<String>,
    /// Event names for this connection.
    pub flavor: ProtocolFlavor,
    /// The `Origin` header.
    pub origin: Option<String>,
}

/// `GET /api/v1/interviews/{id}/realtime/connect`.
pub async fn connect(
    State(st): State<Arc<AppState>>,
    Path(interview_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let sub_token = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .find_map(|p| p.trim().strip_prefix("bearer.").map(str::to_string));
    let token = q.get("token").cloned().or(sub_token);
    let flavor = match q.get("protocol") {
        Some(p) if st.config.dev => ProtocolFlavor::parse(p).unwrap_or(st.config.protocol),
        _ => st.config.protocol,
    };
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let req = Request {
        interview_id,
        token,
        resume: q.get("resume").filter(|r| r.len() <= 64).cloned(),
        flavor,
        origin,
    };
    let limit = st.config.limits.max_frame_bytes;
    ws.protocols(["realtime"])
        // Frames are small (a 100 ms append is ~6.4 kB); larger ones grow the buffer as needed.
        .read_buffer_size(32 * 1024)
        .write_buffer_size(32 * 1024)
        // A write that cannot go out is buffered up to this much, then `send` waits (and its
        // deadline ends the session): a peer that stops reading holds bounded memory.
        .max_write_buffer_size(256 * 1024)
        // Twice our limit, so most oversize messages are read whole and refused by our own check
        // (nothing left unread that would turn the close into a TCP reset); beyond that the
        // codec's error path closes 1009 too.
        .max_message_size(limit.saturating_mul(2))
        .max_frame_size(limit.saturating_mul(2))
        .on_upgrade(move |socket| session::run(st, socket, req))
}
