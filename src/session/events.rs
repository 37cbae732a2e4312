//! App events: what the app renders (status, mode, transcripts, speech, metrics, errors) and the
//! raw server event stream. Each has a `name()` and a `to_json()` the shell can `JSON.parse`.

use std::fmt;

use super::devices::DeviceChange;
use super::metrics::MetricsSnapshot;
use super::status::{AudioState, Mode, State, Status};
use crate::protocol::json;

/// Who is speaking or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The person.
    User,
    /// The AI.
    Assistant,
}

impl Role {
    /// `user` or `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// The family of an [`AppEvent::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A malformed server frame (the session goes on).
    Protocol,
    /// A server `error` event or a failed transcription.
    Server,
    /// Microphone audio dropped (backlog overflow) or audio could not start.
    Audio,
    /// Text over HTTP failed.
    Http,
    /// The token provider failed.
    Token,
    /// A tool call failed (threw, timed out, unknown tool, result not JSON): the model was
    /// told, the session goes on.
    Tool,
}

impl ErrorKind {
    /// The snake_case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::Server => "server",
            ErrorKind::Audio => "audio",
            ErrorKind::Http => "http",
            ErrorKind::Token => "token",
            ErrorKind::Tool => "tool",
        }
    }
}

/// Where a [`AppEvent::Level`] was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelSource {
    /// The microphone.
    Input = 0,
    /// What the player output.
    Output = 1,
}

/// An event for the app. `Debug` never shows transcript text or raw frames (logs stay clean).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum AppEvent {
    /// The connection status changed (every transition, with reason, close code and attempt).
    Status(Status),
    /// Voice/text mode changed, with the reason (`mic_denied`, `realtime_disabled`, ...).
    Mode {
        /// The new mode.
        mode: Mode,
        /// Why.
        reason: &'static str,
    },
    /// A transcript delta (`is_final: false`) or the whole text of an item (`is_final: true`).
    Transcript {
        /// User or assistant.
        role: Role,
        /// The conversation item.
        item_id: String,
        /// Delta or full text.
        text: String,
        /// True when `text` is the item's complete text.
        is_final: bool,
    },
    /// Someone started or stopped speaking.
    Speech {
        /// User (server VAD) or assistant (playback).
        who: Role,
        /// Started (true) or stopped (false).
        speaking: bool,
    },
    /// Periodic metrics while connected.
    Metrics(Box<MetricsSnapshot>),
    /// Something went wrong that the app may want to show; the session goes on unless a status
    /// event says otherwise.
    Error {
        /// Family.
        kind: ErrorKind,
        /// Stable code (`invalid_json`, `rate_limit_exceeded`, `audio_overflow`, ...).
        code: String,
        /// Human-readable message (never a token or transcript).
        message: String,
    },
    /// The browser's audio changed state. `needs_gesture`: audio is stopped until the user
    /// clicks, taps or presses a key (the client resumes it on that gesture by itself; the app
    /// may prompt for one).
    Audio {
        /// The AudioContext's state.
        state: AudioState,
        /// True while a user gesture is needed to resume.
        needs_gesture: bool,
        /// A device change the session acted on (a microphone reopened, another output).
        device: Option<DeviceChange>,
    },
    /// A level meter reading (`{source, rmsDbfs, peakDbfs}`), throttled by the session.
    Level {
        /// Microphone or player.
        source: LevelSource,
        /// RMS and peak, dBFS.
        level: crate::audio::Level,
    },
    /// A server event, raw, for the app's `event` stream.
    ServerEvent {
        /// Its `type`.
        kind: String,
        /// The frame as received.
        raw: String,
    },
}

impl fmt::Debug for AppEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppEvent::Transcript {
                role,
                item_id,
                text,
                is_final,
            } => f
                .debug_struct("Transcript")
                .field("role", role)
                .field("item_id", item_id)
                .field("text_len", &text.len())
                .field("is_final", is_final)
                .finish(),
            AppEvent::ServerEvent { kind, raw } => f
                .debug_struct("ServerEvent")
                .field("kind", kind)
                .field("raw_len", &raw.len())
                .finish(),
            AppEvent::Status(s) => f.debug_tuple("Status").field(s).finish(),
            AppEvent::Mode { mode, reason } => f
                .debug_struct("Mode")
                .field("mode", mode)
                .field("reason", reason)
                .finish(),
            AppEvent::Speech { who, speaking } => f
                .debug_struct("Speech")
                .field("who", who)
                .field("speaking", speaking)
                .finish(),
            AppEvent::Metrics(m) => f.debug_tuple("Metrics").field(m).finish(),
            AppEvent::Level { source, level } => f
                .debug_struct("Level")
                .field("source", source)
                .field("level", level)
                .finish(),
            AppEvent::Audio {
                state,
                needs_gesture,
                device,
            } => f
                .debug_struct("Audio")
                .field("state", state)
                .field("needs_gesture", needs_gesture)
                .field("device", device)
                .finish(),
            AppEvent::Error {
                kind,
                code,
                message,
            } => f
                .debug_struct("Error")
                .field("kind", kind)
                .field("code", code)
                .field("message", message)
                .finish(),
        }
    }
}

impl AppEvent {
    /// The event name the shell dispatches on: `status`, `mode`, `transcript`, `speech`,
    /// `metrics`, `error`, `audio`, `level` or `event` (raw server events).
    pub fn name(&self) -> &'static str {
        match self {
            AppEvent::Status(_) => "status",
            AppEvent::Mode { .. } => "mode",
            AppEvent::Transcript { .. } => "transcript",
            AppEvent::Speech { .. } => "speech",
            AppEvent::Metrics(_) => "metrics",
            AppEvent::Error { .. } => "error",
            AppEvent::Audio { .. } => "audio",
            AppEvent::Level { .. } => "level",
            AppEvent::ServerEvent { .. } => "event",
        }
    }

    /// The event's payload as a JSON object (camelCase keys) for the app.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(96);
        match self {
            AppEvent::Status(st) => {
                s.push_str("{\"state\":\"");
                s.push_str(st.state.as_str());
                s.push_str("\",\"reason\":");
                match (st.state, st.reason) {
                    (State::Failed(r), _) => {
                        json::write_str(&mut s, r.as_str());
                    }
                    (_, Some(r)) => json::write_str(&mut s, r),
                    (_, None) => s.push_str("null"),
                }
                s.push_str(",\"detail\":");
                match st.reason {
                    Some(r) => json::write_str(&mut s, r),
                    None => s.push_str("null"),
                }
                s.push_str(",\"closeCode\":");
                match st.close_code {
                    Some(c) => json::write_u64(&mut s, u64::from(c)),
                    None => s.push_str("null"),
                }
                s.push_str(",\"attempt\":");
                json::write_u64(&mut s, u64::from(st.attempt));
                s.push('}');
            }
            AppEvent::Mode { mode, reason } => {
                s.push_str("{\"mode\":\"");
                s.push_str(mode.as_str());
                s.push_str("\",\"reason\":");
                json::write_str(&mut s, reason);
                s.push('}');
            }
            AppEvent::Transcript {
                role,
                item_id,
                text,
                is_final,
            } => {
                s.push_str("{\"role\":\"");
                s.push_str(role.as_str());
                s.push_str("\",\"itemId\":");
                json::write_str(&mut s, item_id);
                s.push_str(",\"text\":");
                json::write_str(&mut s, text);
                s.push_str(",\"final\":");
                s.push_str(if *is_final { "true" } else { "false" });
                s.push('}');
            }
            AppEvent::Speech { who, speaking } => {
                s.push_str("{\"who\":\"");
                s.push_str(who.as_str());
                s.push_str("\",\"speaking\":");
                s.push_str(if *speaking { "true" } else { "false" });
                s.push('}');
            }
            AppEvent::Metrics(m) => m.write_json(&mut s),
            AppEvent::Audio {
                state,
                needs_gesture,
                device,
            } => {
                s.push_str("{\"state\":\"");
                s.push_str(state.as_str());
                s.push_str("\",\"needsGesture\":");
                s.push_str(if *needs_gesture { "true" } else { "false" });
                if let Some(d) = device {
                    d.write_fields(&mut s);
                }
                s.push('}');
            }
            AppEvent::Error {
                kind,
                code,
                message,
            } => {
                s.push_str("{\"kind\":\"");
                s.push_str(kind.as_str());
                s.push_str("\",\"code\":");
                json::write_str(&mut s, code);
                s.push_str(",\"message\":");
                json::write_str(&mut s, message);
                s.push('}');
            }
            AppEvent::Level { source, level } => {
                s.push_str("{\"source\":\"");
                s.push_str(match source {
                    LevelSource::Input => "input",
                    LevelSource::Output => "output",
                });
                s.push_str("\",\"rmsDbfs\":");
                json::write_fixed(&mut s, f64::from(level.rms_dbfs), 1);
                s.push_str(",\"peakDbfs\":");
                json::write_fixed(&mut s, f64::from(level.peak_dbfs), 1);
                s.push('}');
            }
            AppEvent::ServerEvent { kind, raw } => {
                s.reserve(raw.len() + kind.len() + 24);
                s.push_str("{\"type\":");
                json::write_str(&mut s, kind);
                // The raw frame is valid JSON (it parsed), so it is embedded as is.
                s.push_str(",\"event\":");
                s.push_str(raw);
                s.push('}');
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::status::FailReason;

    #[test]
    fn json_payloads_parse_and_debug_hides_text() {
        let evs = [
            AppEvent::Status(Status {
                state: State::Failed(FailReason::Auth),
                reason: Some("token_rejected"),
                close_code: Some(1008),
                attempt: 1,
            }),
            AppEvent::Transcript {
                role: Role::User,
                item_id: "i\"1".into(),
                text: "secret words".into(),
                is_final: true,
            },
            AppEvent::ServerEvent {
                kind: "x".into(),
                raw: "{\"type\":\"x\"}".into(),
            },
        ];
        for e in &evs {
            let j = e.to_json();
            assert!(json::parse(&j, 1 << 16).is_ok(), "{j}");
            assert!(!format!("{e:?}").contains("secret"));
        }
        let j = evs[0].to_json();
        assert_eq!(
            j,
            r#"{"state":"failed","reason":"auth","detail":"token_rejected","closeCode":1008,"attempt":1}"#
        );
    }
}
