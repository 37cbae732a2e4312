//! Builders of server events in OpenAI's shapes, GA or 2024 beta names by [`ProtocolFlavor`].
//! Every builder returns the event without `event_id`; the session stamps ids when it sends.

use serde_json::{json, Value};

use crate::config::ProtocolFlavor;

/// Names that differ between the beta and GA protocols.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// Audio delta event.
    pub audio_delta: &'static str,
    /// Audio done event.
    pub audio_done: &'static str,
    /// Transcript delta event.
    pub transcript_delta: &'static str,
    /// Transcript done event.
    pub transcript_done: &'static str,
    /// Text delta event.
    pub text_delta: &'static str,
    /// Text done event.
    pub text_done: &'static str,
    /// Item created (beta) / added (GA).
    pub item_added: &'static str,
    /// Content type of assistant audio in items.
    pub item_audio_type: &'static str,
    /// Content type of assistant text in items.
    pub item_text_type: &'static str,
}

/// The names for `flavor`.
pub fn names(flavor: ProtocolFlavor) -> Names {
    match flavor {
        ProtocolFlavor::Beta => Names {
            audio_delta: "response.audio.delta",
            audio_done: "response.audio.done",
            transcript_delta: "response.audio_transcript.delta",
            transcript_done: "response.audio_transcript.done",
            text_delta: "response.text.delta",
            text_done: "response.text.done",
            item_added: "conversation.item.created",
            item_audio_type: "audio",
            item_text_type: "text",
        },
        _ => Names {
            audio_delta: "response.output_audio.delta",
            audio_done: "response.output_audio.done",
            transcript_delta: "response.output_audio_transcript.delta",
            transcript_done: "response.output_audio_transcript.done",
            text_delta: "response.output_text.delta",
            text_done: "response.output_text.done",
            item_added: "conversation.item.added",
            item_audio_type: "output_audio",
            item_text_type: "output_text",
        },
    }
}

/// An `error` event (OpenAI shape). `client_event_id` is the offending client event's id, if any.
pub fn error(
    code: &str,
    message: &str,
    param: Option<&str>,
    client_event_id: Option<&str>,
) -> Value {
    json!({
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        }
    })
}

/// An item of the conversation.
pub fn item(id: &str, role: &str, status: &str, content: Value) -> Value {
    json!({
        "id": id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": role,
        "content": content,
    })
}

/// The events announcing a new item: beta `conversation.item.created`; GA `conversation.item.added`
/// followed by `conversation.item.done` when the item is already complete.
pub fn item_added(
    flavor: ProtocolFlavor,
    previous: Option<&str>,
    item: &Value,
    complete: bool,
) -> Vec<Value> {
    let n = names(flavor);
    let mut v = vec![json!({"type": n.item_added, "previous_item_id": previous, "item": item})];
    if complete && flavor != ProtocolFlavor::Beta {
        v.push(
            json!({"type": "conversation.item.done", "previous_item_id": previous, "item": item}),
        );
    }
    v
}

/// Per-response fields common to events of one output item.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// Response id.
    pub response_id: &'a str,
    /// Item id.
    pub item_id: &'a str,
}

impl Part<'_> {
    /// An event of `ty` with the response/item/index fields and `extra` fields merged in.
    pub fn event(&self, ty: &str, extra: Value) -> Value {
        let mut v = json!({
            "type": ty,
            "response_id": self.response_id,
            "item_id": self.item_id,
            "output_index": 0,
            "content_index": 0,
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    }
}
