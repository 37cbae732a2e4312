//! The simulated interviewer's `show_question` tool over a real socket: with the tool set, each
//! question comes first as a function call (before any of its audio), and is spoken once the
//! client answers the call — or, from a client that never answers, after the configured wait.

mod common;

use std::time::{Duration, Instant};

use common::*;
use realtime_voice_server::interviewer::{script_line, QUESTIONS};
use serde_json::{json, Value};

fn show_question_update() -> Value {
    json!({"type": "session.update", "session": {
        "type": "realtime",
        "tools": [{"type": "function", "name": "show_question",
                   "description": "Shows the interviewer's current question on screen.",
                   "parameters": {"type": "object", "properties": {"text": {"type": "string"}},
                                  "required": ["text"]}}],
        "tool_choice": "auto"}})
}

/// Reads until the `show_question` call is complete; returns its `call_id` and arguments, and
/// checks no audio came before it.
async fn read_call(ws: &mut Ws) -> (String, Value) {
    let seen = until(ws, "response.done").await;
    assert!(
        !seen
            .iter()
            .any(|e| e["type"] == "response.output_audio.delta"),
        "audio before the call: {seen:?}"
    );
    let done = &seen.last().unwrap()["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["type"], "function_call");
    let args_done = seen
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .expect("arguments done");
    assert_eq!(args_done["name"], "show_question");
    let args: Value = serde_json::from_str(args_done["arguments"].as_str().unwrap()).unwrap();
    (args_done["call_id"].as_str().unwrap().to_string(), args)
}

/// The transcript of the next spoken response, and when its first audio arrived.
async fn hear(ws: &mut Ws) -> (String, Instant) {
    until(ws, "response.output_audio.delta").await;
    let at = Instant::now();
    let seen = until(ws, "response.done").await;
    let t = seen.last().unwrap()["response"]["output"][0]["content"][0]["transcript"]
        .as_str()
        .unwrap()
        .to_string();
    (t, at)
}

#[tokio::test]
async fn the_question_is_shown_by_a_function_call_then_spoken_once_answered() {
    let s = start(dev()).await;
    let mut ws = connect(&s, "candidate", "iv-tools", "").await;
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    send(&mut ws, show_question_update()).await;
    let updated = next_event(&mut ws).await;
    assert_eq!(updated["type"], "session.updated");
    assert_eq!(updated["session"]["tools"][0]["name"], "show_question");
    let (call_id, args) = read_call(&mut ws).await;
    assert_eq!(args, json!({"text": QUESTIONS[0]}));
    send(&mut ws, json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call_id, "output": "{\"shown\":true}"}})).await;
    let added = next_event(&mut ws).await;
    assert_eq!(added["type"], "conversation.item.added");
    assert_eq!(added["item"]["call_id"], call_id.as_str());
    send(&mut ws, json!({"type": "response.create"})).await;
    let (said, _) = hear(&mut ws).await;
    assert_eq!(said, script_line(0, false));
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_answers_hears_the_question_after_the_wait() {
    let mut cfg = dev();
    cfg.tool_output_wait_ms = 600;
    let s = start(cfg).await;
    let mut ws = connect(&s, "candidate", "iv-tools-silent", "").await;
    assert_eq!(next_event(&mut ws).await["type"], "session.created");
    send(&mut ws, show_question_update()).await;
    assert_eq!(next_event(&mut ws).await["type"], "session.updated");
    let (_, args) = read_call(&mut ws).await;
    let called = Instant::now();
    assert_eq!(args, json!({"text": QUESTIONS[0]}));
    let (said, first_audio) = hear(&mut ws).await;
    assert_eq!(said, script_line(0, false));
    let waited = first_audio - called;
    assert!(
        waited >= Duration::from_millis(500) && waited < WAIT,
        "spoke after {waited:?}"
    );
    s.stop().await;
}
