//! The simulated interviewer as an OpenAI-compatible upstream: `GET /v1/realtime?model=…` with
//! `Authorization: Bearer <SIMULATED_OPENAI_KEY>`, GA event names, no greeting until the client
//! sends `response.create` (as OpenAI). It lets the relay be tested end to end without the
//! internet: browser → relay → this endpoint (in the same process or a second one). What each
//! upstream session received is recorded (bounded) for the tests, and a fault can be armed for
//! the next sessions (refuse the handshake with a status, or drop the socket after a delay).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::{sleep_until, timeout, Instant};

use super::admission::new_session_id;
use crate::config::{ProtocolFlavor, SessionDefaults};
use crate::http::now_ms;
use crate::interviewer::{Interviewer, Output, SessionParams};
use crate::log::{log, Level};
use crate::AppState;

/// Upstream sessions remembered.
const MAX_SESSIONS: usize = 64;
/// Event types remembered per session.
const MAX_TYPES: usize = 4096;
/// Conversation items (role, text) remembered per session.
const MAX_ITEMS: usize = 256;
/// Write deadline of this endpoint's frames.
const SEND_DEADLINE: Duration = Duration::from_secs(10);

/// What one upstream session received.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpstreamSession {
    /// The session id reported in its `session.created`.
    pub id: String,
    /// `?model=`.
    pub model: String,
    /// Client event types in arrival order (bounded).
    pub types: Vec<String>,
    /// `conversation.item.create` message items: `(role, text)` (bounded).
    pub items: Vec<(String, String)>,
    /// The `session` objects of its `session.update`s (bounded).
    pub session_updates: Vec<Value>,
    /// The `response` objects of its `response.create`s (`null` when absent; bounded).
    pub response_creates: Vec<Value>,
    /// Whether the session has ended.
    pub ended: bool,
}

/// A fault for the next upstream sessions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpstreamFault {
    /// Refuse the WebSocket handshake with this HTTP status (e.g. 401, 429, 503).
    pub refuse_status: Option<u16>,
    /// Drop the TCP connection (no close frame) this long after `session.created`.
    pub drop_after_ms: Option<u64>,
    /// Only the next session (default) or every session until replaced.
    pub once: Option<bool>,
}

/// The sessions of this endpoint and the armed fault.
#[derive(Debug, Default)]
pub struct UpstreamLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    sessions: VecDeque<UpstreamSession>,
    fault: Option<UpstreamFault>,
}

impl UpstreamLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every remembered session, oldest first.
    pub fn sessions(&self) -> Vec<UpstreamSession> {
        self.lock().sessions.iter().cloned().collect()
    }

    /// Arms `fault` for the next sessions.
    pub fn arm(&self, fault: UpstreamFault) {
        self.lock().fault = Some(fault);
    }

    fn take_fault(&self) -> Option<UpstreamFault> {
        let mut g = self.lock();
        match &g.fault {
            Some(f) if f.once.unwrap_or(true) => g.fault.take(),
            f => f.clone(),
        }
    }

    fn start(&self, id: &str, model: &str) {
        let mut g = self.lock();
        if g.sessions.len() == MAX_SESSIONS {
            g.sessions.pop_front();
        }
        g.sessions.push_back(UpstreamSession {
            id: id.into(),
            model: model.into(),
            ..UpstreamSession::default()
        });
    }

    fn with(&self, id: &str, f: impl FnOnce(&mut UpstreamSession)) {
        if let Some(s) = self.lock().sessions.iter_mut().rev().find(|s| s.id == id) {
            f(s);
        }
    }

    fn record(&self, id: &str, v: &Value) {
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.with(id, |s| {
            if s.types.len() < MAX_TYPES {
                s.types.push(ty.clone());
            }
            match ty.as_str() {
                "session.update" if s.session_updates.len() < 16 => s
                    .session_updates
                    .push(v.get("session").cloned().unwrap_or(Value::Null)),
                "response.create" if s.response_creates.len() < 64 => s
                    .response_creates
                    .push(v.get("response").cloned().unwrap_or(Value::Null)),
                "conversation.item.create" if s.items.len() < MAX_ITEMS => {
                    let item = v.get("item");
                    let role = item.and_then(|i| i.get("role")).and_then(Value::as_str);
                    let text: String = item
                        .and_then(|i| i.get("content"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.get("text").and_then(Value::as_str))
                        .collect();
                    if let Some(role) = role {
                        s.items.push((role.to_string(), text));
                    }
                }
                _ => {}
            }
        });
    }
}

/// `GET /v1/realtime`: the Bearer check (a handshake refused 401 as OpenAI does), then a GA
/// session of the simulated interviewer that waits for `response.create`.
pub async fn realtime(
    State(st): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(key) = st.config.relay.simulated_openai_key.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(key.expose()) {
        let body = json!({"error": {"type": "invalid_request_error", "code": "invalid_api_key",
            "message": "Incorrect API key provided.", "param": null}});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let fault = st.upstream_log.take_fault().unwrap_or_default();
    if let Some(status) = fault.refuse_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = json!({"error": {"type": "server_error", "code": "refused_by_fault",
            "message": "Refused (fault injected).", "param": null}});
        return (status, Json(body)).into_response();
    }
    let model = q
        .get("model")
        .filter(|m| !m.is_empty() && m.len() <= 64)
        .cloned()
        .unwrap_or_else(|| "gpt-realtime".into());
    ws.max_message_size(st.config.limits.max_frame_bytes.saturating_mul(2))
        .on_upgrade(move |socket| run(st, socket, model, fault))
}

/// One upstream session.
async fn run(st: Arc<AppState>, mut socket: WebSocket, model: String, fault: UpstreamFault) {
    let Ok(session_id) = new_session_id() else {
        return;
    };
    st.upstream_log.start(&session_id, &model);
    let params = SessionParams {
        flavor: ProtocolFlavor::Ga,
        session: SessionDefaults {
            model: Some(model),
            ..st.config.session.clone()
        },
        turns_left: u32::MAX,
        question_index: 0,
        response_delay_ms: 0,
        delta_ms: st.config.relay.simulated_openai_delta_ms,
        started_at_s: now_ms() / 1000,
        session_id: session_id.clone(),
        tool_output_wait_ms: st.config.tool_output_wait_ms,
        speak_first_after_ms: None,
    };
    let t0 = Instant::now();
    let now = || t0.elapsed().as_millis() as u64;
    let mut iv = Interviewer::new(params);
    iv.start(now());
    let drop_at = fault.drop_after_ms.map(|ms| t0 + Duration::from_millis(ms));
    let expire_at =
        t0 + Duration::from_millis(st.config.limits.session_max_ms.min(365 * 86_400_000));
    let end = 'session: loop {
        while let Some(o) = iv.poll_output() {
            match o {
                Output::Send(text) => {
                    match timeout(SEND_DEADLINE, socket.send(Message::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        _ => break 'session "send failed",
                    }
                }
                Output::Close { code, reason } => {
                    let frame = axum::extract::ws::CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = timeout(SEND_DEADLINE, socket.send(Message::Close(Some(frame)))).await;
                    break 'session "closed";
                }
                _ => {}
            }
        }
        let next = iv.poll_timeout().map(|ms| t0 + Duration::from_millis(ms));
        tokio::select! {
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break "client gone",
                Some(Ok(Message::Text(t))) => {
                    match serde_json::from_str::<Value>(t.as_str()) {
                        Ok(v) => {
                            st.upstream_log.record(&session_id, &v);
                            iv.handle_event(now(), &v);
                        }
                        Err(e) => iv.handle_unparsable(&e),
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = sleep_until(next.unwrap_or(t0)), if next.is_some() => iv.handle_timeout(now()),
            _ = sleep_until(drop_at.unwrap_or(t0)), if drop_at.is_some() => break "fault drop",
            _ = sleep_until(expire_at) => {
                iv.refuse("session_expired", "Your session hit the maximum duration.", None);
                iv.end(1001, "session expired");
            }
        }
    };
    st.upstream_log.with(&session_id, |s| s.ended = true);
    log(
        Level::Info,
        "simulated upstream session ended",
        &[("end", end.into())],
    );
}

/// `GET /dev/upstream/sessions` (dev): what each upstream session received.
pub async fn sessions(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!(st.upstream_log.sessions()))
}

/// `POST /dev/upstream/faults` (dev + faults): arms an [`UpstreamFault`].
pub async fn arm(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<UpstreamFault>(&body) {
        Ok(f) => {
            st.upstream_log.arm(f);
            Json(json!({"armed": true})).into_response()
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected {refuse_status?, drop_after_ms?, once?}"})),
        )
            .into_response(),
    }
}
