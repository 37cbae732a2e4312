//! The core owns playback audio: `Output::Play` carries samples at the player's rate (the
//! core's resampler, reset at each item's start and flushed exactly at its end), the player's
//! frame counts map back to 24 kHz item offsets exactly (truncation under 44.1 and 48 kHz
//! contexts, with underruns and barge-in), a fully played item is never truncated, AI audio
//! held while audio starts is released when the player starts (no microphone needed), and the
//! `level` events are throttled by the core.

mod session_support;

use realtime_voice::audio::{pcm16, Resampler};
use realtime_voice::session::{AppEvent, Output, LEVEL_EVERY_MS};
use session_support::*;

const SPEECH_STARTED: &str =
    r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#;

/// A delta of `n` samples of a 440 Hz tone starting at sample `from`.
fn tone_delta(item: &str, from: usize, n: usize) -> (String, Vec<f32>) {
    let x: Vec<f32> = (from..from + n)
        .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / 24_000.0).sin())
        .collect();
    let mut b64 = String::new();
    pcm16::encode_f32_as_pcm16_base64(&x, &mut b64);
    // What the session decodes: the PCM16 values.
    let decoded = x
        .iter()
        .map(|&v| pcm16::i16_to_f32(pcm16::f32_to_i16(v)))
        .collect();
    (
        format!(
            r#"{{"type":"response.output_audio.delta","item_id":"{item}","output_index":0,"content_index":0,"delta":"{b64}"}}"#
        ),
        decoded,
    )
}

/// Frames played to `item` in `v`, in order.
fn played(v: &[Output], item: u32) -> Vec<f32> {
    v.iter()
        .filter_map(|o| match o {
            Output::Play {
                item: i, samples, ..
            } if *i == item => Some(samples.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn play_carries_device_rate_audio_equal_to_a_one_shot_resampling() {
    for rate in [44_100u32, 48_000, 16_000] {
        let mut sim = Sim::with_player(rate);
        let mut all = Vec::new();
        let mut out = Vec::new();
        let mut from = 0;
        for n in [4801, 2399, 1, 960] {
            let (d, x) = tone_delta("a", from, n);
            from += n;
            all.extend(x);
            out.extend(sim.msg(&d));
        }
        let v = sim.msg(&audio_done("a"));
        assert!(matches!(v.last(), Some(Output::EndOfItem { .. })), "{v:?}");
        out.extend(v);
        let got = played(&out, sim.slot("a"));
        let want_len = (all.len() as u64 * u64::from(rate)).div_ceil(24_000) as usize;
        assert_eq!(got.len(), want_len, "{rate} Hz: the item's exact length");
        let mut r = Resampler::new(24_000, rate, 1).unwrap();
        all.extend([0.0; 256]);
        let mut want = vec![0.0; r.output_capacity(all.len())];
        let n = r.process_into(&all, &mut want).unwrap();
        assert!(n >= want_len);
        for (i, (g, w)) in got.iter().zip(&want[..want_len]).enumerate() {
            assert!((g - w).abs() < 1e-6, "{rate} Hz frame {i}: {g} vs {w}");
        }
    }
}

#[test]
fn truncation_offsets_are_exact_at_44_1_and_48_khz_with_underruns() {
    for rate in [44_100u64, 48_000] {
        let mut sim = Sim::with_player(rate as u32);
        for _ in 0..3 {
            sim.advance(100);
            sim.msg(&audio_delta("a", 4800));
        }
        let a = sim.slot("a");
        // The player ran dry twice in between; its count of frames played goes on.
        sim.s.handle_playback_progress(sim.now, a, rate / 10, 1);
        sim.s.handle_playback_progress(sim.now, a, rate / 4, 2);
        // 250 ms exactly, then a count that is not a whole number of 24 kHz samples.
        let v = sim.msg(SPEECH_STARTED);
        let t = truncates(&v);
        assert_eq!(t.len(), 1, "{v:?}");
        assert!(t[0].ends_with(r#""audio_end_ms":250}"#), "{rate}: {}", t[0]);
        assert_eq!(sim.s.metrics().underruns, 2);

        let mut sim = Sim::with_player(rate as u32);
        sim.msg(&audio_delta("b", 24_000));
        let b = sim.slot("b");
        // 12 345 frames at 44.1 kHz = 6718.4 samples at 24 kHz (279.9 ms); at 48 kHz 6172.5
        // (257.2 ms): floor, never past what was heard.
        sim.s.handle_playback_progress(sim.now, b, 12_345, 0);
        let t = truncates(&sim.msg(SPEECH_STARTED));
        let ms = if rate == 44_100 { 279 } else { 257 };
        assert!(
            t[0].ends_with(&format!(r#""audio_end_ms":{ms}}}"#)),
            "{rate}: {}",
            t[0]
        );
    }
}

#[test]
fn a_fully_played_item_is_never_truncated() {
    for rate in [44_100u32, 48_000] {
        let mut sim = Sim::with_player(rate);
        let mut out = Vec::new();
        for n in [4801, 2399, 7] {
            out.extend(sim.msg(&audio_delta("a", n)));
        }
        out.extend(sim.msg(&audio_done("a")));
        let a = sim.slot("a");
        let frames = played(&out, a).len() as u64;
        // The player's last report: every frame it was given (no `finished` report needed).
        sim.s.handle_playback_progress(sim.now, a, frames, 0);
        let v = sim.drain();
        assert!(
            events(&v)
                .iter()
                .any(|e| e.to_json() == r#"{"who":"assistant","speaking":false}"#),
            "{rate} Hz: fully played by count: {v:?}"
        );
        let v = sim.msg(SPEECH_STARTED);
        assert!(truncates(&v).is_empty(), "{rate} Hz: {v:?}");
        assert!(!v.iter().any(|o| matches!(o, Output::FlushPlayback { .. })));
    }
}

#[test]
fn a_new_item_flushes_the_tail_of_the_one_before() {
    let mut sim = Sim::with_player(48_000);
    let mut out = sim.msg(&audio_delta("a", 2400));
    out.extend(sim.msg(&audio_delta("b", 2400)));
    let (a, b) = (sim.slot("a"), sim.slot("b"));
    assert_eq!(played(&out, a).len(), 4800, "all of a, tail included");
    let order: Vec<u32> = out
        .iter()
        .filter_map(|o| match o {
            Output::Play { item, .. } => Some(*item),
            _ => None,
        })
        .collect();
    assert_eq!(order, [a, a, b]);
}

#[test]
fn held_audio_is_released_when_the_player_starts_without_a_microphone() {
    let mut sim = Sim::new("");
    sim.connect_open();
    // The greeting arrives while audio starts (the microphone prompt is still open).
    let mut v = sim.msg(&audio_delta("a", 4800));
    v.extend(sim.msg(&audio_delta("a", 4800)));
    v.extend(sim.msg(&audio_done("a")));
    assert!(
        !v.iter()
            .any(|o| matches!(o, Output::Play { .. } | Output::EndOfItem { .. })),
        "{v:?}"
    );
    // The player is up; the microphone never delivers a frame.
    sim.s.handle_playback_started(sim.now, 48_000);
    let v = sim.drain();
    let a = sim.slot("a");
    assert_eq!(played(&v, a).len(), 19_200);
    assert!(matches!(v.first(), Some(Output::SetPrebuffer { ms: 60 })));
    assert!(matches!(v.last(), Some(Output::EndOfItem { item }) if *item == a));
    assert_eq!(sim.s.metrics().dropped_playback_ms, 0);
    // Later audio goes straight to the player.
    let v = sim.msg(&audio_delta("b", 2400));
    assert_eq!(played(&v, sim.slot("b")).len(), 4800 - 80);
}

#[test]
fn overflow_frames_are_counted_at_the_device_rate() {
    let mut sim = Sim::with_player(44_100);
    for _ in 0..10 {
        sim.s.handle_playback_overflow(sim.now, 441); // 10 ms each
    }
    assert_eq!(sim.s.metrics().dropped_playback_ms, 100);
}

fn levels(v: &[Output]) -> Vec<String> {
    events(v)
        .iter()
        .filter(|e| matches!(e, AppEvent::Level { .. }))
        .map(|e| {
            assert_eq!(e.name(), "level");
            e.to_json()
        })
        .collect()
}

#[test]
fn levels_are_measured_and_throttled_by_the_core() {
    let mut sim = Sim::with_player(48_000);
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.drain();
    let block: Vec<f32> = (0..480)
        .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
        .collect();
    let mut out = Vec::new();
    let start = sim.now;
    // One second of 10 ms mic blocks and 10 ms player reports.
    for _ in 0..100 {
        sim.advance(10);
        sim.s.handle_mic_samples(sim.now, &block);
        sim.s.handle_output_level(sim.now, 0.5, 1.0);
        out.extend(sim.drain());
    }
    let l = levels(&out);
    let inputs = l.iter().filter(|j| j.contains("\"input\"")).count() as u64;
    let outputs = l.iter().filter(|j| j.contains("\"output\"")).count() as u64;
    // Reports every 10 ms from 10 to 1000 ms: one event per 50 ms, 20 in all per source.
    let want = (sim.now - start) / LEVEL_EVERY_MS;
    assert_eq!((inputs, outputs), (want, want));
    assert!(l.contains(&r#"{"source":"input","rmsDbfs":-6,"peakDbfs":-6}"#.to_string()));
    assert!(l.contains(&r#"{"source":"output","rmsDbfs":-6,"peakDbfs":0}"#.to_string()));
    // Silence reads the floor.
    sim.advance(LEVEL_EVERY_MS);
    sim.s.handle_output_level(sim.now, 0.0, 0.0);
    assert_eq!(
        levels(&sim.drain()),
        [r#"{"source":"output","rmsDbfs":-100,"peakDbfs":-100}"#]
    );
}
