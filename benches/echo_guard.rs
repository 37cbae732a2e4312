//! The echo guard's cost per 10 ms frame, natively: one second of captured audio through the
//! gate with the assistant's audio played alongside (20 ms progress steps, 10 ms mic blocks),
//! so the estimate, the prediction and the pre-roll line all run.
//!
//! Run: `nice cargo bench --bench echo_guard` (criterion prints the time per second of audio:
//! divide by 100 for a frame). The wasm figure: `benches/wasm/echo.mjs` (docs/AUDIO.md, Echo).

use criterion::{criterion_group, criterion_main, Criterion};
use realtime_voice::audio::echo_guard::{EchoGuard, FRAME};
use std::hint::black_box;

fn inputs() -> (Vec<f32>, Vec<i16>) {
    let mut x = 1u32;
    let reference: Vec<f32> = (0..24_000usize)
        .map(|i| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
            noise * if (i / 4_800) % 2 == 0 { 0.4 } else { 0.02 }
        })
        .collect();
    let mic = reference
        .iter()
        .map(|&v| (v * 0.5 * 32767.0) as i16)
        .collect();
    (reference, mic)
}

fn bench(c: &mut Criterion) {
    let (reference, mic) = inputs();
    let mut out = Vec::with_capacity(48_000);
    c.bench_function("echo guard, 1 s of audio (100 frames)", |b| {
        b.iter(|| {
            let mut g = EchoGuard::new(true);
            g.push_reference("a", &reference);
            let mut sent = 0usize;
            for (i, block) in mic.chunks(FRAME).enumerate() {
                if i % 2 == 1 {
                    g.played("a", ((i + 1) * FRAME) as u64);
                }
                out.clear();
                g.process(black_box(block), &mut out);
                sent += out.len();
            }
            black_box(sent)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
