//! Deterministic voice-like audio for the simulated interviewer: each syllable of the text becomes a
//! voiced sound (harmonics of a falling pitch shaped by the formants of its vowel) under a syllable
//! envelope, with pauses between words and sentences. No files, no randomness: the same text always
//! gives the same samples. Rendered once per distinct line and shared.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex, OnceLock};

/// Output sample rate (24 kHz mono PCM16, the realtime format).
pub const SAMPLE_RATE: u32 = 24_000;
/// Most distinct lines cached (the script has fewer; more are rendered but not kept).
const MAX_CACHED: usize = 32;

const SYLLABLE_MS: f64 = 170.0;
const SYLLABLE_GAP_MS: f64 = 25.0;
const WORD_GAP_MS: f64 = 60.0;
const SENTENCE_GAP_MS: f64 = 250.0;
const COMMA_GAP_MS: f64 = 120.0;

/// The 24 kHz PCM16 rendering of `text`, cached for the script's lines.
pub fn speech_for(text: &str) -> Arc<[i16]> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<[i16]>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(a) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(text) {
        return a.clone();
    }
    let a: Arc<[i16]> = synthesize(text).into();
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.len() < MAX_CACHED {
        c.insert(text.to_string(), a.clone());
    }
    a
}

/// Formants (F1, F2, F3) in Hz for a vowel letter.
fn formants(v: char) -> (f64, f64, f64) {
    match v {
        'a' => (730.0, 1090.0, 2440.0),
        'e' => (530.0, 1840.0, 2480.0),
        'i' => (300.0, 2200.0, 2950.0),
        'o' => (570.0, 840.0, 2410.0),
        'u' => (320.0, 900.0, 2380.0),
        _ => (450.0, 1600.0, 2500.0),
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// One sound or pause of the plan.
#[derive(Debug, Clone, Copy)]
enum Segment {
    Syllable { ms: f64, vowel: char },
    Pause { ms: f64 },
}

fn plan(text: &str) -> Vec<Segment> {
    let mut segs = Vec::new();
    for word in text.split_whitespace() {
        let lower: String = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(|c| c.to_lowercase())
            .collect();
        let mut vowels = Vec::new();
        let mut prev_vowel = false;
        for c in lower.chars() {
            let v = is_vowel(c);
            if v && !prev_vowel {
                vowels.push(c);
            }
            prev_vowel = v;
        }
        if vowels.is_empty() && !lower.is_empty() {
            vowels.push('e');
        }
        // Silent final 'e' ("make", "time") is not a syllable.
        if vowels.len() > 1 && lower.ends_with('e') && !lower.ends_with("ee") {
            vowels.pop();
        }
        for (i, v) in vowels.iter().enumerate() {
            // Consonant-heavy words get slightly longer syllables.
            let ms = SYLLABLE_MS
                + (lower.len() as f64 / vowels.len() as f64 - 2.5).clamp(0.0, 3.0) * 12.0;
            segs.push(Segment::Syllable { ms, vowel: *v });
            if i + 1 < vowels.len() {
                segs.push(Segment::Pause {
                    ms: SYLLABLE_GAP_MS,
                });
            }
        }
        let gap = match word.chars().last() {
            Some('.' | '?' | '!') => SENTENCE_GAP_MS,
            Some(',' | ';' | ':') => COMMA_GAP_MS,
            _ => WORD_GAP_MS,
        };
        segs.push(Segment::Pause { ms: gap });
    }
    segs
}

/// Renders `text` to 24 kHz PCM16 (peak about −6 dBFS).
pub fn synthesize(text: &str) -> Vec<i16> {
    let segs = plan(text);
    let sr = SAMPLE_RATE as f64;
    let total_ms: f64 = segs
        .iter()
        .map(|s| match s {
            Segment::Syllable { ms, .. } | Segment::Pause { ms } => *ms,
        })
        .sum();
    let total = (total_ms * sr / 1000.0) as usize;
    let mut out = vec![0f64; total];
    let mut pos = 0usize;
    let mut phase = 0f64;
    let mut syllable_index = 0usize;
    for s in &segs {
        match *s {
            Segment::Pause { ms } => pos += (ms * sr / 1000.0) as usize,
            Segment::Syllable { ms, vowel } => {
                let n = (ms * sr / 1000.0) as usize;
                let (f1, f2, f3) = formants(vowel);
                let progress = pos as f64 / total.max(1) as f64;
                // Declination over the utterance, a small rise-fall inside each syllable, and a
                // deterministic per-syllable variation.
                let base = 135.0 - 30.0 * progress + ((syllable_index * 7) % 5) as f64 * 3.0;
                let harmonics = (3400.0 / base) as usize;
                let weights: Vec<f64> = (1..=harmonics)
                    .map(|k| {
                        let f = k as f64 * base;
                        let g = |c: f64, bw: f64| (-((f - c) / bw).powi(2)).exp();
                        (g(f1, 110.0) + 0.6 * g(f2, 150.0) + 0.25 * g(f3, 220.0) + 0.08 / k as f64)
                            / (1.0 + 0.15 * k as f64).sqrt()
                    })
                    .collect();
                for i in 0..n {
                    let t = i as f64 / n as f64;
                    let f0 = base * (1.0 + 0.06 * (PI * t).sin());
                    phase = (phase + 2.0 * PI * f0 / sr) % (2.0 * PI * 1000.0);
                    // Syllable envelope: fast attack, sustained nucleus, soft release.
                    let env = if t < 0.12 {
                        (t / 0.12 * PI / 2.0).sin()
                    } else if t > 0.7 {
                        ((1.0 - t) / 0.3 * PI / 2.0).sin()
                    } else {
                        1.0
                    };
                    let mut v = 0.0;
                    for (k, w) in weights.iter().enumerate() {
                        v += w * ((k + 1) as f64 * phase).sin();
                    }
                    if let Some(o) = out.get_mut(pos + i) {
                        *o = v * env;
                    }
                }
                pos += n;
                syllable_index += 1;
            }
        }
    }
    let peak = out.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-9);
    let gain = 0.5 * 32767.0 / peak;
    out.iter().map(|v| (v * gain).round() as i16).collect()
}

#[cfg(test)]
mod tests {
    use super::super::vad::{Vad, VadEvent, VadParams};
    use super::*;

    #[test]
    fn deterministic_and_plausible_length() {
        let a = synthesize("Tell me about yourself.");
        let b = synthesize("Tell me about yourself.");
        assert_eq!(a, b);
        let secs = a.len() as f64 / SAMPLE_RATE as f64;
        // 7 syllables: about 1.5 s.
        assert!((1.0..2.5).contains(&secs), "{secs} s");
        let peak = a.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((15000..=16500).contains(&peak), "peak {peak}");
    }

    #[test]
    fn reads_as_speech_to_the_vad() {
        let a = synthesize("How do you decide what to test when time is short?");
        let mut v = Vad::new(VadParams::default());
        let mut ev = Vec::new();
        v.push(a.iter().copied(), &mut ev);
        v.push(std::iter::repeat_n(0, 24_000), &mut ev);
        assert!(matches!(ev.first(), Some(VadEvent::Started { .. })));
        assert!(matches!(ev.last(), Some(VadEvent::Stopped { .. })));
    }

    #[test]
    fn energy_sits_in_the_voice_band() {
        // Most energy below 3.5 kHz: compare with a first difference (a crude high-pass).
        let a = synthesize("Describe a difficult problem.");
        let e: f64 = a.iter().map(|&s| (s as f64).powi(2)).sum();
        let d: f64 = a
            .windows(2)
            .map(|w| (w[1] as f64 - w[0] as f64).powi(2))
            .sum();
        assert!(d < 0.5 * e, "high-frequency share {}", d / e);
    }
}
