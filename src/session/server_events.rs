//! Server frames: parsed once at the edge, then routed to the parts they concern (playback,
//! transcripts, barge-in, usage, errors, the link's liveness).

use super::config::ServerEventFilter;
use super::connection::Link;
use super::cost::Prices;
use super::events::{AppEvent, ErrorKind, Role};
use super::machine::Session;
use crate::protocol::{parse_server_frame, ServerEvent, Usage};
use crate::text::{concat, Message, Part::*};

impl Session {
    /// A text frame arrived. Malformed frames become an `error` event; the session goes on.
    pub fn handle_socket_message(&mut self, now_ms: u64, text: &str) {
        self.last_now = now_ms;
        if !matches!(self.link, Link::Open(_) | Link::Handshaking { .. }) {
            return;
        }
        self.snap.frames_received += 1;
        let frame = match parse_server_frame(text, self.cfg.max_frame_bytes) {
            Ok(f) => f,
            Err(e) => {
                self.snap.protocol_errors += 1;
                self.error(ErrorKind::Protocol, e.code(), e.message());
                // Still a sign of life.
                self.frame_arrived(now_ms);
                return;
            }
        };
        self.established(now_ms);
        let forward = self.raw_events_wanted
            && match self.cfg.server_events {
                ServerEventFilter::All => true,
                ServerEventFilter::NoAudio => {
                    !matches!(frame.event, ServerEvent::AudioDelta { .. })
                }
                ServerEventFilter::None => false,
            };
        if forward {
            self.push_lossy_event(AppEvent::ServerEvent {
                kind: frame.kind.to_string(),
                raw: text.to_string(),
            });
        }
        self.on_server_event(now_ms, &frame.kind, frame.event);
        self.frame_arrived(now_ms);
    }

    /// A binary frame of `len` bytes arrived: the protocol is JSON text, so it is a protocol
    /// error (`binary_frame`, counted in `protocolErrors`) and the session goes on.
    pub fn handle_socket_binary(&mut self, now_ms: u64, len: usize) {
        if !matches!(self.link, Link::Open(_) | Link::Handshaking { .. }) {
            return;
        }
        self.snap.frames_received += 1;
        self.snap.protocol_errors += 1;
        self.error(
            ErrorKind::Protocol,
            "binary_frame",
            concat(&[
                S("ignored a binary frame of "),
                N(len as u64),
                S(" bytes: the protocol is JSON text"),
            ]),
        );
        self.frame_arrived(now_ms);
    }

    fn on_server_event(&mut self, now_ms: u64, kind: &str, ev: ServerEvent<'_>) {
        match ev {
            ServerEvent::Session {
                updated,
                model,
                id,
                interrupts,
            } => {
                if let Some(i) = interrupts {
                    self.learn_server_interrupts(i);
                }
                if let (false, Some(id)) = (updated, id.as_deref()) {
                    self.learn_session_id(id);
                }
                if let (false, Some(m), None) = (updated, model, &self.cfg.model) {
                    self.prices = self.cfg.prices.or_else(|| Prices::for_model(&m));
                    self.snap.model = Some(m.chars().take(128).collect());
                }
            }
            ServerEvent::AudioDelta { item_id, delta, .. } => {
                self.on_audio_delta(now_ms, kind, &item_id, &delta)
            }
            ServerEvent::AudioDone { item_id } => self.on_audio_done(&item_id),
            ServerEvent::AssistantText {
                item_id,
                text,
                done,
            } => {
                self.push_event(AppEvent::Transcript {
                    role: Role::Assistant,
                    item_id: item_id.into_owned(),
                    text: text.into_owned(),
                    is_final: done,
                });
            }
            ServerEvent::UserTranscript {
                item_id,
                text,
                done,
            } => {
                self.push_event(AppEvent::Transcript {
                    role: Role::User,
                    item_id: item_id.into_owned(),
                    text: text.into_owned(),
                    is_final: done,
                });
            }
            ServerEvent::UserTranscriptFailed { code, message, .. } => {
                let code = code
                    .as_deref()
                    .unwrap_or("transcription_failed")
                    .to_string();
                let message = message
                    .as_deref()
                    .unwrap_or("transcription failed")
                    .to_string();
                self.error(ErrorKind::Server, &code, message);
            }
            ServerEvent::SpeechStarted { .. } => {
                self.echo.guard.speech_started(self.play.assistant_speaking);
                // The turn the server's VAD starts ends in a response that sees a waiting text
                // message; asking for one now would answer while the user still speaks.
                self.response_owed = false;
                self.push_event(AppEvent::Speech {
                    who: Role::User,
                    speaking: true,
                });
                self.barge_in(now_ms, false);
            }
            ServerEvent::SpeechStopped { .. } => {
                self.push_event(AppEvent::Speech {
                    who: Role::User,
                    speaking: false,
                });
                self.latency_mark = Some(now_ms);
            }
            ServerEvent::Committed { .. } if self.latency_mark.is_none() => {
                self.latency_mark = Some(now_ms);
            }
            ServerEvent::ResponseCreated { response_id } => {
                self.response_active =
                    Some(response_id.map(|r| r.into_owned()).unwrap_or_default());
                // This response sees the text message that waited: it answers it.
                self.response_owed = false;
            }
            ServerEvent::ResponseDone {
                usage,
                calls,
                response_id,
                ..
            } => {
                self.response_active = None;
                if let Some(u) = usage {
                    self.add_usage(&u);
                }
                self.tools_response_done(now_ms, response_id.as_deref(), calls);
                if self.response_owed && !self.tools.waiting() {
                    self.create_response();
                }
            }
            ServerEvent::FunctionCall {
                response_id,
                call,
                done,
            } => self.on_function_call(now_ms, response_id.as_deref(), call, done),
            ServerEvent::Error {
                code,
                message,
                kind,
            } => {
                let code = code
                    .as_deref()
                    .or(kind.as_deref())
                    .unwrap_or("server_error")
                    .to_string();
                let message = message
                    .as_deref()
                    .unwrap_or("server error")
                    .chars()
                    .take(500)
                    .collect();
                if code == "conversation_already_has_active_response" {
                    // Ours came while a response we had not heard of yet was starting (or still
                    // being cancelled): asked for again once it is done.
                    self.response_owed = true;
                }
                self.error(ErrorKind::Server, &code, message);
            }
            _ => {}
        }
    }

    fn add_usage(&mut self, u: &Usage) {
        self.snap.input_tokens += u.input_tokens;
        self.snap.output_tokens += u.output_tokens;
        match self.prices {
            Some(p) => {
                let (usd, upper) = p.cost(u);
                self.snap.cost_usd += usd;
                self.snap.cost_is_upper_bound |= upper;
            }
            None => self.snap.cost_unknown_model = true,
        }
    }
}
