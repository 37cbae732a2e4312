//! The opt-in wasm echo canceller (`echoCanceller: "wasm"`) as the session sees it: the option,
//! which canceller the shell is told to set up, its figures in the metrics, and the way back to
//! the browser's canceller when it cannot load or stops working: the microphone is reopened
//! (its constraints had the browser's processing off) and the interview goes on in voice.

mod session_support;

use realtime_voice::session::{EchoCanceller, MicLoss, Mode, Output, SessionConfig};
use session_support::*;

fn opens(v: &[Output]) -> Vec<u64> {
    v.iter()
        .filter_map(|o| match o {
            Output::OpenMic { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

fn metrics_json(sim: &Sim) -> String {
    sim.s.metrics().to_json()
}

#[test]
fn the_option_takes_browser_wasm_or_none_and_a_module_url() {
    let base = format!("{{{BASE}");
    for (v, want) in [
        ("", EchoCanceller::Browser),
        (r#","echoCanceller":"browser""#, EchoCanceller::Browser),
        (r#","echoCanceller":"wasm""#, EchoCanceller::Wasm),
        (r#","echoCanceller":"none""#, EchoCanceller::None),
    ] {
        let cfg = SessionConfig::from_json(&format!("{base}{v}}}")).expect("valid");
        assert_eq!(cfg.echo_canceller, want, "{v}");
        assert_eq!(cfg.echo_canceller_url, None);
    }
    let cfg = SessionConfig::from_json(&format!(
        r#"{base},"echoCanceller":"wasm","echoCancellerUrl":"/aec.wasm"}}"#
    ))
    .expect("valid");
    assert_eq!(cfg.echo_canceller_url.as_deref(), Some("/aec.wasm"));
    for bad in [r#""speex""#, "true", r#""""#] {
        let err = SessionConfig::from_json(&format!(r#"{base},"echoCanceller":{bad}}}"#))
            .expect_err("not a value")
            .to_string();
        assert!(err.contains("echoCanceller"), "{bad}: {err}");
    }
}

#[test]
fn its_figures_reach_the_metrics() {
    let mut sim = Sim::new(r#","echoCanceller":"wasm""#);
    sim.connect_open();
    assert_eq!(sim.s.echo_canceller(), EchoCanceller::Wasm);
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    let json = metrics_json(&sim);
    assert!(
        json.contains(r#""echoCanceller":"wasm","aecAttenuationDb":null"#),
        "{json}"
    );
    sim.s.handle_echo_canceller_stats(sim.now, 23.46, 84);
    let json = metrics_json(&sim);
    assert!(
        json.contains(r#""echoCanceller":"wasm","aecAttenuationDb":23.5,"aecDelayMs":84"#),
        "{json}"
    );
    // Not a number: ignored (the JSON stays valid, the last figures stay).
    sim.s.handle_echo_canceller_stats(sim.now, f32::NAN, 99);
    assert!(metrics_json(&sim).contains(r#""aecAttenuationDb":23.5,"aecDelayMs":84"#));
    // The browser's canceller has no figures of ours.
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_echo_canceller_stats(sim.now, 23.0, 84);
    let json = metrics_json(&sim);
    assert!(
        json.contains(r#""echoCanceller":"browser","aecAttenuationDb":null"#),
        "{json}"
    );
}

/// The canceller's worklet hands the microphone as it came beside its output: the guard judges
/// that raw capture (a pair) from the start, and the processed capture alone once the
/// browser's canceller has taken over after a failure.
#[test]
fn the_guard_judges_the_raw_microphone_beside_the_cancellers_output() {
    let raw = |sim: &Sim| {
        let json = metrics_json(sim);
        (json.contains(r#""echoGuardRaw":true"#), json)
    };
    let mut sim = Sim::new(r#","echoCanceller":"wasm""#);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    let block = vec![0.0f32; 480];
    let (judged_raw, json) = raw(&sim);
    assert!(judged_raw, "{json}");
    sim.s.handle_mic_pair(sim.now, &block, &block);
    let (judged_raw, json) = raw(&sim);
    assert!(judged_raw, "{json}");
    sim.s.handle_echo_canceller_failed(sim.now);
    let seqs = opens(&sim.drain());
    sim.s.handle_mic_opened(sim.now, seqs[0]);
    sim.s.handle_mic_samples(sim.now, &block);
    let (judged_raw, json) = raw(&sim);
    assert!(
        !judged_raw && json.contains(r#""echoCanceller":"browser""#),
        "{json}"
    );
}

#[test]
fn a_failure_while_running_reopens_the_mic_with_the_browsers_canceller() {
    let mut sim = Sim::new(r#","echoCanceller":"wasm""#);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.s.handle_echo_canceller_stats(sim.now, 20.0, 80);
    sim.drain();
    sim.s.handle_echo_canceller_failed(sim.now);
    let v = sim.drain();
    assert_eq!(sim.s.echo_canceller(), EchoCanceller::Browser);
    let errors = event_jsons(&v, "error");
    assert_eq!(errors.len(), 1, "{v:?}");
    assert!(
        errors[0].contains(r#""code":"echo_canceller_failed""#),
        "{}",
        errors[0]
    );
    let seqs = opens(&v);
    assert_eq!(seqs.len(), 1, "the mic is reopened: {v:?}");
    assert_eq!(
        event_jsons(&v, "audio"),
        [
            r#"{"state":"running","needsGesture":false,"recovering":"mic","reason":"echo_canceller_failed","device":"default","attempt":1}"#
        ]
    );
    sim.s.handle_mic_opened(sim.now, seqs[0]);
    let v = sim.drain();
    assert_eq!(
        event_jsons(&v, "audio"),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"mic","reason":"echo_canceller_failed","device":"default","attempt":1}"#
        ]
    );
    assert_eq!(sim.s.mode(), Mode::Voice);
    assert!(metrics_json(&sim).contains(r#""echoCanceller":"browser","aecAttenuationDb":null"#));
    // Once is enough: a second report changes nothing.
    sim.s.handle_echo_canceller_failed(sim.now);
    assert!(sim.drain().is_empty());
}

#[test]
fn a_module_that_does_not_load_while_audio_starts_gives_the_browsers_canceller() {
    let mut sim = Sim::new(r#","echoCanceller":"wasm""#);
    let v = sim.connect_open();
    assert!(v.iter().any(|o| matches!(o, Output::StartAudio)), "{v:?}");
    // The graph is up (its rate reported), the first frames not yet: the worklet says the
    // module could not be loaded.
    sim.s.handle_playback_started(sim.now, 48_000);
    sim.s.handle_echo_canceller_failed(sim.now);
    let v = sim.drain();
    let seqs = opens(&v);
    assert_eq!(
        seqs.len(),
        1,
        "the mic is reopened with the browser's canceller: {v:?}"
    );
    sim.s.handle_mic_opened(sim.now, seqs[0]);
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    let v = sim.drain();
    assert!(opens(&v).is_empty(), "opened once: {v:?}");
    assert_eq!(sim.s.mode(), Mode::Voice);
    // Its audio reaches the server.
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = sim.now + 20;
        v.extend(sim.advance_to(t));
        sim.s.handle_mic_samples(t, &[0.25; 960]);
        v.extend(sim.drain());
    }
    let (_, chunks) = appended_samples(&v);
    assert!(chunks >= 9, "{chunks} chunks sent");
}

#[test]
fn without_a_canceller_a_failure_report_changes_nothing() {
    let mut sim = Sim::new(r#","echoCanceller":"none""#);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.drain();
    sim.s.handle_echo_canceller_failed(sim.now);
    let v = sim.drain();
    assert!(v.is_empty(), "{v:?}");
    assert_eq!(sim.s.echo_canceller(), EchoCanceller::None);
}

#[test]
fn in_text_mode_a_failure_only_changes_the_next_start() {
    let mut sim = Sim::new(r#","echoCanceller":"wasm","mode":"text""#);
    sim.connect_open();
    sim.drain();
    sim.s.handle_echo_canceller_failed(sim.now);
    let v = sim.drain();
    assert!(opens(&v).is_empty(), "{v:?}");
    assert_eq!(sim.s.echo_canceller(), EchoCanceller::Browser);
}

#[test]
fn an_open_in_flight_when_it_fails_is_asked_again_with_the_browsers_canceller() {
    let mut sim = Sim::new(r#","echoCanceller":"wasm""#);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.drain();
    // The track ends: a reopen goes out, with the wasm canceller's constraints.
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let first = opens(&sim.drain());
    assert_eq!(first.len(), 1);
    // Before it is answered, the canceller fails: the open is asked again.
    sim.s.handle_echo_canceller_failed(sim.now);
    let second = opens(&sim.drain());
    assert_eq!(second.len(), 1, "asked again with the browser's canceller");
    assert_ne!(second[0], first[0]);
    // The first answer no longer counts; the second ends the recovery.
    sim.s.handle_mic_opened(sim.now, first[0]);
    assert!(event_jsons(&sim.drain(), "audio").is_empty());
    assert!(sim.s.mic_recovering());
    sim.s.handle_mic_opened(sim.now, second[0]);
    assert_eq!(
        event_jsons(&sim.drain(), "audio"),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"mic","reason":"track_ended","device":"default","attempt":1}"#
        ]
    );
    assert!(!sim.s.mic_recovering());
    assert_eq!(sim.s.echo_canceller(), EchoCanceller::Browser);
}
