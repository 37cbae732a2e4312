//! Tools the model calls in the page: definitions in `session.update` (and again after a
//! reconnect), each call run once whichever events report it, results and every failure mode
//! answered with exactly one `function_call_output`, one `response.create` per response, and
//! calls abandoned cleanly on barge-in and reconnect.

mod session_support;

use realtime_voice::protocol::json::{self, Value};
use realtime_voice::session::{CommandError, Output, State, Timer};
use session_support::*;

const TOOLS: &str = r#"[{"name":"show_question","description":"Shows the question on screen.","parameters":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}},{"name":"lookup"}]"#;

fn ga_call(resp: &str, call: &str, name: &str, args: &str) -> String {
    format!(
        r#"{{"type":"response.function_call_arguments.done","response_id":"{resp}","item_id":"fc_{call}","output_index":0,"call_id":"{call}","name":"{name}","arguments":{}}}"#,
        json_str(args)
    )
}

fn json_str(s: &str) -> String {
    let mut o = String::new();
    json::write_str(&mut o, s);
    o
}

fn done(resp: &str) -> String {
    format!(r#"{{"type":"response.done","response":{{"id":"{resp}","status":"completed"}}}}"#)
}

fn tool_calls(v: &[Output]) -> Vec<(String, String, String)> {
    v.iter()
        .filter_map(|o| match o {
            Output::ToolCall {
                call_id,
                name,
                arguments,
            } => Some((call_id.clone(), name.clone(), arguments.clone())),
            _ => None,
        })
        .collect()
}

/// (call_id, output) of every `function_call_output` sent.
fn outputs(v: &[Output]) -> Vec<(String, String)> {
    sends(v)
        .into_iter()
        .filter_map(|f| {
            let j = json::parse(f, 1 << 20).ok()?;
            let item = j.get("item")?;
            (item.get("type")?.as_str()? == "function_call_output").then(|| {
                (
                    item.get("call_id")
                        .and_then(|c| c.as_str())
                        .unwrap_or("")
                        .to_string(),
                    item.get("output")
                        .and_then(|c| c.as_str())
                        .unwrap_or("")
                        .to_string(),
                )
            })
        })
        .collect()
}

fn tool_errors(v: &[Output]) -> Vec<String> {
    events(v)
        .iter()
        .filter(|e| e.name() == "error" && e.to_json().contains("\"kind\":\"tool\""))
        .map(|e| e.to_json())
        .collect()
}

fn with_tools(extra: &str) -> Sim {
    let mut sim = Sim::new(extra);
    sim.s.set_tools(0, TOOLS).unwrap();
    sim.connect_open();
    sim
}

#[test]
fn definitions_go_out_in_session_update_now_and_after_every_reconnect() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.set_tools(0, TOOLS).unwrap();
    let v = sim.drain();
    let frames = sends(&v);
    assert_eq!(frames.len(), 1);
    let j = json::parse(frames[0], 1 << 20).unwrap();
    assert_eq!(j.get("type").unwrap().as_str(), Some("session.update"));
    let session = j.get("session").unwrap();
    assert_eq!(session.get("type").unwrap().as_str(), Some("realtime"));
    assert_eq!(session.get("tool_choice").unwrap().as_str(), Some("auto"));
    let Some(Value::Array(tools)) = session.get("tools") else {
        panic!("tools array: {}", frames[0]);
    };
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].get("type").unwrap().as_str(), Some("function"));
    assert_eq!(
        tools[0].get("name").unwrap().as_str(),
        Some("show_question")
    );
    assert!(tools[0].get("parameters").is_some());
    // A reconnect's new server session forgets them: sent again once the server speaks.
    sim.advance(10_000);
    sim.close(1006, true);
    let at = sim.s.poll_timeout().unwrap();
    sim.advance_to(at);
    let now = sim.now;
    let v = sim.opened(now);
    assert_eq!(
        sends(&v).iter().filter(|f| f.contains("\"tools\"")).count(),
        1
    );
    // Withdrawn with an empty set.
    sim.s.set_tools(sim.now, "[]").unwrap();
    assert!(sends(&sim.drain())[0].contains(r#""tools":[],"tool_choice":"none""#));
}

#[test]
fn bad_definitions_and_events_are_typed_errors() {
    let mut sim = Sim::new("");
    for bad in [
        "{}",
        r#"[{"name":""}]"#,
        r#"[{"name":"a b"}]"#,
        r#"[{"name":"x"},{"name":"x"}]"#,
        r#"[{"name":"x","parameters":"{}"}]"#,
        r#"[{"name":"x","description":3}]"#,
        "not json",
    ] {
        assert!(
            matches!(sim.s.set_tools(0, bad), Err(CommandError::InvalidTools(_))),
            "{bad}"
        );
    }
    for bad in ["[]", r#"{"type":""}"#, r#"{"x":1}"#, "{"] {
        assert!(
            matches!(sim.s.send_event(0, bad), Err(CommandError::InvalidEvent(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        sim.s
            .send_event(0, r#"{"type":"input_audio_buffer.clear"}"#),
        Err(CommandError::NotConnected { .. })
    ));
    sim.connect_open();
    sim.s
        .send_event(0, r#"{"type":"input_audio_buffer.clear","event_id":"e1"}"#)
        .unwrap();
    assert_eq!(
        sends(&sim.drain()),
        [r#"{"type":"input_audio_buffer.clear","event_id":"e1"}"#]
    );
}

#[test]
fn parallel_calls_are_answered_then_one_response_create() {
    let mut sim = with_tools("");
    sim.msg(r#"{"type":"response.created","response":{"id":"r1"}}"#);
    let mut v = sim.msg(&ga_call("r1", "c1", "show_question", r#"{"text":"Why?"}"#));
    v.extend(sim.msg(&ga_call("r1", "c2", "lookup", "{}")));
    let calls = tool_calls(&v);
    assert_eq!(
        calls,
        [
            (
                "c1".into(),
                "show_question".into(),
                r#"{"text":"Why?"}"#.into()
            ),
            ("c2".into(), "lookup".into(), "{}".into())
        ]
    );
    // The response ends before the handlers answer: no continuation yet.
    let v = sim.msg(&done("r1"));
    assert_eq!(response_creates(&v), 0);
    sim.s
        .handle_tool_result(sim.now, "c2", Ok(r#"{"n":2}"#.into()));
    let v = sim.drain();
    assert_eq!(outputs(&v), [("c2".into(), r#"{"n":2}"#.into())]);
    assert_eq!(response_creates(&v), 0, "c1 is still running");
    sim.s.handle_tool_result(sim.now, "c1", Ok("true".into()));
    let v = sim.drain();
    assert_eq!(outputs(&v), [("c1".into(), "true".into())]);
    assert_eq!(
        response_creates(&v),
        1,
        "one response.create after all calls"
    );
    // A late duplicate result changes nothing.
    sim.s.handle_tool_result(sim.now, "c1", Ok("false".into()));
    assert!(sim.drain().is_empty());
}

#[test]
fn a_call_reported_by_several_events_runs_once_and_beta_names_come_from_the_item() {
    let mut sim = with_tools(r#","protocol":"beta""#);
    // Beta: the arguments event has no name; the item added before it has.
    sim.msg(r#"{"type":"response.output_item.added","response_id":"r1","output_index":0,"item":{"id":"fc_1","type":"function_call","call_id":"c1","name":"lookup","arguments":""}}"#);
    let v = sim.msg(r#"{"type":"response.function_call_arguments.done","response_id":"r1","item_id":"fc_1","output_index":0,"call_id":"c1","arguments":"{\"q\":1}"}"#);
    assert_eq!(tool_calls(&v).len(), 1);
    let v = sim.msg(r#"{"type":"response.output_item.done","response_id":"r1","output_index":0,"item":{"id":"fc_1","type":"function_call","call_id":"c1","name":"lookup","arguments":"{\"q\":1}"}}"#);
    assert!(tool_calls(&v).is_empty());
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"r1","status":"completed","output":[{"id":"fc_1","type":"function_call","call_id":"c1","name":"lookup","arguments":"{\"q\":1}"},{"id":"m1","type":"message","role":"assistant","content":[]}]}}"#);
    assert!(tool_calls(&v).is_empty());
    sim.s.handle_tool_result(sim.now, "c1", Ok("{}".into()));
    let v = sim.drain();
    assert_eq!(outputs(&v).len(), 1);
    assert_eq!(response_creates(&v), 1);
    // A call seen only in response.done still runs.
    let v = sim.msg(r#"{"type":"response.done","response":{"id":"r2","output":[{"type":"function_call","call_id":"c9","name":"lookup","arguments":"{}"}]}}"#);
    assert_eq!(tool_calls(&v).len(), 1);
}

#[test]
fn failures_still_give_the_model_an_output_and_the_app_an_error() {
    let mut sim = with_tools(r#","toolTimeoutMs":2000"#);
    let mut v = sim.msg(&ga_call("r1", "c1", "lookup", "{}")); // will throw
    v.extend(sim.msg(&ga_call("r1", "c2", "lookup", "{}"))); // returns something not JSON
    v.extend(sim.msg(&ga_call("r1", "c3", "lookup", "{}"))); // never answers
    v.extend(sim.msg(&ga_call("r1", "c4", "no_such_tool", "{}")));
    assert_eq!(tool_calls(&v).len(), 3, "the unknown tool is not run");
    assert_eq!(
        outputs(&v),
        [(
            "c4".into(),
            r#"{"error":"unknown_tool","message":"no such tool"}"#.into()
        )]
    );
    sim.msg(&done("r1"));
    sim.s
        .handle_tool_result(sim.now, "c1", Err("TypeError: boom".into()));
    sim.s
        .handle_tool_result(sim.now, "c2", Ok("undefined".into()));
    let v = sim.drain();
    assert_eq!(
        outputs(&v),
        [
            (
                "c1".into(),
                r#"{"error":"tool_failed","message":"TypeError: boom"}"#.into()
            ),
            (
                "c2".into(),
                r#"{"error":"tool_result_invalid","message":"the result is not JSON"}"#.into()
            )
        ]
    );
    assert_eq!(response_creates(&v), 0, "c3 still running");
    let v = sim.advance(2000);
    assert_eq!(
        outputs(&v),
        [(
            "c3".into(),
            r#"{"error":"tool_timeout","message":"no answer within 2000 ms"}"#.into()
        )]
    );
    assert_eq!(response_creates(&v), 1);
    let errs = tool_errors(&sim.log);
    for code in [
        "unknown_tool",
        "tool_failed",
        "tool_result_invalid",
        "tool_timeout",
    ] {
        assert!(errs.iter().any(|e| e.contains(code)), "{code}: {errs:?}");
    }
    assert_eq!(sim.state(), State::Connected, "the session goes on");
    assert_eq!(sim.s.poll_timeout().map(|t| t > sim.now), Some(true));
}

#[test]
fn a_reconnect_or_a_barge_in_abandons_pending_calls() {
    let mut sim = with_tools("");
    let v = sim.msg(&ga_call("r1", "c1", "lookup", "{}"));
    assert_eq!(tool_calls(&v).len(), 1);
    sim.advance(6000);
    sim.close(1006, true);
    let at = sim.s.poll_timeout().unwrap();
    sim.advance_to(at);
    let now = sim.now;
    sim.opened(now);
    // The handler answers after the reconnect: nothing goes into the new conversation.
    sim.s.handle_tool_result(sim.now, "c1", Ok("{}".into()));
    let v = sim.drain();
    assert!(outputs(&v).is_empty() && response_creates(&v) == 0, "{v:?}");
    assert_eq!(sim.s.timer(Timer::Tool), None, "no tool deadline is left");

    let v = sim.msg(&ga_call("r2", "c2", "lookup", "{}"));
    assert_eq!(tool_calls(&v).len(), 1);
    sim.msg(r#"{"type":"input_audio_buffer.speech_started","item_id":"u1"}"#);
    sim.s.handle_tool_result(sim.now, "c2", Ok("{}".into()));
    assert!(outputs(&sim.drain()).is_empty());
}

/// The frames match the official examples' shapes (`../shared/fixtures`, copied to
/// tests/fixtures/protocol).
#[test]
fn tool_frames_have_the_official_shapes() {
    const ALL_2026: &str = include_str!("fixtures/protocol/openai-realtime-examples-2026.jsonl");
    let example = |schema: &str| -> String {
        ALL_2026
            .lines()
            .find(|l| l.contains(&format!("\"schema\": \"{schema}\"")))
            .map(|l| {
                json::parse(l, 1 << 20)
                    .unwrap()
                    .get("event")
                    .unwrap()
                    .to_json()
            })
            .unwrap_or_else(|| panic!("no {schema}"))
    };
    fn keys_within(ours: &Value<'_>, ex: &Value<'_>, path: &str) {
        if let (Value::Object(o), Value::Object(_)) = (ours, ex) {
            for (k, v) in o {
                let e = ex
                    .get(k)
                    .unwrap_or_else(|| panic!("extra field {path}.{k}"));
                keys_within(v, e, &format!("{path}.{k}"));
            }
        }
        if let (Value::Array(o), Value::Array(e)) = (ours, ex) {
            if let Some(first) = e.first() {
                o.iter().for_each(|v| keys_within(v, first, path));
            }
        }
    }
    for (protocol, schema) in [
        ("ga", "RealtimeClientEventSessionUpdate"),
        ("beta", "RealtimeBetaClientEventSessionUpdate"),
    ] {
        let mut sim = Sim::new(&format!(r#","protocol":"{protocol}""#));
        sim.connect_open();
        sim.s
            .set_tools(0, r#"[{"name":"display_color_palette","description":"d","parameters":{"type":"object","properties":{"theme":{"type":"string"}}}}]"#)
            .unwrap();
        let v = sim.drain();
        let ours = json::parse(sends(&v)[0], 1 << 20).unwrap();
        let ex = example(schema);
        keys_within(&ours, &json::parse(&ex, 1 << 20).unwrap(), "");
    }
    // function_call_output: no published example; the envelope is conversation.item.create and
    // the item has exactly the documented fields.
    let mut sim = with_tools("");
    sim.msg(&ga_call("r1", "c1", "lookup", "{}"));
    sim.s.handle_tool_result(0, "c1", Ok("{\"a\":1}".into()));
    let v = sim.drain();
    let f = json::parse(sends(&v)[0], 1 << 20).unwrap();
    assert_eq!(
        f.get("type").unwrap().as_str(),
        Some("conversation.item.create")
    );
    let Some(Value::Object(item)) = f.get("item") else {
        panic!()
    };
    let keys: Vec<&str> = item.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["type", "call_id", "output"]);
}

#[test]
fn text_during_a_tool_call_is_answered_by_the_calls_continuation_or_the_next_response() {
    let mut sim = with_tools("");
    sim.msg(r#"{"type":"response.created","response":{"id":"r1"}}"#);
    sim.msg(&ga_call("r1", "c1", "lookup", "{}"));
    sim.s.send_text(sim.now, "typed meanwhile").unwrap();
    let v = sim.msg(&done("r1"));
    assert_eq!(
        response_creates(&v),
        0,
        "the call's continuation is still to come"
    );
    sim.s.handle_tool_result(sim.now, "c1", Ok("{}".into()));
    assert_eq!(
        response_creates(&sim.drain()),
        1,
        "one continuation answers both"
    );
    sim.msg(r#"{"type":"response.created","response":{"id":"r2"}}"#);
    assert_eq!(response_creates(&sim.msg(&done("r2"))), 0);

    // The user barges in while a call runs: the server's own response sees the text.
    sim.msg(r#"{"type":"response.created","response":{"id":"r3"}}"#);
    sim.msg(&ga_call("r3", "c3", "lookup", "{}"));
    sim.s.send_text(sim.now, "typed again").unwrap();
    sim.msg(r#"{"type":"input_audio_buffer.speech_started","item_id":"u1"}"#);
    assert_eq!(response_creates(&sim.msg(&done("r3"))), 0);
    sim.msg(r#"{"type":"response.created","response":{"id":"r4"}}"#);
    assert_eq!(
        response_creates(&sim.msg(&done("r4"))),
        0,
        "r4 answered the text already"
    );
}
