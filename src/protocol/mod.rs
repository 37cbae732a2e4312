//! The OpenAI Realtime event protocol, as spoken with the backend relay: no serde, no browser.
//!
//! - [`json`]: a small strict JSON parser (borrowing, depth- and size-limited) and writer.
//! - [`client`]: the frames we send, in the beta or GA shape ([`ApiShape`]), with exactly
//!   OpenAI's field names and nesting.
//! - [`server`]: frames we receive, parsed once at the edge into [`ServerEvent`]s; both the 2024
//!   beta names and the GA names are read; unknown types pass through as [`ServerEvent::Other`].
//!
//! Malformed frames become a [`ProtocolError`]; the session reports it and goes on.

pub mod client;
pub mod json;
pub mod server;

pub use client::{session_update_frame, ApiShape, ClientEvent, OutputKind, SessionUpdateError};
pub use server::{parse_server_frame, FunctionCall, ServerEvent, ServerFrame, Usage};

use std::fmt;

/// Why a server frame could not be understood.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame exceeds the configured `maxFrameBytes` (checked before parsing).
    FrameTooLarge {
        /// Frame length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The frame is not valid JSON.
    Json(json::JsonError),
    /// The frame is JSON but not an object.
    NotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// The frame has no `type` field.
    MissingType,
    /// A field the event needs is absent.
    MissingField {
        /// The event type (clipped to 64 characters).
        event: String,
        /// The missing field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    WrongType {
        /// The event type (clipped to 64 characters; empty when `type` itself is wrong).
        event: String,
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// An audio delta whose base64 or PCM16 payload is invalid.
    InvalidAudio {
        /// The event type.
        event: String,
        /// The decoder's explanation.
        reason: String,
    },
}

impl ProtocolError {
    /// A stable snake_case code for the app (`error` events carry it).
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::FrameTooLarge { .. } => "frame_too_large",
            ProtocolError::Json(_) => "invalid_json",
            ProtocolError::NotAnObject { .. } => "not_an_object",
            ProtocolError::MissingType => "missing_type",
            ProtocolError::MissingField { .. } => "missing_field",
            ProtocolError::WrongType { .. } => "wrong_field_type",
            ProtocolError::InvalidAudio { .. } => "invalid_audio",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::FrameTooLarge { len, max } => {
                write!(f, "server frame of {len} bytes exceeds maxFrameBytes {max}")
            }
            ProtocolError::Json(e) => write!(f, "server frame is not valid JSON: {e}"),
            ProtocolError::NotAnObject { found } => {
                write!(f, "server frame is a JSON {found}, not an object")
            }
            ProtocolError::MissingType => write!(f, "server frame has no \"type\" field"),
            ProtocolError::MissingField { event, field } => {
                write!(f, "{event} event lacks the \"{field}\" field")
            }
            ProtocolError::WrongType {
                event,
                field,
                expected,
                found,
            } => {
                if event.is_empty() {
                    write!(f, "field \"{field}\" must be a {expected}, found {found}")
                } else {
                    write!(
                        f,
                        "{event}: field \"{field}\" must be a {expected}, found {found}"
                    )
                }
            }
            ProtocolError::InvalidAudio { event, reason } => {
                write!(f, "{event}: invalid audio payload: {reason}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
