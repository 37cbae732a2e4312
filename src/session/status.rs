//! Connection states, failure reasons and the voice/text mode, as the app sees them.

/// Why the session failed for good (no automatic retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailReason {
    /// The token was refused (close 1008 twice, or the token provider failed).
    Auth,
    /// Another connection to the same interview is live (close 4409, or the shell's Web Lock).
    Busy,
    /// Realtime is disabled (4403) or audio failed, and no text transport is configured.
    Unsupported,
    /// The network kept failing until the reconnect attempts ran out (no HTTP fallback).
    Network,
    /// The server kept failing (1011/1013/4429) until the attempts ran out (no HTTP fallback).
    Server,
}

impl FailReason {
    /// The snake_case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Auth => "auth",
            FailReason::Busy => "busy",
            FailReason::Unsupported => "unsupported",
            FailReason::Network => "network",
            FailReason::Server => "server",
        }
    }
}

/// The connection state machine's state.
///
/// `idle → connecting → connected ⇄ reconnecting → closed`, plus `text` (realtime unusable, text
/// over HTTP) and `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Before `connect`.
    Idle,
    /// First connection in progress (token request, socket opening).
    Connecting,
    /// The socket is open.
    Connected,
    /// The connection dropped; waiting for or making a new attempt.
    Reconnecting,
    /// Realtime is unusable; text goes over HTTP (`httpFallback`).
    Text,
    /// Ended by `disconnect` or a normal close from the server.
    Closed,
    /// Ended by an error that retrying will not fix.
    Failed(FailReason),
}

impl State {
    /// The snake_case name used in events (`failed` for every failure; the reason is separate).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Reconnecting => "reconnecting",
            State::Text => "text",
            State::Closed => "closed",
            State::Failed(_) => "failed",
        }
    }
}

/// Whether the conversation is spoken or typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Microphone and playback run; text can still be sent.
    Voice,
    /// No audio; text over the socket or HTTP.
    Text,
}

impl Mode {
    /// The snake_case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Voice => "voice",
            Mode::Text => "text",
        }
    }
}

/// The current status: state plus the reason, close code and attempt number of the last change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state.
    pub state: State,
    /// Why it changed (snake_case, e.g. `server_closed`, `reconnect_exhausted`).
    pub reason: Option<&'static str>,
    /// The close code that caused it, if any.
    pub close_code: Option<u16>,
    /// The reconnect attempt number (0 for the first connection).
    pub attempt: u32,
}

/// The browser's audio state (the AudioContext's `state`), as the shell reports it. Safari adds
/// `interrupted` (a phone call, another app taking the audio session); every browser may suspend
/// a context that started outside a user gesture or ran in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioState {
    /// Audio flows.
    Running,
    /// Stopped until resumed; most browsers resume only inside a user gesture.
    Suspended,
    /// Safari: taken away by the system; resumable after the interruption, in a gesture.
    Interrupted,
    /// The context is gone.
    Closed,
}

impl AudioState {
    /// Parses the browser's `AudioContext.state` string (unknown strings are `None`).
    pub fn from_browser(state: &str) -> Option<AudioState> {
        match state {
            "running" => Some(AudioState::Running),
            "suspended" => Some(AudioState::Suspended),
            "interrupted" => Some(AudioState::Interrupted),
            "closed" => Some(AudioState::Closed),
            _ => None,
        }
    }

    /// The snake_case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioState::Running => "running",
            AudioState::Suspended => "suspended",
            AudioState::Interrupted => "interrupted",
            AudioState::Closed => "closed",
        }
    }
}
