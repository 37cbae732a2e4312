//! Client events: the frames we send, serialised with exactly OpenAI's field names and nesting.
//!
//! Only fields we actually use are written (no `event_id`), so every frame's keys are a subset of
//! the official example for its event (checked by `tests/protocol_fixtures.rs`).

use super::json::{self, Value};
use crate::text::Message;
use std::fmt::Write as _;

/// Which shape of the protocol to speak where beta and GA differ (`session.update`, `response.create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ApiShape {
    /// The 2024 beta shape (`modalities`, flat audio fields).
    Beta,
    /// The GA shape (`output_modalities`, `session.type: "realtime"`, nested `audio`).
    #[default]
    Ga,
}

/// What a `response.create` asks the model to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputKind {
    /// Text only (text mode).
    Text,
    /// Spoken audio (with its transcript).
    Audio,
}

/// A client event to serialise (borrowing its payloads): the events the session sends. (Audio
/// goes out as `input_audio_buffer.append` frames the uplink writes straight into its buffer;
/// anything else an app wants to send goes through `sendEvent` as JSON.)
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent<'a> {
    /// `conversation.item.create` with one user `input_text` content part.
    UserText {
        /// The user's message.
        text: &'a str,
    },
    /// `conversation.item.truncate` of an assistant audio item.
    Truncate {
        /// The assistant item being cut.
        item_id: &'a str,
        /// Played audio in ms (never more than the audio received).
        audio_end_ms: u64,
    },
    /// `response.create` asking for one output kind.
    ResponseCreate {
        /// Text or audio output.
        output: OutputKind,
    },
    /// `response.cancel` (the GA shape may name the response).
    ResponseCancel {
        /// The response to cancel, if known (only written in the GA shape).
        response_id: Option<&'a str>,
    },
    /// `session.update` with the app's session object (see [`session_update_body`]).
    SessionUpdate {
        /// The session object, already in the configured shape.
        session: &'a Value<'a>,
    },
    /// `conversation.item.create` with a `function_call_output` item: a tool's result.
    FunctionCallOutput {
        /// The call being answered.
        call_id: &'a str,
        /// The result as JSON text (sent as a string, as the API wants).
        output: &'a str,
    },
}

impl ClientEvent<'_> {
    /// The event's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientEvent::UserText { .. } | ClientEvent::FunctionCallOutput { .. } => {
                "conversation.item.create"
            }
            ClientEvent::Truncate { .. } => "conversation.item.truncate",
            ClientEvent::ResponseCreate { .. } => "response.create",
            ClientEvent::ResponseCancel { .. } => "response.cancel",
            ClientEvent::SessionUpdate { .. } => "session.update",
        }
    }

    /// Appends the frame as compact JSON to `out`.
    pub fn write(&self, shape: ApiShape, out: &mut String) {
        out.push_str("{\"type\":\"");
        out.push_str(self.type_name());
        out.push('"');
        match self {
            ClientEvent::UserText { text } => {
                out.push_str(
                    ",\"item\":{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":",
                );
                json::write_str(out, text);
                out.push_str("}]}");
            }
            ClientEvent::Truncate {
                item_id,
                audio_end_ms,
            } => {
                out.push_str(",\"item_id\":");
                json::write_str(out, item_id);
                out.push_str(",\"content_index\":0,\"audio_end_ms\":");
                json::write_u64(out, *audio_end_ms);
            }
            ClientEvent::ResponseCreate { output } => {
                let body = match (shape, output) {
                    (ApiShape::Beta, OutputKind::Text) => "{\"modalities\":[\"text\"]}",
                    (ApiShape::Beta, OutputKind::Audio) => "{\"modalities\":[\"text\",\"audio\"]}",
                    (ApiShape::Ga, OutputKind::Text) => "{\"output_modalities\":[\"text\"]}",
                    (ApiShape::Ga, OutputKind::Audio) => "{\"output_modalities\":[\"audio\"]}",
                };
                out.push_str(",\"response\":");
                out.push_str(body);
            }
            ClientEvent::ResponseCancel { response_id } => {
                if let (ApiShape::Ga, Some(id)) = (shape, response_id) {
                    out.push_str(",\"response_id\":");
                    json::write_str(out, id);
                }
            }
            ClientEvent::SessionUpdate { session } => {
                out.push_str(",\"session\":");
                session.write(out);
            }
            ClientEvent::FunctionCallOutput { call_id, output } => {
                out.push_str(",\"item\":{\"type\":\"function_call_output\",\"call_id\":");
                json::write_str(out, call_id);
                out.push_str(",\"output\":");
                json::write_str(out, output);
                out.push('}');
            }
        }
        out.push('}');
    }

    /// The frame as a new string.
    pub fn to_json(&self, shape: ApiShape) -> String {
        let mut s = String::new();
        self.write(shape, &mut s);
        s
    }
}

/// Why an app-supplied session object was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionUpdateError {
    /// The text is not valid JSON.
    Json(json::JsonError),
    /// The JSON is not an object (found the named type).
    NotAnObject {
        /// JSON type found instead.
        found: &'static str,
    },
}

impl Message for SessionUpdateError {
    fn write_message(&self, out: &mut String) -> std::fmt::Result {
        match self {
            SessionUpdateError::Json(e) => {
                out.write_str("session update is not valid JSON: ")?;
                e.write_message(out)
            }
            SessionUpdateError::NotAnObject { found } => {
                out.write_str("session update must be a JSON object, found ")?;
                out.write_str(found)
            }
        }
    }
}

crate::text::display_by_message!(SessionUpdateError);

impl std::error::Error for SessionUpdateError {}

/// Builds the `session.update` frame from the app's session object in the configured shape.
///
/// Beta: the object is sent as is. GA: `type: "realtime"` is added first when missing, and the
/// well-known beta names are moved to their GA places (`modalities` → `output_modalities`,
/// `max_response_output_tokens` → `max_output_tokens`, `voice` → `audio.output.voice`,
/// `input_audio_transcription` → `audio.input.transcription`, `turn_detection` →
/// `audio.input.turn_detection`; `temperature`, which GA removed, is dropped), so one app config
/// works against either backend.
pub fn session_update_frame(
    session_json: &str,
    shape: ApiShape,
    max_len: usize,
) -> Result<String, SessionUpdateError> {
    let v = json::parse(session_json, max_len).map_err(SessionUpdateError::Json)?;
    let body = session_update_body(v, shape)?;
    Ok(ClientEvent::SessionUpdate { session: &body }.to_json(shape))
}

/// Converts the app's session object into the configured shape (see [`session_update_frame`]).
pub fn session_update_body(v: Value<'_>, shape: ApiShape) -> Result<Value<'_>, SessionUpdateError> {
    let Value::Object(fields) = v else {
        return Err(SessionUpdateError::NotAnObject {
            found: v.type_name(),
        });
    };
    if shape == ApiShape::Beta {
        return Ok(Value::Object(fields));
    }
    let mut out: Vec<(std::borrow::Cow<'_, str>, Value<'_>)> = Vec::with_capacity(fields.len() + 1);
    let mut audio_in: Vec<(std::borrow::Cow<'_, str>, Value<'_>)> = Vec::new();
    let mut audio_out: Vec<(std::borrow::Cow<'_, str>, Value<'_>)> = Vec::new();
    let mut audio_other: Option<Value<'_>> = None;
    if !fields.iter().any(|(k, _)| k == "type") {
        out.push(("type".into(), Value::String("realtime".into())));
    }
    for (k, v) in fields {
        match k.as_ref() {
            "modalities" => out.push(("output_modalities".into(), v)),
            "max_response_output_tokens" => out.push(("max_output_tokens".into(), v)),
            "temperature" => {}
            "voice" => audio_out.push(("voice".into(), v)),
            "input_audio_transcription" => audio_in.push(("transcription".into(), v)),
            "turn_detection" => audio_in.push(("turn_detection".into(), v)),
            "audio" => audio_other = Some(v),
            _ => out.push((k, v)),
        }
    }
    if !audio_in.is_empty() || !audio_out.is_empty() || audio_other.is_some() {
        let mut audio = match audio_other {
            Some(Value::Object(f)) => f,
            _ => Vec::new(),
        };
        merge_into(&mut audio, "input", audio_in);
        merge_into(&mut audio, "output", audio_out);
        out.push(("audio".into(), Value::Object(audio)));
    }
    Ok(Value::Object(out))
}

fn merge_into<'a>(
    audio: &mut Vec<(std::borrow::Cow<'a, str>, Value<'a>)>,
    key: &'static str,
    extra: Vec<(std::borrow::Cow<'a, str>, Value<'a>)>,
) {
    if extra.is_empty() {
        return;
    }
    match audio.iter_mut().find(|(k, _)| k == key) {
        Some((_, Value::Object(f))) => {
            for (k, v) in extra {
                if !f.iter().any(|(fk, _)| *fk == k) {
                    f.push((k, v));
                }
            }
        }
        _ => {
            audio.retain(|(k, _)| k != key);
            audio.push((key.into(), Value::Object(extra)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_openai_shapes() {
        assert_eq!(
            ClientEvent::UserText { text: "hi \"you\"" }.to_json(ApiShape::Beta),
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi \"you\""}]}}"#
        );
        assert_eq!(
            ClientEvent::Truncate {
                item_id: "it_1",
                audio_end_ms: 1500
            }
            .to_json(ApiShape::Ga),
            r#"{"type":"conversation.item.truncate","item_id":"it_1","content_index":0,"audio_end_ms":1500}"#
        );
        assert_eq!(
            ClientEvent::ResponseCancel {
                response_id: Some("r")
            }
            .to_json(ApiShape::Beta),
            r#"{"type":"response.cancel"}"#
        );
        assert_eq!(
            ClientEvent::ResponseCancel {
                response_id: Some("r")
            }
            .to_json(ApiShape::Ga),
            r#"{"type":"response.cancel","response_id":"r"}"#
        );
    }

    #[test]
    fn session_update_moves_beta_names_for_ga() {
        let s = r#"{"modalities":["text"],"voice":"alloy","temperature":0.7,"turn_detection":{"type":"server_vad"},"instructions":"x"}"#;
        assert_eq!(
            session_update_frame(s, ApiShape::Ga, 4096).unwrap(),
            r#"{"type":"session.update","session":{"type":"realtime","output_modalities":["text"],"instructions":"x","audio":{"input":{"turn_detection":{"type":"server_vad"}},"output":{"voice":"alloy"}}}}"#
        );
        assert_eq!(
            session_update_frame(s, ApiShape::Beta, 4096).unwrap(),
            format!(r#"{{"type":"session.update","session":{s}}}"#)
        );
        assert!(matches!(
            session_update_frame("[1]", ApiShape::Ga, 4096),
            Err(SessionUpdateError::NotAnObject { found: "array" })
        ));
    }
}
