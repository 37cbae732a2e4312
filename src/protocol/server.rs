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

/// A function call the model made (`type: "function_call"` items, or the arguments event).
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall<'a> {
    /// `call_id`: the output must name it.
    pub call_id: Cow<'a, str>,
    /// The tool's name (the beta arguments event leaves it out).
    pub name: Option<Cow<'a, str>>,
    /// The arguments as JSON text, when final.
    pub arguments: Option<Cow<'a, str>>,
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
        /// Whether the server interrupts the assistant when the user starts speaking, from
        /// `turn_detection` (beta) or `audio.input.turn_detection` (GA): `false` when it is
        /// `null`, of type `"none"` or has `interrupt_response: false`; `None` when the event
        /// does not say.
        interrupts: Option<bool>,
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
        /// The `function_call` items of `response.output`.
        calls: Vec<FunctionCall<'a>>,
    },
    /// A function call: `response.function_call_arguments.done`, or
    /// `response.output_item.added`/`.done` whose item is a `function_call`.
    FunctionCall {
        /// The response it belongs to.
        response_id: Option<Cow<'a, str>>,
        /// The call.
        call: FunctionCall<'a>,
        /// The arguments are final (not `response.output_item.added`).
        done: bool,
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
    /// Any other (known or unknown) type: passed to the app as raw JSON. Types the session does
    /// not act on (`conversation.item.*`, `rate_limits.updated`, …) are not parsed further.
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
    // Field errors go to one slot (the first one wins) and the accessors return empty values,
    // instead of a `?` per field: every `?` with borrowed strings alive costs unwinding code, and
    // this function had ~40 of them (12.6 KB of wasm before this shape, measured by twiggy).
    let mut err = None;
    let mut f = Fields {
        kind: &kind,
        err: &mut err,
        v: &mut v,
    };
    let event = match kind.as_ref() {
        "session.created" | "session.updated" => {
            let mut s = f.obj("session");
            let mut sf = f.sub(&mut s);
            ServerEvent::Session {
                updated: kind == "session.updated",
                model: sf.opt_str("model"),
                id: sf.opt_str("id"),
                interrupts: interrupts(&s),
            }
        }
        "response.audio.delta" | "response.output_audio.delta" => ServerEvent::AudioDelta {
            response_id: f.opt_str("response_id"),
            item_id: f.str("item_id"),
            delta: f.str("delta"),
        },
        "response.audio.done" | "response.output_audio.done" => ServerEvent::AudioDone {
            item_id: f.str("item_id"),
        },
        "response.audio_transcript.delta"
        | "response.output_audio_transcript.delta"
        | "response.text.delta"
        | "response.output_text.delta" => ServerEvent::AssistantText {
            item_id: f.str("item_id"),
            text: f.str("delta"),
            done: false,
        },
        "response.audio_transcript.done" | "response.output_audio_transcript.done" => {
            ServerEvent::AssistantText {
                item_id: f.str("item_id"),
                text: f.str("transcript"),
                done: true,
            }
        }
        "response.text.done" | "response.output_text.done" => ServerEvent::AssistantText {
            item_id: f.str("item_id"),
            text: f.str("text"),
            done: true,
        },
        "conversation.item.input_audio_transcription.delta" => ServerEvent::UserTranscript {
            item_id: f.str("item_id"),
            text: f.str("delta"),
            done: false,
        },
        "conversation.item.input_audio_transcription.completed" => ServerEvent::UserTranscript {
            item_id: f.str("item_id"),
            text: f.str("transcript"),
            done: true,
        },
        "conversation.item.input_audio_transcription.failed" => {
            let item_id = f.str("item_id");
            let (code, message) = match f.opt_obj("error") {
                Some(mut e) => {
                    let mut ef = f.sub(&mut e);
                    (ef.opt_str("code"), ef.opt_str("message"))
                }
                None => (None, None),
            };
            ServerEvent::UserTranscriptFailed {
                item_id,
                code,
                message,
            }
        }
        "input_audio_buffer.speech_started" => ServerEvent::SpeechStarted {
            item_id: f.opt_str("item_id"),
        },
        "input_audio_buffer.speech_stopped" => ServerEvent::SpeechStopped {
            item_id: f.opt_str("item_id"),
        },
        "input_audio_buffer.committed" => ServerEvent::Committed {
            item_id: f.opt_str("item_id"),
        },
        "response.created" => {
            let mut r = f.obj("response");
            ServerEvent::ResponseCreated {
                response_id: f.sub(&mut r).opt_str("id"),
            }
        }
        "response.done" => {
            let mut r = f.obj("response");
            let mut rf = f.sub(&mut r);
            let response_id = rf.opt_str("id");
            let status = rf.opt_str("status");
            let usage = rf
                .opt_obj("usage")
                .map(|mut u| parse_usage(&mut rf.sub(&mut u)));
            let mut calls = Vec::new();
            match rf.v.take("output") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for mut item in items {
                        if let Some(call) = function_call_item(&mut rf, &mut item) {
                            calls.push(call);
                        }
                    }
                }
                Some(other) => rf.wrong("output", "array", other.type_name()),
            }
            ServerEvent::ResponseDone {
                response_id,
                status,
                usage,
                calls,
            }
        }
        "response.function_call_arguments.done" => ServerEvent::FunctionCall {
            response_id: f.opt_str("response_id"),
            call: FunctionCall {
                call_id: f.str("call_id"),
                name: f.opt_str("name"),
                arguments: Some(f.str("arguments")),
            },
            done: true,
        },
        "response.output_item.added" | "response.output_item.done" => {
            let response_id = f.opt_str("response_id");
            let mut item = f.obj("item");
            match function_call_item(&mut f, &mut item) {
                Some(call) => ServerEvent::FunctionCall {
                    response_id,
                    done: kind == "response.output_item.done",
                    call,
                },
                None => ServerEvent::Other,
            }
        }
        "error" => {
            let mut e = f.obj("error");
            let mut ef = f.sub(&mut e);
            ServerEvent::Error {
                kind: ef.opt_str("type"),
                code: ef.opt_str("code"),
                message: ef.opt_str("message"),
            }
        }
        _ => ServerEvent::Other,
    };
    match err {
        Some(e) => Err(e),
        None => Ok(ServerFrame { kind, event }),
    }
}

/// A `function_call` item (`None` for items of other types, or when the item is not an object:
/// that error goes to `f`'s slot).
fn function_call_item<'a>(
    f: &mut Fields<'_, '_, '_, 'a>,
    item: &mut Value<'a>,
) -> Option<FunctionCall<'a>> {
    if !matches!(item, Value::Object(_)) {
        f.wrong("item", "object", item.type_name());
        return None;
    }
    if item.get("type").and_then(|t| t.as_str()) != Some("function_call") {
        return None;
    }
    let mut f = f.sub(item);
    Some(FunctionCall {
        call_id: f.str("call_id"),
        name: f.opt_str("name"),
        arguments: f.opt_str("arguments"),
    })
}

fn parse_usage(f: &mut Fields<'_, '_, '_, '_>) -> Usage {
    let mut usage = Usage {
        input_tokens: f.opt_u64("input_tokens").unwrap_or(0),
        output_tokens: f.opt_u64("output_tokens").unwrap_or(0),
        ..Usage::default()
    };
    if let Some(mut d) = f.opt_obj("input_token_details") {
        let mut df = f.sub(&mut d);
        usage.input_text = df.opt_u64("text_tokens");
        usage.input_audio = df.opt_u64("audio_tokens");
        usage.cached = df.opt_u64("cached_tokens");
        if let Some(mut c) = df.opt_obj("cached_tokens_details") {
            let mut cf = df.sub(&mut c);
            usage.cached_text = cf.opt_u64("text_tokens");
            usage.cached_audio = cf.opt_u64("audio_tokens");
        }
    }
    if let Some(mut d) = f.opt_obj("output_token_details") {
        let mut df = f.sub(&mut d);
        usage.output_text = df.opt_u64("text_tokens");
        usage.output_audio = df.opt_u64("audio_tokens");
    }
    usage
}

/// Typed field access on one object of an event. A field of the wrong type (or a required one
/// that is missing) is recorded in `err`, the first one only, naming the event and the field;
/// the accessor then returns an empty value and the caller discards the event.
struct Fields<'k, 'e, 'v, 'a> {
    kind: &'k str,
    err: &'e mut Option<ProtocolError>,
    v: &'v mut Value<'a>,
}

impl<'k, 'e, 'v, 'a> Fields<'k, 'e, 'v, 'a> {
    /// Access to a nested object, reporting to the same slot.
    fn sub<'s, 'w>(&'s mut self, v: &'w mut Value<'a>) -> Fields<'k, 's, 'w, 'a> {
        Fields {
            kind: self.kind,
            err: self.err,
            v,
        }
    }

    fn fail(&mut self, e: ProtocolError) {
        if self.err.is_none() {
            *self.err = Some(e);
        }
    }

    fn wrong(&mut self, field: &'static str, expected: &'static str, found: &'static str) {
        let event = clip(self.kind);
        self.fail(ProtocolError::WrongType {
            event,
            field,
            expected,
            found,
        });
    }

    fn missing(&mut self, field: &'static str) {
        let event = clip(self.kind);
        self.fail(ProtocolError::MissingField { event, field });
    }

    fn str(&mut self, field: &'static str) -> Cow<'a, str> {
        match self.take(field) {
            Some(Value::String(s)) => s,
            None => {
                self.missing(field);
                Cow::Borrowed("")
            }
            Some(other) => {
                self.wrong(field, "string", other.type_name());
                Cow::Borrowed("")
            }
        }
    }

    /// A string field; absent and `null` are `None`.
    fn opt_str(&mut self, field: &'static str) -> Option<Cow<'a, str>> {
        match self.take(field)? {
            Value::String(s) => Some(s),
            other => {
                self.wrong(field, "string", other.type_name());
                None
            }
        }
    }

    fn opt_u64(&mut self, field: &'static str) -> Option<u64> {
        match self.v.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    let found = v.type_name();
                    self.wrong(field, "non-negative integer", found);
                    None
                }
            },
        }
    }

    fn obj(&mut self, field: &'static str) -> Value<'a> {
        match self.take(field) {
            Some(o @ Value::Object(_)) => o,
            None => {
                self.missing(field);
                Value::Null
            }
            Some(other) => {
                self.wrong(field, "object", other.type_name());
                Value::Null
            }
        }
    }

    /// An object field; absent and `null` are `None`.
    fn opt_obj(&mut self, field: &'static str) -> Option<Value<'a>> {
        match self.take(field)? {
            o @ Value::Object(_) => Some(o),
            other => {
                self.wrong(field, "object", other.type_name());
                None
            }
        }
    }

    /// The field's value, taken out of the object; absent and `null` are `None`.
    fn take(&mut self, field: &str) -> Option<Value<'a>> {
        match self.v.take(field) {
            None | Some(Value::Null) => None,
            v => v,
        }
    }
}

/// Whether the session's turn detection interrupts the assistant (see
/// [`ServerEvent::Session`]): beta keeps it at `session.turn_detection`, GA at
/// `session.audio.input.turn_detection`.
fn interrupts(session: &Value<'_>) -> Option<bool> {
    let td = session.get("turn_detection").or_else(|| {
        session
            .get("audio")
            .and_then(|a| a.get("input"))
            .and_then(|i| i.get("turn_detection"))
    })?;
    match td {
        Value::Null => Some(false),
        Value::Object(_) => Some(
            td.get("type").and_then(Value::as_str) != Some("none")
                && td.get("interrupt_response").and_then(Value::as_bool) != Some(false),
        ),
        _ => None,
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
