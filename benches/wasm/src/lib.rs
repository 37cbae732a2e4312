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

// The audio core writes its error messages with it.
#[cfg(not(feature = "baseline"))]
#[allow(dead_code)]
#[path = "../../../src/text.rs"]
mod text;

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

/// The echo guard's cost per 10 ms frame (`../echo.mjs`): one second of captured audio and one
/// of assistant audio, played as the session feeds it (20 ms progress steps, 10 ms mic blocks).
#[cfg(not(feature = "baseline"))]
mod echo_exports {
    use super::audio::echo_guard::{Capture, EchoGuard, FRAME};
    use std::cell::RefCell;

    struct EchoBench {
        reference: Vec<f32>,
        mic: Vec<i16>,
        out: Vec<i16>,
    }

    thread_local! {
        static ECHO: RefCell<Option<EchoBench>> = const { RefCell::new(None) };
    }

    /// Prepares one second of a syllable-like reference and its echo at -6 dB.
    #[no_mangle]
    pub extern "C" fn echo_setup() -> u32 {
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
        ECHO.with(|e| {
            *e.borrow_mut() = Some(EchoBench {
                reference,
                mic,
                out: Vec::with_capacity(48_000),
            })
        });
        (24_000 / FRAME) as u32
    }

    /// Runs `seconds` of audio through a fresh guard for `capture` (0 behind a canceller, 1 raw
    /// capture, 2 judging a pair, the same audio judged and sent); returns the samples sent, or
    /// 0 for an unknown `capture`.
    #[no_mangle]
    pub extern "C" fn echo_run(seconds: u32, capture: u32) -> u32 {
        let capture = match capture {
            0 => Capture::Processed,
            1 => Capture::Raw,
            2 => Capture::Pair,
            _ => return 0,
        };
        ECHO.with(|e| {
            let mut e = e.borrow_mut();
            let Some(EchoBench {
                reference,
                mic,
                out,
            }) = e.as_mut()
            else {
                return 0;
            };
            let mut g = EchoGuard::for_capture(true, capture);
            let mut sent = 0u32;
            for s in 0..seconds {
                // A new item each second: an item's progress only moves forward.
                let item = s;
                g.push_reference(item, reference);
                for (i, block) in mic.chunks(FRAME).enumerate() {
                    if i % 2 == 1 {
                        g.played(item, ((i + 1) * FRAME) as u64);
                    }
                    out.clear();
                    if capture == Capture::Pair {
                        g.process_pair(block, block, out);
                    } else {
                        g.process(block, out);
                    }
                    sent += out.len() as u32;
                }
            }
            sent
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
