//! One admitted browser connection in relay mode: attaches to the interview's relay (a new
//! upstream session, or the one it left within the grace period), applies the same client
//! checks as the simulated mode (frame size, limits and budgets, audio format) and the session
//! policy, forwards frames both ways, and detaches on any end so the relay can wait for it.
//! Upstream failures arrive as closes the client handles (1011, 1013).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::limits::{ConnectionLimits, EventKind, Verdict};
use super::session::{close, send, Keepalive};
use super::{check_event, Request};
use crate::coord::Slot;
use crate::log::{log, Level};
use crate::upstream::events;
use crate::upstream::openai::policy::filter_update;
use crate::upstream::openai::pool::PoolClaim;
use crate::upstream::openai::relay::{
    self, alert_auth, auth_failed_event, FromRelay, ToRelay, OUTBOX,
};
use crate::upstream::openai::UpstreamError;
use crate::AppState;

/// Runs the connection until it ends; returns how it ended (for the log).
pub(super) async fn run(
    st: &Arc<AppState>,
    socket: &mut WebSocket,
    req: &Request,
    conn: u64,
    slot: &mut Slot,
    session_id: &str,
) -> &'static str {
    let (events_tx, mut events) = mpsc::channel(OUTBOX);
    let interview = req.interview_id.as_str();
    let mut to_relay = None;
    if let PoolClaim::Reattach(tx) = st
        .relays
        .claim(interview, req.resume.as_deref(), session_id)
    {
        let attach = ToRelay::Attach {
            events: events_tx.clone(),
        };
        if tx.send(attach).await.is_ok() {
            log(
                Level::Info,
                "relay re-attached",
                &[("conn", conn.into()), ("interview_id", interview.into())],
            );
            to_relay = Some(tx);
        }
    }
    if to_relay.is_none() && st.coord.stop_relay_elsewhere(interview).await {
        // Its upstream session stays where it was: this one starts anew with the replay.
        log(
            Level::Info,
            "relay held by another instance; replaying here",
            &[("conn", conn.into()), ("interview_id", interview.into())],
        );
    }
    let to_relay = match to_relay {
        Some(tx) => tx,
        None => match relay::open(st.clone(), interview, session_id, events_tx).await {
            Ok(tx) => tx,
            Err(e) => {
                let (code, reason) = e.close();
                if let UpstreamError::Auth { .. } = e {
                    alert_auth(interview, &e);
                    let deadline = Duration::from_millis(st.config.limits.ws_send_timeout_ms);
                    let _ = send(socket, Message::Text(auth_failed_event().into()), deadline).await;
                } else {
                    log(
                        Level::Warn,
                        "upstream unavailable",
                        &[("conn", conn.into()), ("error", e.to_string().into())],
                    );
                }
                close(st, socket, conn, code, reason).await;
                return "upstream refused";
            }
        },
    };
    let mut b = Browser {
        st,
        socket,
        conn,
        session_id,
        interview,
        to_relay: &to_relay,
        limits: ConnectionLimits::new(st.config.limits, 0),
        t0: Instant::now(),
        errors: 0,
    };
    let end = b.pump(slot, &mut events).await;
    if end != "upstream lost" {
        let _ = timeout(Duration::from_secs(1), to_relay.send(ToRelay::Detach)).await;
    }
    end
}

/// The browser side's I/O context.
struct Browser<'a> {
    st: &'a Arc<AppState>,
    socket: &'a mut WebSocket,
    conn: u64,
    session_id: &'a str,
    interview: &'a str,
    to_relay: &'a mpsc::Sender<ToRelay>,
    limits: ConnectionLimits,
    t0: Instant,
    errors: u64,
}

/// What handling a client frame asks the loop to do.
enum Next {
    Go,
    End(&'static str),
}

impl Browser<'_> {
    async fn pump(
        &mut self,
        slot: &mut Slot,
        events: &mut mpsc::Receiver<FromRelay>,
    ) -> &'static str {
        let st = self.st;
        let lim = st.config.limits;
        let deadline = Duration::from_millis(lim.ws_send_timeout_ms);
        let max = lim.max_frame_bytes;
        let mut keepalive = Keepalive::new(st, self.t0);
        loop {
            tokio::select! {
                wake = keepalive.wait(slot) => {
                    if let Some(end) = keepalive.act(wake, st, self.socket, self.conn).await {
                        return end;
                    }
                }
                ev = events.recv() => match ev {
                    Some(FromRelay::Frame(text)) => {
                        let text = self.own_session_id(text);
                        if let Err(e) = send(self.socket, Message::Text(text.into()), deadline).await {
                            return e.end();
                        }
                    }
                    Some(FromRelay::Fail { error, code, reason }) => {
                        if let Some(e) = error {
                            let _ = send(self.socket, Message::Text(e.into()), deadline).await;
                        }
                        close(st, self.socket, self.conn, code, reason).await;
                        return "upstream lost";
                    }
                    None => {
                        close(st, self.socket, self.conn, 1011, "upstream unavailable").await;
                        return "upstream lost";
                    }
                },
                m = self.socket.recv() => {
                    keepalive.inbound();
                    let next = match m {
                        None => Next::End("client gone"),
                        Some(Err(e)) => {
                            let msg = e.to_string();
                            if msg.contains("Space limit exceeded") || msg.contains("too long") {
                                close(st, self.socket, self.conn, 1009, &format!("message over {max} bytes")).await;
                                Next::End("frame too large")
                            } else {
                                Next::End("read error")
                            }
                        }
                        Some(Ok(Message::Text(t))) => {
                            if t.len() > max {
                                close(st, self.socket, self.conn, 1009, &format!("message over {max} bytes")).await;
                                Next::End("frame too large")
                            } else {
                                self.on_text(t.as_str()).await
                            }
                        }
                        Some(Ok(Message::Binary(b))) => {
                            if b.len() > max {
                                close(st, self.socket, self.conn, 1009, &format!("message over {max} bytes")).await;
                                Next::End("frame too large")
                            } else {
                                self.on_binary().await
                            }
                        }
                        Some(Ok(Message::Close(_))) => Next::End("client closed"),
                        Some(Ok(_)) => Next::Go,
                    };
                    if let Next::End(e) = next {
                        return e;
                    }
                }
            }
        }
    }

    fn now(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// `session.created` / `session.updated` carry this connection's id (the client's take-back
    /// proof), not the provider's.
    fn own_session_id(&self, text: String) -> String {
        if !text.contains("\"session.created\"") && !text.contains("\"session.updated\"") {
            return text;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(mut v)
                if matches!(
                    v.get("type").and_then(Value::as_str),
                    Some("session.created" | "session.updated")
                ) =>
            {
                if let Some(s) = v.get_mut("session").and_then(Value::as_object_mut) {
                    s.insert("id".into(), json!(self.session_id));
                }
                v.to_string()
            }
            _ => text,
        }
    }

    /// Sends an `error` event answering `event_id`.
    async fn error(
        &mut self,
        code: &str,
        message: &str,
        param: Option<&str>,
        event_id: Option<&str>,
    ) -> Next {
        let mut e = events::error(code, message, param, event_id);
        self.errors += 1;
        e["event_id"] = json!(format!("event_relay_{}_{}", self.conn, self.errors));
        self.st.metrics.error(code);
        let deadline = Duration::from_millis(self.st.config.limits.ws_send_timeout_ms);
        match send(self.socket, Message::Text(e.to_string().into()), deadline).await {
            Ok(()) => Next::Go,
            Err(e) => Next::End(e.end()),
        }
    }

    async fn refusal(&mut self, v: Verdict, event_id: Option<&str>) -> Next {
        match v {
            Verdict::Allow => Next::Go,
            Verdict::Reject {
                code,
                message,
                notify,
            } => {
                if notify {
                    self.error(code, &message, None, event_id).await
                } else {
                    Next::Go
                }
            }
            Verdict::Close { message } => {
                if let Next::End(e) = self
                    .error("rate_limit_exceeded", &message, None, event_id)
                    .await
                {
                    return Next::End(e);
                }
                close(self.st, self.socket, self.conn, 4429, "rate limit exceeded").await;
                Next::End("closed by server")
            }
        }
    }

    async fn on_binary(&mut self) -> Next {
        let now = self.now();
        match check_event(
            self.st,
            &mut self.limits,
            self.interview,
            now,
            EventKind::Other,
        )
        .await
        {
            Verdict::Allow => {
                self.error(
                    "invalid_event",
                    "Binary frames are not supported; send JSON text events.",
                    None,
                    None,
                )
                .await
            }
            v => self.refusal(v, None).await,
        }
    }

    /// One client frame: parsed, limited, checked, filtered by the policy, then relayed.
    async fn on_text(&mut self, text: &str) -> Next {
        let st = self.st;
        let now = self.now();
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return match check_event(
                    st,
                    &mut self.limits,
                    self.interview,
                    now,
                    EventKind::Other,
                )
                .await
                {
                    Verdict::Allow => {
                        let m = format!(
                            "The frame is not valid JSON (line {} column {}).",
                            e.line(),
                            e.column()
                        );
                        self.error("invalid_json", &m, None, None).await
                    }
                    v => self.refusal(v, None).await,
                };
            }
        };
        let eid = v
            .get("event_id")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(64).collect::<String>());
        let ty = v.get("type").and_then(Value::as_str);
        let kind = EventKind::of(ty, v.get("audio").and_then(Value::as_str));
        let verdict = check_event(st, &mut self.limits, self.interview, now, kind).await;
        if verdict != Verdict::Allow {
            return self.refusal(verdict, eid.as_deref()).await;
        }
        let forward = match ty {
            None => {
                return self
                    .error(
                        "invalid_event",
                        "The 'type' field is missing.",
                        Some("type"),
                        eid.as_deref(),
                    )
                    .await
            }
            Some("input_audio_buffer.append") => {
                let pcm = v
                    .get("audio")
                    .and_then(Value::as_str)
                    .map(|a| STANDARD.decode(a));
                match pcm {
                    Some(Ok(p)) if p.len() % 2 == 0 => text.to_string(),
                    _ => return self
                        .error(
                            "invalid_audio_format",
                            "Audio must be base64 of 24 kHz mono PCM16 LE (an even byte count).",
                            Some("audio"),
                            eid.as_deref(),
                        )
                        .await,
                }
            }
            Some("session.update") => {
                let f = filter_update(&v, &st.config.relay.session_update_allow);
                if let Some(r) = f.refusal {
                    let code = r
                        .pointer("/error/code")
                        .and_then(Value::as_str)
                        .unwrap_or("invalid_value")
                        .to_string();
                    let msg = r
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let param = r
                        .pointer("/error/param")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if let Next::End(e) = self
                        .error(&code, &msg, param.as_deref(), eid.as_deref())
                        .await
                    {
                        return Next::End(e);
                    }
                }
                match f.forward {
                    Some(fwd) => fwd.to_string(),
                    None => return Next::Go,
                }
            }
            Some(_) => text.to_string(),
        };
        match self.to_relay.try_send(ToRelay::Client(forward)) {
            Ok(()) => Next::Go,
            Err(mpsc::error::TrySendError::Full(_)) => {
                close(st, self.socket, self.conn, 1011, "relay overloaded").await;
                Next::End("relay overloaded")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                close(st, self.socket, self.conn, 1011, "upstream unavailable").await;
                Next::End("upstream lost")
            }
        }
    }
}
