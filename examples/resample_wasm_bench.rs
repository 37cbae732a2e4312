//! The resampler's speed compiled to WebAssembly. Built as a plain `cdylib` (no wasm-bindgen)
//! and driven by `benches/wasm/run.mjs` in node, which times the exported `run` with
//! `performance.now()`; natively, `main` runs the same loop with `std::time` for comparison.
//!
//! ```text
//! cargo rustc --release --example resample_wasm_bench --target wasm32-unknown-unknown \
//!     --crate-type cdylib
//! node benches/wasm/run.mjs target/wasm32-unknown-unknown/release/examples/resample_wasm_bench.wasm
//! ```

use realtime_voice::audio::Resampler;
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
    let input = (0..input_rate as usize)
        .map(|i| {
            let t = i as f32 / input_rate as f32;
            0.3 * (std::f32::consts::TAU * 440.0 * t).sin()
                + 0.2 * (std::f32::consts::TAU * 3100.0 * t).sin()
        })
        .collect();
    let out = vec![0.0; r.max_output_capacity(128)];
    let taps = r.taps() as u32;
    BENCH.with(|b| *b.borrow_mut() = Some(Bench { r, input, out }));
    taps
}

/// Converts the prepared second of audio `seconds` times in 128-frame blocks (the
/// AudioWorklet quantum); returns the number of output samples (so the work is not elided).
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

#[allow(dead_code)] // Only the native binary uses `main`; the cdylib uses the exports.
fn main() {
    for rate in [48_000, 44_100] {
        let taps = setup(rate);
        run(1);
        let start = std::time::Instant::now();
        let n = run(20);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "native {rate} -> 24000 ({taps} taps): {:.0}x realtime ({n} samples)",
            20.0 / secs
        );
    }
}
