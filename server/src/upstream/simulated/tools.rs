//! Function tools: the session's `tools` (from `session.update`), and the `show_question` call the
//! interviewer makes before speaking each question when its session has that tool — a complete
//! function-call response as OpenAI sends it, then a wait for the client's
//! `function_call_output` and `response.create` (or the configured window) before the question
//! is spoken. The wait is bounded so a page without a handler never stalls the interview.

use serde_json::{json, Value};

use super::{Interviewer, Output};
use crate::upstream::events;
use crate::upstream::usage;

/// The tool the interviewer calls with each question's text.
pub const SHOW_QUESTION: &str = "show_question";
/// Most tools a session keeps (more are refused).
pub const MAX_TOOLS: usize = 64;
/// Largest serialised `tools` array a session keeps, bytes.
const MAX_TOOLS_BYTES: usize = 64 * 1024;

/// A question waiting for the output of its `show_question` call before it is spoken.
#[derive(Debug)]
pub(super) struct PendingCall {
    pub(super) call_id: String,
    /// The line to speak (greeting included for the first question).
    text: String,
    audio: bool,
    /// Speak anyway at this time (ms since the connection started).
    pub(super) deadline_ms: u64,
    /// The client sent the call's output.
    pub(super) answered: bool,
}

impl Interviewer {
    /// Whether the session has a function tool named `show_question`.
    pub(super) fn has_show_question(&self) -> bool {
        self.tools
            .iter()
            .any(|t| t.get("name").and_then(Value::as_str) == Some(SHOW_QUESTION))
    }

    /// Applies `session.tools` (and `tool_choice`) of a `session.update`; `Err` is the refusal's
    /// (message, param).
    pub(super) fn set_tools(&mut self, s: &Value) -> Result<(), (&'static str, &'static str)> {
        if let Some(tools) = s.get("tools") {
            let Some(list) = tools.as_array() else {
                return Err(("'tools' must be an array.", "session.tools"));
            };
            if list.len() > MAX_TOOLS || tools.to_string().len() > MAX_TOOLS_BYTES {
                return Err((
                    "Too many tools or tool definitions too large.",
                    "session.tools",
                ));
            }
            let valid = list.iter().all(|t| {
                t.get("type").and_then(Value::as_str) == Some("function")
                    && t.get("name").and_then(Value::as_str).is_some()
            });
            if !valid {
                return Err((
                    "Every tool needs type 'function' and a 'name'.",
                    "session.tools",
                ));
            }
            self.tools = list.clone();
        }
        if let Some(c) = s.get("tool_choice") {
            self.tool_choice = c.clone();
        }
        Ok(())
    }

    /// Runs a function-call response calling `show_question` with `question`, then waits for its
    /// output before speaking `text`.
    pub(super) fn call_show_question(
        &mut self,
        now_ms: u64,
        question: &str,
        text: String,
        audio: bool,
    ) {
        let resp = self.new_id("resp");
        let item_id = self.new_id("item");
        let call_id = self.new_id("call");
        let arguments = json!({ "text": question }).to_string();
        let item = |status: &str, args: &str| {
            json!({
                "id": item_id,
                "object": "realtime.item",
                "type": "function_call",
                "status": status,
                "call_id": call_id,
                "name": SHOW_QUESTION,
                "arguments": args,
            })
        };
        let r = self.response_object(
            &resp,
            audio,
            "in_progress",
            Value::Null,
            json!([]),
            Value::Null,
        );
        self.send(json!({"type": "response.created", "response": r}));
        let added = item("in_progress", "");
        self.send(json!({"type": "response.output_item.added", "response_id": resp, "output_index": 0, "item": added}));
        let previous = self.last_item.replace(item_id.clone());
        for e in events::item_added(self.params.flavor, previous.as_deref(), &added, false) {
            self.send(e);
        }
        let common = json!({
            "response_id": resp,
            "item_id": item_id,
            "output_index": 0,
            "call_id": call_id,
        });
        let with = |ty: &str, extra: Value| {
            let mut v = common.clone();
            if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
                o.insert("type".into(), json!(ty));
                o.extend(e);
            }
            v
        };
        self.send(with(
            "response.function_call_arguments.delta",
            json!({ "delta": arguments }),
        ));
        self.send(with(
            "response.function_call_arguments.done",
            json!({ "name": SHOW_QUESTION, "arguments": arguments }),
        ));
        let done = item("completed", &arguments);
        self.send(json!({"type": "response.output_item.done", "response_id": resp, "output_index": 0, "item": done}));
        if self.params.flavor != crate::config::ProtocolFlavor::Beta {
            self.send(json!({"type": "conversation.item.done", "previous_item_id": previous, "item": done}));
        }
        let mut usage = std::mem::take(&mut self.pending_input);
        usage.input_text += usage::text_tokens(&self.instructions);
        usage.output_text = usage::text_tokens(&arguments);
        let r = self.response_object(
            &resp,
            audio,
            "completed",
            Value::Null,
            json!([done]),
            usage.to_json(),
        );
        self.send(json!({"type": "response.done", "response": r}));
        let cost_usd = usage::cost_usd(&usage, &self.model);
        self.out.push_back(Output::Billed { usage, cost_usd });
        self.pending_call = Some(PendingCall {
            call_id,
            text,
            audio,
            deadline_ms: now_ms.saturating_add(self.params.tool_output_wait_ms),
            answered: false,
        });
    }

    /// Speaks the question whose call is pending (its output came, the client asked for the
    /// response, or the wait is over).
    pub(super) fn speak_pending(&mut self, now_ms: u64) {
        if let Some(p) = self.pending_call.take() {
            self.speak(now_ms, p.audio, p.text);
        }
    }

    /// A `function_call_output` item from the client: added to the conversation; the pending
    /// question's call counts as answered when the `call_id` is its.
    pub(super) fn on_function_call_output(&mut self, item: &Value, eid: Option<&str>) {
        let call_id = item.get("call_id").and_then(Value::as_str);
        let output = item.get("output").and_then(Value::as_str);
        let (Some(call_id), Some(output)) = (call_id, output) else {
            return self.error(
                "invalid_value",
                "A function_call_output item needs string 'call_id' and 'output'.",
                Some("item"),
                eid,
            );
        };
        if call_id.len() > 128 || output.len() > 64 * 1024 {
            return self.error(
                "invalid_value",
                "The call_id or output of the function_call_output item is too long.",
                Some("item"),
                eid,
            );
        }
        let id = self.new_id("item");
        let it = json!({
            "id": id,
            "object": "realtime.item",
            "type": "function_call_output",
            "status": "completed",
            "call_id": call_id,
            "output": output,
        });
        let previous = self.last_item.replace(id);
        for e in events::item_added(self.params.flavor, previous.as_deref(), &it, true) {
            self.send(e);
        }
        self.pending_input.input_text += usage::text_tokens(output);
        if let Some(p) = self.pending_call.as_mut().filter(|p| p.call_id == call_id) {
            p.answered = true;
        }
    }
}
