//! A chunked run of the resampler equals a one-shot run (pieces of 128 frames, 1 frame, random
//! sizes), for down- and upsampling, exact and interpolated phase tables, mono and stereo.
#![cfg(not(target_arch = "wasm32"))] // proptest is a native-only dev-dependency

use proptest::prelude::*;
use realtime_voice::audio::Resampler;

/// Deterministic pseudo-random input in [-1, 1) (xorshift), `frames × channels` samples.
fn noise(frames: usize, channels: u16, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..frames * usize::from(channels))
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn one_shot(fi: u32, fo: u32, ch: u16, input: &[f32]) -> Vec<f32> {
    let mut r = Resampler::new(fi, fo, ch).unwrap();
    let mut out = vec![0.0; r.output_capacity(input.len() / usize::from(ch))];
    let n = r.process_into(input, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Feeds `input` in pieces of the given frame counts (cycled), into one reused output buffer.
fn chunked(fi: u32, fo: u32, ch: u16, input: &[f32], pieces: &[usize]) -> Vec<f32> {
    let mut r = Resampler::new(fi, fo, ch).unwrap();
    let ch = usize::from(ch);
    let max_piece = pieces.iter().copied().max().unwrap_or(1);
    let mut buf = vec![0.0; r.max_output_capacity(max_piece)];
    let mut all = Vec::new();
    let mut at = 0;
    for &p in pieces.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = (at + p * ch).min(input.len());
        let n = r.process_into(&input[at..end], &mut buf).unwrap();
        all.extend_from_slice(&buf[..n]);
        at = end;
    }
    all
}

fn assert_same(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(max <= 1e-6, "{what}: max difference {max}");
}

const PAIRS: [(u32, u32); 7] = [
    (48_000, 24_000),
    (44_100, 24_000),
    (16_000, 24_000),
    (96_000, 24_000),
    (24_000, 44_100),
    (44_055, 24_000), // interpolated phases
    (24_000, 24_000), // pass-through
];

#[test]
fn pieces_of_128_and_1_frame_equal_one_shot() {
    for (fi, fo) in PAIRS {
        for ch in [1, 2] {
            let input = noise(fi as usize / 10, ch, u64::from(fi));
            let whole = one_shot(fi, fo, ch, &input);
            assert!(!whole.is_empty());
            assert_same(
                &whole,
                &chunked(fi, fo, ch, &input, &[128]),
                "128-frame pieces",
            );
            assert_same(&whole, &chunked(fi, fo, ch, &input, &[1]), "1-frame pieces");
            assert_same(
                &whole,
                &chunked(fi, fo, ch, &input, &[0, 7, 0, 300]),
                "with empty pieces",
            );
        }
    }
}

#[test]
fn reset_starts_over() {
    let input = noise(4800, 1, 7);
    let mut r = Resampler::new(48_000, 24_000, 1).unwrap();
    let mut a = vec![0.0; r.output_capacity(4800)];
    let na = r.process_into(&input, &mut a).unwrap();
    r.reset();
    let mut b = vec![0.0; r.output_capacity(4800)];
    let nb = r.process_into(&input, &mut b).unwrap();
    assert_eq!(a[..na], b[..nb]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_pieces_equal_one_shot(
        pair in 0..PAIRS.len(),
        stereo in any::<bool>(),
        seed in any::<u64>(),
        pieces in prop::collection::vec(0usize..700, 1..20),
    ) {
        let (fi, fo) = PAIRS[pair];
        let ch = if stereo { 2 } else { 1 };
        let input = noise(6000, ch, seed);
        let whole = one_shot(fi, fo, ch, &input);
        // Guarantee progress even if every piece is empty.
        let mut pieces = pieces;
        pieces.push(1);
        assert_same(&whole, &chunked(fi, fo, ch, &input, &pieces), "random pieces");
    }
}
