//! The echo guard on the lab's signals (tests/fixtures/echo/, made by
//! scripts/echo-lab/render-fixtures.sh): the interviewer's voice as the page played it in the
//! echo lab (assistant.wav), what each lab room makes of it at the microphone (<room>-echo.wav,
//! the room's sox effects and measured loop delay), and the same with a user talking over it
//! from 1.21 s on, 10 dB above its default level (<room>-talk.wav). All 24 kHz mono PCM16.
//!
//! The guard is fed as the session feeds it: the decoded reference up front (deltas arrive
//! faster than real time), played progress every 20 ms, captured audio in 10 ms blocks. The
//! judge is the reference server's VAD: speech after 150 ms of 10 ms frames above −40 dBFS.

use realtime_voice::audio::echo_guard::{EchoGuard, GateState, FRAME, PREROLL_FRAMES};
use realtime_voice::audio::EchoStats;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo");
/// Where the user's first sound is in the talk fixtures, ms (1.2 s of padding + espeak's lead).
const USER_ONSET_MS: u64 = 1_212;
const ROOMS: [(&str, u32); 3] = [("mild", 80), ("harsh", 80), ("speakerphone", 240)];

fn wav(name: &str) -> Vec<i16> {
    let path = format!("{DIR}/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..4], b"RIFF", "{path} is not a WAV");
    assert_eq!(
        u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
        24_000
    );
    bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// What one pass of the guard over a recording gave.
struct Run {
    out: Vec<i16>,
    stats: EchoStats,
    states: Vec<GateState>,
}

fn run(mic: &[i16], gating: bool) -> Run {
    let reference: Vec<f32> = wav("assistant.wav")
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let mut g = EchoGuard::new(gating);
    g.push_reference("greeting", &reference);
    let (mut out, mut states) = (Vec::with_capacity(mic.len()), Vec::new());
    for (i, block) in mic.chunks(FRAME).enumerate() {
        if i % 2 == 1 {
            g.played("greeting", ((i + 1) * FRAME).min(reference.len()) as u64);
        }
        g.process(block, &mut out);
        states.push(g.stats().state);
    }
    Run {
        out,
        stats: g.stats(),
        states,
    }
}

fn frame_db(f: &[i16]) -> f64 {
    let e = f
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum::<f64>()
        / f.len() as f64;
    10.0 * e.max(1e-12).log10()
}

/// Where the reference server's VAD would start speech, ms of the stream.
fn vad_starts(pcm: &[i16]) -> Vec<u64> {
    let (mut starts, mut loud, mut quiet, mut speaking) = (Vec::new(), 0, 0, false);
    for (i, f) in pcm.chunks_exact(FRAME).enumerate() {
        if frame_db(f) > -40.0 {
            loud += 1;
            quiet = 0;
            if !speaking && loud >= 15 {
                speaking = true;
                starts.push(i as u64 * 10);
            }
        } else {
            loud = 0;
            quiet += 1;
            if quiet >= 50 {
                speaking = false;
            }
        }
    }
    starts
}

#[test]
fn echo_alone_never_reaches_the_servers_vad() {
    for (room, _) in ROOMS {
        let mic = wav(&format!("{room}-echo.wav"));
        assert!(
            !vad_starts(&mic).is_empty(),
            "{room}: the echo alone trips the VAD unguarded"
        );
        let r = run(&mic, true);
        assert_eq!(
            vad_starts(&r.out),
            Vec::<u64>::new(),
            "{room}: {:?}",
            r.stats
        );
        assert!(r.stats.guarded_ms >= 2_000, "{room}: {:?}", r.stats);
        assert!(
            !r.states.contains(&GateState::Pass),
            "{room}: the gate opened on echo alone"
        );
        // Nothing is lost or added: what is not sent yet is held in the pre-roll line.
        assert_eq!(
            r.out.len() as u64 + r.stats.held_ms * 24,
            mic.len() as u64,
            "{room}"
        );
    }
}

#[test]
fn the_echo_path_is_estimated() {
    for (room, delay_ms) in ROOMS {
        let r = run(&wav(&format!("{room}-echo.wav")), true);
        let est = r
            .stats
            .delay_ms
            .unwrap_or_else(|| panic!("{room}: no delay estimate"));
        println!(
            "{room}: delay {est} ms (rendered {delay_ms} ms), {:?}",
            r.stats
        );
        // The envelope correlation finds the direct path in a dry room; reverberation moves
        // its peak later (the gate does not rely on it: it takes every lag up to 400 ms).
        let late = if room == "mild" { 30 } else { 250 };
        assert!(
            est + 20 >= delay_ms && est <= delay_ms + late,
            "{room}: delay {est} ms, rendered with {delay_ms} ms"
        );
        // The rooms give back about what they get (0 to −4 dB over the reference's peaks).
        let erl = r
            .stats
            .return_loss_db
            .unwrap_or_else(|| panic!("{room}: no ERL"));
        assert!((-10.0..=10.0).contains(&erl), "{room}: ERL {erl} dB");
    }
}

#[test]
fn a_voice_over_the_echo_gets_through_with_its_first_word() {
    for (room, _) in ROOMS {
        let mic = wav(&format!("{room}-talk.wav"));
        let r = run(&mic, true);
        let starts = vad_starts(&r.out);
        let first = *starts
            .first()
            .unwrap_or_else(|| panic!("{room}: the voice never reached the VAD: {:?}", r.stats));
        assert!(
            first + 50 >= USER_ONSET_MS && first <= USER_ONSET_MS + 300,
            "{room}: VAD starts {starts:?} ms, the voice starts at {USER_ONSET_MS} ms"
        );
        // The first word is sent as captured, from its onset (the pre-roll), not silenced.
        let at = (USER_ONSET_MS as usize * 24 / FRAME) * FRAME;
        let word = at..at + 10 * FRAME;
        assert_eq!(
            &r.out[word.clone()],
            &mic[word],
            "{room}: first 100 ms of the voice"
        );
    }
}

#[test]
fn shadow_mode_measures_but_sends_everything_at_once() {
    let mic = wav("harsh-echo.wav");
    let r = run(&mic, false);
    // Only the partial frame of the last block waits.
    assert_eq!(&r.out[..], &mic[..r.out.len()]);
    assert!(mic.len() - r.out.len() < FRAME);
    assert_eq!(r.stats.guarded_ms, 0);
    assert!(r.stats.delay_ms.is_some() && r.stats.return_loss_db.is_some());
}

#[test]
fn the_preroll_is_the_only_delay() {
    // While guarding, audio leaves exactly PREROLL_FRAMES later (as silence or as captured).
    let mic = wav("harsh-echo.wav");
    let r = run(&mic[..FRAME * 100], true);
    // The first frame went before any reference was played (no echo possible yet).
    assert_eq!(r.out.len(), FRAME * (100 - PREROLL_FRAMES));
}
