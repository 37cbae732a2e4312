//! The simulated interviewer: one realtime session's protocol logic, sans-IO. The WebSocket task
//! feeds it client frames (`handle_text`) and the clock (`handle_timeout`), and drains
//! [`Output`]s with `poll_output` until it returns `None`; `poll_timeout` says when to call again.
//! Time enters as `now_ms` (milliseconds since the connection started), so every behaviour here
//! is a fast, deterministic unit test.
//!
//! It behaves like OpenAI's realtime API with server VAD: it greets and asks the first question
//! right after `session.created`, detects speech on input energy, commits and "transcribes" it
//! (deterministically: "(2.4 s of speech)"), answers with the next scripted question as audio
//! deltas paced in real time plus transcript deltas, bills usage in `response.done`, cancels a
//! response when the user barges in, and validates truncation against the audio it sent.

mod input;
mod response;
pub mod script;
mod session;
#[cfg(test)]
mod tests;
pub mod tools;
pub mod vad;
pub mod voice;

use std::collections::VecDeque;

use serde_json::{json, Value};

use crate::config::{ProtocolFlavor, SessionDefaults};
use crate::upstream::events;
use crate::upstream::usage::Usage;
use response::Active;
pub use script::{
    script_line, transcript_for, CLOSING, GREETING, INSTRUCTIONS, QUESTIONS, WELCOME_BACK,
};
use vad::{Vad, VadParams};

/// Samples per audio delta: 100 ms at 24 kHz.
pub const DELTA_SAMPLES: usize = 2400;
/// Milliseconds between paced audio deltas in real time (a delta holds 100 ms of audio).
pub const DELTA_MS: u64 = 100;
/// Assistant items remembered for truncation (bounded).
const MAX_ITEMS: usize = 32;
/// Bytes of PCM per millisecond at 24 kHz PCM16.
const BYTES_PER_MS: u64 = 48;

/// Per-connection parameters.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Event names to speak.
    pub flavor: ProtocolFlavor,
    /// Model, voice, temperature and token limit to report.
    pub session: SessionDefaults,
    /// User turns this interview may still take (the per-interview cap minus the turns stored).
    pub turns_left: u32,
    /// Lines of the script already spoken in this interview (from the database).
    pub question_index: u32,
    /// Extra delay before every response starts (fault injection), ms.
    pub response_delay_ms: u64,
    /// Milliseconds between audio deltas: [`DELTA_MS`] plays in real time, less plays faster
    /// (tests that only need the events, not the pace).
    pub delta_ms: u64,
    /// Wall-clock seconds at connection start (for `expires_at`).
    pub started_at_s: u64,
    /// Session id to report.
    pub session_id: String,
    /// How long a question waits for the output of its `show_question` call before it is spoken
    /// anyway, ms.
    pub tool_output_wait_ms: u64,
    /// When the interviewer starts speaking on its own: `Some(0)` right after `session.created`;
    /// `Some(ms)` at the client's first event or after `ms`, whichever comes first (a page sets
    /// its tools with its first `session.update`, and the first question should see them);
    /// `None` never (OpenAI's behaviour: the client asks with `response.create`).
    pub speak_first_after_ms: Option<u64>,
}

/// Default of [`SessionParams::speak_first_after_ms`] on the reference server's own endpoint.
pub const SPEAK_FIRST_AFTER_MS: u64 = 300;

/// Default of [`SessionParams::tool_output_wait_ms`]: 15 s.
pub const TOOL_OUTPUT_WAIT_MS: u64 = 15_000;

impl SessionParams {
    /// The model name in use.
    pub fn model(&self) -> String {
        match (&self.session.model, self.flavor) {
            (Some(m), _) => m.clone(),
            (None, ProtocolFlavor::Beta) => "gpt-4o-realtime-preview-2024-10-01".into(),
            (None, _) => "gpt-realtime".into(),
        }
    }
}

/// Something for the connection task to do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Send this JSON text frame.
    Send(String),
    /// Close the socket with this code and reason; nothing follows.
    Close {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// An append was accepted; `pcm` holds its audio (PCM16 LE bytes).
    Append {
        /// Decoded PCM16 LE bytes.
        pcm: Vec<u8>,
    },
    /// A user turn to persist (a transcription or a text item).
    UserTurn(String),
    /// An assistant turn to persist (what was actually said or written).
    AssistantTurn(String),
    /// The script advanced: persist this many lines spoken.
    QuestionIndex(u32),
    /// A response finished with this usage and cost.
    Billed {
        /// Token usage.
        usage: Usage,
        /// Cost in USD.
        cost_usd: f64,
    },
    /// First audio (or text) of a response answering the user, `latency_ms` after their speech ended.
    ResponseLatency {
        /// End of speech / commit → first delta, ms.
        latency_ms: u64,
    },
    /// An `error` event with this code was sent.
    ErrorSent(String),
    /// A truncate was accepted.
    Truncated {
        /// Item id.
        item_id: String,
        /// Accepted offset.
        audio_end_ms: u64,
    },
}

/// One realtime session of the simulated interviewer.
#[derive(Debug)]
pub struct Interviewer {
    params: SessionParams,
    model: String,
    seq: u64,
    out: VecDeque<Output>,
    closed: bool,
    vad: Vad,
    vad_enabled: bool,
    create_response: bool,
    interrupt_response: bool,
    audio_out: bool,
    instructions: String,
    /// Accepted input audio since the session started, bytes.
    total_bytes: u64,
    /// Input audio before this byte offset is committed or cleared.
    commit_base: u64,
    /// Input timeline position (ms) where the current VAD started counting.
    vad_origin_ms: u64,
    /// The item id of the speech in progress / next commit.
    pending_item: Option<String>,
    last_item: Option<String>,
    /// Input billed with the next response.
    pending_input: Usage,
    last_input_text: bool,
    speech_end_at: Option<u64>,
    question_index: u32,
    resumed: bool,
    /// User turns this interview may still take.
    turns_left: u32,
    active: Option<Active>,
    items: VecDeque<AssistantItem>,
    /// Function tools set by `session.update` (bounded by [`tools::MAX_TOOLS`]).
    tools: Vec<Value>,
    tool_choice: Value,
    /// A question waiting for its `show_question` output.
    pending_call: Option<tools::PendingCall>,
    /// The greeting waits until then (see [`SessionParams::speak_first_after_ms`]).
    greeting_due: Option<u64>,
}

impl Interviewer {
    /// A session; call [`Interviewer::start`] next.
    pub fn new(params: SessionParams) -> Self {
        let resumed = params.question_index > 0;
        Self {
            model: params.model(),
            vad: Vad::new(VadParams::default()),
            vad_enabled: true,
            create_response: true,
            interrupt_response: true,
            audio_out: true,
            instructions: INSTRUCTIONS.to_string(),
            seq: 0,
            out: VecDeque::new(),
            closed: false,
            total_bytes: 0,
            commit_base: 0,
            vad_origin_ms: 0,
            pending_item: None,
            last_item: None,
            pending_input: Usage::default(),
            last_input_text: false,
            speech_end_at: None,
            question_index: params.question_index,
            resumed,
            turns_left: params.turns_left,
            active: None,
            items: VecDeque::new(),
            tools: Vec::new(),
            tool_choice: json!("auto"),
            pending_call: None,
            greeting_due: None,
            params,
        }
    }

    /// The model reported in `session.created` (and used for pricing).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Sends `session.created` and starts the spoken greeting / next question.
    pub fn start(&mut self, now_ms: u64) {
        let s = self.session_json();
        self.send(json!({"type": "session.created", "session": s}));
        match self.params.speak_first_after_ms {
            Some(0) => self.start_response(now_ms, true, None),
            Some(ms) => self.greeting_due = Some(now_ms.saturating_add(ms)),
            None => {}
        }
    }

    /// Starts the greeting if it is still waiting and nothing else is under way.
    fn greet_now(&mut self, now_ms: u64) {
        if self.greeting_due.take().is_some()
            && !self.closed
            && self.active.is_none()
            && self.pending_call.is_none()
        {
            self.start_response(now_ms, true, None);
        }
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Interviewer::handle_timeout`] should next be called (ms since connection start).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        [
            self.active.as_ref().map(|a| a.due_ms),
            self.pending_call.as_ref().map(|p| p.deadline_ms),
            self.greeting_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances paced output to `now_ms`. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.greeting_due.is_some_and(|t| t <= now_ms) {
            self.greet_now(now_ms);
        }
        if !self.closed
            && self.active.is_none()
            && self
                .pending_call
                .as_ref()
                .is_some_and(|p| p.deadline_ms <= now_ms)
        {
            self.speak_pending(now_ms);
        }
        // Bounded: at most one response's worth of deltas.
        while let Some(a) = &self.active {
            if self.closed || a.due_ms > now_ms {
                break;
            }
            self.step(now_ms);
        }
    }

    /// Handles one text frame from the client (parses it, then [`Interviewer::handle_event`]).
    pub fn handle_text(&mut self, now_ms: u64, text: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => self.handle_event(now_ms, &v),
            Err(e) => self.handle_unparsable(&e),
        }
    }

    /// Answers a frame that is not JSON with an `invalid_json` error.
    pub fn handle_unparsable(&mut self, e: &serde_json::Error) {
        if self.closed {
            return;
        }
        self.error(
            "invalid_json",
            &format!(
                "The frame is not valid JSON (line {} column {}).",
                e.line(),
                e.column()
            ),
            None,
            None,
        )
    }

    /// Refuses a client event the connection's limits did not let through: an `error` event
    /// (`code`, e.g. `rate_limit_exceeded`) answering `client_event_id`; the event is not applied.
    pub fn refuse(&mut self, code: &str, message: &str, client_event_id: Option<&str>) {
        if !self.closed {
            self.error(code, message, None, client_event_id);
        }
    }

    /// Ends the session: `Output::Close` with `code` and `reason`, nothing after it.
    pub fn end(&mut self, code: u16, reason: &str) {
        if !self.closed {
            self.close(code, reason);
        }
    }

    /// Handles one parsed client event (the first one also releases a waiting greeting).
    pub fn handle_event(&mut self, now_ms: u64, v: &Value) {
        self.apply_event(now_ms, v);
        if self.active.is_some() || self.pending_call.is_some() {
            self.greeting_due = None;
        }
        self.greet_now(now_ms);
    }

    fn apply_event(&mut self, now_ms: u64, v: &Value) {
        if self.closed {
            return;
        }
        let event_id = v
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let eid = event_id.as_deref();
        let Some(ty) = v.get("type").and_then(Value::as_str) else {
            return self.error(
                "invalid_event",
                "The 'type' field is missing.",
                Some("type"),
                eid,
            );
        };
        match ty {
            "input_audio_buffer.append" => self.on_append(now_ms, v, eid),
            "input_audio_buffer.commit" => self.on_commit(now_ms, eid),
            "input_audio_buffer.clear" => {
                self.commit_base = self.total_bytes;
                self.pending_item = None;
                self.vad.reset();
                self.send(json!({"type": "input_audio_buffer.cleared"}));
            }
            "conversation.item.create" => self.on_item_create(v, eid),
            "conversation.item.truncate" => self.on_truncate(v, eid),
            "conversation.item.delete" => match v.get("item_id").and_then(Value::as_str) {
                Some(id) => {
                    let id = id.to_string();
                    self.send(json!({"type": "conversation.item.deleted", "item_id": id}));
                }
                None => self.error("invalid_event", "Missing 'item_id'.", Some("item_id"), eid),
            },
            "response.create" => self.on_response_create(now_ms, v, eid),
            "response.cancel" => {
                // A greeting still waiting starts now, so the cancel finds it as it would have
                // without the wait.
                self.greet_now(now_ms);
                if self.active.is_some() {
                    self.cancel(now_ms, "client_cancelled");
                } else {
                    self.error(
                        "response_cancel_not_active",
                        "Cancellation failed: no active response found.",
                        None,
                        eid,
                    );
                }
            }
            "session.update" => self.on_session_update(v, eid),
            other => {
                let msg = format!(
                    "Invalid value: '{}'. Supported values are: 'session.update', \
                     'input_audio_buffer.append', 'input_audio_buffer.commit', \
                     'input_audio_buffer.clear', 'conversation.item.create', \
                     'conversation.item.truncate', 'conversation.item.delete', \
                     'response.create', and 'response.cancel'.",
                    other.chars().take(64).collect::<String>()
                );
                self.error("invalid_value", &msg, Some("type"), eid)
            }
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_{}_{:04}", self.params.session_id, self.seq)
    }

    fn send(&mut self, mut v: Value) {
        let id = self.new_id("event");
        if let Some(o) = v.as_object_mut() {
            // `event_id` first, as OpenAI does, is cosmetic; order is not significant in JSON.
            o.insert("event_id".into(), json!(id));
        }
        self.out.push_back(Output::Send(v.to_string()));
    }

    fn error(
        &mut self,
        code: &str,
        message: &str,
        param: Option<&str>,
        client_event_id: Option<&str>,
    ) {
        self.send(events::error(code, message, param, client_event_id));
        self.out.push_back(Output::ErrorSent(code.to_string()));
    }

    fn close(&mut self, code: u16, reason: &str) {
        self.closed = true;
        self.active = None;
        self.out.push_back(Output::Close {
            code,
            reason: reason.to_string(),
        });
    }
}

/// An assistant item whose audio may be truncated.
#[derive(Debug)]
struct AssistantItem {
    id: String,
    audio_ms: u64,
}
