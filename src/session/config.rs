//! Session options: parsed and validated from the JSON the web shell passes (the app's JS options
//! object, `JSON.stringify`-ed), so every check is here and natively tested. Errors name the option.

use std::fmt::{self, Write as _};

use crate::text::{concat, write_parts, Message, Part::*};

use super::backoff::Backoff;
use super::cost::Prices;
use super::status::Mode;
use super::url::{BaseUrl, UrlError};
use crate::protocol::json::{self, JsonError, Value};
use crate::protocol::ApiShape;

/// How the token reaches the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthVia {
    /// `?token=<jwt>` on the socket URL (what the backend expects by default).
    Query,
    /// Subprotocols `["realtime", "bearer.<jwt>"]`.
    Subprotocol,
}

/// Where the token comes from.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A fixed token from the options.
    Static(String),
    /// The app's async provider, asked via `Output::RequestToken` before every (re)connect.
    Provider,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("Static(<redacted>)"),
            TokenSource::Provider => f.write_str("Provider"),
        }
    }
}

/// Which server events are forwarded to the app as `ServerEvent` (raw JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEventFilter {
    /// Every server event (default).
    All,
    /// Every event except audio deltas (saves copying ~64 KB/s of base64 to JS).
    NoAudio,
    /// None.
    None,
}

/// Validated session options. Build with [`SessionConfig::from_json`] or [`SessionConfig::new`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The backend's base URL (validated; scheme mapped to ws/wss for the socket).
    pub base: BaseUrl,
    /// The interview id (percent-encoded into the paths).
    pub interview_id: String,
    /// Static token or provider.
    pub token: TokenSource,
    /// Query or subprotocol.
    pub auth_via: AuthVia,
    /// Initial mode.
    pub mode: Mode,
    /// Beta or GA shape of `session.update` / `response.create`.
    pub shape: ApiShape,
    /// Normal chunk length, ms (100..=1000; the backend allows 10 chunks/s).
    pub chunk_ms: u32,
    /// Largest chunk when catching up after a reconnect, ms.
    pub max_chunk_ms: u32,
    /// Mic backlog bound while (re)connecting, ms (at least `max_chunk_ms`); beyond it the oldest
    /// audio is dropped and counted.
    pub max_backlog_ms: u32,
    /// Playback pre-buffer at the start, ms.
    pub prebuffer_ms: u32,
    /// Ceiling of the adaptive pre-buffer, ms: underruns raise the pre-buffer towards it, calm
    /// responses lower it back (equal to `prebuffer_ms` turns adaptation off).
    pub max_prebuffer_ms: u32,
    /// Reconnect attempts before falling back (0 = never reconnect).
    pub max_reconnect_attempts: u32,
    /// Backoff parameters.
    pub backoff: Backoff,
    /// How long a token request plus socket open may take before it counts as a failed attempt.
    pub connect_timeout_ms: u32,
    /// An open link on which a server frame is due (a response in progress, a request
    /// unanswered) or whose sent bytes do not drain for this long is declared dead and
    /// replaced, without waiting for the browser's TCP timeout.
    pub dead_link_timeout_ms: u32,
    /// After a connection, a network outage is retried at least this long (beyond
    /// `max_reconnect_attempts`) before the session gives up.
    pub reconnect_window_ms: u32,
    /// A tool handler that has not answered this long gets a timeout error as its output.
    pub tool_timeout_ms: u32,
    /// Largest server frame accepted (and largest text or session update sent), bytes.
    pub max_frame_bytes: usize,
    /// Send text over HTTP when the socket is unusable.
    pub http_fallback: bool,
    /// Price override (USD per 1M tokens) instead of the table.
    pub prices: Option<Prices>,
    /// Model name override for pricing (else `session.created`'s).
    pub model: Option<String>,
    /// Number of latency samples kept for percentiles.
    pub latency_window: usize,
    /// Period of `metrics` events while connected, ms (0 = none).
    pub metrics_interval_ms: u32,
    /// Allow `ws://`/`http://` to hosts other than localhost.
    pub allow_insecure_transport: bool,
    /// Which server events are forwarded.
    pub server_events: ServerEventFilter,
    /// Shell pass-through: getUserMedia audio constraints as JSON (object), if given.
    pub mic_constraints_json: Option<String>,
    /// Shell pass-through: URL of the capture worklet module.
    pub capture_worklet_url: Option<String>,
    /// Shell pass-through: URL of the playback worklet module.
    pub playback_worklet_url: Option<String>,
    /// Shell pass-through: output device id for `setSinkId`.
    pub sink_id: Option<String>,
    /// Hold back microphone audio that the assistant's own echo explains (`echoGuard` "auto",
    /// the default, "processed" or "raw"; only once an echo path is evidenced, docs/AUDIO.md,
    /// Echo). Off measures only.
    pub echo_guard: bool,
    /// Where the guard judges by a raw capture of the microphone beside the browser's processed
    /// one (with the browser's canceller only): the echo path is found and every decision made
    /// on the raw capture, where the echo follows what is played, while the processed audio is
    /// what the server gets (docs/AUDIO.md, "The raw capture beside the browser's").
    pub echo_guard_raw: RawCapture,
    /// Which echo canceller cleans the microphone (`echoCanceller`, default the browser's).
    pub echo_canceller: EchoCanceller,
    /// Shell pass-through: URL of the opt-in echo canceller's wasm module.
    pub echo_canceller_url: Option<String>,
    /// Turn the assistant down the moment the microphone gets loud over it, so that an echo
    /// canceller lets the user's barge-in through (`bargeInDuck: "auto"`, the default; "off").
    pub barge_in_duck: bool,
}

/// Where the shell opens the microphone a second time, raw, beside the processed capture, for
/// the echo guard to judge by. Where it cannot, the guard judges the processed capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RawCapture {
    /// Never: the guard judges what is sent (`echoGuard: "processed"` or "off").
    Never,
    /// Where the browser is known to keep two captures of one microphone apart: desktop
    /// Chromium, Firefox on Linux and Windows (`echoGuard: "auto"`, the default). Elsewhere a
    /// second request can mute the first capture (WebKit on iOS) or reconfigure the device
    /// under it.
    #[default]
    WhereKnown,
    /// Wherever the browser hands over both tracks with their processing as asked
    /// (`echoGuard: "raw"`).
    WhereGiven,
}

/// Which echo canceller cleans the microphone before the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EchoCanceller {
    /// The browser's (getUserMedia `echoCancellation`, with its noise suppression and gain
    /// control): the default.
    #[default]
    Browser,
    /// WebRTC's AEC3 in the capture worklet, its reference taken from the playback worklet; the
    /// browser's own processing off. A separately loaded module (`aec/`), never in the default
    /// download: for rooms where the browser's canceller lets the agent hear itself.
    Wasm,
    /// None: the microphone raw (the browser's processing off), the echo guard alone holding
    /// the echo back from the first echo on, and no ducker: for speakers in rooms where the
    /// browser's canceller leaks, at the price of barge-in by voice (docs/AUDIO.md, "Raw
    /// capture: the guard alone").
    None,
}

impl EchoCanceller {
    /// `browser` or `wasm`, as in the option and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            EchoCanceller::Browser => "browser",
            EchoCanceller::Wasm => "wasm",
            EchoCanceller::None => "none",
        }
    }
}

/// Why the options were refused; the message names the option.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The options text is not JSON.
    InvalidJson(JsonError),
    /// The options are not a JSON object.
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// A string option is missing, not a string or empty.
    NonEmptyString {
        /// The option.
        option: &'static str,
        /// What was found (`missing`, a JSON type, or `empty string`).
        found: &'static str,
    },
    /// An option has the wrong JSON type.
    WrongType {
        /// The option.
        option: &'static str,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A numeric option is not an integer in its range.
    OutOfRange {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A string option has a value outside its set.
    UnknownValue {
        /// The option.
        option: &'static str,
        /// The value given (clipped).
        value: String,
        /// The allowed values.
        allowed: &'static str,
    },
    /// `baseUrl` is not acceptable.
    InvalidUrl(UrlError),
    /// Options that contradict each other.
    Conflict(&'static str),
    /// An option name this library does not know (typos are caught here).
    UnknownOption {
        /// The name (clipped).
        name: String,
    },
    /// The token contains characters a subprotocol cannot carry.
    TokenNotSubprotocolSafe,
}

impl Message for ConfigError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match self {
            ConfigError::InvalidJson(e) => {
                out.write_str("options are not valid JSON: ")?;
                e.write_message(out)
            }
            ConfigError::NotAnObject { found } => {
                write_parts(out, &[S("options must be an object, got "), S(found)])
            }
            ConfigError::NonEmptyString { option, found } => write_parts(
                out,
                &[S(option), S(" must be a non-empty string (got "), S(found), S(")")],
            ),
            ConfigError::WrongType { option, expected, found } => {
                write_parts(out, &[S(option), S(" must be "), S(expected), S(", got "), S(found)])
            }
            ConfigError::OutOfRange { option, value, min, max } => write_parts(
                out,
                &[
                    S(option),
                    S(" must be an integer from "),
                    N(*min),
                    S(" to "),
                    N(*max),
                    S(", got "),
                    S(value),
                ],
            ),
            ConfigError::UnknownValue { option, value, allowed } => write_parts(
                out,
                &[S(option), S(" must be one of "), S(allowed), S(", got \""), S(value), S("\"")],
            ),
            ConfigError::InvalidUrl(e) => {
                out.write_str("baseUrl ")?;
                e.write_message(out)
            }
            ConfigError::Conflict(m) => out.write_str(m),
            ConfigError::UnknownOption { name } => {
                write_parts(out, &[S("unknown option \""), S(name), S("\"")])
            }
            ConfigError::TokenNotSubprotocolSafe => out.write_str(
                "token contains characters not allowed in a WebSocket subprotocol; use authVia \"query\"",
            ),
        }
    }
}

crate::text::display_by_message!(ConfigError);

impl std::error::Error for ConfigError {}

const KNOWN: &[&str] = &[
    "baseUrl",
    "interviewId",
    "token",
    "tokenProvider",
    "authVia",
    "mode",
    "protocol",
    "chunkMs",
    "maxChunkMs",
    "maxBacklogMs",
    "prebufferMs",
    "maxPrebufferMs",
    "maxReconnectAttempts",
    "backoffBaseMs",
    "backoffMaxMs",
    "connectTimeoutMs",
    "deadLinkTimeoutMs",
    "toolTimeoutMs",
    "reconnectWindowMs",
    "maxFrameBytes",
    "httpFallback",
    "prices",
    "model",
    "latencyWindow",
    "metricsIntervalMs",
    "allowInsecureTransport",
    "serverEvents",
    "micConstraints",
    "captureWorkletUrl",
    "playbackWorkletUrl",
    "sinkId",
    "echoGuard",
    "echoCanceller",
    "echoCancellerUrl",
    "bargeInDuck",
];

/// The largest options text accepted.
const MAX_OPTIONS_BYTES: usize = 64 * 1024;

impl SessionConfig {
    /// Defaults for everything but the three required options.
    pub fn new(
        base_url: &str,
        interview_id: &str,
        token: TokenSource,
    ) -> Result<SessionConfig, ConfigError> {
        let mut o = String::from("{\"baseUrl\":");
        json::write_str(&mut o, base_url);
        o.push_str(",\"interviewId\":");
        json::write_str(&mut o, interview_id);
        match &token {
            TokenSource::Static(t) => {
                o.push_str(",\"token\":");
                json::write_str(&mut o, t);
            }
            TokenSource::Provider => o.push_str(",\"tokenProvider\":true"),
        }
        o.push('}');
        SessionConfig::from_json(&o)
    }

    /// Parses and validates the options object (camelCase keys; see docs/SESSION.md).
    pub fn from_json(text: &str) -> Result<SessionConfig, ConfigError> {
        let v = json::parse(text, MAX_OPTIONS_BYTES).map_err(ConfigError::InvalidJson)?;
        let Value::Object(fields) = &v else {
            return Err(ConfigError::NotAnObject {
                found: v.type_name(),
            });
        };
        for (k, _) in fields {
            if !KNOWN.contains(&k.as_ref()) {
                return Err(ConfigError::UnknownOption {
                    name: k.chars().take(64).collect(),
                });
            }
        }
        // Option errors go to one slot (the first one wins) and the accessors return defaults,
        // instead of a `?` per option with owned strings alive (each cost unwinding code).
        let mut o = Opts { v: &v, err: None };
        let allow_insecure = o.bool("allowInsecureTransport", false);
        let base_url = o.req_str("baseUrl");
        let base = if o.err.is_none() {
            match BaseUrl::parse(base_url, allow_insecure) {
                Ok(b) => Some(b),
                Err(e) => o.fail_none(ConfigError::InvalidUrl(e)),
            }
        } else {
            None
        };
        let interview_id = o.req_str("interviewId");
        if interview_id.len() > 256 {
            o.fail(ConfigError::Conflict(
                "interviewId must be at most 256 bytes",
            ));
        }
        // `.` and `..` would be path segments, not an id (the backend refuses them too).
        if interview_id.bytes().all(|b| b == b'.') {
            o.fail(ConfigError::Conflict(
                "interviewId must not be made only of dots",
            ));
        }
        let provider = o.bool("tokenProvider", false);
        let token = match (o.opt_str("token"), provider) {
            (Some(_), true) => o.fail_none(ConfigError::Conflict(
                "give either token or tokenProvider: true, not both",
            )),
            (Some(t), false) => Some(t),
            (None, true) => None,
            (None, false) => o.fail_none(ConfigError::Conflict(
                "token must be a non-empty string, or tokenProvider must be true",
            )),
        };
        let auth_via = match o.choice(
            "authVia",
            &["query", "subprotocol"],
            "\"query\" or \"subprotocol\"",
        ) {
            Some(1) => AuthVia::Subprotocol,
            _ => AuthVia::Query,
        };
        if let (AuthVia::Subprotocol, Some(t)) = (auth_via, token) {
            if !subprotocol_safe(t) {
                o.fail(ConfigError::TokenNotSubprotocolSafe);
            }
        }
        let mode = match o.choice("mode", &["voice", "text"], "\"voice\" or \"text\"") {
            Some(1) => Mode::Text,
            _ => Mode::Voice,
        };
        let shape = match o.choice("protocol", &["ga", "beta"], "\"ga\" or \"beta\"") {
            Some(1) => ApiShape::Beta,
            _ => ApiShape::Ga,
        };
        let chunk_ms = o.int("chunkMs", 100, 100, 1000) as u32;
        let max_chunk_ms = o.int(
            "maxChunkMs",
            1000.max(u64::from(chunk_ms)),
            u64::from(chunk_ms),
            5000,
        ) as u32;
        let max_backlog_ms = o.int(
            "maxBacklogMs",
            10_000.max(u64::from(max_chunk_ms)),
            u64::from(max_chunk_ms),
            60_000,
        ) as u32;
        let prebuffer_ms = o.int("prebufferMs", 60, 0, 2000) as u32;
        let max_prebuffer_ms = o.int(
            "maxPrebufferMs",
            300.max(u64::from(prebuffer_ms)),
            u64::from(prebuffer_ms),
            2000,
        ) as u32;
        let max_reconnect_attempts = o.int("maxReconnectAttempts", 8, 0, 100) as u32;
        let base_ms = o.int("backoffBaseMs", 250, 10, 60_000);
        let max_ms = o.int("backoffMaxMs", 8000.max(base_ms), base_ms, 300_000);
        let connect_timeout_ms = o.int("connectTimeoutMs", 10_000, 1000, 120_000) as u32;
        let dead_link_timeout_ms = o.int("deadLinkTimeoutMs", 10_000, 2_000, 60_000) as u32;
        let tool_timeout_ms = o.int("toolTimeoutMs", 10_000, 100, 600_000) as u32;
        let reconnect_window_ms = o.int("reconnectWindowMs", 300_000, 0, 3_600_000) as u32;
        let max_frame_bytes = o.int("maxFrameBytes", 4 << 20, 1024, 64 << 20) as usize;
        let http_fallback = o.bool("httpFallback", false);
        let prices = match o.object("prices") {
            Some(p) => match parse_prices(p) {
                Ok(p) => Some(p),
                Err(e) => o.fail_none(e),
            },
            None => None,
        };
        let model = o.opt_str("model");
        let latency_window = o.int("latencyWindow", 256, 1, 4096) as usize;
        let metrics_interval_ms = o.int("metricsIntervalMs", 1000, 0, 60_000) as u32;
        if metrics_interval_ms != 0 && metrics_interval_ms < 100 {
            o.fail(ConfigError::OutOfRange {
                option: "metricsIntervalMs",
                value: concat(&[N(u64::from(metrics_interval_ms))]),
                min: 100,
                max: 60_000,
            });
        }
        let server_events = match o.choice(
            "serverEvents",
            &["all", "no_audio", "none"],
            "\"all\", \"no_audio\" or \"none\"",
        ) {
            Some(0) => ServerEventFilter::All,
            Some(2) => ServerEventFilter::None,
            _ => ServerEventFilter::NoAudio,
        };
        let mic_constraints_json = o.object("micConstraints").map(Value::to_json);
        let capture_worklet_url = o.opt_str("captureWorkletUrl");
        let playback_worklet_url = o.opt_str("playbackWorkletUrl");
        let sink_id = o.opt_str("sinkId");
        let guard = o.choice(
            "echoGuard",
            &["auto", "off", "raw", "processed"],
            "\"auto\", \"off\", \"raw\" or \"processed\"",
        );
        let echo_guard = guard != Some(1);
        let echo_guard_raw = match guard {
            Some(1 | 3) => RawCapture::Never,
            Some(2) => RawCapture::WhereGiven,
            _ => RawCapture::WhereKnown,
        };
        let echo_canceller = match o.choice(
            "echoCanceller",
            &["browser", "wasm", "none"],
            "\"browser\", \"wasm\" or \"none\"",
        ) {
            Some(1) => EchoCanceller::Wasm,
            Some(2) => EchoCanceller::None,
            _ => EchoCanceller::Browser,
        };
        let echo_canceller_url = o.opt_str("echoCancellerUrl");
        let barge_in_duck =
            o.choice("bargeInDuck", &["auto", "off"], "\"auto\" or \"off\"") != Some(1);
        let base = match (base, o.err) {
            (Some(base), None) => base,
            // The slot holds the first error (`base` is only missing after one).
            (_, e) => return Err(e.unwrap_or(ConfigError::Conflict("invalid options"))),
        };
        Ok(SessionConfig {
            base,
            interview_id: interview_id.to_string(),
            token: token.map_or(TokenSource::Provider, |t| {
                TokenSource::Static(t.to_string())
            }),
            auth_via,
            mode,
            shape,
            chunk_ms,
            max_chunk_ms,
            max_backlog_ms,
            prebuffer_ms,
            max_prebuffer_ms,
            max_reconnect_attempts,
            backoff: Backoff { base_ms, max_ms },
            connect_timeout_ms,
            dead_link_timeout_ms,
            reconnect_window_ms,
            tool_timeout_ms,
            max_frame_bytes,
            http_fallback,
            prices,
            model: model.map(str::to_string),
            latency_window,
            metrics_interval_ms,
            allow_insecure_transport: allow_insecure,
            server_events,
            mic_constraints_json,
            capture_worklet_url: capture_worklet_url.map(str::to_string),
            playback_worklet_url: playback_worklet_url.map(str::to_string),
            sink_id: sink_id.map(str::to_string),
            echo_guard,
            echo_guard_raw,
            echo_canceller,
            echo_canceller_url: echo_canceller_url.map(str::to_string),
            barge_in_duck,
        })
    }
}

/// RFC 7230 token characters (what `Sec-WebSocket-Protocol` may carry).
pub(crate) fn subprotocol_safe(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_prices(p: &Value<'_>) -> Result<Prices, ConfigError> {
    const KEYS: [&str; 6] = [
        "textInput",
        "textCachedInput",
        "textOutput",
        "audioInput",
        "audioCachedInput",
        "audioOutput",
    ];
    if let Value::Object(f) = p {
        if let Some((k, _)) = f.iter().find(|(k, _)| !KEYS.contains(&k.as_ref())) {
            return Err(ConfigError::UnknownOption {
                name: "prices.".chars().chain(k.chars().take(64)).collect(),
            });
        }
    }
    let mut vals = [0.0f64; 6];
    for (i, k) in KEYS.iter().enumerate() {
        vals[i] = match p.get(k).and_then(Value::as_f64) {
            Some(x) if x.is_finite() && x >= 0.0 => x,
            _ => {
                return Err(ConfigError::WrongType {
                    option: "prices",
                    expected: "an object with non-negative numbers textInput, textCachedInput, textOutput, audioInput, audioCachedInput, audioOutput (USD per 1M tokens)",
                    found: "something else",
                })
            }
        };
    }
    Ok(Prices {
        text_input: vals[0],
        text_cached: vals[1],
        text_output: vals[2],
        audio_input: vals[3],
        audio_cached: vals[4],
        audio_output: vals[5],
    })
}

/// Typed option access on the parsed object. A wrong option is recorded in `err` (the first
/// one only) and the accessor returns the default, so parsing reads on without early returns.
struct Opts<'v, 'a> {
    v: &'v Value<'a>,
    err: Option<ConfigError>,
}

impl<'v, 'a> Opts<'v, 'a> {
    fn get(&self, k: &str) -> Option<&'v Value<'a>> {
        match self.v.get(k) {
            Some(Value::Null) | None => None,
            Some(v) => Some(v),
        }
    }

    /// Records `e` unless an earlier error is there.
    fn fail(&mut self, e: ConfigError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    /// [`Opts::fail`], then `None` for the caller's value.
    fn fail_none<T>(&mut self, e: ConfigError) -> Option<T> {
        self.fail(e);
        None
    }

    fn req_str(&mut self, option: &'static str) -> &'v str {
        match self.get(option) {
            None => self
                .fail_none(ConfigError::NonEmptyString {
                    option,
                    found: "missing",
                })
                .unwrap_or(""),
            Some(_) => self.opt_str(option).unwrap_or(""),
        }
    }

    fn opt_str(&mut self, option: &'static str) -> Option<&'v str> {
        let found = match self.get(option)? {
            Value::String(s) if !s.is_empty() => return Some(s.as_ref()),
            Value::String(_) => "empty string",
            other => other.type_name(),
        };
        self.fail_none(ConfigError::NonEmptyString { option, found })
    }

    fn bool(&mut self, option: &'static str, default: bool) -> bool {
        match self.get(option) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let found = other.type_name();
                self.fail_none(ConfigError::WrongType {
                    option,
                    expected: "true or false",
                    found,
                })
                .unwrap_or(default)
            }
        }
    }

    fn int(&mut self, option: &'static str, default: u64, min: u64, max: u64) -> u64 {
        let e = match self.get(option) {
            None => return default,
            Some(v @ Value::Number(text)) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => return n,
                _ => ConfigError::OutOfRange {
                    option,
                    value: text.chars().take(32).collect(),
                    min,
                    max,
                },
            },
            Some(other) => ConfigError::WrongType {
                option,
                expected: "a number",
                found: other.type_name(),
            },
        };
        self.fail_none(e).unwrap_or(default)
    }

    fn choice(
        &mut self,
        option: &'static str,
        values: &[&str],
        allowed: &'static str,
    ) -> Option<usize> {
        let e = match self.get(option)? {
            Value::String(s) => match values.iter().position(|v| v == s) {
                Some(i) => return Some(i),
                None => ConfigError::UnknownValue {
                    option,
                    value: s.chars().take(64).collect(),
                    allowed,
                },
            },
            other => ConfigError::WrongType {
                option,
                expected: allowed,
                found: other.type_name(),
            },
        };
        self.fail_none(e)
    }

    /// An object option (absent and `null` are `None`).
    fn object(&mut self, option: &'static str) -> Option<&'v Value<'a>> {
        match self.get(option)? {
            o @ Value::Object(_) => Some(o),
            other => {
                let found = other.type_name();
                self.fail_none(ConfigError::WrongType {
                    option,
                    expected: "an object",
                    found,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(j: &str) -> String {
        SessionConfig::from_json(j).unwrap_err().to_string()
    }

    #[test]
    fn the_first_wrong_option_in_reading_order_is_reported() {
        assert_eq!(
            err(r#"{"chunkMs":7,"interviewId":"","token":"t"}"#),
            "baseUrl must be a non-empty string (got missing)"
        );
        assert_eq!(
            err(
                r#"{"baseUrl":"https://a.example","interviewId":"i","token":"t","chunkMs":7,"sinkId":3}"#
            ),
            "chunkMs must be an integer from 100 to 1000, got 7"
        );
        assert_eq!(
            err(r#"{"baseUrl":"ftp://a","interviewId":"..","token":"t","tokenProvider":true}"#),
            "baseUrl must start with https://, wss://, http:// or ws://"
        );
        assert_eq!(
            err(
                r#"{"baseUrl":"https://a.example","interviewId":"..","token":"t","tokenProvider":true}"#
            ),
            "interviewId must not be made only of dots"
        );
    }

    #[test]
    fn minimal_options_get_defaults() {
        let c = SessionConfig::from_json(
            r#"{"baseUrl":"https://x.example","interviewId":"42","token":"t.k.n"}"#,
        )
        .unwrap();
        assert_eq!(c.chunk_ms, 100);
        assert_eq!(c.max_backlog_ms, 10_000);
        assert_eq!(c.max_reconnect_attempts, 8);
        assert_eq!(
            c.backoff,
            Backoff {
                base_ms: 250,
                max_ms: 8000
            }
        );
        assert_eq!(c.auth_via, AuthVia::Query);
        assert_eq!(c.mode, Mode::Voice);
        assert_eq!(c.shape, ApiShape::Ga);
        assert!(
            !format!("{c:?}").contains("t.k.n"),
            "token leaked into Debug"
        );
    }

    #[test]
    fn messages_name_the_option() {
        assert_eq!(
            err(r#"{"baseUrl":"https://x","interviewId":"","token":"t"}"#),
            "interviewId must be a non-empty string (got empty string)"
        );
        assert_eq!(
            err(r#"{"baseUrl":"https://x","interviewId":"..","token":"t"}"#),
            "interviewId must not be made only of dots"
        );
        assert_eq!(
            err(r#"{"baseUrl":"https://x","interviewId":7,"token":"t"}"#),
            "interviewId must be a non-empty string (got number)"
        );
        assert!(
            err(r#"{"baseUrl":"ws://evil.com","interviewId":"a","token":"t"}"#)
                .contains("allowInsecureTransport")
        );
        assert!(SessionConfig::from_json(r#"{"baseUrl":"ws://evil.com","interviewId":"a","token":"t","allowInsecureTransport":true}"#).is_ok());
        assert_eq!(
            err(r#"{"baseUrl":"https://x","interviewId":"a","token":"t","chunkMs":50}"#),
            "chunkMs must be an integer from 100 to 1000, got 50"
        );
        assert_eq!(
            err(r#"{"baseUrl":"https://x","interviewId":"a","token":"t","mode":"video"}"#),
            "mode must be one of \"voice\" or \"text\", got \"video\""
        );
        assert!(err(r#"{"baseUrl":"https://x","interviewId":"a"}"#).contains("tokenProvider"));
        assert!(err(
            r#"{"baseUrl":"https://x","interviewId":"a","token":"t","tokenProvider":true}"#
        )
        .contains("not both"));
        assert_eq!(
            err(r#"{"baseUrl":"https://x","interviewId":"a","token":"t","chunkMS":100}"#),
            "unknown option \"chunkMS\""
        );
        assert!(err(
            r#"{"baseUrl":"https://x","interviewId":"a","token":"a b","authVia":"subprotocol"}"#
        )
        .contains("subprotocol"));
        assert!(err("[]").contains("object"));
        assert!(err("{").contains("JSON"));
    }

    #[test]
    fn prices_override() {
        let c = SessionConfig::from_json(
            r#"{"baseUrl":"https://x","interviewId":"a","tokenProvider":true,"prices":{"textInput":1,"textCachedInput":0.5,"textOutput":2,"audioInput":3,"audioCachedInput":0.5,"audioOutput":4}}"#,
        )
        .unwrap();
        assert_eq!(c.prices.unwrap().audio_output, 4.0);
        assert_eq!(c.token, TokenSource::Provider);
        assert!(err(
            r#"{"baseUrl":"https://x","interviewId":"a","token":"t","prices":{"textInput":1}}"#
        )
        .contains("prices"));
    }
}
