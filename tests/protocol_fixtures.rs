//! Every official server event example parses (or passes through as unknown, without error), and
//! every client event we serialise has the shape of its official example: the same field names
//! and nesting, with no field the example lacks and the same JSON types.

use realtime_voice::protocol::json::{self, Value};
use realtime_voice::protocol::{
    parse_server_frame, session_update_frame, ApiShape, ClientEvent, OutputKind, ServerEvent,
};

const BETA_2024: &str = include_str!("fixtures/protocol/openai-realtime-examples-2024-beta.jsonl");
const ALL_2026: &str = include_str!("fixtures/protocol/openai-realtime-examples-2026.jsonl");

/// (schema, event JSON) of every fixture line.
fn fixtures(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v = json::parse(l, 1 << 20).expect("fixture line is JSON");
            let schema = v
                .get("schema")
                .and_then(Value::as_str)
                .expect("schema")
                .to_string();
            (schema, v.get("event").expect("event").to_json())
        })
        .collect()
}

#[test]
fn every_server_event_example_parses() {
    let mut typed = 0;
    let mut other = 0;
    let mut n = 0;
    for (schema, ev) in fixtures(BETA_2024).into_iter().chain(fixtures(ALL_2026)) {
        if !schema.contains("ServerEvent") {
            continue;
        }
        n += 1;
        let f = parse_server_frame(&ev, 1 << 20).unwrap_or_else(|e| panic!("{schema}: {e}"));
        if f.event == ServerEvent::Other {
            other += 1;
        } else {
            typed += 1;
        }
    }
    let lines = BETA_2024.lines().chain(ALL_2026.lines());
    let expected = lines
        .filter(|l| {
            l.split('"')
                .nth(3)
                .is_some_and(|s| s.contains("ServerEvent"))
        })
        .count();
    assert_eq!(n, expected, "every server example was tried");
    assert!(n > 100);
    // The precise name → variant mapping is checked below; here: both paths are exercised (the
    // types the session acts on are typed, about 45 % of the examples; the rest pass through).
    assert!(
        typed > n / 3 && other > 0,
        "typed {typed}, passed through {other}"
    );
}

#[test]
fn known_names_map_to_typed_events() {
    for (schema, ev) in fixtures(BETA_2024).into_iter().chain(fixtures(ALL_2026)) {
        let f = match parse_server_frame(&ev, 1 << 20) {
            Ok(f) if schema.contains("ServerEvent") => f,
            _ => continue,
        };
        let expect_typed = [
            "session.created",
            "session.updated",
            "response.audio.delta",
            "response.output_audio.delta",
            "response.audio.done",
            "response.output_audio.done",
            "response.audio_transcript.delta",
            "response.output_audio_transcript.done",
            "response.text.delta",
            "response.output_text.done",
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.completed",
            "conversation.item.input_audio_transcription.failed",
            "response.created",
            "response.done",
            "error",
        ];
        if expect_typed.contains(&f.kind.as_ref()) {
            assert_ne!(
                f.event,
                ServerEvent::Other,
                "{schema} ({}) should be typed",
                f.kind
            );
        }
        if f.kind == "response.done" {
            if let ServerEvent::ResponseDone { usage: Some(u), .. } = &f.event {
                assert!(u.input_tokens > 0 && u.output_tokens > 0, "{schema}");
            } else {
                panic!("{schema}: usage not read");
            }
        }
    }
}

/// Checks that `ours` uses only fields present in `example`, nested the same way, with the same
/// JSON types (a `null` in the example accepts any type; arrays compare element-wise against the
/// example's first element).
fn same_shape(ours: &Value<'_>, example: &Value<'_>, path: &str) -> Result<(), String> {
    match (ours, example) {
        (_, Value::Null) => Ok(()),
        (Value::Object(fo), Value::Object(_)) => {
            for (k, v) in fo {
                let p = format!("{path}.{k}");
                let ex = example.get(k).ok_or_else(|| format!("extra field {p}"))?;
                same_shape(v, ex, &p)?;
            }
            Ok(())
        }
        (Value::Array(ao), Value::Array(ae)) => match ae.first() {
            None => Ok(()),
            Some(first) => ao
                .iter()
                .try_for_each(|v| same_shape(v, first, &format!("{path}[]"))),
        },
        (a, b) if a.type_name() == b.type_name() => Ok(()),
        (a, b) => Err(format!(
            "{path}: {} where the example has {}",
            a.type_name(),
            b.type_name()
        )),
    }
}

fn example(text: &str, schema: &str) -> String {
    fixtures(text)
        .into_iter()
        .find(|(s, _)| s == schema)
        .unwrap_or_else(|| panic!("no {schema}"))
        .1
}

fn check(ours: &str, text: &str, schema: &str) {
    let ex = example(text, schema);
    let o = json::parse(ours, 1 << 20).unwrap();
    let e = json::parse(&ex, 1 << 20).unwrap();
    assert_eq!(o.get("type"), e.get("type"), "{schema}");
    if let Err(msg) = same_shape(&o, &e, "") {
        panic!("{schema}: {msg}\n ours: {ours}\n example: {ex}");
    }
}

#[test]
fn client_events_have_the_example_shapes() {
    for shape in [ApiShape::Beta, ApiShape::Ga] {
        let (text, prefix) = match shape {
            ApiShape::Beta => (BETA_2024, "RealtimeClientEvent"),
            _ => (ALL_2026, "RealtimeClientEvent"),
        };
        let cases = [
            (
                ClientEvent::UserText { text: "hi" },
                "ConversationItemCreate",
            ),
            (
                ClientEvent::Truncate {
                    item_id: "i",
                    audio_end_ms: 10,
                },
                "ConversationItemTruncate",
            ),
            (
                ClientEvent::ResponseCancel {
                    response_id: Some("r"),
                },
                "ResponseCancel",
            ),
        ];
        for (ev, name) in cases {
            check(&ev.to_json(shape), text, &format!("{prefix}{name}"));
        }
    }
    // response.create: the beta example (no GA example exists in the published description).
    check(
        &ClientEvent::ResponseCreate {
            output: OutputKind::Text,
        }
        .to_json(ApiShape::Beta),
        BETA_2024,
        "RealtimeClientEventResponseCreate",
    );
    check(
        &ClientEvent::ResponseCreate {
            output: OutputKind::Audio,
        }
        .to_json(ApiShape::Beta),
        BETA_2024,
        "RealtimeClientEventResponseCreate",
    );
    // session.update: our wrapper adds nothing the examples lack (GA adds type: "realtime").
    let app = r#"{"instructions":"x","tools":[],"tool_choice":"auto"}"#;
    check(
        &session_update_frame(app, ApiShape::Beta, 4096).unwrap(),
        BETA_2024,
        "RealtimeClientEventSessionUpdate",
    );
    check(
        &session_update_frame(app, ApiShape::Ga, 4096).unwrap(),
        ALL_2026,
        "RealtimeClientEventSessionUpdate",
    );
    let beta_full = r#"{"modalities":["text","audio"],"voice":"alloy","input_audio_format":"pcm16","turn_detection":{"type":"server_vad","threshold":0.5},"temperature":0.8}"#;
    check(
        &session_update_frame(beta_full, ApiShape::Beta, 4096).unwrap(),
        BETA_2024,
        "RealtimeClientEventSessionUpdate",
    );
}

#[test]
fn the_shape_check_catches_extra_fields() {
    let e = json::parse(r#"{"type":"x","a":{"b":1}}"#, 100).unwrap();
    assert!(same_shape(
        &json::parse(r#"{"type":"x","a":{"b":2}}"#, 100).unwrap(),
        &e,
        ""
    )
    .is_ok());
    assert!(same_shape(
        &json::parse(r#"{"type":"x","a":{"c":2}}"#, 100).unwrap(),
        &e,
        ""
    )
    .is_err());
    assert!(same_shape(
        &json::parse(r#"{"type":"x","a":{"b":"2"}}"#, 100).unwrap(),
        &e,
        ""
    )
    .is_err());
}

/// Whether the server interrupts the assistant is read from the session's turn detection, in
/// the beta and the GA shape: the examples say server VAD, `"none"` and `null`.
#[test]
fn the_session_says_whether_the_server_interrupts() {
    let interrupts = |ev: &str| match parse_server_frame(ev, 1 << 20) {
        Ok(f) => match f.event {
            ServerEvent::Session { interrupts, .. } => interrupts,
            other => panic!("{ev}: {other:?}"),
        },
        Err(e) => panic!("{ev}: {e}"),
    };
    let beta = |schema| interrupts(&example(BETA_2024, schema));
    assert_eq!(beta("RealtimeServerEventSessionCreated"), Some(true));
    assert_eq!(beta("RealtimeServerEventSessionUpdated"), Some(false)); // {"type":"none"}
    let now = |schema| interrupts(&example(ALL_2026, schema));
    assert_eq!(now("RealtimeBetaServerEventSessionUpdated"), Some(false)); // null
    let ga = |td: &str| {
        interrupts(&format!(
            r#"{{"type":"session.updated","session":{{"type":"realtime","audio":{{"input":{{"turn_detection":{td}}}}}}}}}"#
        ))
    };
    assert_eq!(
        ga(r#"{"type":"server_vad","interrupt_response":true}"#),
        Some(true)
    );
    assert_eq!(ga(r#"{"type":"semantic_vad"}"#), Some(true));
    assert_eq!(
        ga(r#"{"type":"server_vad","interrupt_response":false}"#),
        Some(false)
    );
    assert_eq!(ga("null"), Some(false));
    assert_eq!(ga(r#""server_vad""#), None); // not a turn detection: unknown
    assert_eq!(
        interrupts(r#"{"type":"session.updated","session":{"id":"s"}}"#),
        None
    );
}
