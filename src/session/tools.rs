//! Tools the model can call in the page: the registered definitions (sent in `session.update`,
//! again after every reconnect), the calls in progress with their deadlines, and the
//! continuation: each call gets exactly one `function_call_output` (a result, or an error object
//! the model can read), and once every call of a response is answered and that response is
//! done, one `response.create`.

use std::collections::VecDeque;

use super::events::ErrorKind;
use super::machine::Session;
use super::output::{CommandError, Output};
use crate::protocol::json::{self, Value};
use crate::protocol::{session_update_frame, ClientEvent, FunctionCall};
use crate::text::{concat, Message, Part::*};

/// Calls in progress at once; more in one response are answered with an error at once.
const MAX_PENDING: usize = 16;
/// Call ids remembered as handled, so a call reported by several events runs once.
const SEEN_CALLS: usize = 64;
/// Names learnt from `response.output_item.added` (the beta arguments event has none).
const NAMES_KEPT: usize = 16;
/// Registered tools at most.
const MAX_TOOLS: usize = 64;

/// One call the app's handler is running or has answered.
#[derive(Debug, Clone)]
struct Call {
    call_id: String,
    name: String,
    /// The response it belongs to ("" when the server gave no id).
    response_id: String,
    deadline: u64,
    answered: bool,
}

/// The tools side's state.
#[derive(Debug, Default)]
pub(super) struct Tools {
    names: Vec<String>,
    /// The `session.update` that declares the tools (resent after every reconnect).
    pub frame: Option<String>,
    calls: Vec<Call>,
    seen: VecDeque<String>,
    names_by_call: VecDeque<(String, String)>,
    /// Responses done (`response.done`) while some of their calls were unanswered.
    done_responses: Vec<String>,
}

impl Tools {
    /// Whether a call is still waiting for its handler (its response's continuation follows).
    pub fn waiting(&self) -> bool {
        self.calls.iter().any(|c| !c.answered)
    }

    /// The earliest deadline of a call still running (`Timer::Tool`).
    pub fn deadline(&self) -> Option<u64> {
        self.calls
            .iter()
            .filter(|c| !c.answered)
            .map(|c| c.deadline)
            .min()
    }

    /// Forgets every call in progress: their late results are ignored, and nothing is sent
    /// into another conversation or after the model moved on.
    pub fn abandon(&mut self) {
        self.calls.clear();
        self.done_responses.clear();
    }

    fn seen(&mut self, call_id: &str) -> bool {
        if self.seen.iter().any(|c| c == call_id) {
            return true;
        }
        if self.seen.len() == SEEN_CALLS {
            self.seen.pop_front();
        }
        self.seen.push_back(call_id.to_string());
        false
    }
}

/// An error object the model can read as a tool's output.
fn error_output(code: &str, message: &str) -> String {
    let mut s = String::from("{\"error\":");
    json::write_str(&mut s, code);
    s.push_str(",\"message\":");
    json::write_str(&mut s, message);
    s.push('}');
    s
}

/// Tool names as the API accepts them: 1–64 of `a-z A-Z 0-9 _ -`.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Session {
    /// Declares the tools the model may call: a JSON array of `{name, description?,
    /// parameters?}` (the function's JSON Schema). Sent as `session.update` (`tools`, each
    /// `type: "function"`, `tool_choice: "auto"`) now if connected and after every reconnect;
    /// an empty array withdraws them.
    pub fn set_tools(&mut self, now_ms: u64, tools_json: &str) -> Result<(), CommandError> {
        self.last_now = now_ms;
        let v = json::parse(tools_json, self.cfg.max_frame_bytes)
            .map_err(|e| CommandError::InvalidTools(e.message()))?;
        let Value::Array(items) = &v else {
            return Err(CommandError::InvalidTools(concat(&[
                S("expected an array, found "),
                S(v.type_name()),
            ])));
        };
        if items.len() > MAX_TOOLS {
            return Err(CommandError::InvalidTools(concat(&[
                S("at most "),
                N(MAX_TOOLS as u64),
                S(" tools"),
            ])));
        }
        let mut names = Vec::with_capacity(items.len());
        let mut session = String::from("{\"tools\":[");
        for (i, item) in items.iter().enumerate() {
            let name = match item.get("name").and_then(|n| n.as_str()) {
                Some(n) if valid_name(n) => n,
                _ => {
                    return Err(CommandError::InvalidTools(concat(&[
                        S("tool #"),
                        N(i as u64),
                        S(": name must be 1-64 letters, digits, _ or -"),
                    ])))
                }
            };
            if names.iter().any(|n: &String| n == name) {
                return Err(CommandError::InvalidTools(concat(&[
                    S("tool "),
                    Quoted(name),
                    S(" is defined twice"),
                ])));
            }
            if i > 0 {
                session.push(',');
            }
            session.push_str("{\"type\":\"function\",\"name\":");
            json::write_str(&mut session, name);
            match item.get("description") {
                None | Some(Value::Null) => {}
                Some(Value::String(d)) => {
                    session.push_str(",\"description\":");
                    json::write_str(&mut session, d);
                }
                Some(other) => {
                    return Err(CommandError::InvalidTools(concat(&[
                        S("tool "),
                        Quoted(name),
                        S(": description must be a string, found "),
                        S(other.type_name()),
                    ])))
                }
            }
            match item.get("parameters") {
                None | Some(Value::Null) => {}
                Some(p @ Value::Object(_)) => {
                    session.push_str(",\"parameters\":");
                    p.write(&mut session);
                }
                Some(other) => {
                    return Err(CommandError::InvalidTools(concat(&[
                        S("tool "),
                        Quoted(name),
                        S(": parameters must be a JSON Schema object, found "),
                        S(other.type_name()),
                    ])))
                }
            }
            session.push('}');
            names.push(name.to_string());
        }
        session.push_str("],\"tool_choice\":\"");
        session.push_str(if names.is_empty() { "none" } else { "auto" });
        session.push_str("\"}");
        let frame = session_update_frame(&session, self.cfg.shape, self.cfg.max_frame_bytes)
            .map_err(|e| CommandError::InvalidTools(e.message()))?;
        if self.is_open() {
            self.send_expecting_reply(frame.clone());
        }
        self.tools.names = names;
        self.tools.frame = Some(frame);
        Ok(())
    }

    /// Sends any client event the API does not wrap: a JSON object with a string `type`, at
    /// most `maxFrameBytes`, over the open connection.
    pub fn send_event(&mut self, now_ms: u64, event_json: &str) -> Result<(), CommandError> {
        self.last_now = now_ms;
        let v = json::parse(event_json, self.cfg.max_frame_bytes)
            .map_err(|e| CommandError::InvalidEvent(e.message()))?;
        if !matches!(v, Value::Object(_)) {
            return Err(CommandError::InvalidEvent(concat(&[
                S("expected an object, found "),
                S(v.type_name()),
            ])));
        }
        match v.get("type") {
            Some(Value::String(t)) if !t.is_empty() => {}
            _ => {
                return Err(CommandError::InvalidEvent(
                    "an event needs a non-empty string \"type\"".to_string(),
                ))
            }
        }
        if !self.is_open() {
            return Err(CommandError::NotConnected {
                state: self.status.state,
            });
        }
        self.send(v.to_json());
        Ok(())
    }

    /// The app's handler answered call `call_id`: `Ok` with the result as JSON text, or `Err`
    /// with why it failed (it threw or rejected, or its result is not JSON). A result for a call
    /// that is not in progress (timed out, abandoned by a barge-in or a reconnect) is ignored.
    pub fn handle_tool_result(
        &mut self,
        now_ms: u64,
        call_id: &str,
        result: Result<String, String>,
    ) {
        self.last_now = now_ms;
        let Some(call) = self
            .tools
            .calls
            .iter()
            .find(|c| c.call_id == call_id && !c.answered)
        else {
            return;
        };
        let name = call.name.clone();
        let limit = self.cfg.max_frame_bytes.saturating_sub(512);
        let output = match result {
            Ok(text) if json::parse(&text, limit).is_ok() => text,
            Ok(text) => {
                let why = if text.len() > limit {
                    concat(&[
                        S("the result of "),
                        N(text.len() as u64),
                        S(" bytes exceeds "),
                        N(limit as u64),
                        S(" bytes"),
                    ])
                } else {
                    "the result is not JSON".to_string()
                };
                self.tool_error(call_id, "tool_result_invalid", &name, &why)
            }
            Err(message) => self.tool_error(call_id, "tool_failed", &name, &message),
        };
        self.answer(call_id, &output);
    }

    /// A function call reported by the server (each call is handled once, whichever events
    /// report it).
    pub(super) fn on_function_call(
        &mut self,
        now_ms: u64,
        response_id: Option<&str>,
        call: FunctionCall<'_>,
        done: bool,
    ) {
        let call_id = call.call_id.as_ref();
        let name = call.name.as_deref().map(str::to_string).or_else(|| {
            self.tools
                .names_by_call
                .iter()
                .find(|(c, _)| c == call_id)
                .map(|(_, n)| n.clone())
        });
        if !done {
            if let Some(n) = name {
                if self.tools.names_by_call.len() == NAMES_KEPT {
                    self.tools.names_by_call.pop_front();
                }
                self.tools.names_by_call.push_back((call_id.to_string(), n));
            }
            return;
        }
        // Without a name (beta arguments event, nothing learnt) the item's `.done` follows.
        let (Some(name), Some(arguments)) = (name, call.arguments.as_deref()) else {
            return;
        };
        if self.tools.seen(call_id) {
            return;
        }
        let response_id = response_id.unwrap_or_default().to_string();
        let pending = self.tools.calls.iter().filter(|c| !c.answered).count();
        self.tools.calls.push(Call {
            call_id: call_id.to_string(),
            name: name.clone(),
            response_id,
            deadline: now_ms + u64::from(self.cfg.tool_timeout_ms),
            answered: false,
        });
        if pending >= MAX_PENDING {
            let out = self.tool_error(call_id, "tool_busy", &name, "too many tool calls at once");
            return self.answer(call_id, &out);
        }
        if !self.tools.names.contains(&name) {
            let out = self.tool_error(call_id, "unknown_tool", &name, "no such tool");
            return self.answer(call_id, &out);
        }
        self.out.push_back(Output::ToolCall {
            call_id: call_id.to_string(),
            name,
            arguments: arguments.to_string(),
        });
    }

    /// `response.done`: its calls (if the other events did not report them), then the
    /// continuation once they are all answered.
    pub(super) fn tools_response_done(
        &mut self,
        now_ms: u64,
        response_id: Option<&str>,
        calls: Vec<FunctionCall<'_>>,
    ) {
        for call in calls {
            self.on_function_call(now_ms, response_id, call, true);
        }
        let id = response_id.unwrap_or_default();
        if self.tools.calls.iter().any(|c| c.response_id == id) {
            self.tools.done_responses.push(id.to_string());
            self.continue_response(id);
        }
    }

    /// Calls past their deadline get a timeout error as their output (`Timer::Tool`).
    pub(super) fn tool_timeouts(&mut self, now_ms: u64) {
        while let Some(call) = self
            .tools
            .calls
            .iter()
            .find(|c| !c.answered && c.deadline <= now_ms)
        {
            let (call_id, name) = (call.call_id.clone(), call.name.clone());
            let why = concat(&[
                S("no answer within "),
                N(u64::from(self.cfg.tool_timeout_ms)),
                S(" ms"),
            ]);
            let out = self.tool_error(&call_id, "tool_timeout", &name, &why);
            self.answer(&call_id, &out);
        }
    }

    /// An `error` event for the app and the error object the model gets.
    fn tool_error(&mut self, call_id: &str, code: &str, name: &str, why: &str) -> String {
        let name: String = name.chars().take(64).collect();
        let why: String = why.chars().take(300).collect();
        self.error(
            ErrorKind::Tool,
            code,
            concat(&[
                S("tool "),
                Quoted(&name),
                S(" (call "),
                S(call_id),
                S("): "),
                S(&why),
            ]),
        );
        error_output(code, &why)
    }

    /// Sends the call's output (when the link is up) and continues its response if it can.
    fn answer(&mut self, call_id: &str, output: &str) {
        let Some(call) = self
            .tools
            .calls
            .iter_mut()
            .find(|c| c.call_id == call_id && !c.answered)
        else {
            return;
        };
        call.answered = true;
        let response_id = call.response_id.clone();
        if !self.is_open() {
            return;
        }
        let frame = ClientEvent::FunctionCallOutput { call_id, output }.to_json(self.cfg.shape);
        self.send_expecting_reply(frame);
        self.continue_response(&response_id);
    }

    /// One `response.create` once the response is done and all its calls are answered.
    fn continue_response(&mut self, response_id: &str) {
        let t = &mut self.tools;
        let done = t.done_responses.iter().any(|r| r == response_id);
        let waiting = t
            .calls
            .iter()
            .any(|c| c.response_id == response_id && !c.answered);
        if !done || waiting {
            return;
        }
        t.calls.retain(|c| c.response_id != response_id);
        t.done_responses.retain(|r| r != response_id);
        self.create_response();
    }
}
