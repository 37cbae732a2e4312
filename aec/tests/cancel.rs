//! The canceller on a synthetic room: the far end is a noise-excited "voice" (bursts of shaped
//! noise), the echo is that signal delayed and attenuated through a short decaying response, and
//! the near end adds a talker of its own at the end.

use realtime_voice_aec::{AecError, Canceller};

/// A deterministic noise source (xorshift), in −1..1.
struct Noise(u32);
impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 as f32 / u32::MAX as f32) * 2.0 - 1.0
    }
}

/// `secs` of speech-like far-end audio at `rate`: 300 ms bursts, 100 ms pauses, low-passed noise.
fn far_end(rate: u32, secs: f32, seed: u32) -> Vec<f32> {
    let mut noise = Noise(seed);
    let n = (rate as f32 * secs) as usize;
    let mut lp = 0.0f32;
    (0..n)
        .map(|i| {
            lp += 0.3 * (noise.next() - lp);
            let t = i as f32 / rate as f32;
            if (t % 0.4) < 0.3 {
                0.5 * lp
            } else {
                0.0
            }
        })
        .collect()
}

/// The echo of `x`: delayed by `delay_ms`, through a decaying 20-tap response, at `gain`.
fn room(x: &[f32], rate: u32, delay_ms: u32, gain: f32) -> Vec<f32> {
    let d = (rate * delay_ms / 1000) as usize;
    let taps: Vec<f32> = (0..20).map(|k| gain * 0.7f32.powi(k)).collect();
    (0..x.len())
        .map(|i| {
            taps.iter()
                .enumerate()
                .filter_map(|(k, h)| i.checked_sub(d + k * 7).map(|j| h * x[j]))
                .sum()
        })
        .collect()
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| (s as f64) * (s as f64)).sum::<f64>() / x.len().max(1) as f64
}

/// Runs the canceller over `mic` with `far` as the reference; the processed capture.
fn run(c: &mut Canceller, far: &[f32], mic: &[f32]) -> Vec<f32> {
    let n = c.frame_len();
    let mut out = Vec::with_capacity(mic.len());
    for (f, m) in far.chunks_exact(n).zip(mic.chunks_exact(n)) {
        c.render.copy_from_slice(f);
        c.render().expect("render");
        c.capture.copy_from_slice(m);
        c.capture().expect("capture");
        out.extend_from_slice(&c.capture);
    }
    out
}

#[test]
fn removes_the_echo_and_keeps_the_near_end_talker() {
    for rate in [48_000u32, 44_100, 16_000] {
        let mut c = Canceller::new(rate).expect("canceller");
        assert_eq!(c.frame_len(), rate as usize / 100);
        let far = far_end(rate, 8.0, 7);
        let echo = room(&far, rate, 80, 0.5);
        // The last 2 s: a near-end talker over the echo.
        let talker_from = (rate * 6) as usize;
        let talker = far_end(rate, 8.0, 99);
        let mic: Vec<f32> = echo
            .iter()
            .enumerate()
            .map(|(i, e)| {
                e + if i >= talker_from {
                    0.5 * talker[i]
                } else {
                    0.0
                }
            })
            .collect();
        let mut out = run(&mut c, &far[..talker_from], &mic[..talker_from]);
        // The last second before the talker was echo alone: its attenuation is the echo removed.
        assert!(
            c.attenuation_db() >= 20.0,
            "{rate} Hz: {} dB",
            c.attenuation_db()
        );
        out.extend(run(&mut c, &far[talker_from..], &mic[talker_from..]));
        // Echo alone, after 3 s of convergence: at least 20 dB removed.
        let (a, b) = ((rate * 3) as usize, talker_from);
        let erle = 10.0 * (energy(&mic[a..b]) / energy(&out[a..b]).max(1e-12)).log10();
        assert!(erle >= 20.0, "{rate} Hz: echo reduced by only {erle:.1} dB");
        // Double talk (the echo louder than the talker): the talker survives within 10 dB.
        let near: Vec<f32> = talker[talker_from..].iter().map(|s| 0.5 * s).collect();
        let kept = 10.0 * (energy(&out[talker_from..]) / energy(&near)).log10();
        eprintln!(
            "{rate} Hz: echo −{erle:.1} dB, near-end talker {kept:+.1} dB, delay {} ms",
            c.delay_ms()
        );
        assert!(
            kept > -10.0,
            "{rate} Hz: the near-end talker lost {kept:.1} dB"
        );
        // The room's 80 ms, found (its taps spread the echo over the next 19 ms).
        assert!(
            (60..=100).contains(&c.delay_ms()),
            "{rate} Hz: delay estimate {} ms",
            c.delay_ms()
        );
    }
}

#[test]
fn silence_in_silence_out_and_bad_rates_are_refused() {
    let mut c = Canceller::new(48_000).expect("canceller");
    let z = vec![0.0; 48_000];
    assert!(run(&mut c, &z, &z).iter().all(|s| s.abs() < 1e-6));
    assert_eq!(
        Canceller::new(8_000).err(),
        Some(AecError::UnsupportedRate(8_000))
    );
    assert_eq!(
        Canceller::new(96_000).err(),
        Some(AecError::UnsupportedRate(96_000))
    );
    assert_eq!(AecError::UnsupportedRate(8_000).code(), -1);
}
