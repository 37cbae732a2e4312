//! AI audio that arrives while the browser's audio is still starting (the microphone prompt,
//! worklet loading — the interviewer greets at once) is held in order and played once audio
//! runs (the player started: `handle_playback_started`); bounded, with the excess counted, never
//! silently lost. Items reach the player as the core's numbers for them (1, 2, …).

mod session_support;

use realtime_voice::session::Output;
use session_support::{audio_delta, Sim};

fn players(v: &[Output]) -> Vec<String> {
    v.iter()
        .filter_map(|o| match o {
            Output::Play { item, samples, .. } => Some(format!("play {item} {}", samples.len())),
            Output::EndOfItem { item } => Some(format!("end {item}")),
            Output::FlushPlayback { .. } => Some("flush".into()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_greeting_waits_for_audio_and_plays_in_order() {
    let mut sim = Sim::new("");
    sim.connect_open();
    let mut v = sim.msg(&audio_delta("a", 2400));
    v.extend(sim.msg(&audio_delta("a", 1200)));
    v.extend(sim.msg(
        r#"{"type":"response.output_audio.done","item_id":"a","output_index":0,"content_index":0}"#,
    ));
    assert!(
        players(&v).is_empty(),
        "nothing reaches the player before audio runs: {v:?}"
    );
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    let v = sim.drain();
    assert_eq!(players(&v), ["play 1 2400", "play 1 1200", "end 1"]);
    // Once running, deltas go straight out.
    let v = sim.msg(&audio_delta("b", 240));
    assert_eq!(players(&v), ["play 2 240"]);
    assert_eq!(sim.s.metrics().dropped_playback_ms, 0);
}

#[test]
fn held_audio_is_bounded_and_the_excess_counted() {
    let mut sim = Sim::new("");
    sim.connect_open();
    // 25 s of 1 s deltas against a 20 s bound.
    for _ in 0..25 {
        sim.msg(&audio_delta("a", 24_000));
    }
    assert_eq!(sim.s.metrics().dropped_playback_ms, 5_000);
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    let v = sim.drain();
    assert_eq!(players(&v).len(), 20, "the first 20 s are kept, in order");
}

#[test]
fn audio_failing_to_start_discards_what_was_held() {
    let mut sim = Sim::new(r#","httpFallback":true"#);
    sim.connect_open();
    sim.msg(&audio_delta("a", 2400));
    sim.s
        .handle_audio_failed(sim.now, realtime_voice::session::AudioFailure::MicDenied);
    let v = sim.drain();
    assert!(players(&v).is_empty(), "{v:?}");
    // A later start (after reconnecting in voice) does not replay stale audio.
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    assert!(players(&sim.drain()).is_empty());
}
