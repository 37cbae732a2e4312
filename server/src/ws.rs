//! The realtime WebSocket endpoint: accepts the upgrade, then applies auth (1008), the feature
//! flag and rollout (4403) and the one-socket-per-interview rule (4409) as close codes, so a
//! browser sees the code instead of 1006. It runs the [`Interviewer`] with a monotonic clock,
//! enforces the frame size limit (1009), applies armed faults, and persists what the session
//! reports. Logs carry ids, codes and figures only — never the query string, tokens or text.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use serde_json::json;
use tokio::time::{sleep_until, Instant};

use crate::config::ProtocolFlavor;
use crate::faults::Fault;
use crate::http::{now_ms, valid_id};
use crate::interviewer::{Interviewer, Output, SessionParams};
use crate::log::{log, Level};
use crate::received::{Received, ReceivedHandle};
use crate::{events, jwt, rollout, AppState};

/// How long to wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the upgrade request carried, extracted before the upgrade.
#[derive(Debug)]
struct Request {
    interview_id: String,
    token: Option<String>,
    flavor: ProtocolFlavor,
    origin: Option<String>,
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
        flavor,
        origin,
    };
    let limit = st.config.limits.max_frame_bytes;
    ws.protocols(["realtime"])
        // Frames are small (a 100 ms append is ~6.4 kB); larger ones grow the buffer as needed.
        .read_buffer_size(32 * 1024)
        .write_buffer_size(32 * 1024)
        // Twice our limit, so most oversize messages are read whole and refused by our own check
        // (nothing left unread that would turn the close into a TCP reset); beyond that the
        // codec's error path closes 1009 too.
        .max_message_size(limit.saturating_mul(2))
        .max_frame_size(limit.saturating_mul(2))
        .on_upgrade(move |socket| run(st, socket, req))
}

/// Sends a close frame, waits briefly for the client's, and records it.
async fn close(st: &AppState, socket: &mut WebSocket, conn: u64, code: u16, reason: &str) {
    let mut reason: String = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    st.metrics.close(code);
    log(
        Level::Info,
        "closing",
        &[
            ("conn", conn.into()),
            ("code", code.into()),
            ("reason", reason.clone().into()),
        ],
    );
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    // Read until the client answers (or goes away) so the close frame is not lost to a TCP reset.
    let deadline = Instant::now() + CLOSE_GRACE;
    loop {
        tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | None => return,
                // Unreadable input (e.g. the rest of an oversize frame): closing now would reset
                // the TCP connection and could destroy our close frame before the client reads
                // it, so give the client the grace period.
                Some(Err(_)) => {
                    sleep_until(deadline).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = sleep_until(deadline) => return,
        }
    }
}

/// Admission checks after the upgrade; returns the claims' user id and the script position,
/// or the close code and reason.
fn admit(st: &AppState, req: &Request) -> Result<(String, u32), (u16, String, &'static str)> {
    if !valid_id(&req.interview_id) {
        return Err((1008, "invalid interview id".into(), "auth"));
    }
    let Some(token) = req.token.as_deref() else {
        return Err((1008, "missing token".into(), "auth"));
    };
    let claims = jwt::verify(token, &st.config.jwt_secret, now_ms() / 1000)
        .map_err(|e| (1008, e.to_string(), "auth"))?;
    if claims.interview_id != req.interview_id {
        return Err((1008, "token is for another interview".into(), "auth"));
    }
    if let (Some(list), Some(origin)) = (&st.config.cors_allowed_origins, &req.origin) {
        if !list.iter().any(|o| o == origin) {
            return Err((1008, "origin not allowed".into(), "auth"));
        }
    }
    let index = match st
        .db
        .ensure_interview(&req.interview_id, &claims.sub, now_ms())
    {
        Ok(i) => i,
        Err(crate::db::DbError::OwnedByOther { .. }) => {
            return Err((1008, "interview belongs to another user".into(), "auth"))
        }
        Err(e) => {
            log(
                Level::Error,
                "database error",
                &[("error", e.to_string().into())],
            );
            return Err((1011, "server error".into(), "error"));
        }
    };
    if !rollout::realtime_allowed(
        st.config.enable_realtime,
        st.config.rollout_percent,
        &claims.sub,
    ) {
        return Err((4403, "realtime disabled".into(), "disabled"));
    }
    Ok((claims.sub, index))
}

async fn run(st: Arc<AppState>, mut socket: WebSocket, req: Request) {
    let conn = st.conn_seq.fetch_add(1, Ordering::Relaxed);
    let (user_id, index) = match admit(&st, &req) {
        Ok(x) => x,
        Err((code, reason, outcome)) => {
            st.metrics.connection(outcome);
            log(
                Level::Warn,
                "connection refused",
                &[
                    ("conn", conn.into()),
                    (
                        "interview_id",
                        req.interview_id
                            .chars()
                            .take(128)
                            .collect::<String>()
                            .into(),
                    ),
                    ("code", code.into()),
                ],
            );
            return close(&st, &mut socket, conn, code, &reason).await;
        }
    };
    let Some(_slot) = st.registry.try_claim(&req.interview_id, conn) else {
        st.metrics.connection("busy");
        return close(
            &st,
            &mut socket,
            conn,
            4409,
            "interview already has an active connection",
        )
        .await;
    };
    st.metrics.connection("accepted");
    st.metrics.ws_opened();
    st.live_sessions.send_modify(|n| *n += 1);
    log(
        Level::Info,
        "connection accepted",
        &[
            ("conn", conn.into()),
            ("interview_id", req.interview_id.clone().into()),
            ("protocol", format!("{:?}", req.flavor).into()),
            ("rollout_bucket", rollout::bucket(&user_id).into()),
        ],
    );
    let fault = if st.config.faults {
        st.faults.take(&req.interview_id)
    } else {
        None
    };
    // What the connection received is recorded for the dev inspection route only.
    let received = st.config.dev.then(|| st.received.start(&req.interview_id));
    let end = session(
        &st,
        &mut socket,
        &req,
        conn,
        index,
        fault.unwrap_or_default(),
        &received,
    )
    .await;
    st.metrics.ws_closed();
    st.live_sessions.send_modify(|n| *n = n.saturating_sub(1));
    if let Ok(Some(iv)) = st.db.interview(&req.interview_id) {
        st.metrics.interview_cost_usd(iv.realtime_cost_usd);
    }
    log(
        Level::Info,
        "connection ended",
        &[
            ("conn", conn.into()),
            ("interview_id", req.interview_id.clone().into()),
            ("end", end.into()),
        ],
    );
}

/// Runs the session until it ends; returns how it ended (for the log).
async fn session(
    st: &AppState,
    socket: &mut WebSocket,
    req: &Request,
    conn: u64,
    index: u32,
    fault: Fault,
    received: &Option<ReceivedHandle>,
) -> &'static str {
    let t0 = Instant::now();
    let now = || t0.elapsed().as_millis() as u64;
    let mut iv = Interviewer::new(SessionParams {
        flavor: req.flavor,
        session: st.config.session.clone(),
        limits: st.config.limits,
        question_index: index,
        response_delay_ms: fault.delay_response_ms.unwrap_or(0),
        started_at_s: now_ms() / 1000,
        session_id: format!("sess_{conn}"),
    });
    let drop_at = fault.drop_after_ms.map(|ms| t0 + Duration::from_millis(ms));
    let close_at = fault
        .close_code
        .map(|_| t0 + Duration::from_millis(fault.close_after_ms.unwrap_or(0)));
    iv.start(now());
    if let Some(end) = flush(st, socket, &mut iv, req, conn, received).await {
        return end;
    }
    if fault.malformed_frame == Some(true)
        && socket
            .send(Message::Text(
                "{\"type\": \"response.output_audio.delta\", \"delta\": ".into(),
            ))
            .await
            .is_err()
    {
        return "send failed";
    }
    let limit = st.config.limits.max_frame_bytes;
    // Clamped to a year so the deadline cannot overflow.
    let expire_at =
        t0 + Duration::from_millis(st.config.limits.session_max_ms.min(365 * 86_400_000));
    let mut shutdown = st.shutdown.subscribe();
    loop {
        let next = iv.poll_timeout().map(|ms| t0 + Duration::from_millis(ms));
        tokio::select! {
            // Only ever changes from false to true (or the state is gone): shutting down.
            _ = shutdown.changed() => {
                close(st, socket, conn, 1001, "server shutting down").await;
                return "server shutdown";
            }
            _ = sleep_until(expire_at) => {
                let mut e = events::error(
                    "session_expired",
                    "Your session hit the maximum duration.",
                    None,
                    None,
                );
                e["event_id"] = json!(format!("event_expired_{conn}"));
                st.metrics.error("session_expired");
                record(received, |r| r.add_error("session_expired"));
                if socket.send(Message::Text(e.to_string().into())).await.is_ok() {
                    close(st, socket, conn, 1001, "session expired").await;
                }
                return "session expired";
            }
            m = socket.recv() => match m {
                None => return "client gone",
                Some(Err(e)) => {
                    let msg = e.to_string();
                    if msg.contains("Space limit exceeded") || msg.contains("too long") {
                        close(st, socket, conn, 1009, &format!("message over {limit} bytes")).await;
                        return "frame too large";
                    }
                    return "read error";
                }
                Some(Ok(Message::Text(t))) => {
                    if t.len() > limit {
                        close(st, socket, conn, 1009, &format!("message over {limit} bytes")).await;
                        return "frame too large";
                    }
                    iv.handle_text(now(), t.as_str());
                }
                Some(Ok(Message::Binary(b))) => {
                    if b.len() > limit {
                        close(st, socket, conn, 1009, &format!("message over {limit} bytes")).await;
                        return "frame too large";
                    }
                    let e = events::error("invalid_event", "Binary frames are not supported; send JSON text events.", None, None);
                    st.metrics.error("invalid_event");
                    record(received, |r| r.add_error("invalid_event"));
                    if socket.send(Message::Text(e.to_string().into())).await.is_err() {
                        return "send failed";
                    }
                }
                Some(Ok(Message::Close(_))) => return "client closed",
                Some(Ok(_)) => {}
            },
            _ = sleep_until(next.unwrap_or(t0)), if next.is_some() => iv.handle_timeout(now()),
            _ = sleep_until(drop_at.unwrap_or(t0)), if drop_at.is_some() => {
                log(Level::Info, "fault: dropping connection", &[("conn", conn.into())]);
                return "fault drop";
            }
            _ = sleep_until(close_at.unwrap_or(t0)), if close_at.is_some() => {
                let code = fault.close_code.unwrap_or(1000);
                let reason = fault.close_reason.clone().unwrap_or_else(|| "fault injected".into());
                close(st, socket, conn, code, &reason).await;
                return "fault close";
            }
        }
        if let Some(end) = flush(st, socket, &mut iv, req, conn, received).await {
            return end;
        }
    }
}

/// Carries out the session's outputs; `Some` when the connection is over.
async fn flush(
    st: &AppState,
    socket: &mut WebSocket,
    iv: &mut Interviewer,
    req: &Request,
    conn: u64,
    received: &Option<ReceivedHandle>,
) -> Option<&'static str> {
    let id = req.interview_id.as_str();
    while let Some(o) = iv.poll_output() {
        match o {
            Output::Send(text) => {
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return Some("send failed");
                }
            }
            Output::Close { code, reason } => {
                close(st, socket, conn, code, &reason).await;
                return Some("closed by server");
            }
            Output::Append {
                accepted,
                pcm,
                max_per_s,
                max_per_s_raw,
            } => record(received, |r| {
                r.appends += 1;
                r.max_appends_per_s = max_per_s;
                r.max_appends_per_s_raw = max_per_s_raw;
                if accepted {
                    r.add_pcm(&pcm);
                } else {
                    r.rejected_appends += 1;
                }
            }),
            Output::UserTurn(text) => {
                persist(st.db.add_turn(id, "user", &text, "realtime", now_ms()))
            }
            Output::AssistantTurn(text) => {
                persist(st.db.add_turn(id, "assistant", &text, "realtime", now_ms()))
            }
            Output::QuestionIndex(i) => persist(st.db.set_question_index(id, i)),
            Output::Billed { cost_usd, usage } => {
                persist(st.db.add_cost(id, cost_usd));
                log(
                    Level::Info,
                    "response billed",
                    &[
                        ("conn", conn.into()),
                        ("input_tokens", usage.input_tokens().into()),
                        ("output_tokens", usage.output_tokens().into()),
                        ("cost_usd", json!(cost_usd)),
                    ],
                );
            }
            Output::ResponseLatency { latency_ms } => st.metrics.response_latency_ms(latency_ms),
            Output::ErrorSent(code) => {
                st.metrics.error(&code);
                record(received, |r| r.add_error(&code));
            }
            Output::Truncated {
                item_id,
                audio_end_ms,
            } => record(received, |r| r.add_truncate(&item_id, audio_end_ms)),
        }
    }
    None
}

/// Updates the dev record, if this connection keeps one.
fn record(received: &Option<ReceivedHandle>, f: impl FnOnce(&mut Received)) {
    if let Some(h) = received {
        f(&mut h.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

fn persist(r: Result<(), crate::db::DbError>) {
    if let Err(e) = r {
        log(
            Level::Error,
            "database error",
            &[("error", e.to_string().into())],
        );
    }
}
