//! Token usage as OpenAI counts it for realtime audio (user audio 1 token per 100 ms, assistant
//! audio 1 token per 50 ms, text about 4 characters per token) and its cost from the issue-4
//! price table (USD per 1M tokens).

use serde_json::{json, Value};

/// Token counts of one response, mirroring `response.done.response.usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input text tokens (instructions + user text), cached ones included.
    pub input_text: u64,
    /// Input audio tokens (user audio), cached ones included.
    pub input_audio: u64,
    /// Cached input text tokens.
    pub cached_text: u64,
    /// Cached input audio tokens.
    pub cached_audio: u64,
    /// Output text tokens (text replies and audio transcripts).
    pub output_text: u64,
    /// Output audio tokens.
    pub output_audio: u64,
}

/// Tokens for `ms` of user audio: one per 100 ms, rounded up.
pub fn user_audio_tokens(ms: u64) -> u64 {
    ms.div_ceil(100)
}

/// Tokens for `ms` of assistant audio: one per 50 ms, rounded up.
pub fn assistant_audio_tokens(ms: u64) -> u64 {
    ms.div_ceil(50)
}

/// Tokens for a text: one per 4 characters, rounded up.
pub fn text_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

impl Usage {
    /// All input tokens.
    pub fn input_tokens(&self) -> u64 {
        self.input_text + self.input_audio
    }

    /// All output tokens.
    pub fn output_tokens(&self) -> u64 {
        self.output_text + self.output_audio
    }

    /// The `usage` object of `response.done`, in OpenAI's shape.
    pub fn to_json(&self) -> Value {
        json!({
            "total_tokens": self.input_tokens() + self.output_tokens(),
            "input_tokens": self.input_tokens(),
            "output_tokens": self.output_tokens(),
            "input_token_details": {
                "text_tokens": self.input_text,
                "audio_tokens": self.input_audio,
                "image_tokens": 0,
                "cached_tokens": self.cached_text + self.cached_audio,
                "cached_tokens_details": {
                    "text_tokens": self.cached_text,
                    "audio_tokens": self.cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {
                "text_tokens": self.output_text,
                "audio_tokens": self.output_audio,
            },
        })
    }
}

/// Prices in USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Text input.
    pub text_in: f64,
    /// Cached text input.
    pub text_cached: f64,
    /// Text output.
    pub text_out: f64,
    /// Audio input.
    pub audio_in: f64,
    /// Cached audio input.
    pub audio_cached: f64,
    /// Audio output.
    pub audio_out: f64,
}

/// The price table shared with the client (`src/session/realtime-prices.tsv`, the client crate's
/// own file, read here at build time).
pub const PRICE_TABLE: &str = include_str!("../../../src/session/realtime-prices.tsv");

/// The model whose prices apply to models not in the table.
pub const DEFAULT_PRICED_MODEL: &str = "gpt-realtime";

/// The prices of the first line of [`PRICE_TABLE`] matching `model` (exact, or a prefix
/// pattern ending in `*`), or `None`.
pub fn table_prices(model: &str) -> Option<Prices> {
    PRICE_TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(parse_price_line)
        .find(|(pattern, _)| match pattern.strip_suffix('*') {
            Some(prefix) => model.starts_with(prefix),
            None => model == *pattern,
        })
        .map(|(_, p)| p)
}

/// One line of the table: the pattern and its six prices.
fn parse_price_line(line: &str) -> Option<(&str, Prices)> {
    let mut f = line.split_whitespace();
    let pattern = f.next()?;
    let mut n = [0.0; 6];
    for x in &mut n {
        *x = f.next()?.parse().ok()?;
    }
    Some((
        pattern,
        Prices {
            text_in: n[0],
            text_cached: n[1],
            text_out: n[2],
            audio_in: n[3],
            audio_cached: n[4],
            audio_out: n[5],
        },
    ))
}

/// The prices for `model`; unknown models are priced as [`DEFAULT_PRICED_MODEL`] (the dearest
/// guess would overstate a GA session; a missing line is a test failure, not a silent zero).
pub fn prices_for(model: &str) -> Prices {
    table_prices(model)
        .or_else(|| table_prices(DEFAULT_PRICED_MODEL))
        .unwrap_or(Prices {
            text_in: 4.0,
            text_cached: 0.4,
            text_out: 16.0,
            audio_in: 32.0,
            audio_cached: 0.4,
            audio_out: 64.0,
        })
}

/// Cost of `usage` in USD for `model`.
pub fn cost_usd(usage: &Usage, model: &str) -> f64 {
    let p = prices_for(model);
    let m = 1_000_000.0;
    let fresh_text = usage.input_text.saturating_sub(usage.cached_text) as f64;
    let fresh_audio = usage.input_audio.saturating_sub(usage.cached_audio) as f64;
    (fresh_text * p.text_in
        + usage.cached_text as f64 * p.text_cached
        + fresh_audio * p.audio_in
        + usage.cached_audio as f64 * p.audio_cached
        + usage.output_text as f64 * p.text_out
        + usage.output_audio as f64 * p.audio_out)
        / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        assert_eq!(user_audio_tokens(2400), 24);
        assert_eq!(user_audio_tokens(2401), 25);
        assert_eq!(assistant_audio_tokens(1000), 20);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(text_tokens(""), 0);
    }

    #[test]
    fn cost_by_model() {
        let u = Usage {
            input_text: 1_000_000,
            input_audio: 1_000_000,
            output_text: 1_000_000,
            output_audio: 1_000_000,
            ..Usage::default()
        };
        assert!((cost_usd(&u, "gpt-4o-realtime-preview-2024-10-01") - 325.0).abs() < 1e-9);
        assert!((cost_usd(&u, "gpt-4o-realtime-preview-2024-12-17") - 145.0).abs() < 1e-9);
        assert!((cost_usd(&u, "gpt-realtime") - 116.0).abs() < 1e-9);
        let cached = Usage {
            input_text: 10,
            cached_text: 10,
            input_audio: 10,
            cached_audio: 4,
            ..Usage::default()
        };
        let want = (10.0 * 0.4 + 6.0 * 32.0 + 4.0 * 0.4) / 1e6;
        assert!((cost_usd(&cached, "gpt-realtime") - want).abs() < 1e-15);
    }

    #[test]
    fn every_line_of_the_shared_price_table_parses() {
        let lines: Vec<&str> = PRICE_TABLE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(lines.len(), 5);
        for l in lines {
            assert!(parse_price_line(l).is_some(), "{l}");
        }
        assert!(table_prices("gpt-realtime-2025-08-28").is_some());
        assert!(table_prices("gpt-4o-realtime-preview-2024-12-17").is_some());
        assert!(table_prices("whisper-1").is_none());
        assert_eq!(prices_for("whisper-1"), prices_for("gpt-realtime"));
    }

    #[test]
    fn json_shape() {
        let u = Usage {
            input_text: 3,
            input_audio: 24,
            output_text: 5,
            output_audio: 60,
            ..Usage::default()
        };
        let j = u.to_json();
        assert_eq!(j["total_tokens"], 92);
        assert_eq!(j["input_tokens"], 27);
        assert_eq!(j["output_token_details"]["audio_tokens"], 60);
        assert_eq!(j["input_token_details"]["cached_tokens"], 0);
    }
}
