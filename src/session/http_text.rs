//! Text over HTTP (`POST …/messages`) when realtime is unusable: a bounded queue, one request
//! in flight with its tag and deadline, replies shown as transcripts.

use std::collections::VecDeque;

use super::config::TokenSource;
use super::events::{AppEvent, ErrorKind, Role};
use super::machine::Session;
use super::output::{HttpFailure, Output};
use crate::protocol::json;
use crate::text::{concat, Part::*};

/// An HTTP text request without a reply this long fails as `HttpFailure::Timeout`.
pub const HTTP_TIMEOUT_MS: u64 = 30_000;
/// Text messages that may wait for the HTTP transport.
pub(super) const HTTP_QUEUE: usize = 16;

/// The HTTP text request in flight: its tag and its deadline.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    deadline: u64,
}

/// The HTTP text transport's state.
#[derive(Debug, Default)]
pub(super) struct HttpText {
    /// Request bodies waiting (the front one is in flight when `in_flight` is set).
    pub queue: VecDeque<String>,
    in_flight: Option<InFlight>,
    /// Tag of the last `Output::HttpText` (every request gets a new one).
    seq: u64,
    /// Replies shown so far (`http_<n>` transcript item ids).
    replies: u64,
}

impl HttpText {
    /// When the request in flight times out.
    pub fn deadline(&self) -> Option<u64> {
        self.in_flight.map(|h| h.deadline)
    }
}

impl Session {
    /// The reply to the `Output::HttpText` tagged `seq`: `Ok(body)` with `{"reply": "..."}`,
    /// or the failure. A reply for any other `seq` (stale: after a disconnect, a failed token,
    /// a timeout) is ignored.
    pub fn handle_http_reply(&mut self, now_ms: u64, seq: u64, reply: Result<String, HttpFailure>) {
        if self.http.in_flight.is_some_and(|h| h.seq == seq) {
            self.finish_http(now_ms, reply);
        }
    }

    /// Queues a `{"text": …}` body and sends it when the transport is free.
    pub(super) fn queue_http(&mut self, now_ms: u64, text: &str) {
        let mut body = String::with_capacity(text.len() + 12);
        body.push_str("{\"text\":");
        json::write_str(&mut body, text);
        body.push('}');
        self.http.queue.push_back(body);
        self.pump_http(now_ms);
    }

    /// The request in flight timed out (`Timer::Http`).
    pub(super) fn http_timeouts(&mut self, now_ms: u64) {
        if self.http.deadline().is_some_and(|t| t <= now_ms) {
            self.finish_http(now_ms, Err(HttpFailure::Timeout));
        }
    }

    /// Ends the request in flight with `reply`: a transcript or an `error` event (the message
    /// is never lost silently), then the next queued message goes out.
    fn finish_http(&mut self, now_ms: u64, reply: Result<String, HttpFailure>) {
        if self.http.in_flight.take().is_none() {
            return;
        }
        self.http.queue.pop_front();
        match reply {
            Ok(body) => {
                let text = json::parse(&body, self.cfg.max_frame_bytes)
                    .ok()
                    .and_then(|v| v.get("reply").and_then(|r| r.as_str().map(str::to_string)));
                match text {
                    Some(text) => {
                        self.http.replies += 1;
                        self.push_event(AppEvent::Transcript {
                            role: Role::Assistant,
                            item_id: concat(&[S("http_"), N(self.http.replies)]),
                            text,
                            is_final: true,
                        });
                    }
                    None => self.error(
                        ErrorKind::Http,
                        "invalid_reply",
                        "HTTP reply is not a JSON object with a string \"reply\"".into(),
                    ),
                }
            }
            Err(f) => {
                if matches!(f, HttpFailure::Status(401 | 403))
                    && self.cfg.token == TokenSource::Provider
                {
                    self.token = None;
                }
                let message = match &f {
                    HttpFailure::Network => "text request failed: network error".to_string(),
                    HttpFailure::Status(s) => {
                        concat(&[S("text request failed with HTTP status "), N(u64::from(*s))])
                    }
                    HttpFailure::Timeout => concat(&[
                        S("text request timed out after "),
                        N(HTTP_TIMEOUT_MS),
                        S(" ms"),
                    ]),
                };
                self.error(ErrorKind::Http, &f.code(), message);
            }
        }
        self.pump_http(now_ms);
    }

    /// Drops every waiting text message and forgets the request in flight (its reply, if it
    /// still comes, is stale).
    pub(super) fn clear_http(&mut self) {
        self.http.queue.clear();
        self.http.in_flight = None;
    }

    /// Sends the next queued message when none is in flight (asking for a token first if the
    /// provider has not given one).
    pub(super) fn pump_http(&mut self, now_ms: u64) {
        if self.http.in_flight.is_some() || self.http.queue.is_empty() {
            return;
        }
        let token = match (&self.cfg.token, &self.token) {
            (TokenSource::Static(t), _) | (_, Some(t)) => t.clone(),
            (TokenSource::Provider, None) => return self.request_token(),
        };
        let Some(body) = self.http.queue.front() else {
            return;
        };
        self.http.seq += 1;
        let seq = self.http.seq;
        self.http.in_flight = Some(InFlight {
            seq,
            deadline: now_ms + HTTP_TIMEOUT_MS,
        });
        self.out.push_back(Output::HttpText {
            url: self.cfg.base.messages_url(&self.cfg.interview_id),
            token,
            body_json: body.clone(),
            seq,
        });
    }
}
