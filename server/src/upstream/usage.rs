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

/// The price table of issue 4, by model name. Unknown models are priced as `gpt-realtime`.
pub fn prices_for(model: &str) -> Prices {
    if model.starts_with("gpt-4o-realtime-preview-2024-10-01") {
        Prices {
            text_in: 5.0,
            text_cached: 2.5,
            text_out: 20.0,
            audio_in: 100.0,
            audio_cached: 20.0,
            audio_out: 200.0,
        }
    } else if model.starts_with("gpt-4o-realtime-preview") {
        Prices {
            text_in: 5.0,
            text_cached: 2.5,
            text_out: 20.0,
            audio_in: 40.0,
            audio_cached: 2.5,
            audio_out: 80.0,
        }
    } else {
        Prices {
            text_in: 4.0,
            text_cached: 0.4,
            text_out: 16.0,
            audio_in: 32.0,
            audio_cached: 0.4,
            audio_out: 64.0,
        }
    }
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
