//! Client input: appended audio through the server VAD to committed user items, text items, and
//! truncation of assistant audio.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::script::transcript_for;
use super::vad::VadEvent;
use super::{Interviewer, Output, BYTES_PER_MS};
use crate::upstream::{events, usage};

impl Interviewer {
    pub(super) fn on_append(&mut self, now_ms: u64, v: &Value, eid: Option<&str>) {
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
        self.out.push_back(Output::Append { pcm });
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

    pub(super) fn on_speech_started(&mut self, now_ms: u64, audio_start_ms: u64) {
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

    pub(super) fn on_speech_stopped(
        &mut self,
        now_ms: u64,
        audio_end_ms: u64,
        speech_ms: u64,
        upto: u64,
    ) {
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
        if self.commit(speech_ms, upto)
            && self.create_response
            && self.active.is_none()
            && self.pending_call.is_none()
        {
            self.start_response(now_ms, self.audio_out, None);
        }
    }

    pub(super) fn on_commit(&mut self, now_ms: u64, eid: Option<&str>) {
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

    /// Whether the interview may take one more user turn; if not, says so with an error.
    fn take_turn(&mut self, eid: Option<&str>) -> bool {
        if self.turns_left == 0 {
            self.speech_end_at = None;
            self.error(
                "rate_limit_exceeded",
                "This interview reached its limit of user turns; nothing more is added to it.",
                None,
                eid,
            );
            return false;
        }
        self.turns_left -= 1;
        true
    }

    /// Commits the input buffer up to byte offset `upto` as a user audio item with its
    /// deterministic transcription; false (the audio is dropped) when the turn cap is reached.
    fn commit(&mut self, speech_ms: u64, upto: u64) -> bool {
        if !self.take_turn(None) {
            self.commit_base = upto.clamp(self.commit_base, self.total_bytes);
            self.pending_item = None;
            return false;
        }
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
        // Transcription usage, as the GA schema requires: the audio in, the text out.
        let audio_tokens = usage::user_audio_tokens(committed_ms);
        let text_tokens = usage::text_tokens(&transcript);
        self.send(json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id,
            "content_index": 0,
            "transcript": transcript,
            "usage": {
                "type": "tokens",
                "total_tokens": audio_tokens + text_tokens,
                "input_tokens": audio_tokens,
                "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                "output_tokens": text_tokens,
            },
        }));
        self.out.push_back(Output::UserTurn(transcript));
        true
    }

    pub(super) fn on_item_create(&mut self, v: &Value, eid: Option<&str>) {
        let item = v.get("item");
        let ty = item.and_then(|i| i.get("type")).and_then(Value::as_str);
        let role = item.and_then(|i| i.get("role")).and_then(Value::as_str);
        if let (Some("function_call_output"), Some(item)) = (ty, item) {
            return self.on_function_call_output(item, eid);
        }
        if let (Some("message"), Some("assistant"), Some(item)) = (ty, role, item) {
            return self.on_assistant_item(item, eid);
        }
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
        if !self.take_turn(eid) {
            return;
        }
        self.add_text_item(item, "user", "input_text", &text);
        self.last_input_text = true;
        self.out.push_back(Output::UserTurn(text));
    }

    pub(super) fn on_response_create(&mut self, now_ms: u64, v: &Value, eid: Option<&str>) {
        if self.active.is_some() {
            return self.error(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress.",
                None,
                eid,
            );
        }
        if self.pending_call.is_some() {
            // The client answered the question's call (or gave up on it): speak the question.
            return self.speak_pending(now_ms);
        }
        let r = v.get("response");
        if r.and_then(|r| r.get("instructions")).is_some() {
            // Out-of-band instructions (a relay after a reconnect): this interviewer cannot
            // follow arbitrary instructions; it repeats its last question, briefly.
            self.repeat_last_question();
        }
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

    /// Adds a completed text item of `role` to the conversation (the client's id when it gave a
    /// usable one), announces it, and counts its text as input for the next response's usage.
    fn add_text_item(&mut self, item: Option<&Value>, role: &str, part: &str, text: &str) {
        let id = item
            .and_then(|i| i.get("id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 64)
            .map(str::to_string)
            .unwrap_or_else(|| self.new_id("item"));
        let previous = self.last_item.replace(id.clone());
        let it = events::item(
            &id,
            role,
            "completed",
            json!([{"type": part, "text": text}]),
        );
        for e in events::item_added(self.params.flavor, previous.as_deref(), &it, true) {
            self.send(e);
        }
        self.pending_input.input_text += usage::text_tokens(text);
    }

    /// An assistant message replayed by a client (a relay restoring an interview into a new
    /// session): added to the conversation; each one counts as a script line already spoken.
    fn on_assistant_item(&mut self, item: &Value, eid: Option<&str>) {
        let mut text = String::new();
        for c in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match c.get("type").and_then(Value::as_str) {
                Some("output_text") | Some("text") => {
                    text.push_str(c.get("text").and_then(Value::as_str).unwrap_or(""))
                }
                Some("output_audio") | Some("audio") => {
                    text.push_str(c.get("transcript").and_then(Value::as_str).unwrap_or(""))
                }
                _ => {
                    return self.error(
                        "invalid_value",
                        "Assistant items take output_text or output_audio content.",
                        Some("item.content"),
                        eid,
                    )
                }
            }
        }
        self.add_text_item(Some(item), "assistant", "output_text", &text);
        self.last_input_text = false;
        self.question_index = self
            .question_index
            .saturating_add(1)
            .min(super::QUESTIONS.len() as u32 + 1);
    }

    /// Steps back one script line so the next response says the last question again, after a
    /// "Welcome back.".
    fn repeat_last_question(&mut self) {
        if self.question_index > 0 && (self.question_index as usize) <= super::QUESTIONS.len() {
            self.question_index -= 1;
            self.resumed = true;
        }
    }

    pub(super) fn on_truncate(&mut self, v: &Value, eid: Option<&str>) {
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
}
