//! Streaming sample-rate converter: interleaved multichannel f32 at any rate from 8 to 192 kHz →
//! mono f32 at any other such rate (24 kHz for the realtime API; 24 kHz → the device rate for
//! playback).
//!
//! Design: a polyphase windowed-sinc (Kaiser) low-pass, with the cutoff set from the lower of the
//! two Nyquist frequencies: passband to 5/6 of it (10 kHz when either side is 24 kHz), stopband
//! from it (12 kHz), 100 dB design attenuation. The rate ratio is reduced to `L/M`; when `L` is
//! small (every common rate pair) the table holds exactly the `L` phases the stream visits, so
//! each output sample is one dot product. Otherwise, the table holds enough phases that linear
//! interpolation between the two nearest ones stays below −100 dB. Tables are computed once in
//! [`Resampler::new`]; the binary carries no static coefficient arrays.
//!
//! Alignment: output sample `j` is the filtered input at input time `j · input_rate /
//! output_rate` (zero phase), and is produced once the input has run [`Resampler::group_delay_ms`]
//! past it. State carries across calls, and the arithmetic does not depend on how the input is
//! split, so a chunked run produces exactly the samples of a one-shot run.

use std::f64::consts::PI;
use std::fmt;

use crate::text::{write_parts, Message, Part::*};

/// Lowest accepted sample rate, in Hz.
pub const MIN_RATE: u32 = 8_000;
/// Highest accepted sample rate, in Hz.
pub const MAX_RATE: u32 = 192_000;
/// Highest accepted interleaved channel count.
pub const MAX_CHANNELS: u16 = 32;

/// Design stopband attenuation of the Kaiser window, in dB.
const ATTEN_DB: f64 = 100.0;
/// Passband edge as a fraction of the lower Nyquist frequency (10 kHz of 12 kHz).
const PASS_FRACTION: f64 = 10.0 / 12.0;
/// Above this many exact phases, the table switches to interpolated phases.
const MAX_EXACT_PHASES: u32 = 512;
/// Tap counts are rounded up to a multiple of this, the width of the dot-product accumulators.
const LANES: usize = 8;

/// Why a [`Resampler`] could not be built or could not process a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResamplerError {
    /// A rate outside [`MIN_RATE`]..=[`MAX_RATE`].
    UnsupportedRate {
        /// The rejected rate, in Hz.
        rate: u32,
    },
    /// Zero channels, or more than [`MAX_CHANNELS`].
    UnsupportedChannels {
        /// The rejected channel count.
        channels: u16,
    },
    /// `output` is shorter than the number of samples this call produces.
    OutputTooSmall {
        /// Samples this call would write ([`Resampler::output_capacity`]).
        needed: usize,
        /// Length of the `output` slice given.
        got: usize,
    },
    /// `input` does not hold a whole number of interleaved frames.
    PartialFrame {
        /// Length of the `input` slice, in samples.
        samples: usize,
        /// Channels per frame.
        channels: u16,
    },
}

impl Message for ResamplerError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match *self {
            Self::UnsupportedRate { rate } => write_parts(
                out,
                &[
                    S("unsupported sample rate "),
                    N(u64::from(rate)),
                    S(" Hz (supported: "),
                    N(u64::from(MIN_RATE)),
                    S("..="),
                    N(u64::from(MAX_RATE)),
                    S(")"),
                ],
            ),
            Self::UnsupportedChannels { channels } => write_parts(
                out,
                &[
                    S("unsupported channel count "),
                    N(u64::from(channels)),
                    S(" (supported: 1..="),
                    N(u64::from(MAX_CHANNELS)),
                    S(")"),
                ],
            ),
            Self::OutputTooSmall { needed, got } => write_parts(
                out,
                &[
                    S("output buffer too small: "),
                    N(needed as u64),
                    S(" samples needed, "),
                    N(got as u64),
                    S(" given"),
                ],
            ),
            Self::PartialFrame { samples, channels } => write_parts(
                out,
                &[
                    S("input of "),
                    N(samples as u64),
                    S(" samples is not a whole number of "),
                    N(u64::from(channels)),
                    S("-channel frames"),
                ],
            ),
        }
    }
}

crate::text::display_by_message!(ResamplerError);

impl std::error::Error for ResamplerError {}

/// How the coefficient table is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phases {
    /// Rates are equal: no filter, only the downmix.
    PassThrough,
    /// `L` rows, one per phase the stream visits; row = `acc`.
    Exact,
    /// `rows + 1` rows spanning phase 0..=1; linear interpolation between neighbours.
    Interpolated {
        /// Phase steps in the table.
        rows: u32,
    },
}

/// Stateful, allocation-free (after [`Resampler::new`]) rate converter with downmix to mono.
/// See the module docs for the design and the alignment of its output.
#[derive(Debug, Clone)]
pub struct Resampler {
    input_rate: u32,
    output_rate: u32,
    channels: u16,
    /// Interpolation factor `L` (output rate / gcd).
    up: u32,
    /// Decimation factor `M` (input rate / gcd).
    down: u32,
    phases: Phases,
    /// Taps per phase, a multiple of [`LANES`].
    taps: usize,
    /// Phase rows of `taps` coefficients each, oldest input sample first.
    table: Vec<f32>,
    /// Last `taps` input samples, written twice (at `i` and `i + taps`) so that the window is
    /// always the contiguous slice `hist[pos..pos + taps]`.
    hist: Vec<f32>,
    pos: usize,
    /// Input frames still to push before the next output is due (≥ 1 between calls).
    need: u64,
    /// Phase of the next output, in units of `1/up` input samples (`0..up`).
    acc: u32,
}

impl Resampler {
    /// Builds a converter from `input_rate` to `output_rate` (Hz, each in
    /// [`MIN_RATE`]..=[`MAX_RATE`]) for input of `channels` interleaved channels, which are
    /// downmixed to mono by averaging. Computes the filter table (a few to a few hundred KB).
    pub fn new(input_rate: u32, output_rate: u32, channels: u16) -> Result<Self, ResamplerError> {
        for rate in [input_rate, output_rate] {
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(ResamplerError::UnsupportedRate { rate });
            }
        }
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(ResamplerError::UnsupportedChannels { channels });
        }
        let g = gcd(input_rate, output_rate);
        let (up, down) = (output_rate / g, input_rate / g);
        let mut r = Resampler {
            input_rate,
            output_rate,
            channels,
            up,
            down,
            phases: Phases::PassThrough,
            taps: 0,
            table: Vec::new(),
            hist: Vec::new(),
            pos: 0,
            need: 1,
            acc: 0,
        };
        if input_rate != output_rate {
            r.design();
        }
        Ok(r)
    }

    /// Computes the table for the current rates (not called for pass-through).
    fn design(&mut self) {
        let fi = f64::from(self.input_rate);
        let nyquist = f64::from(self.input_rate.min(self.output_rate)) / 2.0;
        let pass = nyquist * PASS_FRACTION;
        // Cutoff and transition width in cycles per input sample.
        let cutoff = (pass + nyquist) / 2.0 / fi;
        let width = (nyquist - pass) / fi;
        // Kaiser's estimates of the length and shape for the attenuation.
        let beta = 0.1102 * (ATTEN_DB - 8.7);
        let length = (ATTEN_DB - 8.0) / (2.285 * 2.0 * PI * width) + 1.0;
        let taps = (length.ceil() as usize).div_ceil(LANES) * LANES;
        let (rows, phases) = if self.up <= MAX_EXACT_PHASES {
            (self.up, Phases::Exact)
        } else {
            // Linear interpolation error scales with (cutoff / rows)²; 1024 × cutoff keeps it
            // near −106 dB across the supported rates.
            let rows = ((1024.0 * cutoff).ceil() as u32).clamp(32, 512);
            (rows, Phases::Interpolated { rows })
        };
        let n_rows = match phases {
            Phases::Interpolated { .. } => rows as usize + 1,
            _ => rows as usize,
        };
        let half = taps as f64 / 2.0;
        let i0_beta = bessel_i0(beta);
        let mut table = Vec::with_capacity(n_rows * taps);
        let mut row = vec![0.0f64; taps];
        for r in 0..n_rows {
            let frac = r as f64 / f64::from(rows);
            let mut sum = 0.0;
            for (m, c) in row.iter_mut().enumerate() {
                // Distance from the output instant to input sample `m` of the window.
                let d = frac + half - 1.0 - m as f64;
                let x = d / half;
                *c = if x.abs() >= 1.0 {
                    0.0
                } else {
                    let w = bessel_i0(beta * (1.0 - x * x).sqrt()) / i0_beta;
                    2.0 * cutoff * sinc(2.0 * cutoff * d) * w
                };
                sum += *c;
            }
            // Unity gain at DC for every phase.
            table.extend(row.iter().map(|&c| (c / sum) as f32));
        }
        self.phases = phases;
        self.taps = taps;
        self.table = table;
        self.hist = vec![0.0; 2 * taps];
        self.reset();
    }

    /// Input sample rate, in Hz.
    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    /// Output sample rate, in Hz.
    pub fn output_rate(&self) -> u32 {
        self.output_rate
    }

    /// Interleaved channels expected in the input.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Filter taps per output sample (0 for pass-through), for reports and benchmarks.
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// Heap bytes held (coefficient table and history), fixed at construction: e.g. ≈1.9 KB
    /// for 48 → 24 kHz, ≈47 KB for 44.1 → 24 kHz (80 phases).
    pub fn memory_bytes(&self) -> usize {
        (self.table.capacity() + self.hist.capacity()) * std::mem::size_of::<f32>()
    }

    /// Exactly how many samples the next [`Resampler::process_into`] of `input_frames` frames
    /// writes (so also an upper bound for sizing `output`).
    pub fn output_capacity(&self, input_frames: usize) -> usize {
        if self.phases == Phases::PassThrough {
            return input_frames;
        }
        let n = input_frames as u64;
        if n < self.need {
            return 0;
        }
        // Output k (k = 0, 1, ...) is due at push `need + floor((acc + k·M) / L)`.
        let span = (n - self.need + 1).saturating_mul(u64::from(self.up)) - u64::from(self.acc);
        usize::try_from(span.div_ceil(u64::from(self.down))).unwrap_or(usize::MAX)
    }

    /// Upper bound of [`Resampler::output_capacity`] over every state: size an output buffer
    /// with this once for blocks of at most `input_frames` frames.
    pub fn max_output_capacity(&self, input_frames: usize) -> usize {
        if self.phases == Phases::PassThrough {
            return input_frames;
        }
        // `input_frames` pushes span less than `input_frames + 1` input samples of output time.
        let n = (input_frames as u64).saturating_mul(u64::from(self.up));
        usize::try_from(n.div_ceil(u64::from(self.down)) + 1).unwrap_or(usize::MAX)
    }

    /// Consumes all of `input` (interleaved frames), writes the mono output samples to the
    /// front of `output` and returns how many. Allocates nothing. On error nothing is consumed.
    pub fn process_into(
        &mut self,
        input: &[f32],
        output: &mut [f32],
    ) -> Result<usize, ResamplerError> {
        let ch = usize::from(self.channels);
        if input.len() % ch != 0 {
            return Err(ResamplerError::PartialFrame {
                samples: input.len(),
                channels: self.channels,
            });
        }
        let needed = self.output_capacity(input.len() / ch);
        if output.len() < needed {
            return Err(ResamplerError::OutputTooSmall {
                needed,
                got: output.len(),
            });
        }
        let scale = 1.0 / f32::from(self.channels);
        let frames = input.chunks_exact(ch).map(|f| {
            if ch == 1 {
                f[0]
            } else {
                f.iter().sum::<f32>() * scale
            }
        });
        if self.phases == Phases::PassThrough {
            for (o, x) in output.iter_mut().zip(frames) {
                *o = x;
            }
            return Ok(needed);
        }
        let taps = self.taps;
        let mut n = 0;
        for x in frames {
            self.hist[self.pos] = x;
            self.hist[self.pos + taps] = x;
            self.pos += 1;
            if self.pos == taps {
                self.pos = 0;
            }
            self.need -= 1;
            while self.need == 0 {
                output[n] = self.output_sample();
                n += 1;
                self.acc += self.down;
                let step = self.acc / self.up;
                self.acc -= step * self.up;
                self.need = u64::from(step);
            }
        }
        debug_assert_eq!(n, needed);
        Ok(n)
    }

    /// Filters the current window at the current phase.
    #[inline]
    fn output_sample(&self) -> f32 {
        let taps = self.taps;
        let window = &self.hist[self.pos..self.pos + taps];
        match self.phases {
            Phases::Exact => {
                let r = self.acc as usize * taps;
                dot(window, &self.table[r..r + taps])
            }
            Phases::Interpolated { rows } => {
                let x = f64::from(self.acc) * f64::from(rows) / f64::from(self.up);
                let i = x as usize; // < rows because acc < up
                let a = (x - i as f64) as f32;
                let r = i * taps;
                let lo = dot(window, &self.table[r..r + taps]);
                let hi = dot(window, &self.table[r + taps..r + 2 * taps]);
                lo + a * (hi - lo)
            }
            Phases::PassThrough => 0.0,
        }
    }

    /// Latency of the filter, in input frames: output `j` is produced once the input has
    /// reached `j · input_rate / output_rate` plus this. 0 for pass-through.
    pub fn group_delay_input_frames(&self) -> f64 {
        self.taps as f64 / 2.0
    }

    /// Group delay (= latency) of the filter in milliseconds, e.g. ≈ 1.6 ms for 48 → 24 kHz.
    pub fn group_delay_ms(&self) -> f64 {
        self.group_delay_input_frames() * 1000.0 / f64::from(self.input_rate)
    }

    /// Forgets all past input, as if newly constructed (keeps the table).
    pub fn reset(&mut self) {
        self.hist.iter_mut().for_each(|x| *x = 0.0);
        self.pos = 0;
        self.acc = 0;
        // Output 0 (input time 0) is due once input frame `taps / 2` has arrived.
        self.need = if self.phases == Phases::PassThrough {
            1
        } else {
            self.taps as u64 / 2 + 1
        };
    }
}

/// Dot product of a window and a coefficient row (lengths are multiples of `LANES`), in the
/// form that is fastest for the target, as measured (docs/AUDIO.md): eight accumulators that
/// the compiler vectorises natively and with wasm `simd128`; four scalar accumulators in scalar
/// wasm, where the array form ran 1.6× slower.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
    {
        dot_scalar4(a, b)
    }
    #[cfg(not(all(target_arch = "wasm32", not(target_feature = "simd128"))))]
    {
        dot_lanes8(a, b)
    }
}

/// Eight independent accumulators: two 4-lane vectors once vectorised.
#[inline]
#[allow(dead_code)] // Unused on scalar wasm.
fn dot_lanes8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Four scalar accumulators in locals (kept in registers by size-optimised wasm builds).
#[inline]
#[allow(dead_code)] // Used on scalar wasm only; tested natively.
fn dot_scalar4(a: &[f32], b: &[f32]) -> f32 {
    let (mut s0, mut s1, mut s2, mut s3) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        s0 += x[0] * y[0];
        s1 += x[1] * y[1];
        s2 += x[2] * y[2];
        s3 += x[3] * y[3];
    }
    (s0 + s2) + (s1 + s3)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        sin(PI * x) / (PI * x)
    }
}

/// Sine by range reduction to [-π, π] and its Taylor series: accurate to ~1e-13 for the
/// arguments of the filter design (|x| < 2000), and a few hundred bytes of wasm instead of the
/// ~7 KB of libm's `sin` (nothing else in the client needs it).
fn sin(x: f64) -> f64 {
    let tau = 2.0 * PI;
    let x = x - tau * (x / tau + 0.5).floor();
    let (mut term, mut sum, mut k) = (x, x, 1.0f64);
    while term.abs() > 1e-18 {
        term *= -x * x / ((k + 1.0) * (k + 2.0));
        sum += term;
        k += 2.0;
    }
    sum
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// arguments of a Kaiser window, ≤ 12).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut term, mut sum, mut k) = (1.0f64, 1.0f64, 1.0f64);
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_arguments() {
        assert_eq!(
            Resampler::new(7_999, 24_000, 1).err(),
            Some(ResamplerError::UnsupportedRate { rate: 7_999 })
        );
        assert_eq!(
            Resampler::new(48_000, 192_001, 1).err(),
            Some(ResamplerError::UnsupportedRate { rate: 192_001 })
        );
        assert_eq!(
            Resampler::new(48_000, 24_000, 0).err(),
            Some(ResamplerError::UnsupportedChannels { channels: 0 })
        );
        let mut r = Resampler::new(48_000, 24_000, 2).unwrap();
        let mut out = [0.0; 16];
        assert_eq!(
            r.process_into(&[0.0; 3], &mut out),
            Err(ResamplerError::PartialFrame {
                samples: 3,
                channels: 2
            })
        );
        let need = r.output_capacity(1000);
        assert_eq!(
            r.process_into(&[0.0; 2000], &mut out),
            Err(ResamplerError::OutputTooSmall {
                needed: need,
                got: 16
            })
        );
    }

    #[test]
    fn capacity_is_exact_and_rate_is_right() {
        for (fi, fo) in [
            (48_000, 24_000),
            (44_100, 24_000),
            (8_000, 24_000),
            (24_000, 44_100),
        ] {
            let mut r = Resampler::new(fi, fo, 1).unwrap();
            let mut out = vec![0.0; 4096];
            let mut total = 0;
            for _ in 0..100 {
                let cap = r.output_capacity(480);
                let n = r.process_into(&[0.1; 480], &mut out).unwrap();
                assert_eq!(n, cap);
                total += n;
            }
            let ideal = 48_000.0 * f64::from(fo) / f64::from(fi);
            let delay_out = r.group_delay_input_frames() * f64::from(fo) / f64::from(fi);
            assert!(
                (total as f64 - (ideal - delay_out)).abs() <= 2.0,
                "{fi}->{fo}: {total}"
            );
        }
    }

    #[test]
    fn pass_through_downmixes() {
        let mut r = Resampler::new(24_000, 24_000, 2).unwrap();
        let mut out = [0.0; 2];
        assert_eq!(r.process_into(&[1.0, 0.0, 0.5, 0.25], &mut out), Ok(2));
        assert_eq!(out, [0.5, 0.375]);
        assert_eq!(r.group_delay_ms(), 0.0);
    }

    #[test]
    fn both_dot_products_agree() {
        let a: Vec<f32> = (0..160).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..160).map(|i| (i as f32 * 0.11).cos() * 0.01).collect();
        let exact: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        for d in [dot_lanes8(&a, &b), dot_scalar4(&a, &b), dot(&a, &b)] {
            assert!((f64::from(d) - exact).abs() < 1e-6, "{d} vs {exact}");
        }
    }

    #[test]
    fn sin_matches_std() {
        let mut worst = 0.0f64;
        for i in -20_000..20_000 {
            let x = f64::from(i) * 0.1;
            worst = worst.max((sin(x) - x.sin()).abs());
        }
        assert!(worst < 1e-12, "{worst}");
    }

    #[test]
    fn bessel_matches_known_value() {
        // I0(1) = 1.2660658777520082
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_2).abs() < 1e-14);
    }
}
