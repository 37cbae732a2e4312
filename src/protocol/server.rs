//! Server events: one parse at the edge into typed events, reading both the 2024 beta names and
//! the GA names. Unknown types become [`ServerEvent::Other`] (never an error); frames that are not
//! JSON, have no `type`, or carry a field of the wrong type become a [`ProtocolError`].

use std::borrow::Cow;

use super::json::{self, Value};
use super::ProtocolError;

/// Token usage from `response.done`, as reported (missing counts are `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// `input_tokens`.
    pub input_tokens: u64,
    /// `output_tokens`.
    pub output_tokens: u64,
    /// `input_token_details.text_tokens`.
    pub input_text: Option<u64>,
    /// `input_token_details.audio_tokens`.
    pub input_audio: Option<u64>,
    /// `input_token_details.cached_tokens`.
    pub cached: Option<u64>,
    /// `input_token_details.cached_tokens_details.text_tokens`.
    pub cached_text: Option<u64>,
    /// `input_token_details.cached_tokens_details.audio_tokens`.
    pub cached_audio: Option<u64>,
    /// `output_token_details.text_tokens`.
    pub output_text: Option<u64>,
    /// `output_token_details.audio_tokens`.
    pub output_audio: Option<u64>,
}

/// A typed server event. Strings borrow from the frame where they had no escapes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent<'a> {
    /// `session.created` (`updated: false`) or `session.updated` (`updated: true`).
    Session {
        /// True for `session.updated`.
        updated: bool,
        /// `session.model`, when present.
        model: Option<Cow<'a, str>>,
        /// `session.id`, when present: a reconnect presents it to take the interview back.
        id: Option<Cow<'a, str>>,
    },
    /// `response.audio.delta` / `response.output_audio.delta`.
    AudioDelta {
        /// The response.
        response_id: Option<Cow<'a, str>>,
        /// The assistant item the audio belongs to.
        item_id: Cow<'a, str>,
        /// Base64 PCM16 24 kHz mono.
        delta: Cow<'a, str>,
    },
    /// `response.audio.done` / `response.output_audio.done`.
    AudioDone {
        /// The assistant item.
        item_id: Cow<'a, str>,
    },
    /// Assistant transcript or text: `response.audio_transcript.*`,
    /// `response.output_audio_transcript.*`, `response.text.*`, `response.output_text.*`.
    AssistantText {
        /// The assistant item.
        item_id: Cow<'a, str>,
        /// The delta, or the whole text when `done`.
        text: Cow<'a, str>,
        /// True for `.done`.
        done: bool,
    },
    /// User transcript: `conversation.item.input_audio_transcription.delta` / `.completed`.
    UserTranscript {
        /// The user item.
        item_id: Cow<'a, str>,
        /// The delta, or the whole transcript when `done`.
        text: Cow<'a, str>,
        /// True for `.completed`.
        done: bool,
    },
    /// `conversation.item.input_audio_transcription.failed`.
    UserTranscriptFailed {
        /// The user item.
        item_id: Cow<'a, str>,
        /// `error.code`, if any.
        code: Option<Cow<'a, str>>,
        /// `error.message`, if any.
        message: Option<Cow<'a, str>>,
    },
    /// `conversation.item.created` (beta) / `conversation.item.added` / `conversation.item.done`.
    Item {
        /// `item.id`.
        item_id: Cow<'a, str>,
        /// `item.role`, when present.
        role: Option<Cow<'a, str>>,
        /// True for `conversation.item.done`.
        done: bool,
    },
    /// `conversation.item.truncated`.
    ItemTruncated {
        /// The item.
        item_id: Cow<'a, str>,
        /// Where the server cut it.
        audio_end_ms: u64,
    },
    /// `input_audio_buffer.speech_started`.
    SpeechStarted {
        /// The user item that will hold the speech.
        item_id: Option<Cow<'a, str>>,
    },
    /// `input_audio_buffer.speech_stopped`.
    SpeechStopped {
        /// The user item.
        item_id: Option<Cow<'a, str>>,
    },
    /// `input_audio_buffer.committed`.
    Committed {
        /// The user item.
        item_id: Option<Cow<'a, str>>,
    },
    /// `response.created`.
    ResponseCreated {
        /// `response.id`.
        response_id: Option<Cow<'a, str>>,
    },
    /// `response.done`, with usage when present.
    ResponseDone {
        /// `response.id`.
        response_id: Option<Cow<'a, str>>,
        /// `response.status`.
        status: Option<Cow<'a, str>>,
        /// `response.usage`, when present and not null.
        usage: Option<Usage>,
    },
    /// `error`.
    Error {
        /// `error.type`.
        kind: Option<Cow<'a, str>>,
        /// `error.code` (e.g. `invalid_audio_format`, `rate_limit_exceeded`, `session_expired`).
        code: Option<Cow<'a, str>>,
        /// `error.message`.
        message: Option<Cow<'a, str>>,
    },
    /// `rate_limits.updated` (contents passed to the app in the raw event only).
    RateLimitsUpdated,
    /// Any other (known or unknown) type: passed to the app as raw JSON.
    Other,
}

/// A parsed frame: its `type` and the typed event.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerFrame<'a> {
    /// The frame's `type` string.
    pub kind: Cow<'a, str>,
    /// The typed event.
    pub event: ServerEvent<'a>,
}

/// Parses one server frame of at most `max_len` bytes.
pub fn parse_server_frame(text: &str, max_len: usize) -> Result<ServerFrame<'_>, ProtocolError> {
    let mut v = json::parse(text, max_len).map_err(|e| match e {
        json::JsonError::TooLarge { len, max } => ProtocolError::FrameTooLarge { len, max },
        e => ProtocolError::Json(e),
    })?;
    if !matches!(v, Value::Object(_)) {
        return Err(ProtocolError::NotAnObject {
            found: v.type_name(),
        });
    }
    let kind = match v.take("type") {
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(ProtocolError::WrongType {
                event: String::new(),
                field: "type",
                expected: "string",
                found: other.type_name(),
            })
        }
        None => return Err(ProtocolError::MissingType),
    };
    let mut f = Fields {
        kind: &kind,
        v: &mut v,
    };
    let event = match kind.as_ref() {
        "session.created" | "session.updated" => {
            let mut s = f.obj("session")?;
            let mut sf = Fields::sub(&kind, &mut s);
            ServerEvent::Session {
                updated: kind == "session.updated",
                model: sf.opt_str("model")?,
                id: sf.opt_str("id")?,
            }
        }
        "response.audio.delta" | "response.output_audio.delta" => ServerEvent::AudioDelta {
            response_id: f.opt_str("response_id")?,
            item_id: f.str("item_id")?,
            delta: f.str("delta")?,
        },
        "response.audio.done" | "response.output_audio.done" => ServerEvent::AudioDone {
            item_id: f.str("item_id")?,
        },
        "response.audio_transcript.delta"
        | "response.output_audio_transcript.delta"
        | "response.text.delta"
        | "response.output_text.delta" => ServerEvent::AssistantText {
            item_id: f.str("item_id")?,
            text: f.str("delta")?,
            done: false,
        },
        "response.audio_transcript.done" | "response.output_audio_transcript.done" => {
            ServerEvent::AssistantText {
                item_id: f.str("item_id")?,
                text: f.str("transcript")?,
                done: true,
            }
        }
        "response.text.done" | "response.output_text.done" => ServerEvent::AssistantText {
            item_id: f.str("item_id")?,
            text: f.str("text")?,
            done: true,
        },
        "conversation.item.input_audio_transcription.delta" => ServerEvent::UserTranscript {
            item_id: f.str("item_id")?,
            text: f.str("delta")?,
            done: false,
        },
        "conversation.item.input_audio_transcription.completed" => ServerEvent::UserTranscript {
            item_id: f.str("item_id")?,
            text: f.str("transcript")?,
            done: true,
        },
        "conversation.item.input_audio_transcription.failed" => {
            let item_id = f.str("item_id")?;
            let (code, message) = match f.opt_obj("error")? {
                Some(mut e) => {
                    let mut ef = Fields::sub(&kind, &mut e);
                    (ef.opt_str("code")?, ef.opt_str("message")?)
                }
                None => (None, None),
            };
            ServerEvent::UserTranscriptFailed {
                item_id,
                code,
                message,
            }
        }
        "conversation.item.created" | "conversation.item.added" | "conversation.item.done" => {
            let mut item = f.obj("item")?;
            let mut itf = Fields::sub(&kind, &mut item);
            ServerEvent::Item {
                item_id: itf.str("id")?,
                role: itf.opt_str("role")?,
                done: kind == "conversation.item.done",
            }
        }
        "conversation.item.truncated" => ServerEvent::ItemTruncated {
            item_id: f.str("item_id")?,
            audio_end_ms: f.u64("audio_end_ms")?,
        },
        "input_audio_buffer.speech_started" => ServerEvent::SpeechStarted {
            item_id: f.opt_str("item_id")?,
        },
        "input_audio_buffer.speech_stopped" => ServerEvent::SpeechStopped {
            item_id: f.opt_str("item_id")?,
        },
        "input_audio_buffer.committed" => ServerEvent::Committed {
            item_id: f.opt_str("item_id")?,
        },
        "response.created" => {
            let mut r = f.obj("response")?;
            ServerEvent::ResponseCreated {
                response_id: Fields::sub(&kind, &mut r).opt_str("id")?,
            }
        }
        "response.done" => {
            let mut r = f.obj("response")?;
            let mut rf = Fields::sub(&kind, &mut r);
            let response_id = rf.opt_str("id")?;
            let status = rf.opt_str("status")?;
            let usage = match rf.opt_obj("usage")? {
                Some(mut u) => Some(parse_usage(&kind, &mut u)?),
                None => None,
            };
            ServerEvent::ResponseDone {
                response_id,
                status,
                usage,
            }
        }
        "error" => {
            let mut e = f.obj("error")?;
            let mut ef = Fields::sub(&kind, &mut e);
            ServerEvent::Error {
                kind: ef.opt_str("type")?,
                code: ef.opt_str("code")?,
                message: ef.opt_str("message")?,
            }
        }
        "rate_limits.updated" => {
            match f.v.get("rate_limits") {
                Some(Value::Array(_)) | None => {}
                Some(other) => return Err(f.wrong("rate_limits", "array", other.type_name())),
            }
            ServerEvent::RateLimitsUpdated
        }
        _ => ServerEvent::Other,
    };
    Ok(ServerFrame { kind, event })
}

fn parse_usage<'a>(kind: &str, u: &mut Value<'a>) -> Result<Usage, ProtocolError> {
    let mut f = Fields::sub(kind, u);
    let mut usage = Usage {
        input_tokens: f.opt_u64("input_tokens")?.unwrap_or(0),
        output_tokens: f.opt_u64("output_tokens")?.unwrap_or(0),
        ..Usage::default()
    };
    if let Some(mut d) = f.opt_obj("input_token_details")? {
        let mut df = Fields::sub(kind, &mut d);
        usage.input_text = df.opt_u64("text_tokens")?;
        usage.input_audio = df.opt_u64("audio_tokens")?;
        usage.cached = df.opt_u64("cached_tokens")?;
        if let Some(mut c) = df.opt_obj("cached_tokens_details")? {
            let mut cf = Fields::sub(kind, &mut c);
            usage.cached_text = cf.opt_u64("text_tokens")?;
            usage.cached_audio = cf.opt_u64("audio_tokens")?;
        }
    }
    if let Some(mut d) = f.opt_obj("output_token_details")? {
        let mut df = Fields::sub(kind, &mut d);
        usage.output_text = df.opt_u64("text_tokens")?;
        usage.output_audio = df.opt_u64("audio_tokens")?;
    }
    Ok(usage)
}

/// Typed field access on one object, producing errors that name the event and field.
struct Fields<'k, 'v, 'a> {
    kind: &'k str,
    v: &'v mut Value<'a>,
}

impl<'k, 'v, 'a> Fields<'k, 'v, 'a> {
    fn sub(kind: &'k str, v: &'v mut Value<'a>) -> Self {
        Fields { kind, v }
    }

    fn wrong(
        &self,
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    ) -> ProtocolError {
        ProtocolError::WrongType {
            event: clip(self.kind),
            field,
            expected,
            found,
        }
    }

    fn missing(&self, field: &'static str) -> ProtocolError {
        ProtocolError::MissingField {
            event: clip(self.kind),
            field,
        }
    }

    fn str(&mut self, field: &'static str) -> Result<Cow<'a, str>, ProtocolError> {
        self.opt_str(field)?.ok_or_else(|| self.missing(field))
    }

    /// A string field; absent and `null` are `None`.
    fn opt_str(&mut self, field: &'static str) -> Result<Option<Cow<'a, str>>, ProtocolError> {
        match self.v.take(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(field, "string", other.type_name())),
        }
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        self.opt_u64(field)?.ok_or_else(|| self.missing(field))
    }

    fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, ProtocolError> {
        match self.v.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => Err(self.wrong(field, "non-negative integer", v.type_name())),
            },
        }
    }

    fn obj(&mut self, field: &'static str) -> Result<Value<'a>, ProtocolError> {
        self.opt_obj(field)?.ok_or_else(|| self.missing(field))
    }

    /// An object field; absent and `null` are `None`.
    fn opt_obj(&mut self, field: &'static str) -> Result<Option<Value<'a>>, ProtocolError> {
        match self.v.take(field) {
            None | Some(Value::Null) => Ok(None),
            Some(o @ Value::Object(_)) => Ok(Some(o)),
            Some(other) => Err(self.wrong(field, "object", other.type_name())),
        }
    }
}

/// Event types from the network are clipped before they go into errors (bounded, printable).
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_beta_and_ga_audio_names() {
        for t in ["response.audio.delta", "response.output_audio.delta"] {
            let f = format!(r#"{{"type":"{t}","response_id":"r","item_id":"i","delta":"AAAA"}}"#);
            let fr = parse_server_frame(&f, 1 << 16).unwrap();
            assert_eq!(fr.kind, t);
            match fr.event {
                ServerEvent::AudioDelta { item_id, delta, .. } => {
                    assert_eq!(item_id, "i");
                    assert!(matches!(delta, Cow::Borrowed("AAAA")));
                }
                e => panic!("got {e:?}"),
            }
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        type Check = fn(&ProtocolError) -> bool;
        let cases: [(&str, Check); 6] = [
            ("not json", |e| matches!(e, ProtocolError::Json(_))),
            ("[1]", |e| {
                matches!(e, ProtocolError::NotAnObject { found: "array" })
            }),
            (r#"{"x":1}"#, |e| matches!(e, ProtocolError::MissingType)),
            (r#"{"type":5}"#, |e| {
                matches!(e, ProtocolError::WrongType { field: "type", .. })
            }),
            (
                r#"{"type":"response.audio.delta","item_id":"i","delta":5}"#,
                |e| {
                    matches!(
                        e,
                        ProtocolError::WrongType {
                            field: "delta",
                            expected: "string",
                            found: "number",
                            ..
                        }
                    )
                },
            ),
            (r#"{"type":"response.audio.delta","delta":"AA"}"#, |e| {
                matches!(
                    e,
                    ProtocolError::MissingField {
                        field: "item_id",
                        ..
                    }
                )
            }),
        ];
        for (frame, ok) in cases {
            let e = parse_server_frame(frame, 1 << 16).unwrap_err();
            assert!(ok(&e), "{frame}: {e:?}");
        }
        assert_eq!(
            parse_server_frame(r#"{"type":"x"}"#, 4).unwrap_err(),
            ProtocolError::FrameTooLarge { len: 12, max: 4 }
        );
    }

    #[test]
    fn unknown_types_pass_through() {
        let fr = parse_server_frame(r#"{"type":"brand.new","x":[1]}"#, 1 << 16).unwrap();
        assert_eq!(fr.kind, "brand.new");
        assert_eq!(fr.event, ServerEvent::Other);
    }
}
