//! The session object: `session.update` handling and the `session.created` / `session.updated`
//! payload in GA or beta shape.

use serde_json::{json, Value};

use super::vad::Vad;
use super::{Interviewer, BYTES_PER_MS};
use crate::config::ProtocolFlavor;

impl Interviewer {
    pub(super) fn on_session_update(&mut self, v: &Value, eid: Option<&str>) {
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
        if let Err((message, param)) = self.set_tools(s) {
            return self.error("invalid_value", message, Some(param), eid);
        }
        if let Some(i) = s.get("instructions").and_then(Value::as_str) {
            self.instructions = i.chars().take(16_384).collect();
        }
        let s = self.session_json();
        self.send(json!({"type": "session.updated", "session": s}));
    }

    pub(super) fn session_json(&self) -> Value {
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
                "tools": self.tools,
                "tool_choice": self.tool_choice,
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
                "tools": self.tools,
                "tool_choice": self.tool_choice,
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
}
