//! What the session asks the web shell to do ([`Output`]), and the typed inputs and errors of its
//! commands ([`AudioFailure`], [`HttpFailure`], [`CommandError`]).

use std::fmt::{self, Write as _};

use super::events::AppEvent;
use super::status::State;
use super::url::redact;
use crate::protocol::SessionUpdateError;
use crate::text::{concat, write_parts, Message, Part::*};

/// One thing for the shell to do. Drain with `Session::poll_output` until `None`, in order.
///
/// `Debug` redacts: socket URLs lose their query, subprotocol tokens and HTTP tokens are hidden,
/// frames and PCM show only their size.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Call the app's token provider, then `handle_token`.
    RequestToken,
    /// Open a WebSocket (`new WebSocket(url, protocols)`), then report `handle_socket_*`.
    /// Any previous socket is already gone (a `CloseSocket` came first).
    OpenSocket {
        /// The URL (may carry `?token=`: never log it; `Debug` redacts it).
        url: String,
        /// Subprotocols (empty, or `["realtime", "bearer.<jwt>"]`).
        protocols: Vec<String>,
    },
    /// Send one text frame on the open socket.
    Send(String),
    /// Close the socket with this code and reason and detach its handlers (its close is not
    /// reported back).
    CloseSocket {
        /// 1000 or 4000–4999.
        code: u16,
        /// Short snake_case reason.
        reason: &'static str,
    },
    /// Start the microphone and playback (voice mode), then `handle_playback_started` once the
    /// player is up and `handle_audio_started` with the microphone's format (or `_failed`).
    StartAudio,
    /// Stop the microphone and playback.
    StopAudio,
    /// Open the microphone `device_id` (`None`: the browser's default) and feed it to the
    /// running capture path in place of the current one, then `handle_mic_opened` or
    /// `handle_mic_open_failed` with the same `seq` (playback is not touched).
    OpenMic {
        /// The device (`getUserMedia` with `deviceId: {exact}`), or the default.
        device_id: Option<String>,
        /// Tag of this request: pass it back (answers to older ones are ignored).
        seq: u64,
    },
    /// Play the AI's voice on the output `device_id` (`setSinkId`; `None`: the default), then
    /// `handle_sink_failed` if the browser refuses it.
    SetSink {
        /// The output device, or the default.
        device_id: Option<String>,
    },
    /// Queue mono samples, already at the player's rate (`handle_playback_started`), for
    /// playback of an assistant item; the player reports `handle_playback_progress`,
    /// `handle_playback_finished` and `handle_playback_overflow` in frames of that rate, and
    /// `handle_output_level`. Give the `Vec` back with `Session::recycle` to reuse it.
    Play {
        /// The player's number for the assistant item (never 0; `Session::player_slot`).
        item: u32,
        /// Samples, f32 in [-1, 1], at the player's rate.
        samples: Vec<f32>,
        /// The pitch period at their end, in frames: if the player runs dry right after them
        /// before the item's end (a late delta), it repeats that period, fading out, until more
        /// comes, and crossfades into it; 0 (unvoiced or silent) fades out instead.
        period: u32,
    },
    /// No more audio will come for this assistant item: the player plays its tail even before
    /// the playout delay has passed, and running dry after it is not an underrun.
    EndOfItem {
        /// The player's number for the assistant item.
        item: u32,
    },
    /// Set the player's playout delay: how long it waits after an item's first audio arrives
    /// (or after running dry in its middle) before playing it. Learnt by the session from the
    /// audio's arrival jitter; applied from the next time the player starts or refills.
    SetPrebuffer {
        /// The delay, ms.
        ms: u32,
    },
    /// Resume the AudioContext (and the output element): at once when `on_gesture` is false,
    /// else on the user's next click, tap or key press (the only time Safari and a suspended
    /// autoplay-blocked context allow it).
    ResumeAudio {
        /// Wait for the next user gesture.
        on_gesture: bool,
    },
    /// Turn the assistant's voice down `db` dB (0: back to full level), quickly down and slowly
    /// up: the user seems to talk over it (option `bargeInDuck`). A new player starts at full
    /// level.
    DuckPlayback {
        /// How far down, dB; 0 for full level.
        db: u32,
    },
    /// Drop all queued playback after a fade of `ramp_ms` (barge-in).
    FlushPlayback {
        /// Fade length, ms.
        ramp_ms: u32,
    },
    /// POST `body_json` to `url` with `Authorization: Bearer <token>`, then
    /// `handle_http_reply` with the same `seq` (a reply for any other `seq` is stale and
    /// ignored). The session enforces its own deadline (`HTTP_TIMEOUT_MS`).
    HttpText {
        /// `{base}/api/v1/interviews/{id}/messages`.
        url: String,
        /// The bearer token (`Debug` hides it).
        token: String,
        /// `{"text": "..."}`.
        body_json: String,
        /// Tag of this request: pass it back to `handle_http_reply`.
        seq: u64,
    },
    /// Run the app's handler of tool `name` with `arguments` (JSON text), then
    /// `handle_tool_result` with the same `call_id`. The session enforces `toolTimeoutMs`.
    ToolCall {
        /// The call (pass it back).
        call_id: String,
        /// A tool the app registered.
        name: String,
        /// The model's arguments, JSON text.
        arguments: String,
    },
    /// An event for the app.
    Event(AppEvent),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::RequestToken => f.write_str("RequestToken"),
            Output::OpenSocket { url, protocols } => {
                let protos: Vec<&str> = protocols
                    .iter()
                    .map(|p| {
                        if p.starts_with("bearer.") {
                            "bearer.<redacted>"
                        } else {
                            p.as_str()
                        }
                    })
                    .collect();
                f.debug_struct("OpenSocket")
                    .field("url", &redact(url))
                    .field("protocols", &protos)
                    .finish()
            }
            Output::Send(frame) => f.debug_struct("Send").field("len", &frame.len()).finish(),
            Output::CloseSocket { code, reason } => f
                .debug_struct("CloseSocket")
                .field("code", code)
                .field("reason", reason)
                .finish(),
            Output::StartAudio => f.write_str("StartAudio"),
            Output::StopAudio => f.write_str("StopAudio"),
            Output::OpenMic { device_id, seq } => f
                .debug_struct("OpenMic")
                .field("device_id", device_id)
                .field("seq", seq)
                .finish(),
            Output::SetSink { device_id } => f
                .debug_struct("SetSink")
                .field("device_id", device_id)
                .finish(),
            Output::Play {
                item,
                samples,
                period,
            } => f
                .debug_struct("Play")
                .field("item", item)
                .field("samples", &samples.len())
                .field("period", period)
                .finish(),
            Output::EndOfItem { item } => f.debug_struct("EndOfItem").field("item", item).finish(),
            Output::SetPrebuffer { ms } => f.debug_struct("SetPrebuffer").field("ms", ms).finish(),
            Output::ResumeAudio { on_gesture } => f
                .debug_struct("ResumeAudio")
                .field("on_gesture", on_gesture)
                .finish(),
            Output::DuckPlayback { db } => f.debug_struct("DuckPlayback").field("db", db).finish(),
            Output::FlushPlayback { ramp_ms } => f
                .debug_struct("FlushPlayback")
                .field("ramp_ms", ramp_ms)
                .finish(),
            Output::HttpText {
                url,
                body_json,
                seq,
                ..
            } => f
                .debug_struct("HttpText")
                .field("url", &redact(url))
                .field("token", &"<redacted>")
                .field("body_len", &body_json.len())
                .field("seq", seq)
                .finish(),
            Output::ToolCall {
                call_id,
                name,
                arguments,
            } => f
                .debug_struct("ToolCall")
                .field("call_id", call_id)
                .field("name", name)
                .field("arguments_len", &arguments.len())
                .finish(),
            Output::Event(e) => f.debug_tuple("Event").field(e).finish(),
        }
    }
}

/// Why the shell could not start audio or open a microphone (given to `handle_audio_failed`,
/// each one triggers the text fallback; given to `handle_mic_open_failed`, a retry may follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioFailure {
    /// getUserMedia was refused (`NotAllowedError`).
    MicDenied,
    /// No microphone (`NotFoundError`, `OverconstrainedError`).
    MicAbsent,
    /// `AudioWorklet` is not available (old browser, insecure context).
    NoAudioWorklet,
    /// The AudioContext could not be created or resumed.
    AudioContextFailed,
    /// The microphone track ended (unplugged, revoked).
    TrackEnded,
    /// Anything else.
    Other,
}

impl AudioFailure {
    /// The snake_case reason used on the `mode` event.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioFailure::MicDenied => "mic_denied",
            AudioFailure::MicAbsent => "mic_absent",
            AudioFailure::NoAudioWorklet => "no_audio_worklet",
            AudioFailure::AudioContextFailed => "audio_context_failed",
            AudioFailure::TrackEnded => "track_ended",
            AudioFailure::Other => "audio_failed",
        }
    }
}

/// Why the token provider gave no token. The shell tells a network failure (the provider's
/// own `fetch` rejected with a `TypeError`, or it took too long) from a refusal (anything else),
/// because an outage must be retried, never shown as an authentication failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFailure {
    /// The provider could not reach its endpoint.
    Network(String),
    /// The provider did not answer in time.
    Timeout,
    /// The provider refused or returned no usable token.
    Refused(String),
}

impl TokenFailure {
    /// The provider's message (never a token).
    pub fn message(&self) -> &str {
        match self {
            TokenFailure::Network(m) | TokenFailure::Refused(m) => m,
            TokenFailure::Timeout => "the token provider did not answer in time",
        }
    }
}

/// Why an HTTP text request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpFailure {
    /// `fetch` rejected (offline, DNS, CORS).
    Network,
    /// The server answered with a non-2xx status.
    Status(u16),
    /// No reply within the deadline (the session's `HTTP_TIMEOUT_MS`, or the shell's own).
    Timeout,
}

impl HttpFailure {
    /// A stable code for the `error` event.
    pub fn code(&self) -> String {
        match self {
            HttpFailure::Network => "http_network".into(),
            HttpFailure::Status(s) => concat(&[S("http_"), N(u64::from(*s))]),
            HttpFailure::Timeout => "http_timeout".into(),
        }
    }
}

/// Why a command was refused (a caller mistake or a state where it cannot work; never a panic).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CommandError {
    /// No usable transport for text: the socket is not open and HTTP fallback is not configured
    /// (or the session is idle/closed/failed).
    NoTextTransport {
        /// The state at the time.
        state: State,
    },
    /// The text would make a frame over `maxFrameBytes`.
    TooLong {
        /// Bytes of text.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// The HTTP text queue is full (16 messages waiting).
    QueueFull,
    /// `update_session` got JSON that is not an object.
    InvalidSessionUpdate(SessionUpdateError),
    /// `set_tools` got definitions that are not an array of `{name, description?, parameters?}`.
    InvalidTools(String),
    /// `send_event` got something that is not a JSON object with a string `type`, or too large.
    InvalidEvent(String),
    /// The command needs an open connection.
    NotConnected {
        /// The state at the time.
        state: State,
    },
}

impl Message for CommandError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match self {
            CommandError::NoTextTransport { state } => write_parts(
                out,
                &[
                    S("cannot send text while "),
                    S(state.as_str()),
                    S(": the socket is not open and httpFallback is off"),
                ],
            ),
            CommandError::TooLong { len, max } => write_parts(
                out,
                &[
                    S("text of "),
                    N(*len as u64),
                    S(" bytes exceeds the limit of "),
                    N(*max as u64),
                    S(" bytes"),
                ],
            ),
            CommandError::QueueFull => {
                out.write_str("too many text messages waiting for HTTP replies")
            }
            CommandError::InvalidSessionUpdate(e) => e.write_message(out),
            CommandError::InvalidTools(why) => {
                write_parts(out, &[S("invalid tool definitions: "), S(why)])
            }
            CommandError::InvalidEvent(why) => {
                write_parts(out, &[S("invalid client event: "), S(why)])
            }
            CommandError::NotConnected { state } => {
                write_parts(out, &[S("cannot send an event while "), S(state.as_str())])
            }
        }
    }
}

crate::text::display_by_message!(CommandError);

impl std::error::Error for CommandError {}
