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

use std::collections::VecDeque;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::config::{Limits, ProtocolFlavor, SessionDefaults};
use crate::events::{self, names, Part};
use crate::limits::{AppendRateLimiter, RateDecision};
use crate::usage::{self, Usage};
use crate::vad::{Vad, VadEvent, VadParams};
use crate::voice;

/// The five scripted interview questions.
pub const QUESTIONS: [&str; 5] = [
    "Tell me about yourself and what brought you to this role.",
    "Describe a difficult technical problem you solved recently. What made it hard?",
    "How do you decide what to test when time is short?",
    "Tell me about a time you disagreed with a teammate, and how you resolved it.",
    "What would you like to learn in your first three months here?",
];
/// Spoken before the first question of a new interview.
pub const GREETING: &str = "Hello, I am your interviewer today. Let us begin.";
/// Spoken before the current question when a connection resumes an interview.
pub const WELCOME_BACK: &str = "Welcome back.";
/// Said once the five questions have been asked.
pub const CLOSING: &str = "Thank you, that concludes our interview. Goodbye.";
/// The interviewer's instructions (billed as input text tokens in every response).
pub const INSTRUCTIONS: &str =
    "You are a friendly technical interviewer. Ask the scripted questions one at a time.";

/// Samples per audio delta: 100 ms at 24 kHz.
pub const DELTA_SAMPLES: usize = 2400;
/// Milliseconds between paced audio deltas.
pub const DELTA_MS: u64 = 100;
/// Assistant items remembered for truncation (bounded).
const MAX_ITEMS: usize = 32;
/// Bytes of PCM per millisecond at 24 kHz PCM16.
const BYTES_PER_MS: u64 = 48;

/// The scripted line for question `index` (0-based count of lines already spoken).
pub fn script_line(index: u32, resumed: bool) -> String {
    match index {
        0 => format!("{GREETING} {}", QUESTIONS[0]),
        i if (i as usize) < QUESTIONS.len() => {
            let q = QUESTIONS[i as usize];
            if resumed {
                format!("{WELCOME_BACK} {q}")
            } else {
                q.to_string()
            }
        }
        _ => CLOSING.to_string(),
    }
}

/// The deterministic "transcription" of `speech_ms` of user speech.
pub fn transcript_for(speech_ms: u64) -> String {
    format!(
        "({}.{} s of speech)",
        speech_ms / 1000,
        (speech_ms % 1000) / 100
    )
}

/// Per-connection parameters.
#[derive(Debug, Clone)]
pub struct SessionParams {
    /// Event names to speak.
    pub flavor: ProtocolFlavor,
    /// Model, voice, temperature and token limit to report.
    pub session: SessionDefaults,
    /// Rate limits.
    pub limits: Limits,
    /// Lines of the script already spoken in this interview (from the database).
    pub question_index: u32,
    /// Extra delay before every response starts (fault injection), ms.
    pub response_delay_ms: u64,
    /// Wall-clock seconds at connection start (for `expires_at`).
    pub started_at_s: u64,
    /// Session id to report.
    pub session_id: String,
}

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
    /// An append arrived (`accepted` false when the rate limiter rejected it); `pcm` holds the
    /// accepted audio bytes.
    Append {
        /// Whether the rate limiter let it through.
        accepted: bool,
        /// Decoded PCM16 LE bytes (empty when rejected).
        pcm: Vec<u8>,
        /// Most appends per second so far, allowing for arrival jitter
        /// ([`crate::limits::AppendRateLimiter::max_per_second`]).
        max_per_s: u32,
        /// Most appends in one fixed one-second window so far (raw).
        max_per_s_raw: u32,
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

#[derive(Debug)]
struct Active {
    id: String,
    item_id: String,
    text: String,
    audio: Option<Arc<[i16]>>,
    sent_samples: usize,
    sent_chars: usize,
    /// Time of the next delta (or of the start when `!started`).
    due_ms: u64,
    started: bool,
    /// Speech end time when answering the user (for latency).
    answer_to_ms: Option<u64>,
    input: Usage,
}

#[derive(Debug)]
struct AssistantItem {
    id: String,
    audio_ms: u64,
}

/// One realtime session of the simulated interviewer.
#[derive(Debug)]
pub struct Interviewer {
    params: SessionParams,
    model: String,
    seq: u64,
    out: VecDeque<Output>,
    closed: bool,
    limiter: AppendRateLimiter,
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
    active: Option<Active>,
    items: VecDeque<AssistantItem>,
}

impl Interviewer {
    /// A session; call [`Interviewer::start`] next.
    pub fn new(params: SessionParams) -> Self {
        let resumed = params.question_index > 0;
        Self {
            model: params.model(),
            limiter: AppendRateLimiter::new(
                params.limits.appends_per_s,
                params.limits.persist_windows,
            ),
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
            active: None,
            items: VecDeque::new(),
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
        self.start_response(now_ms, true, None);
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
        self.active.as_ref().map(|a| a.due_ms)
    }

    /// Advances paced output to `now_ms`. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        // Bounded: at most one response's worth of deltas.
        while let Some(a) = &self.active {
            if self.closed || a.due_ms > now_ms {
                break;
            }
            self.step(now_ms);
        }
    }

    /// Handles one text frame from the client.
    pub fn handle_text(&mut self, now_ms: u64, text: &str) {
        if self.closed {
            return;
        }
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return self.error(
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
        };
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
            "input_audio_buffer.append" => self.on_append(now_ms, &v, eid),
            "input_audio_buffer.commit" => self.on_commit(now_ms, eid),
            "input_audio_buffer.clear" => {
                self.commit_base = self.total_bytes;
                self.pending_item = None;
                self.vad.reset();
                self.send(json!({"type": "input_audio_buffer.cleared"}));
            }
            "conversation.item.create" => self.on_item_create(&v, eid),
            "conversation.item.truncate" => self.on_truncate(&v, eid),
            "conversation.item.delete" => match v.get("item_id").and_then(Value::as_str) {
                Some(id) => {
                    let id = id.to_string();
                    self.send(json!({"type": "conversation.item.deleted", "item_id": id}));
                }
                None => self.error("invalid_event", "Missing 'item_id'.", Some("item_id"), eid),
            },
            "response.create" => self.on_response_create(now_ms, &v, eid),
            "response.cancel" => {
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
            "session.update" => self.on_session_update(&v, eid),
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

    // ---- client events -------------------------------------------------------------------

    fn on_append(&mut self, now_ms: u64, v: &Value, eid: Option<&str>) {
        match self.limiter.on_append(now_ms) {
            RateDecision::Allow => {}
            RateDecision::Reject { first_in_window } => {
                self.out.push_back(Output::Append {
                    accepted: false,
                    pcm: Vec::new(),
                    max_per_s: self.limiter.max_per_second(),
                    max_per_s_raw: self.limiter.max_per_window(),
                });
                if first_in_window {
                    let limit = self.params.limits.appends_per_s;
                    self.error(
                        "rate_limit_exceeded",
                        &format!("More than {limit} input_audio_buffer.append events per second; audio dropped."),
                        None,
                        eid,
                    );
                }
                return;
            }
            RateDecision::Close { windows } => {
                self.out.push_back(Output::Append {
                    accepted: false,
                    pcm: Vec::new(),
                    max_per_s: self.limiter.max_per_second(),
                    max_per_s_raw: self.limiter.max_per_window(),
                });
                let limit = self.params.limits.appends_per_s;
                self.error(
                    "rate_limit_exceeded",
                    &format!(
                        "More than {limit} appends per second for {windows} consecutive seconds."
                    ),
                    None,
                    eid,
                );
                self.close(4429, "rate limit exceeded");
                return;
            }
        }
        let Some(audio) = v.get("audio").and_then(Value::as_str) else {
            return self.error(
                "invalid_event",
                "Missing 'audio' string.",
                Some("audio"),
                eid,
            );
        };
        let pcm = match STANDARD.decode(audio) {
            Ok(p) => p,
            Err(_) => {
                return self.error(
                    "invalid_audio_format",
                    "Audio is not valid base64; expected base64 of 24 kHz mono PCM16 LE.",
                    Some("audio"),
                    eid,
                )
            }
        };
        if pcm.len() % 2 != 0 {
            return self.error(
                "invalid_audio_format",
                &format!(
                    "Audio has an odd byte count ({}); PCM16 needs 2 bytes per sample.",
                    pcm.len()
                ),
                Some("audio"),
                eid,
            );
        }
        self.total_bytes += pcm.len() as u64;
        let mut vad_events = Vec::new();
        if self.vad_enabled {
            let samples = pcm
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]));
            self.vad.push(samples, &mut vad_events);
        }
        self.out.push_back(Output::Append {
            accepted: true,
            pcm,
            max_per_s: self.limiter.max_per_second(),
            max_per_s_raw: self.limiter.max_per_window(),
        });
        for e in vad_events {
            match e {
                VadEvent::Started { audio_start_ms } => {
                    self.on_speech_started(now_ms, self.vad_origin_ms + audio_start_ms)
                }
                VadEvent::Stopped {
                    audio_end_ms,
                    speech_ms,
                    detected_at_ms,
                } => {
                    let upto = (self.vad_origin_ms + detected_at_ms) * BYTES_PER_MS;
                    self.on_speech_stopped(
                        now_ms,
                        self.vad_origin_ms + audio_end_ms,
                        speech_ms,
                        upto,
                    )
                }
            }
        }
    }

    fn on_speech_started(&mut self, now_ms: u64, audio_start_ms: u64) {
        let item_id = self.new_id("item");
        self.pending_item = Some(item_id.clone());
        self.send(json!({
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": audio_start_ms,
            "item_id": item_id,
        }));
        if self.interrupt_response && self.active.as_ref().is_some_and(|a| a.audio.is_some()) {
            self.cancel(now_ms, "turn_detected");
        }
    }

    fn on_speech_stopped(&mut self, now_ms: u64, audio_end_ms: u64, speech_ms: u64, upto: u64) {
        let item_id = self
            .pending_item
            .clone()
            .unwrap_or_else(|| self.new_id("item"));
        self.send(json!({
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": audio_end_ms,
            "item_id": item_id,
        }));
        self.speech_end_at = Some(now_ms);
        self.commit(speech_ms, upto);
        if self.create_response && self.active.is_none() {
            self.start_response(now_ms, self.audio_out, None);
        }
    }

    fn on_commit(&mut self, now_ms: u64, eid: Option<&str>) {
        let ms = (self.total_bytes - self.commit_base) / BYTES_PER_MS;
        if ms < 100 {
            return self.error(
                "input_audio_buffer_commit_empty",
                &format!("Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {ms}.00ms of audio."),
                None,
                eid,
            );
        }
        if self.pending_item.is_none() {
            let id = self.new_id("item");
            self.pending_item = Some(id);
        }
        self.vad.reset();
        self.speech_end_at = Some(now_ms);
        self.commit(ms, self.total_bytes);
    }

    /// Commits the input buffer up to byte offset `upto` as a user audio item with its
    /// deterministic transcription.
    fn commit(&mut self, speech_ms: u64, upto: u64) {
        let item_id = self
            .pending_item
            .take()
            .unwrap_or_else(|| self.new_id("item"));
        let previous = self.last_item.replace(item_id.clone());
        self.send(json!({
            "type": "input_audio_buffer.committed",
            "previous_item_id": previous,
            "item_id": item_id,
        }));
        let item = events::item(
            &item_id,
            "user",
            "completed",
            json!([{"type": "input_audio", "transcript": null}]),
        );
        for e in events::item_added(self.params.flavor, previous.as_deref(), &item, true) {
            self.send(e);
        }
        let upto = upto.clamp(self.commit_base, self.total_bytes);
        let committed_ms = (upto - self.commit_base) / BYTES_PER_MS;
        self.commit_base = upto;
        self.pending_input.input_audio += usage::user_audio_tokens(committed_ms);
        self.last_input_text = false;
        let transcript = transcript_for(speech_ms);
        self.send(json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
        }));
        self.out.push_back(Output::UserTurn(transcript));
    }

    fn on_item_create(&mut self, v: &Value, eid: Option<&str>) {
        let item = v.get("item");
        let ty = item.and_then(|i| i.get("type")).and_then(Value::as_str);
        let role = item.and_then(|i| i.get("role")).and_then(Value::as_str);
        if ty != Some("message") || role != Some("user") {
            return self.error(
                "invalid_value",
                "Only user message items are supported by this server.",
                Some("item"),
                eid,
            );
        }
        let content = item
            .and_then(|i| i.get("content"))
            .and_then(Value::as_array);
        let mut text = String::new();
        for c in content.into_iter().flatten() {
            match (
                c.get("type").and_then(Value::as_str),
                c.get("text").and_then(Value::as_str),
            ) {
                (Some("input_text"), Some(t)) => text.push_str(t),
                _ => {
                    return self.error(
                        "invalid_value",
                        "Only input_text content is supported in conversation.item.create.",
                        Some("item.content"),
                        eid,
                    )
                }
            }
        }
        if text.is_empty() {
            return self.error(
                "invalid_value",
                "The item has no text.",
                Some("item.content"),
                eid,
            );
        }
        let id = item
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string)
            .unwrap_or_else(|| self.new_id("item"));
        let previous = self.last_item.replace(id.clone());
        let it = events::item(
            &id,
            "user",
            "completed",
            json!([{"type": "input_text", "text": text}]),
        );
        for e in events::item_added(self.params.flavor, previous.as_deref(), &it, true) {
            self.send(e);
        }
        self.pending_input.input_text += usage::text_tokens(&text);
        self.last_input_text = true;
        self.out.push_back(Output::UserTurn(text));
    }

    fn on_response_create(&mut self, now_ms: u64, v: &Value, eid: Option<&str>) {
        if self.active.is_some() {
            return self.error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress.",
                None,
                eid,
            );
        }
        let r = v.get("response");
        let modalities = r
            .and_then(|r| r.get("output_modalities").or_else(|| r.get("modalities")))
            .and_then(Value::as_array);
        let audio = match modalities {
            Some(m) => m.iter().any(|x| x.as_str() == Some("audio")),
            // A typed message gets a typed answer.
            None => self.audio_out && !self.last_input_text,
        };
        self.start_response(now_ms, audio, None);
    }

    fn on_truncate(&mut self, v: &Value, eid: Option<&str>) {
        let item_id = v.get("item_id").and_then(Value::as_str);
        let end = v.get("audio_end_ms").and_then(Value::as_u64);
        let content_index = v.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let (Some(item_id), Some(end)) = (item_id, end) else {
            return self.error(
                "invalid_event",
                "conversation.item.truncate needs 'item_id' and a non-negative integer 'audio_end_ms'.",
                Some("audio_end_ms"),
                eid,
            );
        };
        if content_index != 0 {
            return self.error(
                "invalid_value",
                "Only content_index 0 can be truncated.",
                Some("content_index"),
                eid,
            );
        }
        let item_id = item_id.to_string();
        let Some(pos) = self.items.iter().position(|i| i.id == item_id) else {
            return self.error(
                "item_not_found",
                &format!(
                    "Item '{}' was not found or has no assistant audio.",
                    item_id.chars().take(64).collect::<String>()
                ),
                Some("item_id"),
                eid,
            );
        };
        // Audio sent so far (kept up to date while the item is still being spoken).
        let have = self.items[pos].audio_ms;
        if end > have {
            return self.error(
                "invalid_value",
                &format!("Audio content of {have}ms is already shorter than {end}ms"),
                Some("audio_end_ms"),
                eid,
            );
        }
        self.items[pos].audio_ms = end;
        self.send(json!({
            "type": "conversation.item.truncated",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": end,
        }));
        self.out.push_back(Output::Truncated {
            item_id,
            audio_end_ms: end,
        });
    }

    fn on_session_update(&mut self, v: &Value, eid: Option<&str>) {
        let Some(s) = v.get("session").filter(|s| s.is_object()) else {
            return self.error(
                "invalid_event",
                "Missing 'session' object.",
                Some("session"),
                eid,
            );
        };
        // Input format: beta `input_audio_format`, GA `audio.input.format`.
        if let Some(f) = s.get("input_audio_format") {
            if f.as_str() != Some("pcm16") {
                return self.error(
                    "invalid_audio_format",
                    "This server accepts only pcm16 (24 kHz mono PCM16 LE) input audio.",
                    Some("session.input_audio_format"),
                    eid,
                );
            }
        }
        if let Some(f) = s.pointer("/audio/input/format") {
            let ok = f.get("type").and_then(Value::as_str) == Some("audio/pcm")
                && f.get("rate").is_none_or(|r| r.as_u64() == Some(24_000));
            if !ok {
                return self.error(
                    "invalid_audio_format",
                    "This server accepts only audio/pcm at 24000 Hz input audio.",
                    Some("session.audio.input.format"),
                    eid,
                );
            }
        }
        let td = s
            .pointer("/audio/input/turn_detection")
            .or_else(|| s.get("turn_detection"));
        if let Some(td) = td {
            let ty = if td.is_null() {
                Some("none")
            } else {
                td.get("type").and_then(Value::as_str)
            };
            match ty {
                Some("none") => {
                    self.vad_enabled = false;
                    self.vad.reset();
                }
                Some("server_vad") | Some("semantic_vad") => {
                    self.vad_enabled = true;
                    let mut p = self.vad.params();
                    if let Some(ms) = td.get("silence_duration_ms").and_then(Value::as_u64) {
                        p.silence_ms = ms.clamp(100, 5000);
                    }
                    if let Some(ms) = td.get("prefix_padding_ms").and_then(Value::as_u64) {
                        p.prefix_padding_ms = ms.min(5000);
                    }
                    self.vad = Vad::new(p);
                    self.vad_origin_ms = self.total_bytes / BYTES_PER_MS;
                    self.create_response = td
                        .get("create_response")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    self.interrupt_response = td
                        .get("interrupt_response")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                }
                _ => {
                    return self.error(
                        "invalid_value",
                        "turn_detection.type must be server_vad, semantic_vad or none.",
                        Some("session.turn_detection"),
                        eid,
                    )
                }
            }
        }
        if let Some(m) = s
            .get("output_modalities")
            .or_else(|| s.get("modalities"))
            .and_then(Value::as_array)
        {
            self.audio_out = m.iter().any(|x| x.as_str() == Some("audio"));
        }
        if let Some(i) = s.get("instructions").and_then(Value::as_str) {
            self.instructions = i.chars().take(16_384).collect();
        }
        let s = self.session_json();
        self.send(json!({"type": "session.updated", "session": s}));
    }

    // ---- responses ------------------------------------------------------------------------

    fn start_response(&mut self, now_ms: u64, audio: bool, text: Option<String>) {
        let text = text.unwrap_or_else(|| script_line(self.question_index, self.resumed));
        self.resumed = false;
        self.question_index = self
            .question_index
            .saturating_add(1)
            .min(QUESTIONS.len() as u32 + 1);
        self.out
            .push_back(Output::QuestionIndex(self.question_index));
        let mut input = std::mem::take(&mut self.pending_input);
        input.input_text += usage::text_tokens(&self.instructions);
        let active = Active {
            id: self.new_id("resp"),
            item_id: self.new_id("item"),
            audio: audio.then(|| voice::speech_for(&text)),
            text,
            sent_samples: 0,
            sent_chars: 0,
            due_ms: now_ms + self.params.response_delay_ms,
            started: false,
            answer_to_ms: self.speech_end_at.take(),
            input,
        };
        self.active = Some(active);
        self.handle_timeout(now_ms);
    }

    fn response_json(
        &self,
        a: &Active,
        status: &str,
        details: Value,
        output: Value,
        usage: Value,
    ) -> Value {
        let mut r = json!({
            "id": a.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
            "usage": usage,
        });
        if self.params.flavor != ProtocolFlavor::Beta {
            if let Some(o) = r.as_object_mut() {
                o.insert(
                    "conversation_id".into(),
                    json!(format!("conv_{}", self.params.session_id)),
                );
                o.insert(
                    "output_modalities".into(),
                    json!([if a.audio.is_some() { "audio" } else { "text" }]),
                );
                o.insert(
                    "max_output_tokens".into(),
                    json!(self.params.session.max_response_tokens),
                );
                o.insert(
                    "audio".into(),
                    json!({"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": self.params.session.voice}}),
                );
                o.insert("metadata".into(), Value::Null);
            }
        }
        r
    }

    fn content(&self, a: &Active, text: &str) -> Value {
        let n = names(self.params.flavor);
        if a.audio.is_some() {
            json!([{"type": n.item_audio_type, "transcript": text}])
        } else {
            json!([{"type": n.item_text_type, "text": text}])
        }
    }

    /// Emits what is due for the active response at `now_ms`.
    fn step(&mut self, now_ms: u64) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        let n = names(self.params.flavor);
        if !a.started {
            a.started = true;
            let r = self.response_json(&a, "in_progress", Value::Null, json!([]), Value::Null);
            self.send(json!({"type": "response.created", "response": r}));
            let item = events::item(&a.item_id, "assistant", "in_progress", json!([]));
            self.send(json!({"type": "response.output_item.added", "response_id": a.id, "output_index": 0, "item": item}));
            let previous = self.last_item.replace(a.item_id.clone());
            for e in events::item_added(self.params.flavor, previous.as_deref(), &item, false) {
                self.send(e);
            }
            let part = if a.audio.is_some() {
                json!({"type": "audio", "transcript": ""})
            } else {
                json!({"type": "text", "text": ""})
            };
            let p = Part {
                response_id: &a.id,
                item_id: &a.item_id,
            };
            self.send(p.event("response.content_part.added", json!({ "part": part })));
            if a.audio.is_some() {
                if self.items.len() == MAX_ITEMS {
                    self.items.pop_front();
                }
                self.items.push_back(AssistantItem {
                    id: a.item_id.clone(),
                    audio_ms: 0,
                });
            }
        }
        if let Some(t) = a.answer_to_ms.take() {
            self.out.push_back(Output::ResponseLatency {
                latency_ms: now_ms.saturating_sub(t),
            });
        }
        let p = Part {
            response_id: &a.id,
            item_id: &a.item_id,
        };
        match a.audio.clone() {
            Some(audio) => {
                let end = (a.sent_samples + DELTA_SAMPLES).min(audio.len());
                if end > a.sent_samples {
                    // Transcript keeps pace with the audio, a word at a time.
                    let target = a.text.len() * end / audio.len().max(1);
                    let delta = next_words(&a.text, a.sent_chars, target).to_string();
                    let end_ms = (end as u64 * 1000) / voice::SAMPLE_RATE as u64;
                    let projected = usage::assistant_audio_tokens(end_ms)
                        + usage::text_tokens(&a.text[..a.sent_chars + delta.len()]);
                    if projected > u64::from(self.params.session.max_response_tokens) {
                        return self.finish(a, "incomplete", max_tokens_details());
                    }
                    let mut bytes = Vec::with_capacity((end - a.sent_samples) * 2);
                    for s in &audio[a.sent_samples..end] {
                        bytes.extend_from_slice(&s.to_le_bytes());
                    }
                    a.sent_samples = end;
                    self.send(p.event(n.audio_delta, json!({"delta": STANDARD.encode(&bytes)})));
                    if let Some(it) = self.items.iter_mut().find(|i| i.id == a.item_id) {
                        it.audio_ms = (end as u64 * 1000).div_ceil(voice::SAMPLE_RATE as u64);
                    }
                    if !delta.is_empty() {
                        a.sent_chars += delta.len();
                        self.send(p.event(n.transcript_delta, json!({ "delta": delta })));
                    }
                }
                a.due_ms += DELTA_MS;
                if a.sent_samples >= audio.len() {
                    return self.finish(a, "completed", Value::Null);
                }
            }
            None => {
                let text = a.text.clone();
                let max = u64::from(self.params.session.max_response_tokens);
                let mut at = 0;
                while at < text.len() {
                    let delta = next_words(&text, at, at + 1);
                    if usage::text_tokens(&text[..at + delta.len()]) > max {
                        a.sent_chars = at;
                        return self.finish(a, "incomplete", max_tokens_details());
                    }
                    at += delta.len();
                    self.send(p.event(n.text_delta, json!({ "delta": delta })));
                }
                a.sent_chars = text.len();
                return self.finish(a, "completed", Value::Null);
            }
        }
        self.active = Some(a);
    }

    fn cancel(&mut self, _now_ms: u64, reason: &str) {
        if let Some(a) = self.active.take() {
            if !a.started {
                // Nothing was announced yet: drop it silently, as if never created.
                self.pending_input = a.input;
                return;
            }
            self.finish(
                a,
                "cancelled",
                json!({"type": "cancelled", "reason": reason}),
            );
        }
    }

    fn finish(&mut self, a: Active, status: &str, details: Value) {
        let n = names(self.params.flavor);
        let p = Part {
            response_id: &a.id,
            item_id: &a.item_id,
        };
        let said: String = a.text[..a.sent_chars.min(a.text.len())].to_string();
        let item_status = if status == "completed" {
            "completed"
        } else {
            "incomplete"
        };
        let mut usage = a.input;
        usage.output_text = usage::text_tokens(&said);
        if let Some(audio) = &a.audio {
            let sent_ms =
                (a.sent_samples.min(audio.len()) as u64 * 1000) / voice::SAMPLE_RATE as u64;
            usage.output_audio = usage::assistant_audio_tokens(sent_ms);
            self.send(p.event(n.audio_done, json!({})));
            self.send(p.event(n.transcript_done, json!({ "transcript": said })));
            self.send(p.event(
                "response.content_part.done",
                json!({"part": {"type": "audio", "transcript": said}}),
            ));
        } else {
            self.send(p.event(n.text_done, json!({ "text": said })));
            self.send(p.event(
                "response.content_part.done",
                json!({"part": {"type": "text", "text": said}}),
            ));
        }
        let item = events::item(
            &a.item_id,
            "assistant",
            item_status,
            self.content(&a, &said),
        );
        self.send(json!({"type": "response.output_item.done", "response_id": a.id, "output_index": 0, "item": item}));
        if self.params.flavor != ProtocolFlavor::Beta {
            self.send(json!({"type": "conversation.item.done", "item": item}));
        }
        let r = self.response_json(&a, status, details, json!([item]), usage.to_json());
        self.send(json!({"type": "response.done", "response": r}));
        let cost_usd = usage::cost_usd(&usage, &self.model);
        self.out.push_back(Output::Billed { usage, cost_usd });
        if !said.is_empty() {
            self.out.push_back(Output::AssistantTurn(said));
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    fn session_json(&self) -> Value {
        let s = &self.params.session;
        let vad = self.vad.params();
        let td = if self.vad_enabled {
            json!({
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": vad.prefix_padding_ms,
                "silence_duration_ms": vad.silence_ms,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
            })
        } else {
            Value::Null
        };
        match self.params.flavor {
            ProtocolFlavor::Beta => json!({
                "id": self.params.session_id,
                "object": "realtime.session",
                "model": self.model,
                "modalities": if self.audio_out { json!(["text", "audio"]) } else { json!(["text"]) },
                "instructions": self.instructions,
                "voice": s.voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1"},
                "turn_detection": td,
                "tools": [],
                "tool_choice": "auto",
                "temperature": s.temperature,
                "max_response_output_tokens": s.max_response_tokens,
            }),
            _ => json!({
                "type": "realtime",
                "object": "realtime.session",
                "id": self.params.session_id,
                "model": self.model,
                "output_modalities": if self.audio_out { json!(["audio"]) } else { json!(["text"]) },
                "instructions": self.instructions,
                "tools": [],
                "tool_choice": "auto",
                "max_output_tokens": s.max_response_tokens,
                "tracing": null,
                "prompt": null,
                "expires_at": self.params.started_at_s + 30 * 60,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "whisper-1"},
                        "noise_reduction": null,
                        "turn_detection": td,
                    },
                    "output": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "voice": s.voice,
                        "speed": 1.0,
                    },
                },
                "include": null,
            }),
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

/// `status_details` of a response cut by the output token limit.
fn max_tokens_details() -> Value {
    json!({"type": "incomplete", "reason": "max_output_tokens"})
}

/// The text from byte `from` up to the first word boundary at or after byte `target`
/// (a boundary is just after a space, or the end).
fn next_words(text: &str, from: usize, target: usize) -> &str {
    if from >= text.len() || target <= from {
        return "";
    }
    for (i, c) in text[from..].char_indices() {
        let at = from + i + c.len_utf8();
        if c == ' ' && at >= target {
            return &text[from..at];
        }
    }
    &text[from..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(flavor: ProtocolFlavor) -> SessionParams {
        SessionParams {
            flavor,
            session: SessionDefaults::default(),
            limits: Limits::default(),
            question_index: 0,
            response_delay_ms: 0,
            started_at_s: 1_700_000_000,
            session_id: "s1".into(),
        }
    }

    fn drain(iv: &mut Interviewer) -> (Vec<Value>, Vec<Output>) {
        let mut sent = Vec::new();
        let mut other = Vec::new();
        while let Some(o) = iv.poll_output() {
            match o {
                Output::Send(s) => sent.push(serde_json::from_str(&s).unwrap()),
                o => other.push(o),
            }
        }
        (sent, other)
    }

    fn types(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// Runs the clock until the active response is done.
    fn run_until_idle(iv: &mut Interviewer, now: &mut u64) -> (Vec<Value>, Vec<Output>) {
        let mut all = (Vec::new(), Vec::new());
        while let Some(t) = iv.poll_timeout() {
            *now = t.max(*now);
            iv.handle_timeout(*now);
            let (a, b) = drain(iv);
            all.0.extend(a);
            all.1.extend(b);
        }
        all
    }

    fn append(ms: usize, amp: f64) -> String {
        let mut b = Vec::new();
        for i in 0..ms * 24 {
            let s = (amp * 32767.0 * (i as f64 * 0.0576).sin()) as i16;
            b.extend_from_slice(&s.to_le_bytes());
        }
        json!({"type": "input_audio_buffer.append", "audio": STANDARD.encode(b)}).to_string()
    }

    #[test]
    fn greets_right_after_session_created_with_paced_audio() {
        let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
        iv.start(0);
        let (sent, _) = drain(&mut iv);
        let t = types(&sent);
        assert_eq!(t[0], "session.created");
        assert_eq!(sent[0]["session"]["model"], "gpt-realtime");
        assert!(t.contains(&"response.created".to_string()));
        // Exactly one audio delta at t=0; the next is due 100 ms later.
        assert_eq!(
            t.iter()
                .filter(|x| *x == "response.output_audio.delta")
                .count(),
            1
        );
        assert_eq!(iv.poll_timeout(), Some(100));
        let mut now = 0;
        let (rest, other) = run_until_idle(&mut iv, &mut now);
        let audio: usize = sent
            .iter()
            .chain(&rest)
            .filter(|e| e["type"] == "response.output_audio.delta")
            .map(|e| STANDARD.decode(e["delta"].as_str().unwrap()).unwrap().len() / 2)
            .sum();
        let line = script_line(0, false);
        assert_eq!(audio, voice::speech_for(&line).len());
        // Paced: the last delta went out at (deltas - 1) * 100 ms.
        assert_eq!(now, (audio.div_ceil(DELTA_SAMPLES) as u64 - 1) * DELTA_MS);
        let transcript: String = sent
            .iter()
            .chain(&rest)
            .filter(|e| e["type"] == "response.output_audio_transcript.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(transcript, line);
        let done = rest.iter().find(|e| e["type"] == "response.done").unwrap();
        assert_eq!(done["response"]["status"], "completed");
        let audio_ms = (audio as u64 * 1000) / 24000;
        assert_eq!(
            done["response"]["usage"]["output_token_details"]["audio_tokens"],
            audio_ms.div_ceil(50)
        );
        assert!(other.contains(&Output::AssistantTurn(line)));
        assert!(other.iter().any(|o| matches!(o, Output::Billed { .. })));
    }

    #[test]
    fn speech_gets_transcribed_and_answered_with_the_next_question() {
        let mut iv = Interviewer::new(params(ProtocolFlavor::Beta));
        iv.start(0);
        let mut now = 0;
        run_until_idle(&mut iv, &mut now);
        drain(&mut iv);
        // 2.4 s of tone then 600 ms of silence, in 100 ms appends at real-time pace.
        let mut sent = Vec::new();
        let mut other = Vec::new();
        for i in 0..30 {
            now += 100;
            let amp = if i < 24 { 0.1 } else { 0.0 };
            iv.handle_text(now, &append(100, amp));
            let (a, b) = drain(&mut iv);
            sent.extend(a);
            other.extend(b);
        }
        let t = types(&sent);
        let pos = |x: &str| {
            t.iter()
                .position(|y| y == x)
                .unwrap_or_else(|| panic!("{x} missing in {t:?}"))
        };
        assert!(
            pos("input_audio_buffer.speech_started") < pos("input_audio_buffer.speech_stopped")
        );
        assert!(pos("input_audio_buffer.committed") < pos("conversation.item.created"));
        assert!(
            pos("conversation.item.input_audio_transcription.completed") < pos("response.created")
        );
        let tr = &sent[pos("conversation.item.input_audio_transcription.completed")];
        assert_eq!(tr["transcript"], "(2.4 s of speech)");
        assert!(
            t.contains(&"response.audio.delta".to_string()),
            "beta names"
        );
        let (rest, more) = run_until_idle(&mut iv, &mut now);
        other.extend(more);
        let done = rest.iter().find(|e| e["type"] == "response.done").unwrap();
        let u = &done["response"]["usage"];
        // Committed audio: 2.4 s of speech + 500 ms of silence detection = 2900 ms → 29 tokens.
        assert_eq!(u["input_token_details"]["audio_tokens"], 29);
        assert_eq!(
            u["input_token_details"]["text_tokens"],
            usage::text_tokens(INSTRUCTIONS)
        );
        assert_eq!(
            u["output_token_details"]["text_tokens"],
            usage::text_tokens(QUESTIONS[1])
        );
        assert!(other.contains(&Output::UserTurn("(2.4 s of speech)".into())));
        assert!(other.contains(&Output::AssistantTurn(QUESTIONS[1].into())));
        assert!(other
            .iter()
            .any(|o| matches!(o, Output::ResponseLatency { latency_ms: 0 })));
    }

    #[test]
    fn barge_in_cancels_the_response_and_truncate_is_validated() {
        let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
        iv.start(0);
        let mut now = 0;
        for _ in 0..5 {
            now += 100;
            iv.handle_timeout(now);
        }
        let (sent, _) = drain(&mut iv);
        let item_id = sent
            .iter()
            .find(|e| e["type"] == "response.output_audio.delta")
            .unwrap()["item_id"]
            .as_str()
            .unwrap()
            .to_string();
        // Speech interrupts: 200 ms of loud audio.
        now += 200;
        iv.handle_text(now, &append(200, 0.2));
        let (sent, other) = drain(&mut iv);
        let t = types(&sent);
        let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
        assert_eq!(done["response"]["status"], "cancelled");
        assert_eq!(
            done["response"]["status_details"]["reason"],
            "turn_detected"
        );
        assert!(
            t.iter()
                .position(|x| x == "input_audio_buffer.speech_started")
                < t.iter().position(|x| x == "response.done")
        );
        // 6 deltas were sent (t = 0..500): 600 ms, 12 audio tokens.
        assert_eq!(
            done["response"]["usage"]["output_token_details"]["audio_tokens"],
            12
        );
        assert!(other.iter().any(|o| matches!(o, Output::Billed { .. })));
        assert_eq!(iv.poll_timeout(), None);
        // Truncate beyond what was sent: error; within: truncated.
        iv.handle_text(now, &json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 601}).to_string());
        let (sent, other) = drain(&mut iv);
        assert_eq!(sent[0]["type"], "error");
        assert_eq!(sent[0]["error"]["code"], "invalid_value");
        assert_eq!(other, vec![Output::ErrorSent("invalid_value".into())]);
        iv.handle_text(now, &json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 600, "event_id": "c1"}).to_string());
        let (sent, other) = drain(&mut iv);
        assert_eq!(sent[0]["type"], "conversation.item.truncated");
        assert_eq!(sent[0]["audio_end_ms"], 600);
        assert_eq!(
            other,
            vec![Output::Truncated {
                item_id: item_id.clone(),
                audio_end_ms: 600
            }]
        );
        iv.handle_text(now, &json!({"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 0}).to_string());
        assert_eq!(drain(&mut iv).0[0]["error"]["code"], "item_not_found");
    }

    #[test]
    fn text_item_and_response_create_give_a_text_only_reply() {
        let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
        iv.start(0);
        iv.handle_text(0, r#"{"type":"response.cancel"}"#);
        drain(&mut iv);
        iv.handle_text(10, &json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "I build audio software."}]}}).to_string());
        iv.handle_text(10, r#"{"type":"response.create"}"#);
        let (sent, other) = drain(&mut iv);
        let t = types(&sent);
        assert!(t.contains(&"conversation.item.added".to_string()));
        assert!(!t.iter().any(|x| x.contains("audio")), "{t:?}");
        let text: String = sent
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, QUESTIONS[1]);
        let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
        let u = &done["response"]["usage"];
        assert_eq!(
            u["input_token_details"]["text_tokens"],
            usage::text_tokens("I build audio software.") + usage::text_tokens(INSTRUCTIONS)
        );
        assert!(other.contains(&Output::UserTurn("I build audio software.".into())));
    }

    #[test]
    fn bad_frames_get_errors_and_the_session_goes_on() {
        let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
        iv.start(0);
        iv.handle_text(0, r#"{"type":"response.cancel"}"#);
        drain(&mut iv);
        let cases = [
            ("not json", "invalid_json"),
            (r#"{"no_type":1}"#, "invalid_event"),
            (r#"{"type":"bogus.event"}"#, "invalid_value"),
            (
                r#"{"type":"input_audio_buffer.append","audio":"***"}"#,
                "invalid_audio_format",
            ),
            (
                r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#,
                "invalid_audio_format",
            ),
            (
                r#"{"type":"session.update","session":{"input_audio_format":"g711_ulaw"}}"#,
                "invalid_audio_format",
            ),
            (
                r#"{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}}}"#,
                "invalid_audio_format",
            ),
            (
                r#"{"type":"input_audio_buffer.commit"}"#,
                "input_audio_buffer_commit_empty",
            ),
            (
                r#"{"type":"response.cancel"}"#,
                "response_cancel_not_active",
            ),
        ];
        for (frame, code) in cases {
            iv.handle_text(1, frame);
            let (sent, _) = drain(&mut iv);
            assert_eq!(sent.len(), 1, "{frame}");
            assert_eq!(sent[0]["type"], "error", "{frame}");
            assert_eq!(sent[0]["error"]["code"], code, "{frame}");
        }
        iv.handle_text(2, &append(100, 0.0));
        let (sent, other) = drain(&mut iv);
        assert!(sent.is_empty());
        assert!(
            matches!(&other[0], Output::Append { accepted: true, pcm, .. } if pcm.len() == 4800)
        );
    }

    #[test]
    fn rate_limit_errors_then_closes_4429() {
        let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
        iv.start(0);
        iv.handle_text(0, r#"{"type":"response.cancel"}"#);
        drain(&mut iv);
        let mut errors = 0;
        let mut close = None;
        for i in 0..100u64 {
            iv.handle_text(i * 50, &append(10, 0.0));
            for o in drain(&mut iv).1 {
                match o {
                    Output::ErrorSent(c) if c == "rate_limit_exceeded" => errors += 1,
                    Output::Close { code, .. } => close = Some((i, code)),
                    _ => {}
                }
            }
            if close.is_some() {
                break;
            }
        }
        assert_eq!(errors, 3, "one per window");
        let (i, code) = close.unwrap();
        assert_eq!(code, 4429);
        assert!(
            (3000..4000).contains(&(i * 50)),
            "burst allowance lasts 1.25 s, errors in seconds 1 and 2, close in 3: {} ms",
            i * 50
        );
        iv.handle_text(5000, &append(10, 0.0));
        assert!(drain(&mut iv).0.is_empty(), "nothing after close");
    }

    #[test]
    fn resumed_interview_continues_the_script_and_response_delay_holds() {
        let mut p = params(ProtocolFlavor::Ga);
        p.question_index = 2;
        p.response_delay_ms = 700;
        let mut iv = Interviewer::new(p);
        iv.start(0);
        let (sent, other) = drain(&mut iv);
        assert_eq!(types(&sent), vec!["session.created"]);
        assert_eq!(other, vec![Output::QuestionIndex(3)]);
        assert_eq!(iv.poll_timeout(), Some(700));
        iv.handle_timeout(700);
        let (sent, _) = drain(&mut iv);
        assert_eq!(sent[0]["type"], "response.created");
        let mut now = 700;
        let (rest, _) = run_until_idle(&mut iv, &mut now);
        let done = rest
            .iter()
            .find(|e| e["type"] == "response.output_audio_transcript.done")
            .unwrap();
        assert_eq!(
            done["transcript"],
            format!("{WELCOME_BACK} {}", QUESTIONS[2])
        );
        assert_eq!(script_line(5, false), CLOSING);
        assert_eq!(script_line(9, true), CLOSING);
    }

    #[test]
    fn the_output_token_limit_cuts_the_response() {
        let mut p = params(ProtocolFlavor::Ga);
        p.session.max_response_tokens = 30;
        let mut iv = Interviewer::new(p);
        iv.start(0);
        let mut now = 0;
        let (mut sent, _) = drain(&mut iv);
        sent.extend(run_until_idle(&mut iv, &mut now).0);
        let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
        assert_eq!(done["response"]["status"], "incomplete");
        assert_eq!(
            done["response"]["status_details"]["reason"],
            "max_output_tokens"
        );
        let out = done["response"]["usage"]["output_tokens"].as_u64().unwrap();
        assert!((20..=30).contains(&out), "{out}");
        // Text replies are cut too.
        let mut p = params(ProtocolFlavor::Ga);
        p.session.max_response_tokens = 5;
        let mut iv = Interviewer::new(p);
        iv.start(0);
        iv.handle_text(0, r#"{"type":"response.cancel"}"#);
        drain(&mut iv);
        iv.handle_text(
            0,
            r#"{"type":"response.create","response":{"output_modalities":["text"]}}"#,
        );
        let (sent, _) = drain(&mut iv);
        let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
        assert_eq!(done["response"]["status"], "incomplete");
        let text = done["response"]["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            usage::text_tokens(text) <= 5 && !text.is_empty(),
            "{text:?}"
        );
    }

    #[test]
    fn word_splitting() {
        assert_eq!(next_words("ab cd ef", 0, 1), "ab ");
        assert_eq!(next_words("ab cd ef", 3, 4), "cd ");
        assert_eq!(next_words("ab cd ef", 6, 7), "ef");
        assert_eq!(next_words("ab cd ef", 0, 8), "ab cd ef");
        assert_eq!(next_words("ab", 2, 3), "");
    }
}
