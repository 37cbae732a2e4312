//! The adaptive playback pre-buffer: underruns during a response raise it (up to
//! `maxPrebufferMs`), calm responses lower it back towards `prebufferMs`.

mod session_support;

use realtime_voice::session::Output;
use session_support::{audio_delta, Sim};

fn set_prebuffer(v: &[Output]) -> Vec<u32> {
    v.iter()
        .filter_map(|o| match o {
            Output::SetPrebuffer { ms } => Some(*ms),
            _ => None,
        })
        .collect()
}

/// One response of `n` samples on item `id`, played to the end with `underruns` reported.
fn response(sim: &mut Sim, id: &str, underruns_total: u64) -> Vec<Output> {
    let mut v = sim.msg(&audio_delta(id, 2400));
    v.extend(sim.msg(&format!(
        r#"{{"type":"response.output_audio.done","item_id":"{id}","output_index":0,"content_index":0}}"#
    )));
    sim.s
        .handle_playback_progress(sim.now, id, 2400, underruns_total);
    v.extend(sim.drain());
    v
}

fn voice(extra: &str) -> Sim {
    let mut sim = Sim::new(extra);
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.drain();
    sim
}

#[test]
fn underruns_raise_the_prebuffer_up_to_the_ceiling() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":150"#);
    assert_eq!(set_prebuffer(&response(&mut sim, "a", 1)), [100]);
    assert_eq!(set_prebuffer(&response(&mut sim, "b", 3)), [140]);
    assert_eq!(set_prebuffer(&response(&mut sim, "c", 4)), [150], "capped");
    assert!(
        set_prebuffer(&response(&mut sim, "d", 5)).is_empty(),
        "already at the ceiling"
    );
    assert_eq!(sim.s.metrics().prebuffer_ms, 150);
}

#[test]
fn calm_responses_lower_it_back_to_the_start() {
    let mut sim = voice(r#","prebufferMs":60"#);
    assert_eq!(set_prebuffer(&response(&mut sim, "a", 1)), [100]);
    let mut seen = Vec::new();
    for (i, id) in ["b", "c", "d", "e", "f", "g", "h", "i", "j"]
        .iter()
        .enumerate()
    {
        let v = response(&mut sim, id, 1);
        seen.extend(set_prebuffer(&v).into_iter().map(|ms| (i, ms)));
    }
    assert_eq!(
        seen,
        [(2, 80), (5, 60)],
        "every third calm response steps down, not below 60"
    );
}

#[test]
fn equal_bounds_keep_it_fixed() {
    let mut sim = voice(r#","prebufferMs":80,"maxPrebufferMs":80"#);
    for (id, u) in [("a", 1), ("b", 2), ("c", 3)] {
        assert!(set_prebuffer(&response(&mut sim, id, u)).is_empty());
    }
    assert_eq!(sim.s.metrics().prebuffer_ms, 80);
}

/// The worklet's underrun counter starts at 0 with each new audio graph: the session keeps
/// the earlier graphs' total, so underruns after an audio restart still count and still raise
/// the pre-buffer, and the learnt value survives for the rebuilt player (`prebuffer_ms()`).
#[test]
fn underruns_after_an_audio_restart_still_count() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":300"#);
    assert_eq!(set_prebuffer(&response(&mut sim, "a", 3)), [100]);
    assert_eq!(sim.s.metrics().underruns, 3);
    // Audio restarts (disconnect + connect builds a new graph).
    sim.s.disconnect(sim.now);
    sim.drain();
    assert_eq!(sim.s.prebuffer_ms(), 100, "kept across the restart");
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.drain();
    assert_eq!(sim.s.prebuffer_ms(), 100);
    // The new graph reports 1 underrun (its own count): 4 in total, and it raises again.
    assert_eq!(set_prebuffer(&response(&mut sim, "b", 1)), [140]);
    assert_eq!(sim.s.metrics().underruns, 4);
    assert_eq!(sim.s.prebuffer_ms(), 140);
    // A calm response on the new graph (same total) is calm.
    assert!(set_prebuffer(&response(&mut sim, "c", 1)).is_empty());
    assert_eq!(sim.s.metrics().underruns, 4);
}

/// `SetPrebuffer` is a player output: dropped while audio is off (the shell reads
/// `prebuffer_ms()` when it builds the next player).
#[test]
fn set_prebuffer_is_not_sent_to_a_player_that_is_gone() {
    let mut sim = voice(r#","prebufferMs":60"#);
    sim.msg(&audio_delta("a", 2400));
    sim.msg(
        r#"{"type":"response.output_audio.done","item_id":"a","output_index":0,"content_index":0}"#,
    );
    sim.s.handle_playback_progress(sim.now, "a", 1200, 2);
    sim.drain();
    // The microphone track ends: audio stops (text mode); the player's last report arrives
    // after that and ends the response with underruns.
    sim.s
        .handle_audio_failed(sim.now, realtime_voice::session::AudioFailure::TrackEnded);
    assert!(sim.drain().iter().any(|o| matches!(o, Output::StopAudio)));
    sim.s.handle_playback_progress(sim.now, "a", 2400, 3);
    let v = sim.drain();
    assert!(set_prebuffer(&v).is_empty(), "no player to tell: {v:?}");
    assert_eq!(sim.s.prebuffer_ms(), 100, "learnt all the same");
    assert_eq!(sim.s.metrics().prebuffer_ms, 100);
}
