//! Metrics, cost, transcripts and server errors as app events.

mod session_support;

use realtime_voice::protocol::json;
use realtime_voice::session::Output;
use session_support::*;

fn usage_frame() -> &'static str {
    r#"{"type":"response.done","response":{"id":"r","status":"completed","output":[],"usage":{"total_tokens":253,"input_tokens":132,"output_tokens":121,"input_token_details":{"text_tokens":119,"audio_tokens":13,"image_tokens":0,"cached_tokens":64,"cached_tokens_details":{"text_tokens":64,"audio_tokens":0,"image_tokens":0}},"output_token_details":{"text_tokens":30,"audio_tokens":91}}}}"#
}

#[test]
fn latency_percentiles_from_speech_stopped_to_first_audio() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    // 20 turns with latencies 100, 200, ..., 2000 ms.
    for i in 1..=20u64 {
        sim.advance(5_000);
        sim.msg(r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":1,"item_id":"u"}"#);
        sim.msg(r#"{"type":"input_audio_buffer.committed","item_id":"u"}"#);
        sim.advance(i * 100);
        sim.msg(&audio_delta(&format!("a{i}"), 240));
        sim.advance(10);
        sim.msg(&audio_delta(&format!("a{i}"), 240)); // later deltas do not count
    }
    let m = sim.s.metrics();
    assert_eq!(m.latency_samples, 20);
    assert_eq!(
        (m.latency_p50_ms, m.latency_p95_ms, m.latency_p99_ms),
        (Some(1000), Some(1900), Some(2000))
    );
    assert_eq!(m.time_to_first_audio_ms, Some(5_100));
}

/// The first sound is timed by the player's first report of audio played, not by the delta's
/// arrival: the player may start long after the first delta (the audio devices' start-up).
#[test]
fn time_to_first_sound_runs_from_connect_to_the_players_first_report_of_audio_played() {
    let mut sim = Sim::new("");
    sim.now = 1_000;
    sim.connect_open();
    sim.s.handle_audio_started(1_000, 24_000, 1);
    sim.advance(500);
    sim.msg(&audio_delta("a", 2_400));
    sim.advance(300);
    sim.s.handle_playback_started(sim.now, 24_000);
    sim.advance(50);
    // Reports before any of it played leave the first sound untimed.
    sim.s.handle_playback_progress(sim.now, sim.slot("a"), 0, 0);
    assert_eq!(sim.s.metrics().time_to_first_sound_ms, None);
    sim.advance(50);
    sim.s
        .handle_playback_progress(sim.now, sim.slot("a"), 1_200, 0);
    sim.advance(50);
    sim.s
        .handle_playback_progress(sim.now, sim.slot("a"), 2_400, 0);
    let m = sim.s.metrics();
    assert_eq!(
        (m.time_to_first_audio_ms, m.time_to_first_sound_ms),
        (Some(500), Some(900))
    );
    let mut json = String::new();
    m.write_json(&mut json);
    assert!(
        json.contains(r#""timeToFirstAudioMs":500,"timeToFirstSoundMs":900,"#),
        "{json}"
    );
}

#[test]
fn commit_without_vad_starts_the_latency_clock() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.msg(r#"{"type":"input_audio_buffer.committed","item_id":"u"}"#);
    sim.advance(640);
    sim.msg(&audio_delta("a", 240));
    assert_eq!(sim.s.metrics().latency_p50_ms, Some(640));
}

#[test]
fn latency_window_is_bounded() {
    let mut sim = Sim::new(r#","latencyWindow":8"#);
    sim.connect_open();
    for i in 0..100u64 {
        sim.msg(r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":1}"#);
        sim.advance(i);
        sim.msg(&audio_delta("a", 24));
    }
    let m = sim.s.metrics();
    assert_eq!(m.latency_samples, 8);
    assert_eq!(
        m.latency_p50_ms,
        Some(95),
        "only the last 8 (92..=99) remain"
    );
}

#[test]
fn cost_from_usage_with_the_model_from_session_created() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.msg(r#"{"type":"session.created","event_id":"e","session":{"id":"s","object":"realtime.session","model":"gpt-realtime-2025-08-28"}}"#);
    sim.msg(usage_frame());
    sim.msg(usage_frame());
    let m = sim.s.metrics();
    let one = (55.0 * 4.0 + 64.0 * 0.4 + 13.0 * 32.0 + 30.0 * 16.0 + 91.0 * 64.0) / 1e6;
    assert!(
        (m.cost_usd - 2.0 * one).abs() < 1e-12,
        "{} vs {}",
        m.cost_usd,
        2.0 * one
    );
    assert_eq!(m.model.as_deref(), Some("gpt-realtime-2025-08-28"));
    assert_eq!((m.input_tokens, m.output_tokens), (264, 242));
    assert!(!m.cost_is_upper_bound);
}

#[test]
fn model_override_and_beta_usage_upper_bound() {
    let mut sim = Sim::new(r#","model":"gpt-4o-realtime-preview-2024-10-01""#);
    sim.connect_open();
    sim.msg(r#"{"type":"session.created","session":{"model":"gpt-realtime"}}"#);
    sim.msg(r#"{"type":"response.done","response":{"id":"r","usage":{"total_tokens":50,"input_tokens":20,"output_tokens":30}}}"#);
    let m = sim.s.metrics();
    assert_eq!(
        m.model.as_deref(),
        Some("gpt-4o-realtime-preview-2024-10-01")
    );
    assert!(m.cost_is_upper_bound);
    assert!((m.cost_usd - (20.0 * 100.0 + 30.0 * 200.0) / 1e6).abs() < 1e-12);
    // Unknown model: no guess, flagged.
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.msg(r#"{"type":"session.created","session":{"model":"some-future-model"}}"#);
    sim.msg(usage_frame());
    let m = sim.s.metrics();
    assert_eq!(m.cost_usd, 0.0);
    assert!(m.cost_unknown_model);
}

#[test]
fn periodic_metrics_events_while_connected_only() {
    let mut sim = Sim::new("");
    sim.connect_open();
    let v = sim.advance(3_500);
    let ms: Vec<&realtime_voice::session::AppEvent> = events(&v)
        .into_iter()
        .filter(|e| e.name() == "metrics")
        .collect();
    assert_eq!(ms.len(), 3);
    let text = ms[0].to_json();
    let j = json::parse(&text, 1 << 16).unwrap();
    assert_eq!(
        j.get("connectionAttempts").and_then(|v| v.as_u64()),
        Some(1)
    );
    assert_eq!(
        j.get("connectionSuccesses").and_then(|v| v.as_u64()),
        Some(1)
    );
    sim.close(1006, true);
    sim.s.handle_online(sim.now, false);
    let v = sim.advance(10_000);
    assert!(!events(&v).iter().any(|e| e.name() == "metrics"));
    let snap = sim.s.metrics();
    assert_eq!(snap.last_close_code, Some(1006));
    assert_eq!(snap.last_close_reason.as_deref(), Some("bye"));
    assert_eq!(snap.reconnects, 1);
}

#[test]
fn capture_to_send_delay_and_bytes_sent() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    for t in (20..=1000).step_by(20) {
        sim.advance_to(t);
        sim.s.handle_mic_samples(t, &[0.0; 480]);
    }
    sim.drain();
    let m = sim.s.metrics();
    // The first sample of each 100 ms chunk waits ~80 ms for the chunk to fill.
    assert_eq!(m.capture_to_send_last_ms, Some(80));
    assert_eq!(m.capture_to_send_max_ms, 80);
    let sent_bytes: usize = sends(&sim.log).iter().map(|f| f.len()).sum();
    assert_eq!(m.bytes_sent, sent_bytes as u64);
    assert_eq!(m.frames_sent, 10);
}

#[test]
fn transcripts_and_speech_become_app_events() {
    let mut sim = Sim::new("");
    sim.connect_open();
    let frames = [
        r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u1"}"#,
        r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":2,"item_id":"u1"}"#,
        r#"{"type":"conversation.item.input_audio_transcription.delta","item_id":"u1","content_index":0,"delta":"Hel"}"#,
        r#"{"type":"conversation.item.input_audio_transcription.completed","item_id":"u1","content_index":0,"transcript":"Hello"}"#,
        r#"{"type":"response.audio_transcript.delta","response_id":"r","item_id":"a1","output_index":0,"content_index":0,"delta":"Hi "}"#,
        r#"{"type":"response.output_audio_transcript.done","response_id":"r","item_id":"a1","output_index":0,"content_index":0,"transcript":"Hi there"}"#,
        r#"{"type":"response.output_text.delta","response_id":"r","item_id":"a2","output_index":0,"content_index":0,"delta":"T"}"#,
        r#"{"type":"response.text.done","response_id":"r","item_id":"a2","output_index":0,"content_index":0,"text":"Text"}"#,
    ];
    let mut got = Vec::new();
    for f in frames {
        for e in events(&sim.msg(f)) {
            if e.name() != "event" {
                got.push(e.to_json());
            }
        }
    }
    assert_eq!(
        got,
        [
            r#"{"who":"user","speaking":true}"#,
            r#"{"who":"user","speaking":false}"#,
            r#"{"role":"user","itemId":"u1","text":"Hel","final":false}"#,
            r#"{"role":"user","itemId":"u1","text":"Hello","final":true}"#,
            r#"{"role":"assistant","itemId":"a1","text":"Hi ","final":false}"#,
            r#"{"role":"assistant","itemId":"a1","text":"Hi there","final":true}"#,
            r#"{"role":"assistant","itemId":"a2","text":"T","final":false}"#,
            r#"{"role":"assistant","itemId":"a2","text":"Text","final":true}"#,
        ]
    );
}

#[test]
fn server_errors_carry_their_code_and_every_event_is_forwarded_raw() {
    let mut sim = Sim::new("");
    sim.connect_open();
    for (frame, code) in [
        (
            r#"{"type":"error","error":{"type":"invalid_request_error","code":"invalid_audio_format","message":"bad audio","param":null}}"#,
            "invalid_audio_format",
        ),
        (
            r#"{"type":"error","error":{"type":"rate_limit_error","code":"rate_limit_exceeded","message":"slow down"}}"#,
            "rate_limit_exceeded",
        ),
        (
            r#"{"type":"conversation.item.input_audio_transcription.failed","item_id":"u","content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"?"}}"#,
            "audio_unintelligible",
        ),
    ] {
        let v = sim.msg(frame);
        let e: Vec<String> = events(&v)
            .iter()
            .filter(|e| e.name() == "error")
            .map(|e| e.to_json())
            .collect();
        assert_eq!(e.len(), 1);
        let j = json::parse(&e[0], 4096).unwrap();
        assert_eq!(j.get("kind").and_then(|x| x.as_str()), Some("server"));
        assert_eq!(j.get("code").and_then(|x| x.as_str()), Some(code));
        let raw: Vec<String> = events(&v)
            .iter()
            .filter(|e| e.name() == "event")
            .map(|e| e.to_json())
            .collect();
        assert_eq!(
            raw,
            [format!(
                r#"{{"type":{:?},"event":{frame}}}"#,
                frame_type(frame)
            )]
        );
    }
    // Unknown events pass through without error.
    let v = sim.msg(r#"{"type":"brand.new.thing","x":{"y":[1,2]}}"#);
    assert_eq!(events(&v).len(), 1);
    assert_eq!(events(&v)[0].name(), "event");
}

#[test]
fn server_event_filter_can_skip_audio() {
    let mut sim = Sim::new(r#","serverEvents":"no_audio""#);
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    let v = sim.msg(&audio_delta("a", 24));
    assert!(!events(&v).iter().any(|e| e.name() == "event"));
    assert!(v.iter().any(|o| matches!(o, Output::Play { .. })));
    let v = sim.msg(r#"{"type":"rate_limits.updated","rate_limits":[]}"#);
    assert!(events(&v).iter().any(|e| e.name() == "event"));
}

#[test]
fn audio_is_skipped_by_default_and_nothing_is_copied_while_nobody_listens() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    let v = sim.msg(&audio_delta("a", 24));
    assert!(
        !events(&v).iter().any(|e| e.name() == "event"),
        "no_audio by default"
    );
    sim.s.set_raw_events_wanted(false);
    let v = sim.msg(r#"{"type":"rate_limits.updated","rate_limits":[]}"#);
    assert!(events(&v).is_empty(), "no raw copy without a listener");
    sim.s.set_raw_events_wanted(true);
    let v = sim.msg(r#"{"type":"rate_limits.updated","rate_limits":[]}"#);
    assert_eq!(events(&v).len(), 1);
}
