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

use std::fmt::{self, Write as _};

use crate::text::{write_parts, Message, Part::*};

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

impl Message for ProtocolError {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match self {
            ProtocolError::FrameTooLarge { len, max } => write_parts(
                out,
                &[
                    S("server frame of "),
                    N(*len as u64),
                    S(" bytes exceeds maxFrameBytes "),
                    N(*max as u64),
                ],
            ),
            ProtocolError::Json(e) => {
                out.write_str("server frame is not valid JSON: ")?;
                e.write_message(out)
            }
            ProtocolError::NotAnObject { found } => write_parts(
                out,
                &[S("server frame is a JSON "), S(found), S(", not an object")],
            ),
            ProtocolError::MissingType => out.write_str("server frame has no \"type\" field"),
            ProtocolError::MissingField { event, field } => write_parts(
                out,
                &[S(event), S(" event lacks the \""), S(field), S("\" field")],
            ),
            ProtocolError::WrongType {
                event,
                field,
                expected,
                found,
            } => write_parts(
                out,
                &[
                    S(event),
                    S(if event.is_empty() { "" } else { ": " }),
                    S("field \""),
                    S(field),
                    S("\" must be a "),
                    S(expected),
                    S(", found "),
                    S(found),
                ],
            ),
            ProtocolError::InvalidAudio { event, reason } => {
                write_parts(out, &[S(event), S(": invalid audio payload: "), S(reason)])
            }
        }
    }
}

crate::text::display_by_message!(ProtocolError);

impl std::error::Error for ProtocolError {}
