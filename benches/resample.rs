//! Resampler speed, side by side in one run on the same input: ours (polyphase Kaiser sinc)
//! vs rubato's asynchronous sinc resampler (default features off) at a setting that reaches
//! our alias rejection and at its common sinc-64 setting, vs stateless-quality linear
//! interpolation. Each iteration converts one second of audio, so ×-realtime = 1 s / time.
//!
//! Before timing, the quality of every contender is measured on the same signals (alias of
//! 13–22 kHz tones, gain at 10 kHz) and printed, so "equal quality" is checked, not assumed.
//!
//! Run: `nice cargo bench --bench resample` (add `CARGO_PROFILE_BENCH_OPT_LEVEL=3` to measure
//! at opt-level 3 instead of the release profile's size-optimised `z`).

use criterion::{criterion_group, criterion_main, Criterion};
use realtime_voice::audio::Resampler;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler as _, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use std::f64::consts::PI;
use std::hint::black_box;
use std::time::Duration;

const OUT_RATE: u32 = 24_000;
const RUBATO_CHUNK: usize = 1024;

/// The contenders, each converting a whole mono signal in blocks.
trait Convert {
    fn name(&self) -> String;
    fn run(&mut self, input: &[f32], out: &mut Vec<f32>);
}

struct Ours {
    r: Resampler,
    block: usize,
    buf: Vec<f32>,
}

impl Ours {
    fn new(fi: u32, block: usize) -> Self {
        let r = Resampler::new(fi, OUT_RATE, 1).unwrap();
        let buf = vec![0.0; r.max_output_capacity(block)];
        Ours { r, block, buf }
    }
}

impl Convert for Ours {
    fn name(&self) -> String {
        format!("ours ({} taps, {}-frame blocks)", self.r.taps(), self.block)
    }
    fn run(&mut self, input: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for piece in input.chunks(self.block) {
            let n = self.r.process_into(piece, &mut self.buf).unwrap();
            out.extend_from_slice(&self.buf[..n]);
        }
    }
}

struct Rubato {
    label: String,
    r: Async<f32>,
    buf: Vec<f32>,
}

impl Rubato {
    fn new(fi: u32, sinc_len: usize, f_cutoff: Option<f32>, oversampling: usize) -> Self {
        let params = SincInterpolationParameters {
            sinc_len,
            f_cutoff,
            oversampling_factor: oversampling,
            interpolation: SincInterpolationType::Cubic,
            window: WindowFunction::BlackmanHarris2,
        };
        let ratio = f64::from(OUT_RATE) / f64::from(fi);
        let r = Async::<f32>::new_sinc(ratio, 1.0, &params, RUBATO_CHUNK, 1, FixedAsync::Input)
            .unwrap();
        let buf = vec![0.0; r.output_frames_max()];
        let cutoff = f_cutoff.map_or("auto".to_string(), |c| format!("{c}"));
        Rubato {
            label: format!("rubato sinc_len {sinc_len}, cutoff {cutoff}, x{oversampling} cubic"),
            r,
            buf,
        }
    }
}

impl Convert for Rubato {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn run(&mut self, input: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for piece in input.chunks_exact(RUBATO_CHUNK) {
            let inp = InterleavedSlice::new(piece, 1, RUBATO_CHUNK).unwrap();
            let frames = self.buf.len();
            let mut o = InterleavedSlice::new_mut(&mut self.buf[..], 1, frames).unwrap();
            let (_, n) = self.r.process_into_buffer(&inp, &mut o, None).unwrap();
            out.extend_from_slice(&self.buf[..n]);
        }
    }
}

/// Stateful linear interpolation (no filter): what many voice clients do.
struct Linear {
    step: f64,
    pos: f64,
    prev: f32,
}

impl Convert for Linear {
    fn name(&self) -> String {
        "linear interpolation".into()
    }
    fn run(&mut self, input: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for piece in input.chunks(128) {
            // `pos` is relative to `prev` (index -1 of this piece).
            while self.pos < piece.len() as f64 {
                let i = self.pos.floor();
                let a = (self.pos - i) as f32;
                let x0 = if i < 1.0 {
                    self.prev
                } else {
                    piece[i as usize - 1]
                };
                let x1 = piece[i as usize];
                out.push(x0 + a * (x1 - x0));
                self.pos += self.step;
            }
            self.pos -= piece.len() as f64;
            self.prev = piece[piece.len() - 1];
        }
    }
}

fn tone(rate: u32, freq: f64, secs: f64) -> Vec<f32> {
    let n = (secs * f64::from(rate)) as usize;
    (0..n)
        .map(|i| (0.5 * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

fn rms(y: &[f32]) -> f64 {
    (y.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / y.len() as f64).sqrt()
}

/// Amplitude of `freq` in `y` by least squares on [cos, sin].
fn amplitude(y: &[f32], freq: f64) -> f64 {
    let w = 2.0 * PI * freq / f64::from(OUT_RATE);
    let (mut cc, mut ss, mut cs, mut yc, mut ys) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in y.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        cc += c * c;
        ss += s * s;
        cs += c * s;
        yc += c * f64::from(v);
        ys += s * f64::from(v);
    }
    let det = cc * ss - cs * cs;
    let a = (yc * ss - ys * cs) / det;
    let b = (ys * cc - yc * cs) / det;
    a.hypot(b)
}

/// (worst alias of 13–22 kHz tones in dB, gain at 10 kHz in dB), on steady-state output.
fn quality(c: &mut dyn Convert, fi: u32) -> (f64, f64) {
    let mut out = Vec::new();
    let steady = |out: &Vec<f32>| out[out.len() / 4..out.len() * 3 / 4].to_vec();
    let mut worst = f64::NEG_INFINITY;
    for f in [13_000.0, 14_000.0, 15_000.0, 18_000.0, 20_000.0, 22_000.0] {
        c.run(&tone(fi, f, 0.5), &mut out);
        worst = worst.max(20.0 * (rms(&steady(&out)) / (0.5 / 2f64.sqrt())).log10());
    }
    c.run(&tone(fi, 10_000.0, 0.5), &mut out);
    let gain = 20.0 * (amplitude(&steady(&out), 10_000.0) / 0.5).log10();
    (worst, gain)
}

fn contenders(fi: u32) -> Vec<Box<dyn Convert>> {
    vec![
        Box::new(Ours::new(fi, 128)),
        Box::new(Ours::new(fi, 1024)),
        // The cheapest setting of the sweep (`RESAMPLE_BENCH_SWEEP=1`) that reaches ≤ −90 dB
        // aliases and ±0.1 dB at 10 kHz at both rates (shorter sincs lose the 10 kHz passband
        // with the automatic cutoff, or the alias rejection with a higher one).
        Box::new(Rubato::new(fi, 160, Some(0.93), 256)),
        // rubato's common sinc-64 setting.
        Box::new(Rubato::new(fi, 64, None, 128)),
        Box::new(Linear {
            step: f64::from(fi) / f64::from(OUT_RATE),
            pos: 0.0,
            prev: 0.0,
        }),
    ]
}

/// With `RESAMPLE_BENCH_SWEEP=1`: prints the quality of a grid of rubato settings (how the
/// equal-quality setting above was chosen).
fn sweep() {
    for fi in [48_000u32, 44_100] {
        for sinc_len in [128, 144, 160, 176, 192] {
            for cutoff in [None, Some(0.93), Some(0.915)] {
                let mut r = Rubato::new(fi, sinc_len, cutoff, 256);
                let (alias, gain) = quality(&mut r, fi);
                println!(
                    "sweep {fi} | {}: worst alias {alias:.1} dB, gain at 10 kHz {gain:+.3} dB",
                    r.name()
                );
            }
        }
    }
}

/// This thread's CPU time (user + system) in seconds, from /proc (Linux; 10 ms ticks), or
/// None elsewhere. CPU time, unlike criterion's wall time, does not count the time this thread
/// waits while other processes use the cores, so it stays meaningful on a shared machine.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// ×-realtime by CPU time: converts the second of `input` repeatedly for at least 2 s of CPU.
fn cpu_realtime(conv: &mut dyn Convert, input: &[f32]) -> Option<f64> {
    let mut out = Vec::with_capacity(input.len());
    let start = thread_cpu_s()?;
    let mut seconds = 0u32;
    while thread_cpu_s()? - start < 2.0 {
        for _ in 0..10 {
            conv.run(black_box(input), &mut out);
            black_box(out.len());
        }
        seconds += 10;
    }
    Some(f64::from(seconds) / (thread_cpu_s()? - start))
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("RESAMPLE_BENCH_SWEEP").is_some() {
        sweep();
        return;
    }
    let mut summary = Vec::new();
    for fi in [48_000u32, 44_100] {
        // One second of a speech-band signal (quality does not change speed).
        let input: Vec<f32> = (0..fi as usize)
            .map(|i| {
                let t = i as f64 / f64::from(fi);
                (0.3 * (2.0 * PI * 440.0 * t).sin() + 0.2 * (2.0 * PI * 3100.0 * t).sin()) as f32
            })
            .collect();
        let mut group = c.benchmark_group(format!("{}k_to_24k", fi / 1000));
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for mut conv in contenders(fi) {
            let (alias, gain) = quality(conv.as_mut(), fi);
            let name = conv.name();
            println!(
                "quality {fi} -> 24000 | {name}: worst alias {alias:.1} dB, gain at 10 kHz {gain:+.3} dB"
            );
            if let Some(x) = cpu_realtime(conv.as_mut(), &input) {
                summary.push(format!("cpu-time {fi} -> 24000 | {name}: {x:.0}x realtime"));
            }
            let mut out = Vec::with_capacity(fi as usize);
            group.bench_function(name, |b| {
                b.iter(|| {
                    conv.run(black_box(&input), &mut out);
                    black_box(out.len())
                })
            });
        }
        group.finish();
    }
    for line in summary {
        println!("{line}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
