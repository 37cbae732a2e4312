//! Responses: paced audio and transcript deltas (or text deltas), cancellation, the output token
//! cap, and `response.done` with usage and cost.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::script::{script_line, QUESTIONS};
use super::{voice, AssistantItem, Interviewer, Output, DELTA_SAMPLES, MAX_ITEMS};
use crate::config::ProtocolFlavor;
use crate::upstream::events::{self, names, Part};
use crate::upstream::usage::{self, Usage};

/// The response in progress.
#[derive(Debug)]
pub(super) struct Active {
    id: String,
    item_id: String,
    text: String,
    pub(super) audio: Option<Arc<[i16]>>,
    sent_samples: usize,
    sent_chars: usize,
    /// Time of the next delta (or of the start when `!started`).
    pub(super) due_ms: u64,
    started: bool,
    /// Speech end time when answering the user (for latency).
    answer_to_ms: Option<u64>,
    input: Usage,
}

impl Interviewer {
    /// Starts the next scripted line (or `text`): with a `show_question` tool and a question to
    /// ask, a function-call response first ([`Interviewer::call_show_question`]), else speech now.
    pub(super) fn start_response(&mut self, now_ms: u64, audio: bool, text: Option<String>) {
        let question = (text.is_none() && self.has_show_question())
            .then(|| QUESTIONS.get(self.question_index as usize).copied())
            .flatten();
        let text = text.unwrap_or_else(|| script_line(self.question_index, self.resumed));
        self.resumed = false;
        self.question_index = self
            .question_index
            .saturating_add(1)
            .min(QUESTIONS.len() as u32 + 1);
        self.out
            .push_back(Output::QuestionIndex(self.question_index));
        match question {
            Some(q) => self.call_show_question(now_ms, q, text, audio),
            None => self.speak(now_ms, audio, text),
        }
    }

    /// Starts a response saying `text` (as audio or text) at `now_ms`.
    pub(super) fn speak(&mut self, now_ms: u64, audio: bool, text: String) {
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

    pub(super) fn response_json(
        &self,
        a: &Active,
        status: &str,
        details: Value,
        output: Value,
        usage: Value,
    ) -> Value {
        self.response_object(&a.id, a.audio.is_some(), status, details, output, usage)
    }

    /// The `response` object of `response.created` / `response.done`.
    pub(super) fn response_object(
        &self,
        id: &str,
        audio: bool,
        status: &str,
        details: Value,
        output: Value,
        usage: Value,
    ) -> Value {
        let mut r = json!({
            "id": id,
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
                    json!([if audio { "audio" } else { "text" }]),
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

    pub(super) fn content(&self, a: &Active, text: &str) -> Value {
        let n = names(self.params.flavor);
        if a.audio.is_some() {
            json!([{"type": n.item_audio_type, "transcript": text}])
        } else {
            json!([{"type": n.item_text_type, "text": text}])
        }
    }

    /// Emits what is due for the active response at `now_ms`.
    pub(super) fn step(&mut self, now_ms: u64) {
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
                a.due_ms += self.params.delta_ms;
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

    pub(super) fn cancel(&mut self, _now_ms: u64, reason: &str) {
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

    pub(super) fn finish(&mut self, a: Active, status: &str, details: Value) {
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
            self.send(
                json!({"type": "conversation.item.done", "previous_item_id": null, "item": item}),
            );
        }
        let r = self.response_json(&a, status, details, json!([item]), usage.to_json());
        self.send(json!({"type": "response.done", "response": r}));
        let cost_usd = usage::cost_usd(&usage, &self.model);
        self.out.push_back(Output::Billed { usage, cost_usd });
        if !said.is_empty() {
            self.out.push_back(Output::AssistantTurn(said));
        }
    }
}

/// `status_details` of a response cut by the output token limit.
fn max_tokens_details() -> Value {
    json!({"type": "incomplete", "reason": "max_output_tokens"})
}

/// The text from byte `from` up to the first word boundary at or after byte `target`
/// (a boundary is just after a space, or the end).
pub(super) fn next_words(text: &str, from: usize, target: usize) -> &str {
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
