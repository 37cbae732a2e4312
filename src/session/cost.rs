//! Estimated cost from `response.done` usage, with a per-model price table (USD per 1M tokens).

use crate::protocol::Usage;

/// Prices in USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Text input.
    pub text_input: f64,
    /// Cached text input.
    pub text_cached: f64,
    /// Text output.
    pub text_output: f64,
    /// Audio input.
    pub audio_input: f64,
    /// Cached audio input.
    pub audio_cached: f64,
    /// Audio output.
    pub audio_output: f64,
}

/// The price table shared with the reference backend: one line per model pattern (an exact name,
/// or a prefix ending in `*`; the first match wins), USD per 1M tokens. Its `#` comment lines are
/// dropped at compile time, so the wasm carries only the data lines.
const PRICE_TABLE: &str = match std::str::from_utf8(&PRICE_DATA) {
    Ok(s) => s,
    Err(_) => panic!("realtime-prices.tsv is not UTF-8"),
};
const PRICE_FILE: &[u8] = include_bytes!("realtime-prices.tsv");
const PRICE_DATA: [u8; data_lines(PRICE_FILE, &mut [])] = {
    let mut out = [0u8; data_lines(PRICE_FILE, &mut [])];
    data_lines(PRICE_FILE, &mut out);
    out
};

/// Copies the lines of `src` that do not start with `#` into `out` (when it is long enough) and
/// returns their length: a `const fn`, so the comments never reach the binary.
const fn data_lines(src: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut n) = (0, 0);
    let mut keep = true;
    while i < src.len() {
        if i == 0 || src[i - 1] == b'\n' {
            keep = src[i] != b'#';
        }
        if keep {
            if n < out.len() {
                out[n] = src[i];
            }
            n += 1;
        }
        i += 1;
    }
    n
}

impl Prices {
    const fn new(t: [f64; 3], a: [f64; 3]) -> Prices {
        Prices {
            text_input: t[0],
            text_cached: t[1],
            text_output: t[2],
            audio_input: a[0],
            audio_cached: a[1],
            audio_output: a[2],
        }
    }

    /// The published prices for `model`, or `None` for a model not in the table.
    ///
    /// gpt-4o-realtime-preview-2024-10-01: text 5/2.50/20, audio 100/20/200;
    /// gpt-4o-realtime-preview (2024-12-17 and later): text 5/2.50/20, audio 40/2.50/80;
    /// gpt-realtime (and its dated snapshots): text 4/0.40/16, audio 32/0.40/64.
    pub fn for_model(model: &str) -> Option<Prices> {
        PRICE_TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .find_map(|l| {
                let mut f = l.split_whitespace();
                let pattern = f.next()?;
                let hit = match pattern.strip_suffix('*') {
                    Some(prefix) => model.starts_with(prefix),
                    None => model == pattern,
                };
                if !hit {
                    return None;
                }
                // The JSON codec's number reader: no second float parser in the wasm.
                let mut n = [0.0f64; 6];
                for x in &mut n {
                    *x = crate::protocol::json::number_to_f64(f.next()?)?;
                }
                Some(Prices::new([n[0], n[1], n[2]], [n[3], n[4], n[5]]))
            })
    }

    /// The cost of one response's usage, in USD, and whether it is an upper bound.
    ///
    /// Cached tokens are billed at the cached rate and taken out of the full-price counts. Where
    /// the usage lacks the text/audio split, tokens are priced as audio (the dearer kind); where
    /// it lacks the cached split, cached tokens are priced at the cached audio rate and taken
    /// from text first (the smaller discount). Either way the estimate is an upper bound.
    pub fn cost(&self, u: &Usage) -> (f64, bool) {
        let mut upper = false;
        let (text_in, audio_in) = match (u.input_text, u.input_audio) {
            (Some(t), Some(a)) => (t, a),
            (t, a) => {
                upper = true;
                let t = t.unwrap_or(0);
                (t, a.unwrap_or(u.input_tokens.saturating_sub(t)))
            }
        };
        let (text_out, audio_out) = match (u.output_text, u.output_audio) {
            (Some(t), Some(a)) => (t, a),
            (t, a) => {
                upper = true;
                let t = t.unwrap_or(0);
                (t, a.unwrap_or(u.output_tokens.saturating_sub(t)))
            }
        };
        let (cached_text, cached_audio, cached_price_text, cached_price_audio) =
            match (u.cached_text, u.cached_audio) {
                (Some(t), Some(a)) => (t, a, self.text_cached, self.audio_cached),
                _ => {
                    let c = u.cached.unwrap_or(0);
                    if c > 0 {
                        upper = true;
                    }
                    let from_text = c.min(text_in);
                    (
                        from_text,
                        c - from_text,
                        self.audio_cached,
                        self.audio_cached,
                    )
                }
            };
        let cached_text = cached_text.min(text_in);
        let cached_audio = cached_audio.min(audio_in);
        let usd = ((text_in - cached_text) as f64 * self.text_input
            + cached_text as f64 * cached_price_text
            + (audio_in - cached_audio) as f64 * self.audio_input
            + cached_audio as f64 * cached_price_audio
            + text_out as f64 * self.text_output
            + audio_out as f64 * self.audio_output)
            / 1_000_000.0;
        (usd, upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_compiled_table_is_the_file_without_its_comments() {
        let file = include_str!("realtime-prices.tsv");
        let data: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(PRICE_TABLE.lines().collect::<Vec<_>>(), data);
        assert!(file.contains('#') && !PRICE_TABLE.contains('#'));
        assert!(data.len() >= 5);
    }

    #[test]
    fn table_by_model_name() {
        assert_eq!(
            Prices::for_model("gpt-realtime-2025-08-28")
                .unwrap()
                .audio_output,
            64.0
        );
        assert_eq!(
            Prices::for_model("gpt-4o-realtime-preview-2024-12-17")
                .unwrap()
                .audio_input,
            40.0
        );
        assert_eq!(
            Prices::for_model("gpt-4o-realtime-preview-2024-10-01")
                .unwrap()
                .audio_cached,
            20.0
        );
        assert_eq!(Prices::for_model("gpt-realtime-mini"), None);
    }

    #[test]
    fn full_split_costs_exactly() {
        // The GA fixture's usage: text 119 (64 cached), audio 13, out text 30, audio 91.
        let u = Usage {
            input_tokens: 132,
            output_tokens: 121,
            input_text: Some(119),
            input_audio: Some(13),
            cached: Some(64),
            cached_text: Some(64),
            cached_audio: Some(0),
            output_text: Some(30),
            output_audio: Some(91),
        };
        let p = Prices::for_model("gpt-realtime").unwrap();
        let want = (55.0 * 4.0 + 64.0 * 0.4 + 13.0 * 32.0 + 30.0 * 16.0 + 91.0 * 64.0) / 1e6;
        let (got, upper) = p.cost(&u);
        assert!(close(got, want), "{got} vs {want}");
        assert!(!upper);
    }

    #[test]
    fn missing_splits_give_an_upper_bound() {
        let p = Prices::for_model("gpt-4o-realtime-preview-2024-10-01").unwrap();
        let u = Usage {
            input_tokens: 20,
            output_tokens: 30,
            ..Usage::default()
        };
        let (got, upper) = p.cost(&u);
        assert!(upper);
        assert!(close(got, (20.0 * 100.0 + 30.0 * 200.0) / 1e6));
        let u2 = Usage {
            input_tokens: 10,
            output_tokens: 0,
            input_text: Some(10),
            input_audio: Some(0),
            cached: Some(4),
            output_text: Some(0),
            output_audio: Some(0),
            ..Usage::default()
        };
        let (c2, up2) = p.cost(&u2);
        assert!(up2);
        assert!(close(c2, (6.0 * 5.0 + 4.0 * 20.0) / 1e6));
    }
}
