//! The resampler compiled to WebAssembly on its own, driven by `../run.mjs` in node, which
//! times the exported `run` with `performance.now()`.
//!
//! ```text
//! cd benches/wasm && cargo build --release --target wasm32-unknown-unknown
//! node run.mjs target/wasm32-unknown-unknown/release/audio_wasm_bench.wasm
//! ```

#[cfg(not(feature = "baseline"))]
#[allow(dead_code, unused_imports)] // Only the resampler is exported.
#[path = "../../../src/audio/mod.rs"]
mod audio;

#[cfg(not(feature = "baseline"))]
mod exports {
    use super::audio::Resampler;
    use std::cell::RefCell;

    /// One second of input and the converter, kept between calls from JS.
    struct Bench {
        r: Resampler,
        input: Vec<f32>,
        out: Vec<f32>,
    }

    thread_local! {
        static BENCH: RefCell<Option<Bench>> = const { RefCell::new(None) };
    }

    /// Prepares a mono `input_rate` → 24 kHz converter and one second of a two-tone signal.
    /// Returns the filter's taps (0 if the rate is unsupported).
    #[no_mangle]
    pub extern "C" fn setup(input_rate: u32) -> u32 {
        let Ok(r) = Resampler::new(input_rate, 24_000, 1) else {
            return 0;
        };
        // Two tones by phasor rotation (no libm `sin` in the module: it would weigh more than
        // the resampler and muddy the size figure).
        let rotation = |f: f64| {
            let w = std::f64::consts::TAU * f / f64::from(input_rate);
            let (s, c) = (
                w - w * w * w / 6.0 + w.powi(5) / 120.0,
                1.0 - w * w / 2.0 + w.powi(4) / 24.0,
            );
            let norm = c.hypot(s);
            (c / norm, s / norm)
        };
        let (mut a, mut b) = ((1.0f64, 0.0f64), (1.0f64, 0.0f64));
        let (ra, rb) = (rotation(440.0), rotation(3100.0));
        let input = (0..input_rate as usize)
            .map(|_| {
                a = (a.0 * ra.0 - a.1 * ra.1, a.0 * ra.1 + a.1 * ra.0);
                b = (b.0 * rb.0 - b.1 * rb.1, b.0 * rb.1 + b.1 * rb.0);
                (0.3 * a.1 + 0.2 * b.1) as f32
            })
            .collect();
        let out = vec![0.0; r.max_output_capacity(128)];
        let taps = r.taps() as u32;
        BENCH.with(|b| *b.borrow_mut() = Some(Bench { r, input, out }));
        taps
    }

    /// Converts the prepared second `seconds` times in 128-frame blocks (the AudioWorklet
    /// quantum); returns the number of output samples (so the work is not elided).
    #[no_mangle]
    pub extern "C" fn run(seconds: u32) -> u32 {
        BENCH.with(|b| {
            let mut b = b.borrow_mut();
            let Some(Bench { r, input, out }) = b.as_mut() else {
                return 0;
            };
            let mut produced = 0u32;
            for _ in 0..seconds {
                for block in input.chunks(128) {
                    produced += r.process_into(block, out).unwrap_or(0) as u32;
                }
            }
            produced
        })
    }
}

/// Baseline for the size comparison: an allocation and nothing else.
#[cfg(feature = "baseline")]
#[no_mangle]
pub extern "C" fn setup(n: u32) -> u32 {
    let v = vec![1.0f32; n as usize];
    v.iter().sum::<f32>() as u32
}
