//! One admitted realtime connection: claims the interview (or takes it back), runs the upstream
//! with a monotonic clock, applies the client limits, pings, closes a silent peer, puts a deadline
//! on every write, applies armed faults, and queues what the session reports for the store.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::{json, Value};
use tokio::time::{sleep_until, timeout, Instant};

use super::admission::{admit, new_session_id};
use super::limits::{ConnectionLimits, EventKind, Verdict};
use super::{
    check_event, Request, CLOSE_BUSY, CLOSE_TAKEN_OVER, CLOSE_TRY_LATER, TRY_LATER_REASON,
};
use crate::config::UpstreamKind;
use crate::coord::{Claim, Claimant, Slot};
use crate::faults::Fault;
use crate::http::now_ms;
use crate::log::{log, Level};
use crate::received::{Received, ReceivedHandle};
use crate::upstream::events;
use crate::upstream::simulated::{Interviewer, Output, SessionParams};
use crate::{rollout, AppState};

/// How long to wait for the client's close frame after sending ours.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Longest wait for our close frame to be written (the peer may not be reading).
const CLOSE_SEND_DEADLINE: Duration = Duration::from_millis(500);
/// Longest wait, on a take-back, for the previous connection's session to end.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

/// A write did not complete: the peer is gone or stopped reading.
#[derive(Debug)]
pub(super) enum SendError {
    Closed,
    Timeout,
}

impl SendError {
    pub(super) fn end(&self) -> &'static str {
        match self {
            Self::Closed => "send failed",
            Self::Timeout => "send timeout",
        }
    }
}

/// Sends `msg` within `deadline`.
pub(super) async fn send(
    socket: &mut WebSocket,
    msg: Message,
    deadline: Duration,
) -> Result<(), SendError> {
    match timeout(deadline, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendError::Closed),
        Err(_) => Err(SendError::Timeout),
    }
}

/// What every session loop watches besides its own traffic: the server shutting down, a
/// reconnect of the same client taking the interview over, the idle deadline (no frame from the
/// client, pongs included) and the ping schedule. One place for both the simulated and the relay
/// loop.
pub(super) struct Keepalive {
    shutdown: tokio::sync::watch::Receiver<bool>,
    last_inbound: Instant,
    next_ping: Instant,
    ping_every: Duration,
    idle: Duration,
    send_deadline: Duration,
}

impl Keepalive {
    pub(super) fn new(st: &AppState, t0: Instant) -> Keepalive {
        let lim = st.config.limits;
        let ping_every = Duration::from_millis(lim.ws_ping_interval_ms.max(1));
        Keepalive {
            shutdown: st.shutdown.subscribe(),
            last_inbound: Instant::now(),
            next_ping: t0 + ping_every,
            ping_every,
            idle: Duration::from_millis(lim.ws_idle_timeout_ms.max(1)),
            send_deadline: Duration::from_millis(lim.ws_send_timeout_ms),
        }
    }

    /// A frame (of any kind) came from the client.
    pub(super) fn inbound(&mut self) {
        self.last_inbound = Instant::now();
    }

    /// Waits for the next keep-alive event. It borrows no socket, so a loop selects on it beside
    /// its own reads and performs the event with [`Keepalive::act`] once the select is over.
    pub(super) async fn wait(&mut self, slot: &mut Slot) -> Wake {
        tokio::select! {
            // Only ever changes from false to true (or the state is gone): shutting down.
            _ = self.shutdown.changed() => Wake::Shutdown,
            Ok(()) = &mut slot.evicted => Wake::TakenOver,
            _ = sleep_until(self.last_inbound + self.idle) => Wake::Idle,
            _ = sleep_until(self.next_ping) => Wake::Ping,
        }
    }

    /// Performs a keep-alive event: `Some(end)` when the session ends (closed with the matching
    /// code), `None` after a ping.
    pub(super) async fn act(
        &mut self,
        wake: Wake,
        st: &AppState,
        socket: &mut WebSocket,
        conn: u64,
    ) -> Option<&'static str> {
        let (code, reason, end) = match wake {
            Wake::Shutdown => (1001, "server shutting down", "server shutdown"),
            Wake::TakenOver => (CLOSE_TAKEN_OVER, "taken over", "taken over"),
            Wake::Idle => (1001, "no frames from the client", "idle timeout"),
            Wake::Ping => {
                self.next_ping = Instant::now() + self.ping_every;
                return send(
                    socket,
                    Message::Ping(Default::default()),
                    self.send_deadline,
                )
                .await
                .err()
                .map(|e| e.end());
            }
        };
        close(st, socket, conn, code, reason).await;
        Some(end)
    }
}

/// A keep-alive event ([`Keepalive::wait`]).
pub(super) enum Wake {
    Shutdown,
    TakenOver,
    Idle,
    Ping,
}

/// Sends a close frame (short deadline), waits briefly for the client's, and records it.
pub(super) async fn close(
    st: &AppState,
    socket: &mut WebSocket,
    conn: u64,
    code: u16,
    reason: &str,
) {
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
    if send(socket, Message::Close(Some(frame)), CLOSE_SEND_DEADLINE)
        .await
        .is_err()
    {
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

/// Runs one upgraded connection from admission to the end.
pub(super) async fn run(st: Arc<AppState>, mut socket: WebSocket, req: Request) {
    let conn = st.conn_seq.fetch_add(1, Ordering::Relaxed);
    let user_id = match admit(&st, &req).await {
        Ok(u) => u,
        Err(r) => {
            st.metrics.connection(r.outcome);
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
                    ("code", r.code.into()),
                ],
            );
            return close(&st, &mut socket, conn, r.code, &r.reason).await;
        }
    };
    let session_id = match new_session_id() {
        Ok(s) => s,
        Err(e) => {
            log(
                Level::Error,
                "no randomness for a session id",
                &[("error", e.to_string().into())],
            );
            return close(&st, &mut socket, conn, 1011, "server error").await;
        }
    };
    let claimant = Claimant {
        conn,
        user_id: &user_id,
        session_id: &session_id,
        resume: req.resume.as_deref(),
    };
    let mut slot = match st.coord.claim(&req.interview_id, claimant).await {
        Ok(Claim::Granted(slot)) => slot,
        Ok(Claim::TookOver {
            slot,
            previous_gone,
            previous_conn,
            remote,
        }) => {
            st.metrics.connection("took_over");
            log(
                Level::Info,
                "interview taken over",
                &[
                    ("conn", conn.into()),
                    ("previous_conn", previous_conn.into()),
                    ("remote", remote.into()),
                    ("interview_id", req.interview_id.clone().into()),
                ],
            );
            // The previous session persists what it has before this one reads the interview.
            let _ = timeout(TAKEOVER_WAIT, previous_gone.wait()).await;
            slot
        }
        Err(e) => {
            return try_later(&st, &mut socket, conn, "coordination unavailable", &e).await;
        }
        Ok(_) => {
            st.metrics.connection("busy");
            return close(
                &st,
                &mut socket,
                conn,
                CLOSE_BUSY,
                "interview already has an active connection",
            )
            .await;
        }
    };
    let id = req.interview_id.clone();
    let state = st
        .store
        .call(move |db| {
            let index = db.interview_position(&id)?;
            Ok((index, db.user_turns(&id)?))
        })
        .await;
    let (index, user_turns) = match state {
        Ok(x) => x,
        Err(e) => return try_later(&st, &mut socket, conn, "database error", &e).await,
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
    if st.config.relay.upstream == UpstreamKind::OpenAi {
        let end =
            super::relay_session::run(&st, &mut socket, &req, conn, &mut slot, &session_id).await;
        return finish(&st, slot, &req, conn, end).await;
    }
    let fault = if st.config.faults {
        st.faults.take(&req.interview_id)
    } else {
        None
    };
    // What the connection received is recorded for the dev inspection route only.
    let received = st.config.dev.then(|| st.received.start(&req.interview_id));
    let params = SessionParams {
        flavor: req.flavor,
        session: st.config.session.clone(),
        turns_left: st
            .config
            .limits
            .max_turns_per_interview
            .saturating_sub(user_turns),
        question_index: index,
        response_delay_ms: fault
            .as_ref()
            .and_then(|f| f.delay_response_ms)
            .unwrap_or(0),
        delta_ms: crate::interviewer::DELTA_MS,
        started_at_s: now_ms() / 1000,
        session_id,
        tool_output_wait_ms: st.config.tool_output_wait_ms,
        speak_first_after_ms: Some(crate::interviewer::SPEAK_FIRST_AFTER_MS),
    };
    let mut s = Session {
        st: &st,
        socket: &mut socket,
        req: &req,
        conn,
        received: &received,
    };
    let end = s.run(&mut slot, params, fault.unwrap_or_default()).await;
    finish(&st, slot, &req, conn, end).await
}

/// Refuses a connection because a service it needs is unavailable: 1013, which clients retry.
async fn try_later(
    st: &AppState,
    socket: &mut WebSocket,
    conn: u64,
    what: &'static str,
    e: &(dyn std::fmt::Display + Sync),
) {
    st.metrics.connection("unavailable");
    log(
        Level::Error,
        what,
        &[("conn", conn.into()), ("error", e.to_string().into())],
    );
    close(st, socket, conn, CLOSE_TRY_LATER, TRY_LATER_REASON).await
}

/// After a session: frees the interview, then books the connection's end (metrics, log).
async fn finish(st: &AppState, slot: Slot, req: &Request, conn: u64, end: &'static str) {
    // Free the interview at once: a reconnect must not wait for the bookkeeping below.
    drop(slot);
    st.metrics.ws_closed();
    st.live_sessions.send_modify(|n| *n = n.saturating_sub(1));
    let id = req.interview_id.clone();
    if let Ok(Some(cost)) = st.store.call(move |db| db.cost(&id)).await {
        st.metrics.interview_cost_usd(cost);
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

/// The running session's I/O context.
struct Session<'a> {
    st: &'a AppState,
    socket: &'a mut WebSocket,
    req: &'a Request,
    conn: u64,
    received: &'a Option<ReceivedHandle>,
}

impl Session<'_> {
    /// Runs the session until it ends; returns how it ended (for the log).
    async fn run(&mut self, slot: &mut Slot, params: SessionParams, fault: Fault) -> &'static str {
        let st = self.st;
        let lim = st.config.limits;
        let send_deadline = Duration::from_millis(lim.ws_send_timeout_ms);
        let t0 = Instant::now();
        let now = || t0.elapsed().as_millis() as u64;
        let mut iv = Interviewer::new(params);
        let mut limits = ConnectionLimits::new(lim, 0);
        let drop_at = fault.drop_after_ms.map(|ms| t0 + Duration::from_millis(ms));
        let close_at = fault
            .close_code
            .map(|_| t0 + Duration::from_millis(fault.close_after_ms.unwrap_or(0)));
        iv.start(now());
        if let Some(end) = self.flush(&mut iv).await {
            return end;
        }
        if fault.malformed_frame == Some(true) {
            let bad =
                Message::Text("{\"type\": \"response.output_audio.delta\", \"delta\": ".into());
            if let Err(e) = send(self.socket, bad, send_deadline).await {
                return e.end();
            }
        }
        let max = lim.max_frame_bytes;
        // Clamped to a year so the deadline cannot overflow.
        let expire_at = t0 + Duration::from_millis(lim.session_max_ms.min(365 * 86_400_000));
        let mut keepalive = Keepalive::new(st, t0);
        loop {
            let next = iv.poll_timeout().map(|ms| t0 + Duration::from_millis(ms));
            tokio::select! {
                wake = keepalive.wait(slot) => {
                    if let Some(end) = keepalive.act(wake, st, self.socket, self.conn).await {
                        return end;
                    }
                }
                _ = sleep_until(expire_at) => {
                    let mut e = events::error(
                        "session_expired",
                        "Your session hit the maximum duration.",
                        None,
                        None,
                    );
                    e["event_id"] = json!(format!("event_expired_{}", self.conn));
                    st.metrics.error("session_expired");
                    record(self.received, |r| r.add_error("session_expired"));
                    if send(self.socket, Message::Text(e.to_string().into()), send_deadline).await.is_ok() {
                        close(st, self.socket, self.conn, 1001, "session expired").await;
                    }
                    return "session expired";
                }
                m = self.socket.recv() => {
                    keepalive.inbound();
                    match m {
                        None => return "client gone",
                        Some(Err(e)) => {
                            let msg = e.to_string();
                            if msg.contains("Space limit exceeded") || msg.contains("too long") {
                                close(st, self.socket, self.conn, 1009, &format!("message over {max} bytes")).await;
                                return "frame too large";
                            }
                            return "read error";
                        }
                        Some(Ok(Message::Text(t))) => {
                            if t.len() > max {
                                close(st, self.socket, self.conn, 1009, &format!("message over {max} bytes")).await;
                                return "frame too large";
                            }
                            self.on_text(&mut iv, &mut limits, now(), t.as_str()).await;
                        }
                        Some(Ok(Message::Binary(b))) => {
                            if b.len() > max {
                                close(st, self.socket, self.conn, 1009, &format!("message over {max} bytes")).await;
                                return "frame too large";
                            }
                            let interview = self.req.interview_id.as_str();
                            match check_event(st, &mut limits, interview, now(), EventKind::Other).await {
                                Verdict::Allow => iv.refuse(
                                    "invalid_event",
                                    "Binary frames are not supported; send JSON text events.",
                                    None,
                                ),
                                v => apply_refusal(&mut iv, v, None),
                            }
                        }
                        Some(Ok(Message::Close(_))) => return "client closed",
                        Some(Ok(_)) => {}
                    }
                }
                _ = sleep_until(next.unwrap_or(t0)), if next.is_some() => iv.handle_timeout(now()),
                _ = sleep_until(drop_at.unwrap_or(t0)), if drop_at.is_some() => {
                    log(Level::Info, "fault: dropping connection", &[("conn", self.conn.into())]);
                    return "fault drop";
                }
                _ = sleep_until(close_at.unwrap_or(t0)), if close_at.is_some() => {
                    let code = fault.close_code.unwrap_or(1000);
                    let reason = fault.close_reason.clone().unwrap_or_else(|| "fault injected".into());
                    close(st, self.socket, self.conn, code, &reason).await;
                    return "fault close";
                }
            }
            if let Some(end) = self.flush(&mut iv).await {
                return end;
            }
        }
    }

    /// One text frame: parsed once, checked against the limits, then handed to the upstream.
    async fn on_text(
        &mut self,
        iv: &mut Interviewer,
        limits: &mut ConnectionLimits,
        now: u64,
        text: &str,
    ) {
        let st = self.st;
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let interview = self.req.interview_id.as_str();
                match check_event(st, limits, interview, now, EventKind::Other).await {
                    Verdict::Allow => iv.handle_unparsable(&e),
                    v => apply_refusal(iv, v, None),
                }
                return;
            }
        };
        let kind = EventKind::of(
            v.get("type").and_then(Value::as_str),
            v.get("audio").and_then(Value::as_str),
        );
        let interview = self.req.interview_id.as_str();
        let verdict = check_event(st, limits, interview, now, kind).await;
        if let EventKind::Append { .. } = kind {
            let counts = limits.appends();
            let rejected = verdict != Verdict::Allow;
            record(self.received, |r| {
                r.appends += 1;
                r.max_appends_per_s = counts.max_per_second();
                r.max_appends_per_s_raw = counts.max_per_window();
                if rejected {
                    r.rejected_appends += 1;
                }
            });
        }
        match verdict {
            Verdict::Allow => iv.handle_event(now, &v),
            other => apply_refusal(iv, other, v.get("event_id").and_then(Value::as_str)),
        }
    }

    /// Carries out the session's outputs; `Some` when the connection is over.
    async fn flush(&mut self, iv: &mut Interviewer) -> Option<&'static str> {
        let st = self.st;
        let deadline = Duration::from_millis(st.config.limits.ws_send_timeout_ms);
        let id = self.req.interview_id.as_str();
        while let Some(o) = iv.poll_output() {
            match o {
                Output::Send(text) => {
                    if let Err(e) = send(self.socket, Message::Text(text.into()), deadline).await {
                        return Some(e.end());
                    }
                }
                Output::Close { code, reason } => {
                    close(st, self.socket, self.conn, code, &reason).await;
                    return Some("closed by server");
                }
                Output::Append { pcm } => record(self.received, |r| r.add_pcm(&pcm)),
                Output::UserTurn(text) => {
                    let id = id.to_string();
                    persist(st, "storing a turn", move |db| {
                        db.add_turn(&id, "user", &text, "realtime", now_ms())
                    })
                    .await
                }
                Output::AssistantTurn(text) => {
                    let id = id.to_string();
                    persist(st, "storing a turn", move |db| {
                        db.add_turn(&id, "assistant", &text, "realtime", now_ms())
                    })
                    .await
                }
                Output::QuestionIndex(i) => {
                    let id = id.to_string();
                    persist(st, "storing the script position", move |db| {
                        db.set_question_index(&id, i)
                    })
                    .await
                }
                Output::Billed { cost_usd, usage } => {
                    let id = id.to_string();
                    persist(st, "adding cost", move |db| db.add_cost(&id, cost_usd)).await;
                    log(
                        Level::Info,
                        "response billed",
                        &[
                            ("conn", self.conn.into()),
                            ("input_tokens", usage.input_tokens().into()),
                            ("output_tokens", usage.output_tokens().into()),
                            ("cost_usd", json!(cost_usd)),
                        ],
                    );
                }
                Output::ResponseLatency { latency_ms } => {
                    st.metrics.response_latency_ms(latency_ms)
                }
                Output::ErrorSent(code) => {
                    st.metrics.error(&code);
                    record(self.received, |r| r.add_error(&code));
                }
                Output::Truncated {
                    item_id,
                    audio_end_ms,
                } => record(self.received, |r| r.add_truncate(&item_id, audio_end_ms)),
            }
        }
        None
    }
}

/// Answers a refused event: an error (once per window), or the error and 4429.
fn apply_refusal(iv: &mut Interviewer, verdict: Verdict, event_id: Option<&str>) {
    match verdict {
        Verdict::Allow => {}
        Verdict::Reject {
            code,
            message,
            notify,
        } => {
            if notify {
                iv.refuse(code, &message, event_id);
            }
        }
        Verdict::Close { message } => {
            iv.refuse("rate_limit_exceeded", &message, event_id);
            iv.end(4429, "rate limit exceeded");
        }
    }
}

/// Updates the dev record, if this connection keeps one.
fn record(received: &Option<ReceivedHandle>, f: impl FnOnce(&mut Received)) {
    if let Some(h) = received {
        f(&mut h.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Queues a write for the store (in order, off the async workers).
async fn persist(
    st: &AppState,
    what: &'static str,
    f: impl Fn(&crate::store::Db) -> Result<(), crate::store::DbError> + Send + 'static,
) {
    if st.store.submit(what, f).await.is_err() {
        log(
            Level::Error,
            "database error",
            &[("op", what.into()), ("error", "store stopped".into())],
        );
    }
}
