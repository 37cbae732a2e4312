//! Concealment of late answer audio is decided in the core: every `Output::Play` carries the
//! pitch period at its end (frames at the player's rate) for the player to repeat if it runs
//! dry right after it, 0 where the end is unvoiced; the players' concealment counts add up in
//! the `concealments` metric, apart from underruns.

mod session_support;

use realtime_voice::audio::pcm16;
use realtime_voice::session::Output;
use session_support::*;

/// A delta of `n` samples at 24 kHz from `f(i)`, `i` counting from `from`.
fn delta(item: &str, from: usize, n: usize, f: impl Fn(usize) -> f32) -> String {
    let x: Vec<f32> = (from..from + n).map(f).collect();
    let mut b64 = String::new();
    pcm16::encode_f32_as_pcm16_base64(&x, &mut b64);
    format!(
        r#"{{"type":"response.output_audio.delta","item_id":"{item}","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    )
}

/// A voice-like 150 Hz tone (six harmonics) at 24 kHz.
fn voice(i: usize) -> f32 {
    let t = i as f32 / 24_000.0;
    (1..=6)
        .map(|k| (std::f32::consts::TAU * 150.0 * k as f32 * t).sin() / k as f32)
        .sum::<f32>()
        * 0.2
}

fn periods(v: &[Output]) -> Vec<(usize, u32)> {
    v.iter()
        .filter_map(|o| match o {
            Output::Play {
                samples, period, ..
            } => Some((samples.len(), *period)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_voiced_answer_carries_its_pitch_period_at_the_players_rate() {
    for rate in [24_000u32, 44_100, 48_000] {
        let mut sim = Sim::with_player(rate);
        let mut got = Vec::new();
        for k in 0..5 {
            got.extend(periods(&sim.msg(&delta("a", k * 2_400, 2_400, voice))));
        }
        assert_eq!(got.len(), 5, "{rate} Hz: one Play per delta: {got:?}");
        let exact = f64::from(rate) / 150.0;
        for (n, p) in got {
            let k = (f64::from(p) / exact).round().max(1.0);
            assert!(
                p > 0 && (f64::from(p) - k * exact).abs() <= 1.5,
                "{rate} Hz: a {n}-frame Play carries period {p}, the voice's is {exact:.1}"
            );
        }
    }
}

#[test]
fn noise_and_silence_carry_no_period() {
    let mut sim = Sim::with_player(48_000);
    let mut seed = 7u32;
    let x: Vec<f32> = (0..4_800)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.4
        })
        .collect();
    let got = periods(&sim.msg(&delta("a", 0, 4_800, |i| x[i])));
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0], "noise");
    let got = periods(&sim.msg(&delta("a", 0, 4_800, |_| 0.0)));
    assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0], "silence");
}

#[test]
fn a_new_item_does_not_inherit_the_last_ones_period() {
    let mut sim = Sim::with_player(48_000);
    sim.msg(&delta("a", 0, 4_800, voice));
    // A short first delta of the next item: too little of it to find a period in.
    let v = sim.msg(&delta("b", 0, 120, voice));
    let b = sim.slot("b");
    let got: Vec<u32> = v
        .iter()
        .filter_map(|o| match o {
            Output::Play { item, period, .. } if *item == b => Some(*period),
            _ => None,
        })
        .collect();
    assert_eq!(got, [0], "{v:?}");
}

#[test]
fn concealments_add_up_over_players_apart_from_underruns() {
    let mut sim = Sim::with_player(48_000);
    sim.s.handle_playback_concealed(10, 2);
    sim.s.handle_playback_concealed(20, 1); // a stale report never lowers the count
    sim.s.handle_playback_progress(20, 1, 0, 1);
    assert_eq!(sim.s.metrics().concealments, 2);
    assert_eq!(sim.s.metrics().underruns, 1);
    // Audio restarted: the new player counts from 0 again.
    sim.s.handle_playback_started(30, 48_000);
    sim.s.handle_playback_concealed(40, 1);
    assert_eq!(sim.s.metrics().concealments, 3);
    assert!(sim.s.metrics().to_json().contains("\"concealments\":3"));
}
