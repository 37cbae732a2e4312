//! Runs the canceller over a microphone WAV with a far-end (played) WAV as its reference, both
//! 48 kHz mono 16-bit, and prints per second how much quieter the output is than the input,
//! and the best correlation of output with input over the first 2400 samples of lag (how
//! intact a near-end talker comes through). For tuning against the echo lab's rooms:
//! `cargo run --release -p realtime-voice-aec --example run_files -- mic.wav far.wav`, with
//! FILTERS=n (matched filters of the delay search), GAIN=x (the assumed echo path gain before
//! the filter converges), ERLE=x (the largest echo return loss enhancement the suppressor may
//! credit the linear filter with, both bands), INITIAL=s (how long it suppresses conservatively at the start), MASK=x (scales
//! the suppressor's echo-to-near-end thresholds: above 1 it lets more through), NE_ENR=x, NE_SNR=x, NE_TRIGGER=blocks,
//! NE_HOLD=blocks (the dominant-nearend detector, which switches the suppressor to its near-end masks in double talk)
//! or LEN=blocks (the linear filter's length) to try other settings, and
//! OUT=path to write the output as a WAV of the same format.

use realtime_voice_aec::Canceller;

fn wav(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes[44..]
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mic, far] = &args[..] else {
        eprintln!("usage: run_files MIC.wav FAR.wav (48 kHz mono 16-bit)");
        std::process::exit(2);
    };
    let (mic, far) = (wav(mic), wav(far));
    let mut cfg = Canceller::config();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
    if let Some(f) = env("FILTERS") {
        cfg.delay.num_filters = f as usize;
    }
    if let Some(g) = env("GAIN") {
        cfg.ep_strength.default_gain = g;
    }
    if let Some(e) = env("ERLE") {
        cfg.erle.max_l = e;
        cfg.erle.max_h = e;
    }
    if let Some(s) = env("INITIAL") {
        cfg.filter.initial_state_seconds = s;
    }
    if let Some(m) = env("MASK") {
        for t in [
            &mut cfg.suppressor.normal_tuning,
            &mut cfg.suppressor.nearend_tuning,
        ] {
            for k in [&mut t.mask_lf, &mut t.mask_hf] {
                k.enr_transparent *= m;
                k.enr_suppress *= m;
            }
        }
    }
    // The dominant-nearend detector: when the residual echo is under NE_ENR × the near end's
    // energy for NE_TRIGGER 4 ms blocks in a row (and the near end is NE_SNR × the noise), the
    // suppressor switches to its near-end masks for NE_HOLD blocks.
    let ne = &mut cfg.suppressor.dominant_nearend_detection;
    if let Some(v) = env("NE_ENR") {
        ne.enr_threshold = v;
    }
    if let Some(v) = env("NE_SNR") {
        ne.snr_threshold = v;
    }
    if let Some(v) = env("NE_TRIGGER") {
        ne.trigger_threshold = v as usize;
    }
    if let Some(v) = env("NE_HOLD") {
        ne.hold_duration = v as usize;
    }
    if let Some(l) = env("LEN") {
        cfg.filter.main.length_blocks = l as usize;
        cfg.filter.shadow.length_blocks = l as usize;
    }
    let mut c = Canceller::with_config(48_000, cfg).expect("canceller");
    let n = c.frame_len();
    let len = mic.len().min(far.len()) / n * n;
    let mut out = Vec::with_capacity(len);
    for k in (0..len).step_by(n) {
        c.render.copy_from_slice(&far[k..k + n]);
        c.render().expect("render");
        c.capture.copy_from_slice(&mic[k..k + n]);
        c.capture().expect("capture");
        out.extend_from_slice(&c.capture);
    }
    if let Ok(path) = std::env::var("OUT") {
        let mut bytes = std::fs::read(&args[1]).expect("mic")[..44].to_vec();
        let data = (out.len() * 2) as u32;
        bytes[4..8].copy_from_slice(&(36 + data).to_le_bytes());
        bytes[40..44].copy_from_slice(&data.to_le_bytes());
        for v in &out {
            bytes.extend_from_slice(&((v.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let energy = |x: &[f32]| x.iter().map(|&v| f64::from(v * v)).sum::<f64>();
    for (i, (x, y)) in mic[..len]
        .chunks(48_000)
        .zip(out.chunks(48_000))
        .enumerate()
    {
        let gain = 10.0 * (energy(y) / energy(x).max(1e-12)).log10();
        println!("second {i}: output {gain:+.1} dB against the input");
    }
    let (mut best, mut at) = (0.0f64, 0);
    let span = 48_000.min(len)..len.saturating_sub(2_400);
    for lag in 0..2_400 {
        let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
        for i in span.clone() {
            let (a, b) = (f64::from(mic[i]), f64::from(out[i + lag]));
            xy += a * b;
            xx += a * a;
            yy += b * b;
        }
        let corr = xy / (xx * yy).sqrt().max(1e-12);
        if corr > best {
            (best, at) = (corr, lag);
        }
    }
    println!("output against input from 1 s on: best correlation {best:.3} at a lag of {at} samples; AEC3's delay estimate {} ms", c.delay_ms());
}
