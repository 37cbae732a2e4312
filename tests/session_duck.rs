//! Ducking (`bargeInDuck`): the core turns the assistant down the moment the microphone gets
//! loud over it, and back up when the microphone is quiet again, the assistant is interrupted or
//! done, or the microphone muted; never while the assistant is silent; "off" never ducks.

#[path = "session_support/properties.rs"]
mod properties;
mod session_support;

use properties::check_mic_accounting;
use realtime_voice::audio::duck::DUCK_DB;
use realtime_voice::session::Output;
use session_support::*;

/// `ms` of a 48 kHz mono 220 Hz tone at `dbfs` RMS, as the microphone delivers it.
fn mic(ms: usize, dbfs: f32) -> Vec<f32> {
    let amp = 10f32.powf(dbfs / 20.0) * std::f32::consts::SQRT_2;
    (0..ms * 48)
        .map(|i| amp * (i as f32 * std::f32::consts::TAU * 220.0 / 48_000.0).sin())
        .collect()
}

fn ducks(v: &[Output]) -> Vec<u32> {
    v.iter()
        .filter_map(|o| match o {
            Output::DuckPlayback { db } => Some(*db),
            _ => None,
        })
        .collect()
}

/// Feeds `ms` of microphone audio in 20 ms blocks; the outputs.
fn talk(sim: &mut Sim, ms: usize, dbfs: f32) -> Vec<Output> {
    let block = mic(20, dbfs);
    let mut out = Vec::new();
    for _ in 0..ms / 20 {
        sim.now += 20;
        sim.s.handle_mic_samples(sim.now, &block);
        out.extend(sim.drain());
    }
    out
}

fn speaking_sim(extra: &str) -> Sim {
    let mut sim = Sim::answering(extra);
    // 1 s of the assistant, then the ducker's warm-up (the canceller converging on the first
    // 1.5 s the assistant plays).
    sim.msg(&audio_delta("item_a", 24_000));
    assert_eq!(ducks(&talk(&mut sim, 1400, -30.0)), Vec::<u32>::new());
    assert_eq!(ducks(&talk(&mut sim, 300, -60.0)), Vec::<u32>::new());
    sim
}

#[test]
fn the_user_over_the_assistant_ducks_it_and_quiet_brings_it_back() {
    let mut sim = speaking_sim("");
    assert_eq!(ducks(&talk(&mut sim, 400, -60.0)), Vec::<u32>::new());
    let v = talk(&mut sim, 40, -25.0);
    assert_eq!(ducks(&v), vec![DUCK_DB]);
    assert_eq!(ducks(&talk(&mut sim, 200, -60.0)), Vec::<u32>::new());
    assert_eq!(ducks(&talk(&mut sim, 100, -60.0)), vec![0]);
    assert!(sim.s.metrics().to_json().contains("\"bargeInDucks\":1"));
}

#[test]
fn speech_started_after_a_duck_flushes_and_restores_the_level() {
    let mut sim = speaking_sim("");
    assert_eq!(ducks(&talk(&mut sim, 40, -25.0)), vec![DUCK_DB]);
    let v = sim
        .msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":100,"item_id":"u1"}"#);
    assert!(v.iter().any(|o| matches!(o, Output::FlushPlayback { .. })));
    assert_eq!(ducks(&v), vec![0]);
    // The user goes on talking: nothing plays, nothing ducks.
    assert_eq!(ducks(&talk(&mut sim, 400, -25.0)), Vec::<u32>::new());
}

#[test]
fn muting_restores_the_level_and_a_silent_assistant_is_never_ducked() {
    let mut sim = speaking_sim("");
    assert_eq!(ducks(&talk(&mut sim, 40, -25.0)), vec![DUCK_DB]);
    sim.s.set_muted(sim.now, true);
    assert_eq!(ducks(&sim.drain()), vec![0]);

    let mut quiet = Sim::new("");
    quiet.connect_open();
    quiet.s.handle_audio_started(0, 48_000, 1);
    quiet.s.handle_playback_started(0, 24_000);
    assert_eq!(ducks(&talk(&mut quiet, 1000, -20.0)), Vec::<u32>::new());
}

#[test]
fn without_the_servers_turn_detection_nothing_ducks() {
    // Push-to-talk: the user's voice would not interrupt the assistant, a duck would only hold
    // it down.
    let mut sim = speaking_sim("");
    assert_eq!(ducks(&talk(&mut sim, 40, -25.0)), vec![DUCK_DB]);
    let off = r#"{"type":"session.updated","session":{"type":"realtime","audio":{"input":{"turn_detection":null}}}}"#;
    assert_eq!(ducks(&sim.msg(off)), vec![0]);
    assert_eq!(ducks(&talk(&mut sim, 400, -60.0)), Vec::<u32>::new());
    assert_eq!(ducks(&talk(&mut sim, 400, -20.0)), Vec::<u32>::new());
    // An update that does not mention it changes nothing; server VAD again arms the ducker.
    sim.msg(r#"{"type":"session.updated","session":{"instructions":"x"}}"#);
    assert_eq!(ducks(&talk(&mut sim, 300, -60.0)), Vec::<u32>::new());
    assert_eq!(ducks(&talk(&mut sim, 40, -20.0)), Vec::<u32>::new());
    assert_eq!(ducks(&talk(&mut sim, 300, -60.0)), Vec::<u32>::new());
    sim.msg(r#"{"type":"session.updated","session":{"turn_detection":{"type":"server_vad"}}}"#);
    assert_eq!(ducks(&talk(&mut sim, 40, -20.0)), vec![DUCK_DB]);
}

#[test]
fn off_never_ducks_and_bad_values_are_refused() {
    let mut sim = speaking_sim(r#","bargeInDuck":"off""#);
    assert_eq!(ducks(&talk(&mut sim, 400, -20.0)), Vec::<u32>::new());
    assert!(sim.s.metrics().to_json().contains("\"bargeInDucks\":0"));
    let bad = realtime_voice::session::SessionConfig::from_json(
        r#"{"baseUrl":"https://x.test","interviewId":"iv","token":"t","bargeInDuck":true}"#,
    );
    let e = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("bargeInDuck"), "{e}");
}

/// 10 ms frames of `pcm` (24 kHz) above `dbfs` RMS.
fn frames_above(pcm: &[i16], dbfs: f64) -> usize {
    let min = 32768.0 * 10f64.powf(dbfs / 20.0);
    pcm.chunks(240)
        .filter(|f| {
            let e = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
            e.sqrt() > min
        })
        .count()
}

#[test]
fn a_leak_that_falls_with_the_duck_reaches_the_server_as_silence_and_a_voice_whole() {
    // 160 ms over the assistant at −25 dBFS duck it; then either the echo falls with the duck
    // (a canceller's leak: −50 dBFS) or the voice goes on (−30 dBFS).
    for (after_dbfs, voice) in [(-50.0, false), (-30.0, true)] {
        let mut sim = speaking_sim("");
        talk(&mut sim, 400, -60.0);
        let mut out = talk(&mut sim, 160, -25.0);
        assert_eq!(ducks(&out), vec![DUCK_DB]);
        out.extend(talk(&mut sim, 100, after_dbfs));
        // Held while the probe waits for the duck's effect, and counted.
        let held = sim.s.metrics().echo_held_ms;
        assert!(held >= 200, "{held} ms held");
        check_mic_accounting(&sim.s, &"probing");
        out.extend(talk(&mut sim, 500, after_dbfs));
        check_mic_accounting(&sim.s, &"judged");
        // Quiet after it, so that all of it is sent.
        out.extend(talk(&mut sim, 1000, -60.0));
        let (sent, _) = appended_samples(&out);
        let loud = frames_above(&sent, -40.0);
        if voice {
            // All 76 frames of it, delayed by the probe and then at once.
            assert!(loud >= 74, "{loud} frames of the voice sent");
        } else {
            // The frames that ducked left before the duck (the resampler's delay straddles
            // them over three); the other 13 went as silence.
            assert!(loud <= 3, "{loud} frames of the leak sent");
        }
    }
}
