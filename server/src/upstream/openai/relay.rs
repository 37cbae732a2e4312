//! One relayed interview: a task that owns the upstream socket, forwards frames both ways, and
//! keeps the conversation when the browser goes away. It reads what it needs on the way
//! (transcripts → the store, usage → cost, errors → logs by code), cancels a response in
//! progress when the browser drops, waits `RELAY_GRACE_S` for it to re-attach (then asks the
//! interviewer to repeat its last question), and renews the upstream session at a turn boundary
//! once it is older than `RELAY_UPSTREAM_SESSION_MAX_S`, replaying the interview (bounded) into
//! the new one with only a `relay.status` event for the browser to see.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::{connect, policy, Link, UpstreamError};
use crate::log::{log, Level};
use crate::store::Turn;
use crate::upstream::usage::{self, Usage};
use crate::AppState;

/// Instructions of the response asked for after a re-attach or a replay.
pub const REPEAT_INSTRUCTIONS: &str = "The candidate's connection dropped and is back. \
Briefly repeat your last question, without greeting again.";
/// Id prefix of replayed items (their `conversation.item.*` events are not forwarded).
pub const REPLAY_PREFIX: &str = "item_replay_";
/// Client frames queued for the relay at most (a browser further ahead is closed 1011).
pub const INBOX: usize = 256;
/// Frames queued for the browser at most (the relay then waits: backpressure upstream).
pub const OUTBOX: usize = 256;
/// Deadline of every write upstream.
const UPSTREAM_SEND_DEADLINE: Duration = Duration::from_secs(10);
/// Wait before retrying a failed renewal.
const RENEW_RETRY: Duration = Duration::from_secs(5);

/// What the browser's session tells its relay.
#[derive(Debug)]
#[non_exhaustive]
pub enum ToRelay {
    /// A client frame that passed the checks and the policy, to go upstream as is.
    Client(String),
    /// A reconnected browser takes the relay over: frames go to `events` from now on.
    Attach {
        /// The new browser's outbox.
        events: mpsc::Sender<FromRelay>,
    },
    /// The browser's socket ended: keep the upstream for the grace period.
    Detach,
    /// A newer connection replaced this relay: end now.
    Stop,
}

/// What the relay tells the browser's session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FromRelay {
    /// An upstream frame (or a relay status event) to send as is.
    Frame(String),
    /// Send this error event, then close with `code` / `reason`.
    Fail {
        /// The `error` event to send first, if any.
        error: Option<String>,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: &'static str,
    },
}

/// The `error` event the browser gets when the provider refuses the key or model.
pub fn auth_failed_event() -> String {
    json!({"type": "error", "event_id": "event_relay_upstream_auth_failed", "error": {
        "type": "server_error", "code": "upstream_auth_failed",
        "message": "The realtime provider refused this server's API key or model; the \
                    operator has been alerted.",
        "param": null, "event_id": null}})
    .to_string()
}

/// Logs the alert line for a refused key or model (never the key).
pub fn alert_auth(interview_id: &str, e: &UpstreamError) {
    log(
        Level::Error,
        "ALERT upstream refused the API key or model",
        &[
            ("interview_id", interview_id.into()),
            ("error", e.to_string().into()),
        ],
    );
}

/// Opens an upstream session for `interview_id`, primes it (policy, replay of the stored
/// interview, a first response) and starts its relay task, which sends frames to `events`.
/// Returns the relay's inbox.
pub async fn open(
    st: Arc<AppState>,
    interview_id: &str,
    browser_session: &str,
    events: mpsc::Sender<FromRelay>,
) -> Result<mpsc::Sender<ToRelay>, UpstreamError> {
    let model = model(&st);
    let mut link = connect(&st.config.relay, &model).await?;
    let turns = stored_turns(&st, interview_id).await;
    let replayed = !turns.is_empty();
    prime(&st, &mut link, &turns).await?;
    let first = if replayed {
        json!({"type": "response.create", "response": {
            "instructions": repeat_instructions(&st), "output_modalities": ["audio"]}})
    } else {
        json!({"type": "response.create"})
    };
    send_up(&mut link, first.to_string()).await?;
    let (tx, inbox) = mpsc::channel(INBOX);
    let generation = st.relays.insert(interview_id, browser_session, tx.clone());
    st.coord.relay_started(interview_id);
    let relay = Relay {
        st: st.clone(),
        interview_id: interview_id.to_string(),
        model,
        link,
        link_started: Instant::now(),
        inbox,
        browser: Some(events),
        grace_until: None,
        response_active: false,
        speaking: false,
        want_repeat: false,
        renew_wanted: false,
        renew_after: None,
        expired: false,
        swallow_session_events: 0,
        session: None,
        generation,
        // Told after the new session's `session.created`, which the client expects first.
        announce: replayed.then_some("browser_away"),
    };
    tokio::spawn(relay.run());
    Ok(tx)
}

fn model(st: &AppState) -> String {
    st.config
        .session
        .model
        .clone()
        .unwrap_or_else(|| "gpt-realtime".into())
}

fn repeat_instructions(st: &AppState) -> String {
    format!("{}\n\n{REPEAT_INSTRUCTIONS}", st.config.relay.instructions)
}

/// The most recent turns of the interview within the replay bounds, oldest first.
async fn stored_turns(st: &AppState, interview_id: &str) -> Vec<Turn> {
    let id = interview_id.to_string();
    let mut turns = match st.store.call(move |db| db.interview(&id)).await {
        Ok(Some(iv)) => iv.turns,
        _ => Vec::new(),
    };
    // `turns` is oldest first; keep the newest within both bounds.
    let max_turns = st.config.relay.replay_max_turns;
    let max_chars = st.config.relay.replay_max_chars;
    let mut chars = 0;
    let mut keep = 0;
    for t in turns.iter().rev() {
        chars += t.text.chars().count();
        if keep == max_turns || chars > max_chars {
            break;
        }
        keep += 1;
    }
    let drop = turns.len() - keep;
    turns.drain(..drop);
    turns
}

/// Sends the server's session policy and the replayed turns to a new upstream session.
async fn prime(st: &AppState, link: &mut Link, turns: &[Turn]) -> Result<(), UpstreamError> {
    let update = policy::initial_update(&st.config.relay, &st.config.session);
    send_up(link, update.to_string()).await?;
    for (n, t) in turns.iter().enumerate() {
        let content = if t.role == "assistant" {
            json!([{"type": "output_text", "text": t.text}])
        } else {
            json!([{"type": "input_text", "text": t.text}])
        };
        let role = if t.role == "assistant" {
            "assistant"
        } else {
            "user"
        };
        let e = json!({"type": "conversation.item.create", "item": {
            "id": format!("{REPLAY_PREFIX}{n}"), "type": "message", "role": role,
            "content": content}});
        send_up(link, e.to_string()).await?;
    }
    Ok(())
}

async fn send_up(link: &mut Link, text: String) -> Result<(), UpstreamError> {
    match timeout(
        UPSTREAM_SEND_DEADLINE,
        link.send(Message::Text(text.into())),
    )
    .await
    {
        Ok(Ok(())) => Ok(()),
        _ => Err(UpstreamError::Unavailable {
            detail: "upstream write failed".into(),
        }),
    }
}

/// The task's state.
struct Relay {
    st: Arc<AppState>,
    interview_id: String,
    model: String,
    link: Link,
    link_started: Instant,
    inbox: mpsc::Receiver<ToRelay>,
    browser: Option<mpsc::Sender<FromRelay>>,
    grace_until: Option<Instant>,
    response_active: bool,
    speaking: bool,
    /// Ask for the last question again once no response is active.
    want_repeat: bool,
    /// The upstream session is old: renew at the next turn boundary.
    renew_wanted: bool,
    renew_after: Option<Instant>,
    /// The provider said `session_expired`: its close is a renewal, not a failure.
    expired: bool,
    /// `session.created` / `session.updated` of a renewed session are not forwarded.
    swallow_session_events: u8,
    /// The last session object from upstream (re-sent as `session.created` on re-attach).
    session: Option<Value>,
    generation: u64,
    /// A renewal to announce with a `relay.status` once the browser has its `session.created`.
    announce: Option<&'static str>,
}

impl Relay {
    async fn run(mut self) {
        let max = Duration::from_millis(self.st.config.relay.upstream_session_max_ms);
        let end = loop {
            let renew_at = self.link_started + max;
            let renew_armed = !self.renew_wanted;
            tokio::select! {
                cmd = self.inbox.recv() => match cmd {
                    None | Some(ToRelay::Stop) => break "replaced",
                    Some(ToRelay::Client(text)) => {
                        if let Err(e) = send_up(&mut self.link, text).await {
                            break self.upstream_lost(e).await;
                        }
                    }
                    Some(ToRelay::Detach) => self.detach().await,
                    Some(ToRelay::Attach { events }) => self.attach(events).await,
                },
                m = self.link.next() => match m {
                    Some(Ok(Message::Text(t))) => self.on_upstream(t.as_str()).await,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        if self.expired {
                            self.renew_wanted = true;
                            if let Err(e) = self.renew("session_limit").await {
                                break self.upstream_lost(e).await;
                            }
                        } else {
                            let e = UpstreamError::Unavailable { detail: "upstream dropped".into() };
                            break self.upstream_lost(e).await;
                        }
                    }
                    Some(Ok(_)) => {}
                },
                _ = sleep_until(self.grace_until.unwrap_or(renew_at)), if self.grace_until.is_some() => {
                    break "grace period over";
                }
                _ = sleep_until(renew_at), if renew_armed => self.renew_wanted = true,
            }
            if self.renew_wanted && !self.response_active && !self.speaking {
                if self.renew_after.is_some_and(|t| Instant::now() < t) {
                    continue;
                }
                if let Err(e) = self.renew("session_limit").await {
                    log(
                        Level::Warn,
                        "upstream renewal failed; retrying",
                        &[
                            ("interview_id", self.interview_id.clone().into()),
                            ("error", e.to_string().into()),
                        ],
                    );
                    self.renew_after = Some(Instant::now() + RENEW_RETRY);
                }
            }
        };
        self.st.relays.remove(&self.interview_id, self.generation);
        if !self.st.relays.contains(&self.interview_id) {
            self.st.coord.relay_ended(&self.interview_id);
        }
        let _ = timeout(Duration::from_millis(500), self.link.close(None)).await;
        log(
            Level::Info,
            "relay ended",
            &[
                ("interview_id", self.interview_id.clone().into()),
                ("end", end.into()),
            ],
        );
    }

    /// The upstream is gone for good: the browser (if any) gets a close it reconnects from.
    async fn upstream_lost(&mut self, e: UpstreamError) -> &'static str {
        log(
            Level::Warn,
            "upstream lost",
            &[
                ("interview_id", self.interview_id.clone().into()),
                ("error", e.to_string().into()),
            ],
        );
        let (code, reason) = e.close();
        self.tell_browser(FromRelay::Fail {
            error: None,
            code,
            reason,
        })
        .await;
        "upstream lost"
    }

    async fn detach(&mut self) {
        self.browser = None;
        self.grace_until =
            Some(Instant::now() + Duration::from_millis(self.st.config.relay.grace_ms));
        if self.response_active {
            let _ = send_up(
                &mut self.link,
                json!({"type": "response.cancel"}).to_string(),
            )
            .await;
        }
        let _ = send_up(
            &mut self.link,
            json!({"type": "input_audio_buffer.clear"}).to_string(),
        )
        .await;
    }

    async fn attach(&mut self, events: mpsc::Sender<FromRelay>) {
        self.browser = Some(events);
        self.grace_until = None;
        self.speaking = false;
        if let Some(s) = &self.session {
            let created = json!({"type": "session.created", "event_id": "event_relay_reattached",
                                 "session": s});
            self.tell_browser(FromRelay::Frame(created.to_string()))
                .await;
        }
        if self.response_active {
            self.want_repeat = true;
        } else {
            self.ask_repeat().await;
        }
    }

    async fn ask_repeat(&mut self) {
        self.want_repeat = false;
        let e = json!({"type": "response.create", "response": {
            "instructions": repeat_instructions(&self.st), "output_modalities": ["audio"]}});
        let _ = send_up(&mut self.link, e.to_string()).await;
    }

    /// Replaces the upstream session by a new one primed with the interview so far.
    async fn renew(&mut self, reason: &'static str) -> Result<(), UpstreamError> {
        let mut link = connect(&self.st.config.relay, &self.model).await?;
        let turns = stored_turns(&self.st, &self.interview_id).await;
        prime(&self.st, &mut link, &turns).await?;
        let mut old = std::mem::replace(&mut self.link, link);
        let _ = timeout(Duration::from_millis(500), old.close(None)).await;
        self.link_started = Instant::now();
        self.renew_wanted = false;
        self.renew_after = None;
        self.expired = false;
        self.response_active = false;
        self.speaking = false;
        self.swallow_session_events = 2;
        log(
            Level::Info,
            "upstream session renewed",
            &[
                ("interview_id", self.interview_id.clone().into()),
                ("reason", reason.into()),
                ("replayed_turns", turns.len().into()),
            ],
        );
        self.status("upstream_renewed", reason).await;
        Ok(())
    }

    async fn status(&self, status: &str, reason: &str) {
        let e = json!({"type": "relay.status", "event_id": format!("event_relay_{status}"),
                       "status": status, "reason": reason});
        if let Some(b) = &self.browser {
            let _ = b.send(FromRelay::Frame(e.to_string())).await;
        }
    }

    async fn tell_browser(&mut self, f: FromRelay) {
        if let Some(b) = &self.browser {
            if b.send(f).await.is_err() {
                // The browser's session ended without saying so: as a detach.
                self.detach().await;
            }
        }
    }

    /// One upstream frame: read what the relay needs, then forward it unless it is internal.
    async fn on_upstream(&mut self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return self.tell_browser(FromRelay::Frame(text.to_string())).await;
        };
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let mut forward = true;
        match ty {
            "session.created" | "session.updated" => {
                self.session = v.get("session").cloned();
                if self.swallow_session_events > 0 {
                    self.swallow_session_events -= 1;
                    forward = false;
                }
            }
            "conversation.item.added" | "conversation.item.done" | "conversation.item.created" => {
                let id = v.pointer("/item/id").and_then(Value::as_str).unwrap_or("");
                forward = !id.starts_with(REPLAY_PREFIX);
            }
            "response.created" => self.response_active = true,
            "response.done" => {
                self.response_active = false;
                self.bill(&v).await;
                if let Some(t) = assistant_text(&v) {
                    self.persist_turn("assistant", t).await;
                }
                if self.want_repeat && self.browser.is_some() {
                    self.ask_repeat().await;
                }
            }
            "input_audio_buffer.speech_started" => self.speaking = true,
            "input_audio_buffer.speech_stopped" | "input_audio_buffer.committed" => {
                self.speaking = false
            }
            "conversation.item.input_audio_transcription.completed" => {
                if let Some(t) = v.get("transcript").and_then(Value::as_str) {
                    self.persist_turn("user", t.to_string()).await;
                }
            }
            "error" => {
                let code = v
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                log(
                    Level::Warn,
                    "upstream error",
                    &[
                        ("interview_id", self.interview_id.clone().into()),
                        ("code", code.chars().take(64).collect::<String>().into()),
                    ],
                );
                self.st.metrics.error(&code);
                match code.as_str() {
                    "session_expired" => self.expired = true,
                    "invalid_api_key" | "model_not_found" => {
                        let e = UpstreamError::Auth { detail: code };
                        alert_auth(&self.interview_id, &e);
                        let (code, reason) = e.close();
                        return self
                            .tell_browser(FromRelay::Fail {
                                error: Some(auth_failed_event()),
                                code,
                                reason,
                            })
                            .await;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        if forward {
            self.tell_browser(FromRelay::Frame(text.to_string())).await;
        }
        if ty == "session.created" {
            if let Some(reason) = self.announce.take() {
                self.status("upstream_renewed", reason).await;
            }
        }
    }

    async fn persist_turn(&self, role: &'static str, text: String) {
        if text.is_empty() {
            return;
        }
        let id = self.interview_id.clone();
        let now = crate::http::now_ms();
        let _ = self
            .st
            .store
            .submit("storing a turn", move |db| {
                db.add_turn(&id, role, &text, "realtime", now)
            })
            .await;
    }

    /// Books the usage of a `response.done`: cost to the interview, a log line with figures,
    /// and a warning when the interview passes `COST_ALERT_USD`.
    async fn bill(&self, v: &Value) {
        let Some(u) = v.pointer("/response/usage").filter(|u| u.is_object()) else {
            return;
        };
        let usage = parse_usage(u);
        let cost = usage::cost_usd(&usage, &self.model);
        book_cost(&self.st, &self.interview_id, cost).await;
        log(
            Level::Info,
            "response billed",
            &[
                ("interview_id", self.interview_id.clone().into()),
                ("input_tokens", usage.input_tokens().into()),
                ("output_tokens", usage.output_tokens().into()),
                ("cost_usd", json!(cost)),
            ],
        );
    }
}

/// Adds `cost` to the interview and warns once when its total passes `COST_ALERT_USD`.
pub async fn book_cost(st: &AppState, interview_id: &str, cost: f64) {
    let id = interview_id.to_string();
    let totals = st
        .store
        .call(move |db| {
            let before = db.cost(&id)?.unwrap_or(0.0);
            db.add_cost(&id, cost)?;
            Ok((before, before + cost))
        })
        .await;
    let alert = st.config.relay.cost_alert_usd;
    if let Err(crate::store::StoreError::Db(e)) = &totals {
        if e.is_unavailable() {
            // Held and stored when the database is back (the alert is skipped then).
            let id = interview_id.to_string();
            let _ = st
                .store
                .submit("adding cost", move |db| db.add_cost(&id, cost))
                .await;
        }
    }
    if let Ok((before, after)) = totals {
        if before < alert && after >= alert {
            log(
                Level::Warn,
                "interview cost passed COST_ALERT_USD",
                &[
                    ("interview_id", interview_id.into()),
                    ("cost_usd", json!(after)),
                    ("alert_usd", json!(alert)),
                ],
            );
        }
    }
}

/// The usage of `response.done` in OpenAI's shape.
pub fn parse_usage(u: &Value) -> Usage {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_text: n("/input_token_details/text_tokens"),
        input_audio: n("/input_token_details/audio_tokens"),
        cached_text: n("/input_token_details/cached_tokens_details/text_tokens"),
        cached_audio: n("/input_token_details/cached_tokens_details/audio_tokens"),
        output_text: n("/output_token_details/text_tokens"),
        output_audio: n("/output_token_details/audio_tokens"),
    }
}

/// What the assistant said in a `response.done` (transcripts and texts of its message items).
fn assistant_text(v: &Value) -> Option<String> {
    let mut out = String::new();
    for item in v.pointer("/response/output")?.as_array()? {
        if item.get("type").and_then(Value::as_str) != Some("message") {
            continue;
        }
        for c in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let t = c
                .get("transcript")
                .or_else(|| c.get("text"))
                .and_then(Value::as_str);
            if let Some(t) = t {
                out.push_str(t);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}
