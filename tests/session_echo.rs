//! The echo guard inside the session: the option, the hooks (played reference from audio deltas
//! and playback progress, the gate between the capture resampler and the chunker, the server
//! VAD's `speech_started`), what reaches the socket, and the metrics.

#[path = "session_support/properties.rs"]
mod properties;
mod session_support;

use properties::check_mic_accounting;
use realtime_voice::session::SessionConfig;
use session_support::*;

/// A connected voice session at 24 kHz mono, the assistant's item_a playing (2 s received at
/// −30 dBFS), and 2 s of its echo captured (−33 dBFS) while progress is reported every 20 ms.
fn echo_run(opts: &str) -> (Sim, Vec<i16>) {
    let mut sim = Sim::new(opts);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 24_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    sim.msg(r#"{"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}"#);
    for _ in 0..10 {
        sim.msg(&audio_delta("item_a", 4800));
    }
    let slot = sim.slot("item_a");
    let echo = vec![700.0f32 / 32768.0; 480];
    let mut log = Vec::new();
    for step in 1..=100u64 {
        sim.advance(20);
        sim.s.handle_playback_progress(sim.now, slot, step * 480, 0);
        sim.s.handle_mic_samples(sim.now, &echo);
        log.extend(sim.drain());
        check_mic_accounting(&sim.s, &step);
    }
    log.extend(sim.advance(1000));
    (sim, appended_samples(&log).0)
}

#[test]
fn echo_is_sent_as_silence_with_auto_and_unchanged_by_default() {
    let (sim, sent) = echo_run(r#","echoGuard":"auto""#);
    let m = sim.s.metrics();
    assert!(m.echo_guarded_ms >= 1_500, "{m:?}");
    assert!(!sent.is_empty());
    let loud = sent.iter().filter(|&&s| s.abs() > 300).count();
    assert!(
        loud < 240 * 3,
        "{loud} samples of echo reached the socket with the guard on"
    );
    assert_eq!(m.echo_held_ms, 300, "the pre-roll holds the newest audio");

    let (sim, sent) = echo_run("");
    let m = sim.s.metrics();
    assert_eq!(m.echo_guarded_ms, 0);
    assert!(
        sent.iter().filter(|&&s| s.abs() > 300).count() > 40_000,
        "the echo goes out unchanged with the guard off"
    );
    // Off still measures.
    assert_eq!(m.echo_held_ms, 0, "nothing is held back");
    let erl = m.echo_return_loss_db.expect("measured");
    // The echo is 3 dB below the played audio; the estimate is conservative (a peak hold that
    // starts 3 dB above the reference and comes down at 2 dB/s): after 2 s it is on its way.
    assert!((0.0..=3.2).contains(&erl), "ERL {erl} dB");
}

#[test]
fn speech_started_on_echo_is_counted_as_a_suspected_self_interruption() {
    let (mut sim, _) = echo_run(r#","echoGuard":"off""#);
    // Still speaking (the item is not done): the VAD fires on what the guard judged echo.
    sim.msg(&audio_delta("item_a", 4800));
    sim.advance(20);
    let slot = sim.slot("item_a");
    sim.s.handle_playback_progress(sim.now, slot, 101 * 480, 0);
    sim.s
        .handle_mic_samples(sim.now, &vec![700.0f32 / 32768.0; 480]);
    sim.msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":100,"item_id":"u1"}"#);
    assert_eq!(sim.s.metrics().suspected_self_interruptions, 1);
    let json = sim.s.metrics().to_json();
    assert!(json.contains("\"suspectedSelfInterruptions\":1"), "{json}");
    assert!(json.contains("\"echoGuardedMs\":0"), "{json}");
}

#[test]
fn the_option_takes_auto_or_off() {
    let base = format!("{{{BASE}");
    for (v, gating) in [
        ("", false),
        (r#","echoGuard":"auto""#, true),
        (r#","echoGuard":"off""#, false),
    ] {
        let cfg = SessionConfig::from_json(&format!("{base}{v}}}")).expect("valid");
        assert_eq!(cfg.echo_guard, gating, "{v}");
    }
    let err = SessionConfig::from_json(&format!(r#"{base},"echoGuard":"on"}}"#))
        .expect_err("not a value")
        .to_string();
    assert!(err.contains("echoGuard"), "{err}");
}
