//! Concealment of late audio: the pitch period at the end of what the player was last given.
//! When an answer's next delta is late and the player runs dry inside the item, it repeats that
//! period, fading out, instead of going silent (NetEq's "expand", reduced to its core), and
//! crossfades into the late audio when it comes. Unvoiced or silent ends get no period: the
//! player fades out as before, since repeating noise would buzz.
//!
//! The search is a normalised autocorrelation of the last longest period against the audio one
//! lag earlier, over 60–400 Hz voices: first on every `rate / 12 kHz`-th sample and lag, then
//! sample-exact around the best coarse lag. About 40 k multiply-adds per call at 48 kHz.

/// Lowest and highest voice searched, Hz.
const LOWEST_HZ: u32 = 60;
const HIGHEST_HZ: u32 = 400;
/// The coarse pass works on about this rate.
const COARSE_HZ: u32 = 12_000;
/// The similarity a period must reach to be repeated: voiced audio.
pub const VOICED: f32 = 0.7;
/// Below this mean square the end is treated as silence (−70 dBFS).
const SILENCE: f32 = 1e-7;

/// Frames of history [`pitch_period`] needs at `rate_hz`: two of the longest periods.
pub fn history_len(rate_hz: u32) -> usize {
    2 * (rate_hz / LOWEST_HZ) as usize
}

/// The pitch period of the end of `tail` (frames at `rate_hz`), for the player to repeat if it
/// runs dry right after it; 0 when the end is unvoiced, silent, or shorter than
/// [`history_len`].
pub fn pitch_period(tail: &[f32], rate_hz: u32) -> u32 {
    let longest = (rate_hz / LOWEST_HZ) as usize;
    let shortest = (rate_hz / HIGHEST_HZ).max(1) as usize;
    let Some(start) = tail.len().checked_sub(2 * longest) else {
        return 0;
    };
    let end = &tail[start..];
    // The last `longest` frames against the same span `lag` earlier, on every `step`-th frame:
    // the normalised correlation, and the window's energy.
    let similarity = |lag: usize, step: usize| -> (f32, f32) {
        let (mut xy, mut xx, mut yy) = (0.0f32, 0.0f32, 0.0f32);
        let mut i = longest;
        while i < 2 * longest {
            let (x, y) = (end[i], end[i - lag]);
            xy += x * y;
            xx += x * x;
            yy += y * y;
            i += step;
        }
        (xy / (xx * yy).sqrt(), xx)
    };
    // Coarse on every `step`-th lag and frame, then every lag around the best one. A silent
    // window gives NaN, which never wins.
    let step = (rate_hz / COARSE_HZ).max(1) as usize;
    let mut best = (0.0f32, 0usize);
    let mut lag = shortest;
    while lag <= longest {
        let s = similarity(lag, step).0;
        if s > best.0 {
            best = (s, lag);
        }
        lag += step;
    }
    let coarse = best.1;
    best = (0.0, 0);
    for lag in coarse.saturating_sub(step).max(shortest)..=(coarse + step).min(longest) {
        let (s, energy) = similarity(lag, 1);
        if s > best.0 && energy >= SILENCE * longest as f32 {
            best = (s, lag);
        }
    }
    if best.0 >= VOICED {
        best.1 as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice(rate: u32, f0: f64, n: usize) -> Vec<f32> {
        // A glottal-like pulse train: harmonics of f0 with falling amplitude.
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (1..=8)
                    .map(|k| (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64)
                    .sum::<f64>() as f32
                    * 0.2
            })
            .collect()
    }

    #[test]
    fn finds_the_period_of_a_voice_at_every_rate() {
        for rate in [16_000, 24_000, 44_100, 48_000] {
            for f0 in [90.0, 140.0, 220.0, 310.0] {
                let x = voice(rate, f0, history_len(rate) + 100);
                let p = pitch_period(&x, rate);
                let exact = f64::from(rate) / f0;
                // A multiple of the period repeats as well as the period itself.
                let k = (f64::from(p) / exact).round().max(1.0);
                assert!(
                    p > 0 && (f64::from(p) - k * exact).abs() <= 1.0,
                    "{rate} Hz, f0 {f0}: period {p}, exact {exact:.2}"
                );
            }
        }
    }

    #[test]
    fn noise_silence_and_short_tails_get_no_period() {
        let rate = 48_000;
        let mut seed = 1u32;
        let noise: Vec<f32> = (0..history_len(rate))
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        assert_eq!(pitch_period(&noise, rate), 0, "noise");
        assert_eq!(
            pitch_period(&vec![0.0; history_len(rate)], rate),
            0,
            "silence"
        );
        let short = voice(rate, 150.0, history_len(rate) - 1);
        assert_eq!(pitch_period(&short, rate), 0, "too short");
    }
}
