//! Audio that heals itself when devices come and go: a microphone whose track ends is reopened
//! (the chosen device if still present, else the default) and the session stays in voice mode;
//! a chosen microphone or output device that disappears is replaced by the default one and used
//! again when it comes back; text mode only after the bounded tries fail. Every change is an
//! `audio` event; every wait has a timer; every captured sample is accounted for.

#[path = "session_support/properties.rs"]
mod properties;
mod session_support;

use properties::check_mic_accounting;
use realtime_voice::session::devices::{MIC_OPEN_TIMEOUT_MS, MIC_REOPEN_TRIES};
use realtime_voice::session::{AudioFailure, MicLoss, Mode, Output, State, Timer};
use session_support::{appended_samples, event_jsons, Sim};

/// A connected voice session whose microphone runs at 48 kHz mono.
fn voice(extra: &str) -> Sim {
    let mut sim = Sim::new(extra);
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.drain();
    sim
}

/// The `OpenMic` requests in `v`: (device, seq).
fn opens(v: &[Output]) -> Vec<(Option<String>, u64)> {
    v.iter()
        .filter_map(|o| match o {
            Output::OpenMic { device_id, seq } => Some((device_id.clone(), *seq)),
            _ => None,
        })
        .collect()
}

fn sinks(v: &[Output]) -> Vec<Option<String>> {
    v.iter()
        .filter_map(|o| match o {
            Output::SetSink { device_id } => Some(device_id.clone()),
            _ => None,
        })
        .collect()
}

fn audio_events(v: &[Output]) -> Vec<String> {
    event_jsons(v, "audio")
}

fn mode_events(v: &[Output]) -> Vec<String> {
    event_jsons(v, "mode")
}

/// `ms` of 48 kHz mono mic audio in 20 ms blocks, the clock moving with it.
fn feed(sim: &mut Sim, ms: u64) -> Vec<Output> {
    let mut v = Vec::new();
    for _ in 0..ms / 20 {
        let t = sim.now + 20;
        v.extend(sim.advance_to(t));
        sim.s.handle_mic_samples(t, &[0.25; 960]);
        v.extend(sim.drain());
    }
    v
}

/// The only OpenMic in `v`.
fn one_open(v: &[Output]) -> (Option<String>, u64) {
    let o = opens(v);
    assert_eq!(o.len(), 1, "one OpenMic: {v:?}");
    o[0].clone()
}

#[test]
fn an_ended_track_is_reopened_on_the_default_mic_and_the_interview_goes_on_in_voice() {
    let mut sim = voice("");
    feed(&mut sim, 1_000);
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let v = sim.drain();
    let (device, seq) = one_open(&v);
    assert_eq!(device, None, "no device chosen: the default");
    assert_eq!(
        audio_events(&v),
        [
            r#"{"state":"running","needsGesture":false,"recovering":"mic","reason":"track_ended","device":"default","attempt":1}"#
        ]
    );
    assert!(sim.s.mic_recovering());
    assert!(sim.s.timer(Timer::Mic).is_some(), "the open has a deadline");
    assert!(!v.iter().any(|o| matches!(o, Output::StopAudio)));
    sim.s.handle_mic_opened(sim.now, seq);
    let v = sim.drain();
    assert_eq!(
        audio_events(&v),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"mic","reason":"track_ended","device":"default","attempt":1}"#
        ]
    );
    assert!(mode_events(&v).is_empty(), "still voice: {v:?}");
    assert_eq!(sim.s.mode(), Mode::Voice);
    assert!(!sim.s.mic_recovering());
    assert_eq!(sim.s.timer(Timer::Mic), None);
    // The new device is stereo (a headset's two channels): the resampler is rebuilt, the
    // change reported, and its audio reaches the server.
    sim.s.handle_audio_started(sim.now, 48_000, 2);
    let v = sim.drain();
    assert_eq!(
        audio_events(&v),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"mic","reason":"format_changed","device":"default","attempt":0}"#
        ]
    );
    let sent_before = sim.s.metrics().sent_audio_ms;
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = sim.now + 20;
        v.extend(sim.advance_to(t));
        sim.s.handle_mic_samples(t, &[0.25; 1920]); // 20 ms of stereo
        v.extend(sim.drain());
    }
    let (samples, chunks) = appended_samples(&v);
    assert!(chunks >= 9, "the new mic's audio is sent: {chunks} chunks");
    let tail = &samples[samples.len() - 12_000..];
    assert!(
        tail.iter().all(|&x| (x - 8192).abs() < 100),
        "the stereo mic's audio, down-mixed"
    );
    assert!(sim.s.metrics().sent_audio_ms >= sent_before + 900);
    assert_eq!(sim.state(), State::Connected);
}

#[test]
fn the_chosen_mic_is_tried_first_then_the_default_one() {
    let mut sim = voice("");
    sim.s.set_input_device(sim.now, Some("usb"));
    let (device, seq) = one_open(&sim.drain());
    assert_eq!(device.as_deref(), Some("usb"), "a switch the app asked for");
    sim.s.handle_mic_opened(sim.now, seq);
    assert!(
        audio_events(&sim.drain()).is_empty(),
        "the app's own switch is no recovery"
    );
    // The headset is unplugged: its track ends, and the device list has not come yet.
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let (device, seq) = one_open(&sim.drain());
    assert_eq!(device.as_deref(), Some("usb"));
    sim.s
        .handle_mic_open_failed(sim.now, seq, AudioFailure::MicAbsent);
    let v = sim.drain();
    assert!(opens(&v).is_empty(), "the next try waits");
    assert!(mode_events(&v).is_empty());
    let retry = sim.s.timer(Timer::Mic).expect("a retry timer");
    assert_eq!(retry, sim.now + 500);
    let v = sim.advance_to(retry);
    let (device, seq) = one_open(&v);
    assert_eq!(device, None, "the chosen device is absent: the default");
    assert!(audio_events(&v)[0].contains(r#""attempt":2"#));
    sim.s.handle_mic_opened(sim.now, seq);
    let v = sim.drain();
    assert_eq!(
        audio_events(&v),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"mic","reason":"track_ended","device":"default","attempt":2}"#
        ]
    );
    assert_eq!(sim.s.mode(), Mode::Voice);
    assert_eq!(sim.s.input_device(), Some("usb"), "the choice is kept");
}

#[test]
fn a_mic_chosen_while_audio_starts_is_opened_once_audio_runs() {
    let mut sim = Sim::new("");
    let v = sim.connect_open();
    assert!(v.iter().any(|o| matches!(o, Output::StartAudio)), "{v:?}");
    assert_eq!(
        sim.s.input_device(),
        None,
        "StartAudio opens the default mic"
    );
    // The app picks a microphone while the shell is still opening the default one.
    sim.s.set_input_device(sim.now, Some("usb"));
    assert!(opens(&sim.drain()).is_empty(), "nothing to reopen yet");
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    let (device, seq) = one_open(&sim.drain());
    assert_eq!(
        device.as_deref(),
        Some("usb"),
        "the choice is opened once audio runs"
    );
    sim.s.handle_mic_opened(sim.now, seq);
    assert!(
        audio_events(&sim.drain()).is_empty(),
        "the app's own switch"
    );
    feed(&mut sim, 200);
    assert_eq!(sim.s.mode(), Mode::Voice);
}

#[test]
fn a_mic_chosen_before_audio_starts_is_the_one_opened_and_not_reopened() {
    let mut sim = Sim::new("");
    sim.s.set_input_device(sim.now, Some("usb"));
    sim.connect_open();
    assert_eq!(
        sim.s.input_device(),
        Some("usb"),
        "StartAudio opens the choice"
    );
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    assert!(opens(&sim.drain()).is_empty(), "already on it");
}

#[test]
fn a_chosen_mic_that_disappears_falls_back_to_the_default_and_comes_back() {
    let mut sim = voice("");
    sim.s
        .handle_devices_changed(sim.now, &["default", "usb"], Some(&["default"]));
    sim.s.set_input_device(sim.now, Some("usb"));
    let (_, seq) = one_open(&sim.drain());
    sim.s.handle_mic_opened(sim.now, seq);
    sim.drain();
    // A devicechange without it (some engines end no track when a device goes).
    sim.s
        .handle_devices_changed(sim.now, &["default"], Some(&["default"]));
    let v = sim.drain();
    let (device, seq) = one_open(&v);
    assert_eq!(device, None);
    assert_eq!(
        audio_events(&v),
        [
            r#"{"state":"running","needsGesture":false,"recovering":"mic","reason":"device_removed","device":"default","attempt":1}"#
        ]
    );
    sim.s.handle_mic_opened(sim.now, seq);
    let v = sim.drain();
    assert!(audio_events(&v)[0].contains(r#""recovered":"mic","reason":"device_removed""#));
    // Unchanged lists change nothing.
    sim.s
        .handle_devices_changed(sim.now, &["default"], Some(&["default"]));
    assert!(sim.drain().is_empty());
    // Plugged in again: used again.
    sim.s
        .handle_devices_changed(sim.now, &["default", "usb"], Some(&["default"]));
    let (device, seq) = one_open(&sim.drain());
    assert_eq!(device.as_deref(), Some("usb"));
    sim.s.handle_mic_opened(sim.now, seq);
    assert_eq!(
        audio_events(&sim.drain()),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"mic","reason":"device_returned","device":"usb","attempt":0}"#
        ]
    );
}

#[test]
fn text_mode_only_after_the_bounded_tries_fail() {
    for (failure, reason) in [
        (AudioFailure::Other, "track_ended"),
        (AudioFailure::MicAbsent, "mic_absent"),
    ] {
        let mut sim = voice("");
        let lost_at = sim.now;
        sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
        let mut v = sim.drain();
        let mut tries = 0;
        let mut gaps = Vec::new();
        let mut last = sim.now;
        while let Some((_, seq)) = opens(&v).pop() {
            tries += 1;
            gaps.push(sim.now - last);
            last = sim.now;
            assert_eq!(sim.s.mode(), Mode::Voice, "voice while trying");
            sim.s.handle_mic_open_failed(sim.now, seq, failure);
            v = sim.drain();
            if let Some(t) = sim.s.timer(Timer::Mic) {
                v.extend(sim.advance_to(t));
            }
        }
        assert_eq!(tries, MIC_REOPEN_TRIES);
        assert_eq!(gaps, [0, 500, 1_000, 2_000], "backoff between tries");
        assert!(sim.now - lost_at <= 4_000, "given up within a few seconds");
        assert_eq!(
            mode_events(&v),
            [format!(r#"{{"mode":"text","reason":"{reason}"}}"#)]
        );
        assert!(v.iter().any(|o| matches!(o, Output::StopAudio)));
        assert!(!sim.s.mic_recovering());
        assert_eq!(sim.s.timer(Timer::Mic), None);
        assert_eq!(sim.state(), State::Connected, "the socket carries text");
    }
}

#[test]
fn a_withdrawn_permission_falls_back_to_text_at_once() {
    let mut sim = voice("");
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let (_, seq) = one_open(&sim.drain());
    sim.s
        .handle_mic_open_failed(sim.now, seq, AudioFailure::MicDenied);
    let v = sim.drain();
    assert_eq!(
        mode_events(&v),
        [r#"{"mode":"text","reason":"mic_denied"}"#]
    );
}

#[test]
fn an_open_that_never_answers_counts_as_a_failed_try_and_its_late_answer_is_ignored() {
    let mut sim = voice("");
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let (_, first) = one_open(&sim.drain());
    assert_eq!(sim.s.timer(Timer::Mic), Some(sim.now + MIC_OPEN_TIMEOUT_MS));
    let v = sim.advance(MIC_OPEN_TIMEOUT_MS + 500);
    let (_, second) = one_open(&v);
    assert_ne!(first, second);
    sim.s.handle_mic_opened(sim.now, first);
    assert!(sim.drain().is_empty(), "a stale answer changes nothing");
    assert!(sim.s.mic_recovering());
    sim.s.handle_mic_opened(sim.now, second);
    assert!(audio_events(&sim.drain())[0].contains(r#""recovered":"mic""#));
    assert!(!sim.s.mic_recovering());
}

#[test]
fn a_device_that_appears_during_the_wait_is_tried_at_once() {
    let mut sim = voice("");
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let (_, seq) = one_open(&sim.drain());
    sim.s
        .handle_mic_open_failed(sim.now, seq, AudioFailure::MicAbsent);
    sim.drain();
    sim.now += 100;
    sim.s
        .handle_devices_changed(sim.now, &["bt-headset"], Some(&[]));
    let (device, _) = one_open(&sim.drain());
    assert_eq!(device, None, "the default (now the headset)");
}

#[test]
fn a_removed_output_device_falls_back_to_the_default_and_comes_back() {
    let mut sim = voice(r#","sinkId":"bt""#);
    assert_eq!(
        sim.s.output_device(),
        Some("bt"),
        "applied when audio starts"
    );
    sim.s
        .handle_devices_changed(sim.now, &["default"], Some(&["default", "bt"]));
    assert!(sim.drain().is_empty(), "present: nothing to do");
    sim.s
        .handle_devices_changed(sim.now, &["default"], Some(&["default"]));
    let v = sim.drain();
    assert_eq!(sinks(&v), [None]);
    assert_eq!(
        audio_events(&v),
        [
            r#"{"state":"running","needsGesture":false,"recovered":"output","reason":"device_removed","device":"default","attempt":0}"#
        ]
    );
    assert_eq!(sim.s.output_device(), None);
    sim.s
        .handle_devices_changed(sim.now, &["default"], Some(&["default", "bt"]));
    let v = sim.drain();
    assert_eq!(sinks(&v), [Some("bt".to_string())]);
    assert!(audio_events(&v)[0].contains(r#""reason":"device_returned","device":"bt""#));
    // The browser refuses the device: back to the default.
    sim.s.handle_sink_failed(sim.now);
    let v = sim.drain();
    assert_eq!(sinks(&v), [None]);
    assert!(audio_events(&v)[0].contains(r#""reason":"sink_failed""#));
    // An app's choice while audio runs goes out at once.
    sim.s.set_output_device(sim.now, Some("speakers"));
    assert_eq!(sinks(&sim.drain()), [Some("speakers".to_string())]);
    // Where no output can be chosen nothing is listed, which says nothing; elsewhere an empty
    // list means the last output went.
    sim.s.handle_devices_changed(sim.now, &["default"], None);
    assert!(sim.drain().is_empty());
    sim.s
        .handle_devices_changed(sim.now, &["default"], Some(&[]));
    assert_eq!(sinks(&sim.drain()), [None]);
}

#[test]
fn the_only_mic_unplugged_is_an_empty_list_and_is_reopened_when_one_comes() {
    let mut sim = voice("");
    let none: &[&str] = &[];
    sim.s.handle_devices_changed(sim.now, none, Some(none));
    let v = sim.drain();
    let (device, seq) = one_open(&v);
    assert_eq!(device, None);
    assert!(audio_events(&v)[0].contains(r#""reason":"device_removed""#));
    sim.s
        .handle_mic_open_failed(sim.now, seq, AudioFailure::MicAbsent);
    sim.drain();
    sim.now += 200;
    sim.s
        .handle_devices_changed(sim.now, &["headset"], Some(&[]));
    let (_, seq) = one_open(&sim.drain());
    sim.s.handle_mic_opened(sim.now, seq);
    assert!(audio_events(&sim.drain())[0].contains(r#""recovered":"mic""#));
    assert_eq!(sim.s.mode(), Mode::Voice);
}

#[test]
fn device_lists_without_ids_decide_nothing() {
    let mut sim = voice(r#","sinkId":"bt""#);
    sim.s.set_input_device(sim.now, Some("usb"));
    let (_, seq) = one_open(&sim.drain());
    sim.s.handle_mic_opened(sim.now, seq);
    sim.drain();
    // Before permission ids are empty; without setSinkId outputs are not listed at all.
    sim.s
        .handle_devices_changed(sim.now, &["", ""], Some(&[""]));
    sim.s.handle_devices_changed(sim.now, &["", ""], None);
    assert!(sim.drain().is_empty());
}

#[test]
fn audio_captured_around_a_reopen_is_sent_or_accounted_for() {
    let mut sim = voice(r#","maxBacklogMs":2000"#);
    feed(&mut sim, 1_000);
    // Offline while the mic is lost: the backlog holds what was captured.
    sim.close(1006, true);
    feed(&mut sim, 500);
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let (_, seq) = one_open(&sim.drain());
    sim.advance(300);
    sim.s.handle_mic_opened(sim.now, seq);
    sim.drain();
    feed(&mut sim, 500);
    let m = sim.s.metrics();
    // The resampler holds back a few samples (its filter's delay).
    assert!(m.captured_audio_ms >= 1_995, "{}", m.captured_audio_ms);
    check_mic_accounting(&sim.s, &"around a reopen");
    assert!(m.buffered_audio_ms >= 900, "kept for the reconnect");
    // Lost again, and this time for good: what is still buffered is counted as discarded.
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let mut v = sim.drain();
    while let Some((_, seq)) = opens(&v).pop() {
        sim.s
            .handle_mic_open_failed(sim.now, seq, AudioFailure::Other);
        v = sim.drain();
        if let Some(t) = sim.s.timer(Timer::Mic) {
            v.extend(sim.advance_to(t));
        }
    }
    assert_eq!(sim.s.mode(), Mode::Text);
    check_mic_accounting(&sim.s, &"around a reopen");
    assert!(sim.s.metrics().discarded_audio_ms >= 900);
}

#[test]
fn nothing_is_reopened_without_voice_audio_and_stopping_ends_a_recovery() {
    let mut sim = Sim::new(r#","mode":"text""#);
    sim.connect_open();
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    sim.s.handle_devices_changed(sim.now, &["a"], Some(&["b"]));
    sim.s.set_input_device(sim.now, Some("a"));
    assert!(opens(&sim.drain()).is_empty());

    let mut sim = voice("");
    sim.s.handle_mic_lost(sim.now, MicLoss::TrackEnded);
    let (_, seq) = one_open(&sim.drain());
    sim.s.disconnect(sim.now);
    sim.drain();
    assert!(!sim.s.mic_recovering());
    assert_eq!(sim.s.timer(Timer::Mic), None);
    sim.s.handle_mic_opened(sim.now, seq);
    assert!(audio_events(&sim.drain()).is_empty());
}
