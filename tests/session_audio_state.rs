//! The browser's audio lifecycle as state (what Safari and iOS do differently): a context that
//! is suspended (autoplay, background) or interrupted (a call) while the session uses audio is
//! reported to the app and resumed on the next user gesture; back in view, at once.

mod session_support;

use realtime_voice::session::{AudioState, Output};
use session_support::{event_jsons, Sim};

fn resumes(v: &[Output]) -> Vec<bool> {
    v.iter()
        .filter_map(|o| match o {
            Output::ResumeAudio { on_gesture } => Some(*on_gesture),
            _ => None,
        })
        .collect()
}

fn audio_events(v: &[Output]) -> Vec<String> {
    event_jsons(v, "audio")
}

fn voice() -> Sim {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 44_100, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    sim
}

#[test]
fn a_context_that_starts_suspended_is_resumed_on_the_next_gesture() {
    let mut sim = voice();
    // Safari without a gesture: the context reports suspended right after start.
    sim.s.handle_audio_state(sim.now, AudioState::Suspended);
    let v = sim.drain();
    assert_eq!(resumes(&v), [true], "resume armed for the next gesture");
    assert_eq!(
        audio_events(&v),
        [r#"{"state":"suspended","needsGesture":true}"#]
    );
    // The gesture came: running again; nothing more to arm.
    sim.s.handle_audio_state(sim.now, AudioState::Running);
    let v = sim.drain();
    assert!(resumes(&v).is_empty());
    assert_eq!(
        audio_events(&v),
        [r#"{"state":"running","needsGesture":false}"#]
    );
    assert_eq!(
        sim.s.metrics().audio_interruptions,
        0,
        "a start-up suspension is no interruption"
    );
}

#[test]
fn an_interruption_is_counted_reported_and_resumed_on_gesture() {
    let mut sim = voice();
    sim.s.handle_audio_state(sim.now, AudioState::Running);
    sim.drain();
    sim.s.handle_audio_state(sim.now, AudioState::Running);
    assert!(sim.drain().is_empty(), "no change, no output");
    sim.s.handle_audio_state(sim.now, AudioState::Interrupted);
    let v = sim.drain();
    assert_eq!(resumes(&v), [true]);
    assert_eq!(
        audio_events(&v),
        [r#"{"state":"interrupted","needsGesture":true}"#]
    );
    assert_eq!(sim.s.metrics().audio_interruptions, 1);
    // iOS moves an ended interruption to suspended: still waiting for a gesture, not counted twice.
    sim.s.handle_audio_state(sim.now, AudioState::Suspended);
    let v = sim.drain();
    assert_eq!(resumes(&v), [true]);
    assert_eq!(sim.s.metrics().audio_interruptions, 1);
}

#[test]
fn back_in_view_resumes_at_once_and_hidden_does_nothing() {
    let mut sim = voice();
    sim.s.handle_visibility(sim.now, true);
    assert!(
        resumes(&sim.drain()).is_empty(),
        "running audio needs nothing"
    );
    sim.s.handle_audio_state(sim.now, AudioState::Suspended);
    sim.drain();
    sim.s.handle_visibility(sim.now, false);
    assert!(resumes(&sim.drain()).is_empty());
    sim.s.handle_visibility(sim.now, true);
    assert_eq!(
        resumes(&sim.drain()),
        [false],
        "resume at once when visible again"
    );
}

#[test]
fn without_audio_the_state_is_ignored() {
    let mut sim = Sim::new(r#","mode":"text""#);
    sim.connect_open();
    sim.s.handle_audio_state(sim.now, AudioState::Suspended);
    sim.s.handle_visibility(sim.now, true);
    let v = sim.drain();
    assert!(
        resumes(&v).is_empty() && audio_events(&v).is_empty(),
        "{v:?}"
    );
}

#[test]
fn browser_state_strings_parse() {
    for (s, st) in [
        ("running", AudioState::Running),
        ("suspended", AudioState::Suspended),
        ("interrupted", AudioState::Interrupted),
        ("closed", AudioState::Closed),
    ] {
        assert_eq!(AudioState::from_browser(s), Some(st));
        assert_eq!(st.as_str(), s);
    }
    assert_eq!(AudioState::from_browser("paused"), None);
}
