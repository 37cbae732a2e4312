//! Resampler quality, measured on its steady-state output: passband flatness, alias and image
//! rejection, THD+N, for every supported common rate, mono and stereo.
//!
//! Output sample `j` of the resampler is aligned with input time `j · fi / fo` (zero phase), so
//! a tone's fit needs no delay compensation; only the start-up transient (the filter filling
//! with signal) is skipped.

use realtime_voice::audio::Resampler;
use std::f64::consts::PI;

const AMP: f64 = 0.5;
/// Seconds of steady-state output analysed.
const ANALYSED_S: f64 = 0.25;

/// Interleaved `channels`-channel tone: every channel carries the same sine.
fn tone(rate: u32, freq: f64, frames: usize, channels: u16) -> Vec<f32> {
    let mut v = Vec::with_capacity(frames * usize::from(channels));
    for n in 0..frames {
        let x = (AMP * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()) as f32;
        v.extend(std::iter::repeat_n(x, usize::from(channels)));
    }
    v
}

/// Resamples a tone and returns the steady-state output (transient skipped).
fn steady_output(fi: u32, fo: u32, freq: f64, channels: u16) -> Vec<f32> {
    let mut r = Resampler::new(fi, fo, channels).unwrap();
    let skip_out =
        (2.0 * r.group_delay_input_frames() * f64::from(fo) / f64::from(fi)) as usize + 8;
    let want_out = skip_out + (ANALYSED_S * f64::from(fo)) as usize;
    let frames = (want_out as f64 * f64::from(fi) / f64::from(fo)) as usize
        + r.group_delay_input_frames() as usize
        + 16;
    let input = tone(fi, freq, frames, channels);
    let mut out = vec![0.0; r.output_capacity(frames)];
    let n = r.process_into(&input, &mut out).unwrap();
    assert!(n >= want_out, "{fi}->{fo}: {n} < {want_out}");
    out[skip_out..want_out].to_vec()
}

/// Least-squares fit of `a·cos + b·sin + c` at `freq`; returns (amplitude, residual RMS).
fn fit(y: &[f32], freq: f64, rate: u32) -> (f64, f64) {
    let w = 2.0 * PI * freq / f64::from(rate);
    // Normal equations for the basis [cos, sin, 1].
    let mut m = [[0.0f64; 4]; 3];
    for (n, &v) in y.iter().enumerate() {
        let b = [(w * n as f64).cos(), (w * n as f64).sin(), 1.0];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += b[i] * b[j];
            }
            m[i][3] += b[i] * f64::from(v);
        }
    }
    // Gaussian elimination with partial pivoting.
    for col in 0..3 {
        let p = (col..3)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .unwrap();
        m.swap(col, p);
        for row in 0..3 {
            if row != col {
                let f = m[row][col] / m[col][col];
                let pivot = m[col];
                for (x, p) in m[row].iter_mut().zip(pivot).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let coef = [m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]];
    let mut res = 0.0;
    for (n, &v) in y.iter().enumerate() {
        let model = coef[0] * (w * n as f64).cos() + coef[1] * (w * n as f64).sin() + coef[2];
        res += (f64::from(v) - model).powi(2);
    }
    (coef[0].hypot(coef[1]), (res / y.len() as f64).sqrt())
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

fn rms(y: &[f32]) -> f64 {
    (y.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / y.len() as f64).sqrt()
}

/// Passband edge for a rate pair: 5/6 of the lower Nyquist frequency.
fn pass_edge(fi: u32, fo: u32) -> f64 {
    f64::from(fi.min(fo)) / 2.0 * 10.0 / 12.0
}

const TO_24K: [u32; 11] = [
    8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000,
];

/// Gain at `freq` in dB, and THD+N (residual relative to the tone) in dB.
fn gain_and_thdn(fi: u32, fo: u32, freq: f64, channels: u16) -> (f64, f64) {
    let y = steady_output(fi, fo, freq, channels);
    let (a, res) = fit(&y, freq, fo);
    (db(a / AMP), db(res / (a / 2f64.sqrt())))
}

#[test]
fn passband_is_flat_within_0_1_db() {
    let freqs = [
        100.0, 250.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 9000.0, 10_000.0,
    ];
    let mut pairs: Vec<(u32, u32)> = TO_24K.iter().map(|&fi| (fi, 24_000)).collect();
    pairs.extend([
        (24_000, 44_100),
        (24_000, 48_000),
        (44_055, 24_000),
        (24_000, 44_101),
    ]);
    for (fi, fo) in pairs {
        let edge = pass_edge(fi, fo);
        let mut worst: f64 = 0.0;
        for &f in freqs.iter().filter(|&&f| f <= edge) {
            let (g, _) = gain_and_thdn(fi, fo, f, 1);
            assert!(g.abs() <= 0.1, "{fi}->{fo} at {f} Hz: gain {g:.4} dB");
            worst = worst.max(g.abs());
        }
        println!("passband {fi:>6} -> {fo}: worst |gain| {worst:.5} dB up to {edge:.0} Hz");
    }
}

#[test]
fn thd_n_at_1_khz_is_below_minus_90_db() {
    let mut pairs: Vec<(u32, u32)> = TO_24K.iter().map(|&fi| (fi, 24_000)).collect();
    pairs.extend([
        (24_000, 44_100),
        (24_000, 48_000),
        (44_055, 24_000),
        (24_000, 44_101),
    ]);
    for (fi, fo) in pairs {
        let (_, thdn) = gain_and_thdn(fi, fo, 1000.0, 1);
        println!("THD+N 1 kHz {fi:>6} -> {fo}: {thdn:.1} dB");
        assert!(thdn <= -90.0, "{fi}->{fo}: THD+N {thdn:.1} dB");
    }
}

#[test]
fn images_of_in_band_tones_are_below_minus_90_db() {
    // Upsampling: everything but the tone in the output is an image or noise.
    for (fi, fo) in [
        (8_000, 24_000),
        (16_000, 24_000),
        (22_050, 24_000),
        (24_000, 48_000),
        (24_000, 44_100),
    ] {
        let edge = pass_edge(fi, fo);
        for f in [0.25 * edge, 0.6 * edge, edge] {
            let (_, thdn) = gain_and_thdn(fi, fo, f, 1);
            println!("images {fi:>6} -> {fo} tone {f:.0} Hz: {thdn:.1} dB");
            assert!(
                thdn <= -90.0,
                "{fi}->{fo} tone {f} Hz: residual {thdn:.1} dB"
            );
        }
    }
}

/// Level of the whole steady-state output relative to the input tone: for a tone above the
/// output Nyquist frequency, all of it is alias.
fn alias_db(fi: u32, freq: f64, channels: u16) -> f64 {
    let y = steady_output(fi, 24_000, freq, channels);
    db(rms(&y) / (AMP / 2f64.sqrt()))
}

#[test]
fn aliases_of_13_to_22_khz_tones_are_below_minus_90_db() {
    for fi in [48_000, 44_100] {
        for f in [13_000.0, 14_000.0, 15_000.0, 18_000.0, 20_000.0, 22_000.0] {
            let a = alias_db(fi, f, 1);
            println!("alias {fi} Hz input, tone {f:.0} Hz: {a:.1} dB");
            assert!(a <= -90.0, "{fi}: tone {f} Hz aliases at {a:.1} dB");
        }
    }
}

#[test]
fn aliases_are_rejected_at_every_high_input_rate() {
    let cases: [(u32, &[f64]); 6] = [
        (32_000, &[13_000.0, 15_500.0]),
        (88_200, &[13_000.0, 20_000.0, 30_000.0, 43_000.0]),
        (96_000, &[13_000.0, 25_000.0, 36_000.0, 47_000.0]),
        (176_400, &[13_000.0, 50_000.0, 87_000.0]),
        (192_000, &[13_000.0, 48_000.0, 95_000.0]),
        (44_055, &[13_000.0, 18_000.0, 22_000.0]),
    ];
    for (fi, tones) in cases {
        for &f in tones {
            let a = alias_db(fi, f, 1);
            println!("alias {fi} Hz input, tone {f:.0} Hz: {a:.1} dB");
            assert!(a <= -90.0, "{fi}: tone {f} Hz aliases at {a:.1} dB");
        }
    }
}

#[test]
fn stereo_is_downmixed_by_averaging() {
    for fi in [48_000, 44_100, 16_000] {
        // Left carries 1 kHz, right 3 kHz: the mono output is their average.
        let frames = fi as usize / 4;
        let mut stereo = Vec::with_capacity(frames * 2);
        let mut mono = Vec::with_capacity(frames);
        for n in 0..frames {
            let t = n as f64 / f64::from(fi);
            let l = (0.4 * (2.0 * PI * 1000.0 * t).sin()) as f32;
            let r = (0.6 * (2.0 * PI * 3000.0 * t).sin()) as f32;
            stereo.extend([l, r]);
            mono.push((l + r) * 0.5);
        }
        let mut rs = Resampler::new(fi, 24_000, 2).unwrap();
        let mut rm = Resampler::new(fi, 24_000, 1).unwrap();
        let mut a = vec![0.0; rs.output_capacity(frames)];
        let mut b = vec![0.0; rm.output_capacity(frames)];
        let na = rs.process_into(&stereo, &mut a).unwrap();
        let nb = rm.process_into(&mono, &mut b).unwrap();
        assert_eq!(na, nb);
        let max_diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(max_diff <= 1e-6, "{fi}: {max_diff}");
        // And the stereo path itself is clean: a stereo tone gives the same THD+N bound.
        let (g, thdn) = gain_and_thdn(fi, 24_000, 1000.0, 2);
        assert!(
            g.abs() <= 0.1 && thdn <= -90.0,
            "{fi} stereo: {g} dB, {thdn} dB"
        );
    }
}

#[test]
fn group_delay_is_reported_and_small() {
    for (fi, fo) in [
        (48_000, 24_000),
        (44_100, 24_000),
        (16_000, 24_000),
        (24_000, 48_000),
    ] {
        let r = Resampler::new(fi, fo, 1).unwrap();
        let d = r.group_delay_ms();
        println!("group delay {fi} -> {fo}: {d:.3} ms ({} taps)", r.taps());
        assert!(d > 0.5 && d < 5.0, "{fi}->{fo}: {d} ms");
    }
    let mut rates = TO_24K.map(|fi| (fi, 24_000)).to_vec();
    rates.extend([
        (24_000, 44_100),
        (24_000, 48_000),
        (44_055, 24_000),
        (24_000, 44_101),
    ]);
    for (fi, fo) in rates {
        let r = Resampler::new(fi, fo, 1).unwrap();
        let kb = r.memory_bytes() as f64 / 1024.0;
        println!(
            "{fi:>6} -> {fo}: {} taps, delay {:.3} ms, {kb:.1} KiB",
            r.taps(),
            r.group_delay_ms()
        );
        // Bounded and modest at every rate, including interpolated-phase tables.
        assert!(kb < 1024.0, "{fi}->{fo}: {kb} KiB");
    }
}
