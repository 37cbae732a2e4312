//! A corpus of malformed frames: each becomes one typed protocol `error` event and the session
//! goes on; plus every official server example replayed through a live session.

mod session_support;

use realtime_voice::protocol::json;
use realtime_voice::session::{Output, State};
use session_support::*;

fn error_codes(v: &[Output]) -> Vec<(String, String)> {
    events(v)
        .iter()
        .filter(|e| e.name() == "error")
        .map(|e| {
            let j = e.to_json();
            let p = json::parse(&j, 1 << 16).unwrap();
            (
                p.get("kind")
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string(),
                p.get("code")
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn numbers_with_huge_exponents_or_long_mantissas_are_read_in_bounded_work() {
    // 10,000 zeros with a huge exponent: each is read without a loop over its exponent.
    let zeros = vec!["0e99999"; 10_000].join(",");
    let frame = format!(r#"{{"type":"x.custom","n":[{zeros}]}}"#);
    // A 100,001-digit mantissa with the matching negative exponent is exactly 1.
    let long = format!("1{}e-100001", "0".repeat(100_001));
    let frame2 = format!(r#"{{"type":"x.custom","n":{long}}}"#);
    let mut sim = Sim::new("");
    sim.connect_open();
    for f in [&frame, &frame2] {
        let v = sim.msg(f);
        assert!(error_codes(&v).is_empty(), "{:?}", error_codes(&v));
    }
    let v = json::parse(&frame2, 1 << 20).unwrap();
    assert_eq!(v.get("n").and_then(|n| n.as_f64()), Some(1.0));
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn malformed_frames_become_typed_errors_and_the_session_goes_on() {
    let deep = "[".repeat(100) + &"]".repeat(100);
    let oversize = format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(5000));
    let corpus: Vec<(&str, String)> = vec![
        ("invalid_json", "not json".into()),
        ("invalid_json", "".into()),
        ("invalid_json", r#"{"type":"error""#.into()),
        ("invalid_json", r#"{"type":"x",}"#.into()),
        ("invalid_json", "\"\\ud800\"".into()),
        ("invalid_json", "{\"type\":\"a\u{1}b\"}".into()),
        ("invalid_json", deep),
        (
            "invalid_json",
            r#"{"type":"x","n":1e99999999999999999999}"#.into(),
        ),
        ("not_an_object", "[1,2]".into()),
        ("not_an_object", "\"response.done\"".into()),
        ("not_an_object", "42".into()),
        ("missing_type", r#"{"event_id":"e1"}"#.into()),
        ("wrong_field_type", r#"{"type":7}"#.into()),
        ("wrong_field_type", r#"{"type":null}"#.into()),
        (
            "wrong_field_type",
            r#"{"type":"response.output_audio.delta","item_id":"i","delta":12}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"response.output_audio.delta","item_id":{"id":1},"delta":"AAAA"}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"response.done","response":{"usage":"lots"}}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"response.done","response":{"usage":{"input_tokens":-3}}}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"response.done","response":{"usage":{"input_tokens":1.5}}}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"session.created","session":[]}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"error","error":"boom"}"#.into(),
        ),
        (
            "wrong_field_type",
            r#"{"type":"response.created","response":"r"}"#.into(),
        ),
        (
            "missing_field",
            r#"{"type":"response.audio.delta","delta":"AAAA"}"#.into(),
        ),
        (
            "missing_field",
            r#"{"type":"response.audio_transcript.done","item_id":"i"}"#.into(),
        ),
        (
            "missing_field",
            r#"{"type":"response.output_item.done","item":{"type":"function_call"}}"#.into(),
        ),
        (
            "invalid_audio",
            r#"{"type":"response.audio.delta","item_id":"i","delta":"Base64EncodedAudioDelta"}"#
                .into(),
        ),
        (
            "invalid_audio",
            r#"{"type":"response.output_audio.delta","item_id":"i","delta":"AA=="}"#.into(),
        ),
        (
            "invalid_audio",
            r#"{"type":"response.output_audio.delta","item_id":"i","delta":"!!!!"}"#.into(),
        ),
        ("frame_too_large", oversize),
    ];
    let mut sim = Sim::new(r#","maxFrameBytes":4096,"serverEvents":"all""#);
    sim.connect_open();
    for (i, (code, frame)) in corpus.iter().enumerate() {
        let v = sim.msg(frame);
        assert_eq!(
            error_codes(&v),
            [("protocol".to_string(), code.to_string())],
            "frame #{i}: {frame:.80}"
        );
        assert!(!v
            .iter()
            .any(|o| matches!(o, Output::Play { .. } | Output::CloseSocket { .. })));
        // Frames that are not valid events are not forwarded; a valid event with a bad audio
        // payload is (the app's raw event stream sees what arrived).
        let forwarded = events(&v).iter().any(|e| e.name() == "event");
        assert_eq!(forwarded, *code == "invalid_audio", "frame #{i}");
        assert_eq!(sim.state(), State::Connected);
        // The next good frame works.
        let v = sim.msg(r#"{"type":"response.output_text.delta","item_id":"t","delta":"ok"}"#);
        assert!(
            events(&v).iter().any(|e| e.name() == "transcript"),
            "after #{i}"
        );
    }
    assert_eq!(sim.s.metrics().protocol_errors, corpus.len() as u64);
    // Error messages carry context but never the frame's payload.
    let msgs: Vec<String> = events(&sim.log)
        .iter()
        .filter(|e| e.name() == "error")
        .map(|e| e.to_json())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("exceeds maxFrameBytes 4096")),
        "{msgs:?}"
    );
    assert!(msgs
        .iter()
        .any(|m| m.contains("response.output_audio.delta") && m.contains("delta")));
}

#[test]
fn every_official_server_example_replays_through_a_session() {
    let text = [
        include_str!("fixtures/protocol/openai-realtime-examples-2024-beta.jsonl"),
        include_str!("fixtures/protocol/openai-realtime-examples-2026.jsonl"),
    ]
    .concat();
    let mut sim = Sim::new(r#","serverEvents":"all""#);
    // The examples call get_weather: a tool of the app's.
    sim.s.set_tools(0, r#"[{"name":"get_weather"}]"#).unwrap();
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    let mut n = 0;
    for line in text.lines().filter(|l| l.contains("ServerEvent")) {
        let v = json::parse(line, 1 << 20).unwrap();
        let schema = v.get("schema").and_then(|s| s.as_str()).unwrap_or("");
        if !schema.contains("ServerEvent") {
            continue;
        }
        n += 1;
        let ev = v.get("event").unwrap().to_json();
        let out = sim.msg(&ev);
        let forwarded = events(&out).iter().filter(|e| e.name() == "event").count();
        assert_eq!(forwarded, 1, "{schema} forwarded once");
        for (kind, code) in error_codes(&out) {
            // Only the placeholder audio is invalid (and server `error` examples are errors).
            let ok = (kind == "protocol"
                && code == "invalid_audio"
                && ev.contains("Base64EncodedAudioDelta"))
                || (kind == "server" && (schema.ends_with("Error") || schema.ends_with("Failed")));
            assert!(ok, "{schema}: unexpected {kind}/{code}");
        }
        assert_eq!(sim.state(), State::Connected, "{schema}");
    }
    assert!(n > 100, "{n}");
}
