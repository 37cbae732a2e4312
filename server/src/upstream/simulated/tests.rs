//! Scenario tests of the simulated interviewer on a virtual clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::response::next_words;
use super::*;
use crate::upstream::usage;

fn params(flavor: ProtocolFlavor) -> SessionParams {
    SessionParams {
        flavor,
        session: SessionDefaults::default(),
        turns_left: 200,
        question_index: 0,
        response_delay_ms: 0,
        delta_ms: DELTA_MS,
        started_at_s: 1_700_000_000,
        session_id: "s1".into(),
        tool_output_wait_ms: 15_000,
        speak_first_after_ms: Some(0),
    }
}

fn drain(iv: &mut Interviewer) -> (Vec<Value>, Vec<Output>) {
    let mut sent = Vec::new();
    let mut other = Vec::new();
    while let Some(o) = iv.poll_output() {
        match o {
            Output::Send(s) => sent.push(serde_json::from_str(&s).unwrap()),
            o => other.push(o),
        }
    }
    (sent, other)
}

fn types(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// Runs the clock until the active response is done.
fn run_until_idle(iv: &mut Interviewer, now: &mut u64) -> (Vec<Value>, Vec<Output>) {
    let mut all = (Vec::new(), Vec::new());
    while let Some(t) = iv.poll_timeout() {
        *now = t.max(*now);
        iv.handle_timeout(*now);
        let (a, b) = drain(iv);
        all.0.extend(a);
        all.1.extend(b);
    }
    all
}

/// Samples of assistant audio in `events`' GA audio deltas.
fn delta_samples<'a>(events: impl Iterator<Item = &'a Value>) -> usize {
    events
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| STANDARD.decode(e["delta"].as_str().unwrap()).unwrap().len() / 2)
        .sum()
}

fn append(ms: usize, amp: f64) -> String {
    let mut b = Vec::new();
    for i in 0..ms * 24 {
        let s = (amp * 32767.0 * (i as f64 * 0.0576).sin()) as i16;
        b.extend_from_slice(&s.to_le_bytes());
    }
    json!({"type": "input_audio_buffer.append", "audio": STANDARD.encode(b)}).to_string()
}

#[test]
fn greets_right_after_session_created_with_paced_audio() {
    let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
    iv.start(0);
    let (sent, _) = drain(&mut iv);
    let t = types(&sent);
    assert_eq!(t[0], "session.created");
    assert_eq!(sent[0]["session"]["model"], "gpt-realtime");
    assert!(t.contains(&"response.created".to_string()));
    // Exactly one audio delta at t=0; the next is due 100 ms later.
    assert_eq!(
        t.iter()
            .filter(|x| *x == "response.output_audio.delta")
            .count(),
        1
    );
    assert_eq!(iv.poll_timeout(), Some(100));
    let mut now = 0;
    let (rest, other) = run_until_idle(&mut iv, &mut now);
    let audio = delta_samples(sent.iter().chain(&rest));
    let line = script_line(0, false);
    assert_eq!(audio, voice::speech_for(&line).len());
    // Paced: the last delta went out at (deltas - 1) * 100 ms.
    assert_eq!(now, (audio.div_ceil(DELTA_SAMPLES) as u64 - 1) * DELTA_MS);
    let transcript: String = sent
        .iter()
        .chain(&rest)
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(transcript, line);
    let done = rest.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(done["response"]["status"], "completed");
    let audio_ms = (audio as u64 * 1000) / 24000;
    assert_eq!(
        done["response"]["usage"]["output_token_details"]["audio_tokens"],
        audio_ms.div_ceil(50)
    );
    assert!(other.contains(&Output::AssistantTurn(line)));
    assert!(other.iter().any(|o| matches!(o, Output::Billed { .. })));
}

#[test]
fn a_faster_pace_sends_the_same_greeting_sooner() {
    let mut iv = Interviewer::new(SessionParams {
        delta_ms: 20,
        ..params(ProtocolFlavor::Ga)
    });
    iv.start(0);
    let (sent, _) = drain(&mut iv);
    assert_eq!(iv.poll_timeout(), Some(20));
    let mut now = 0;
    let (rest, _) = run_until_idle(&mut iv, &mut now);
    let audio = delta_samples(sent.iter().chain(&rest));
    assert_eq!(audio, voice::speech_for(&script_line(0, false)).len());
    assert_eq!(now, (audio.div_ceil(DELTA_SAMPLES) as u64 - 1) * 20);
    let done = rest.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(done["response"]["status"], "completed");
}

#[test]
fn speech_gets_transcribed_and_answered_with_the_next_question() {
    let mut iv = Interviewer::new(params(ProtocolFlavor::Beta));
    iv.start(0);
    let mut now = 0;
    run_until_idle(&mut iv, &mut now);
    drain(&mut iv);
    // 2.4 s of tone then 600 ms of silence, in 100 ms appends at real-time pace.
    let mut sent = Vec::new();
    let mut other = Vec::new();
    for i in 0..30 {
        now += 100;
        let amp = if i < 24 { 0.1 } else { 0.0 };
        iv.handle_text(now, &append(100, amp));
        let (a, b) = drain(&mut iv);
        sent.extend(a);
        other.extend(b);
    }
    let t = types(&sent);
    let pos = |x: &str| {
        t.iter()
            .position(|y| y == x)
            .unwrap_or_else(|| panic!("{x} missing in {t:?}"))
    };
    assert!(pos("input_audio_buffer.speech_started") < pos("input_audio_buffer.speech_stopped"));
    assert!(pos("input_audio_buffer.committed") < pos("conversation.item.created"));
    assert!(pos("conversation.item.input_audio_transcription.completed") < pos("response.created"));
    let tr = &sent[pos("conversation.item.input_audio_transcription.completed")];
    assert_eq!(tr["transcript"], "(2.4 s of speech)");
    assert!(
        t.contains(&"response.audio.delta".to_string()),
        "beta names"
    );
    let (rest, more) = run_until_idle(&mut iv, &mut now);
    other.extend(more);
    let done = rest.iter().find(|e| e["type"] == "response.done").unwrap();
    let u = &done["response"]["usage"];
    // Committed audio: 2.4 s of speech + 500 ms of silence detection = 2900 ms → 29 tokens.
    assert_eq!(u["input_token_details"]["audio_tokens"], 29);
    assert_eq!(
        u["input_token_details"]["text_tokens"],
        usage::text_tokens(INSTRUCTIONS)
    );
    assert_eq!(
        u["output_token_details"]["text_tokens"],
        usage::text_tokens(QUESTIONS[1])
    );
    assert!(other.contains(&Output::UserTurn("(2.4 s of speech)".into())));
    assert!(other.contains(&Output::AssistantTurn(QUESTIONS[1].into())));
    assert!(other
        .iter()
        .any(|o| matches!(o, Output::ResponseLatency { latency_ms: 0 })));
}

#[test]
fn barge_in_cancels_the_response_and_truncate_is_validated() {
    let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
    iv.start(0);
    let mut now = 0;
    for _ in 0..5 {
        now += 100;
        iv.handle_timeout(now);
    }
    let (sent, _) = drain(&mut iv);
    let item_id = sent
        .iter()
        .find(|e| e["type"] == "response.output_audio.delta")
        .unwrap()["item_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Speech interrupts: 200 ms of loud audio.
    now += 200;
    iv.handle_text(now, &append(200, 0.2));
    let (sent, other) = drain(&mut iv);
    let t = types(&sent);
    let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(done["response"]["status"], "cancelled");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "turn_detected"
    );
    assert!(
        t.iter()
            .position(|x| x == "input_audio_buffer.speech_started")
            < t.iter().position(|x| x == "response.done")
    );
    // 6 deltas were sent (t = 0..500): 600 ms, 12 audio tokens.
    assert_eq!(
        done["response"]["usage"]["output_token_details"]["audio_tokens"],
        12
    );
    assert!(other.iter().any(|o| matches!(o, Output::Billed { .. })));
    assert_eq!(iv.poll_timeout(), None);
    // Truncate beyond what was sent: error; within: truncated.
    iv.handle_text(now, &json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 601}).to_string());
    let (sent, other) = drain(&mut iv);
    assert_eq!(sent[0]["type"], "error");
    assert_eq!(sent[0]["error"]["code"], "invalid_value");
    assert_eq!(other, vec![Output::ErrorSent("invalid_value".into())]);
    iv.handle_text(now, &json!({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 600, "event_id": "c1"}).to_string());
    let (sent, other) = drain(&mut iv);
    assert_eq!(sent[0]["type"], "conversation.item.truncated");
    assert_eq!(sent[0]["audio_end_ms"], 600);
    assert_eq!(
        other,
        vec![Output::Truncated {
            item_id: item_id.clone(),
            audio_end_ms: 600
        }]
    );
    iv.handle_text(now, &json!({"type": "conversation.item.truncate", "item_id": "nope", "content_index": 0, "audio_end_ms": 0}).to_string());
    assert_eq!(drain(&mut iv).0[0]["error"]["code"], "item_not_found");
}

#[test]
fn text_item_and_response_create_give_a_text_only_reply() {
    let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
    iv.start(0);
    iv.handle_text(0, r#"{"type":"response.cancel"}"#);
    drain(&mut iv);
    iv.handle_text(10, &json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "I build audio software."}]}}).to_string());
    iv.handle_text(10, r#"{"type":"response.create"}"#);
    let (sent, other) = drain(&mut iv);
    let t = types(&sent);
    assert!(t.contains(&"conversation.item.added".to_string()));
    assert!(!t.iter().any(|x| x.contains("audio")), "{t:?}");
    let text: String = sent
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, QUESTIONS[1]);
    let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
    let u = &done["response"]["usage"];
    assert_eq!(
        u["input_token_details"]["text_tokens"],
        usage::text_tokens("I build audio software.") + usage::text_tokens(INSTRUCTIONS)
    );
    assert!(other.contains(&Output::UserTurn("I build audio software.".into())));
}

#[test]
fn bad_frames_get_errors_and_the_session_goes_on() {
    let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
    iv.start(0);
    iv.handle_text(0, r#"{"type":"response.cancel"}"#);
    drain(&mut iv);
    let cases = [
        ("not json", "invalid_json"),
        (r#"{"no_type":1}"#, "invalid_event"),
        (r#"{"type":"bogus.event"}"#, "invalid_value"),
        (
            r#"{"type":"input_audio_buffer.append","audio":"***"}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"session.update","session":{"input_audio_format":"g711_ulaw"}}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"session.update","session":{"type":"realtime","audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}}}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"input_audio_buffer.commit"}"#,
            "input_audio_buffer_commit_empty",
        ),
        (
            r#"{"type":"response.cancel"}"#,
            "response_cancel_not_active",
        ),
    ];
    for (frame, code) in cases {
        iv.handle_text(1, frame);
        let (sent, _) = drain(&mut iv);
        assert_eq!(sent.len(), 1, "{frame}");
        assert_eq!(sent[0]["type"], "error", "{frame}");
        assert_eq!(sent[0]["error"]["code"], code, "{frame}");
    }
    iv.handle_text(2, &append(100, 0.0));
    let (sent, other) = drain(&mut iv);
    assert!(sent.is_empty());
    assert!(matches!(&other[0], Output::Append { pcm } if pcm.len() == 4800));
}

#[test]
fn the_turn_cap_refuses_user_turns_and_answers_no_more() {
    let mut p = params(ProtocolFlavor::Ga);
    p.turns_left = 1;
    let mut iv = Interviewer::new(p);
    iv.start(0);
    iv.handle_text(0, r#"{"type":"response.cancel"}"#);
    drain(&mut iv);
    let item = |t: &str| {
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": t}]}}).to_string()
    };
    iv.handle_text(1, &item("one"));
    let (_, other) = drain(&mut iv);
    assert!(other.contains(&Output::UserTurn("one".into())));
    iv.handle_text(2, &item("two"));
    let (sent, other) = drain(&mut iv);
    assert_eq!(sent[0]["error"]["code"], "rate_limit_exceeded");
    assert!(!other.iter().any(|o| matches!(o, Output::UserTurn(_))));
    // Speech is not committed either, and gets no answer.
    let mut now = 10;
    let mut sent = Vec::new();
    for i in 0..30 {
        now += 100;
        iv.handle_text(now, &append(100, if i < 24 { 0.1 } else { 0.0 }));
        sent.extend(drain(&mut iv).0);
    }
    let t = types(&sent);
    assert!(
        t.contains(&"input_audio_buffer.speech_stopped".to_string()),
        "{t:?}"
    );
    assert!(
        !t.contains(&"input_audio_buffer.committed".to_string()),
        "{t:?}"
    );
    assert!(!t.contains(&"response.created".to_string()), "{t:?}");
    assert!(t.contains(&"error".to_string()));
}

#[test]
fn a_refused_event_gets_an_error_and_an_ended_session_says_nothing_more() {
    let mut iv = Interviewer::new(params(ProtocolFlavor::Ga));
    iv.start(0);
    drain(&mut iv);
    iv.refuse("rate_limit_exceeded", "Too fast.", Some("c7"));
    let (sent, other) = drain(&mut iv);
    assert_eq!(sent[0]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(sent[0]["error"]["event_id"], "c7");
    assert_eq!(other, vec![Output::ErrorSent("rate_limit_exceeded".into())]);
    iv.end(4429, "rate limit exceeded");
    let (_, other) = drain(&mut iv);
    assert_eq!(
        other,
        vec![Output::Close {
            code: 4429,
            reason: "rate limit exceeded".into()
        }]
    );
    assert_eq!(iv.poll_timeout(), None);
    iv.handle_text(5000, &append(10, 0.0));
    iv.refuse("x", "y", None);
    assert!(drain(&mut iv).0.is_empty(), "nothing after close");
}

#[test]
fn resumed_interview_continues_the_script_and_response_delay_holds() {
    let mut p = params(ProtocolFlavor::Ga);
    p.question_index = 2;
    p.response_delay_ms = 700;
    let mut iv = Interviewer::new(p);
    iv.start(0);
    let (sent, other) = drain(&mut iv);
    assert_eq!(types(&sent), vec!["session.created"]);
    assert_eq!(other, vec![Output::QuestionIndex(3)]);
    assert_eq!(iv.poll_timeout(), Some(700));
    iv.handle_timeout(700);
    let (sent, _) = drain(&mut iv);
    assert_eq!(sent[0]["type"], "response.created");
    let mut now = 700;
    let (rest, _) = run_until_idle(&mut iv, &mut now);
    let done = rest
        .iter()
        .find(|e| e["type"] == "response.output_audio_transcript.done")
        .unwrap();
    assert_eq!(
        done["transcript"],
        format!("{WELCOME_BACK} {}", QUESTIONS[2])
    );
    assert_eq!(script_line(5, false), CLOSING);
    assert_eq!(script_line(9, true), CLOSING);
}

#[test]
fn the_output_token_limit_cuts_the_response() {
    let mut p = params(ProtocolFlavor::Ga);
    p.session.max_response_tokens = 30;
    let mut iv = Interviewer::new(p);
    iv.start(0);
    let mut now = 0;
    let (mut sent, _) = drain(&mut iv);
    sent.extend(run_until_idle(&mut iv, &mut now).0);
    let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(done["response"]["status"], "incomplete");
    assert_eq!(
        done["response"]["status_details"]["reason"],
        "max_output_tokens"
    );
    let out = done["response"]["usage"]["output_tokens"].as_u64().unwrap();
    assert!((20..=30).contains(&out), "{out}");
    // Text replies are cut too.
    let mut p = params(ProtocolFlavor::Ga);
    p.session.max_response_tokens = 5;
    let mut iv = Interviewer::new(p);
    iv.start(0);
    iv.handle_text(0, r#"{"type":"response.cancel"}"#);
    drain(&mut iv);
    iv.handle_text(
        0,
        r#"{"type":"response.create","response":{"output_modalities":["text"]}}"#,
    );
    let (sent, _) = drain(&mut iv);
    let done = sent.iter().find(|e| e["type"] == "response.done").unwrap();
    assert_eq!(done["response"]["status"], "incomplete");
    let text = done["response"]["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert!(
        usage::text_tokens(text) <= 5 && !text.is_empty(),
        "{text:?}"
    );
}

#[test]
fn word_splitting() {
    assert_eq!(next_words("ab cd ef", 0, 1), "ab ");
    assert_eq!(next_words("ab cd ef", 3, 4), "cd ");
    assert_eq!(next_words("ab cd ef", 6, 7), "ef");
    assert_eq!(next_words("ab cd ef", 0, 8), "ab cd ef");
    assert_eq!(next_words("ab", 2, 3), "");
}

fn set_show_question(iv: &mut Interviewer, now: u64) {
    iv.handle_text(
        now,
        &json!({"type": "session.update", "session": {"tools": [{"type": "function", "name": "show_question", "description": "Shows the question", "parameters": {"type": "object"}}], "tool_choice": "auto"}}).to_string(),
    );
}

/// The events from a `show_question` call's `response.created` to its `response.done`.
fn call_types(flavor: ProtocolFlavor) -> Vec<&'static str> {
    let mut t = vec![
        "response.created",
        "response.output_item.added",
        if flavor == ProtocolFlavor::Beta {
            "conversation.item.created"
        } else {
            "conversation.item.added"
        },
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ];
    if flavor != ProtocolFlavor::Beta {
        t.push("conversation.item.done");
    }
    t.push("response.done");
    t
}

#[test]
fn with_show_question_each_question_is_a_function_call_answered_before_it_is_spoken() {
    for flavor in [ProtocolFlavor::Ga, ProtocolFlavor::Beta] {
        let mut p = params(flavor);
        p.speak_first_after_ms = Some(300);
        let mut iv = Interviewer::new(p);
        iv.start(0);
        let (sent, _) = drain(&mut iv);
        assert_eq!(types(&sent), ["session.created"], "the greeting waits");
        set_show_question(&mut iv, 10);
        let (sent, other) = drain(&mut iv);
        let t = types(&sent);
        assert_eq!(t[0], "session.updated");
        assert_eq!(sent[0]["session"]["tools"][0]["name"], "show_question");
        assert_eq!(&t[1..], call_types(flavor), "{flavor:?}");
        let done = &sent[sent.len() - 1]["response"];
        assert_eq!(done["status"], "completed");
        let item = &done["output"][0];
        assert_eq!(item["type"], "function_call");
        assert_eq!(item["name"], "show_question");
        let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["text"], QUESTIONS[0]);
        let args_done = sent
            .iter()
            .find(|e| e["type"] == "response.function_call_arguments.done")
            .unwrap();
        assert_eq!(args_done["arguments"], item["arguments"]);
        assert_eq!(args_done["call_id"], item["call_id"]);
        assert!(other.iter().any(|o| matches!(o, Output::Billed { .. })));
        // Nothing is spoken while the output is awaited.
        assert_eq!(iv.poll_timeout(), Some(10 + 15_000));
        iv.handle_timeout(5_000);
        assert!(drain(&mut iv).0.is_empty());
        let call_id = item["call_id"].as_str().unwrap().to_string();
        iv.handle_text(5_000, &json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call_id, "output": "{\"shown\":true}"}}).to_string());
        let (sent, _) = drain(&mut iv);
        assert_eq!(sent[0]["item"]["type"], "function_call_output");
        assert!(!types(&sent).iter().any(|t| t.starts_with("response.")));
        iv.handle_text(5_000, &json!({"type": "response.create"}).to_string());
        let mut now = 5_000;
        let (mut sent, _) = drain(&mut iv);
        let (rest, _) = run_until_idle(&mut iv, &mut now);
        sent.extend(rest);
        let said = sent
            .iter()
            .rev()
            .find(|e| e["type"] == "response.done")
            .unwrap();
        assert_eq!(
            said["response"]["output"][0]["content"][0]["transcript"],
            script_line(0, false)
        );
    }
}

#[test]
fn an_unanswered_show_question_call_is_spoken_after_the_wait() {
    let mut p = params(ProtocolFlavor::Ga);
    p.tool_output_wait_ms = 2_000;
    let mut iv = Interviewer::new(p);
    iv.start(0);
    let mut now = 0;
    run_until_idle(&mut iv, &mut now);
    set_show_question(&mut iv, now);
    drain(&mut iv);
    // A user turn: the next question comes as a call first.
    for i in 0..30 {
        now += 100;
        iv.handle_text(now, &append(100, if i < 24 { 0.1 } else { 0.0 }));
    }
    let (sent, _) = drain(&mut iv);
    let calls: Vec<&Value> = sent
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.done")
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0]["arguments"],
        json!({"text": QUESTIONS[1]}).to_string()
    );
    assert!(!sent
        .iter()
        .any(|e| e["type"] == "response.output_audio.delta"));
    // Due 2 s after the call (made when the VAD saw the silence, within the last appends).
    let due = iv.poll_timeout().unwrap();
    assert!(due > now + 1_000 && due <= now + 2_000, "{due} {now}");
    let (rest, _) = run_until_idle(&mut iv, &mut now);
    let first_audio = rest
        .iter()
        .position(|e| e["type"] == "response.output_audio.delta")
        .unwrap();
    assert_eq!(rest[0]["type"], "response.created");
    assert!(first_audio > 0);
    let done = rest
        .iter()
        .rev()
        .find(|e| e["type"] == "response.done")
        .unwrap();
    assert_eq!(
        done["response"]["output"][0]["content"][0]["transcript"],
        QUESTIONS[1]
    );
}
