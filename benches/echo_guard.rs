//! The echo guard's cost per 10 ms frame, natively: four seconds of captured audio (the
//! assistant's, 80 ms later and 6 dB down) through a fresh guard with the assistant's audio
//! played alongside (20 ms progress steps, 10 ms mic blocks): the path's evidence is learnt in
//! the first ~2.5 s, then the prediction and the pre-roll line run too. Behind a browser's
//! canceller (`Capture::Processed`), on raw capture (`Capture::Raw`: the band filters run on
//! the reference and the microphone too), and judging a pair (`Capture::Pair`, the same audio
//! as both captures: raw capture's work, and the dry envelope's series beside it).
//!
//! Run: `nice cargo bench --bench echo_guard` (criterion prints the time per 4 s of audio:
//! divide by 400 for a frame). The wasm figure: `benches/wasm/echo.mjs` (docs/AUDIO.md, Echo).

use criterion::{criterion_group, criterion_main, Criterion};
use realtime_voice::audio::echo_guard::{Capture, EchoGuard, FRAME};
use std::hint::black_box;

fn inputs() -> (Vec<f32>, Vec<i16>) {
    let mut x = 1u32;
    let (mut left, mut loud) = (0usize, false);
    // Noise loud or quiet by turns, each spell 50-150 ms (irregular, as speech is).
    let reference: Vec<f32> = (0..96_000usize)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if left == 0 {
                left = 1_200 + (x >> 20) as usize % 2_400;
                loud = !loud;
            }
            left -= 1;
            let noise = (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            noise * if loud { 0.4 } else { 0.02 }
        })
        .collect();
    let mic = (0..reference.len())
        .map(|n| {
            n.checked_sub(1_920)
                .map_or(0, |k| (reference[k] * 0.5 * 32767.0) as i16)
        })
        .collect();
    (reference, mic)
}

fn bench(c: &mut Criterion) {
    let (reference, mic) = inputs();
    let mut out = Vec::with_capacity(48_000);
    for (name, capture) in [
        ("echo guard, 4 s of audio (400 frames)", Capture::Processed),
        ("echo guard on raw capture, 4 s of audio", Capture::Raw),
        ("echo guard judging a pair, 4 s of audio", Capture::Pair),
    ] {
        bench_guard(c, name, capture, &reference, &mic, &mut out);
    }
}

fn bench_guard(
    c: &mut Criterion,
    name: &str,
    capture: Capture,
    reference: &[f32],
    mic: &[i16],
    out: &mut Vec<i16>,
) {
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut g = EchoGuard::for_capture(true, capture);
            g.push_reference(1, reference);
            let mut sent = 0usize;
            for (i, block) in mic.chunks(FRAME).enumerate() {
                if i % 2 == 1 {
                    g.played(1, ((i + 1) * FRAME) as u64);
                }
                out.clear();
                if capture == Capture::Pair {
                    g.process_pair(black_box(block), block, out);
                } else {
                    g.process(black_box(block), out);
                }
                sent += out.len();
            }
            assert!(g.stats().guarded_ms > 0, "the gate ran");
            black_box(sent)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
