//! The connection lifecycle: one [`Link`] state with the data each state needs, the reconnect
//! sequence ([`Attempts`]), and the session inputs that move them (token, socket, online, the
//! dead-link check). The app-facing [`State`] is derived from them, never stored beside them.
//!
//! ```text
//!            connect()                 token ok               open              first frame
//!   Idle ───────────────▶ AwaitToken ─────────▶ Opening ──────────▶ Handshaking ──────────▶ Open
//!   Ended      (offline: AwaitOnline)  │ fail/timeout│ close/timeout     │ close/timeout      │
//!     ▲                                ▼             ▼                   ▼                    │
//!     │  1000, 4403, 4410,       ┌──────────────── Backoff { at } ◀──────────────────────────┘
//!     └── 1008 twice, exhausted ─┤  due & online → new attempt; due & offline → AwaitOnline
//!                                └─ AwaitOnline { probe_at }: `online` or the probe → attempt
//! ```
//!
//! Every state between `Idle`/`Ended` and `Open` carries its own deadline, so each has a way out
//! even if the shell never delivers another input ([`Session::way_out`]).

use super::config::{AuthVia, TokenSource};
use super::events::ErrorKind;
use super::machine::Session;
use super::output::{Output, TokenFailure};
use super::status::{FailReason, Mode, State};
use super::url::percent_encode_into;

/// A connection whose server has spoken this long counts as healthy: the attempt counter and the
/// one-time 1008 retry start over.
pub const STABLE_AFTER_MS: u64 = 5_000;
/// How long a reconnect keeps retrying a 4409 (the interview still held, most likely by our own
/// dead socket) before it believes another client has it.
pub const HELD_RETRY_WINDOW_MS: u64 = 30_000;
/// While offline, an attempt is still tried this often (the browser's `online` flag can be
/// wrong, e.g. behind some VPNs).
pub const OFFLINE_PROBE_MS: u64 = 30_000;
/// Mic audio is not handed to a socket with more than this many bytes queued (`bufferedAmount`):
/// it waits in the chunker's bounded backlog instead, so little is in flight when a link dies.
pub const MAX_SOCKET_BUFFERED: u32 = 32 * 1024;
/// Close code a relay uses on the older socket when a reconnect of the same client took its
/// interview over (see docs/API.md).
pub const TAKEN_OVER: u16 = 4410;
/// The token provider gets this long (at most `connectTimeoutMs`) before the attempt goes on
/// without it: a provider on a dead path (its `fetch` riding a pooled connection that died with
/// the network) must not hold the reconnect for the whole connect timeout.
pub const TOKEN_TIMEOUT_MS: u64 = 5_000;
/// Provider failures in a row (not network errors, while online) after which a reconnect gives
/// up with `failed{auth}`.
const PROVIDER_REFUSALS: u32 = 3;

/// The connection's lifecycle state, with the data of each state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Before `connect`.
    Idle,
    /// Waiting to retry at `at`.
    Backoff {
        /// When the next attempt starts.
        at: u64,
    },
    /// A retry is due but the browser is offline: `handle_online(true)` starts it, or the probe.
    AwaitOnline {
        /// When an attempt is made anyway.
        probe_at: u64,
    },
    /// The token provider was asked (`Output::RequestToken`).
    AwaitToken {
        /// The attempt's deadline.
        deadline: u64,
    },
    /// `Output::OpenSocket` issued; waiting for the browser's open or close.
    Opening {
        /// The attempt's deadline.
        deadline: u64,
        /// The browser went offline during the attempt: `online` restarts it at once.
        saw_offline: bool,
    },
    /// The socket opened but the server has not spoken: a relay that accepts the upgrade and
    /// then refuses (1008, 4403, 4409) must not look connected.
    Handshaking {
        /// The attempt's deadline.
        deadline: u64,
    },
    /// Established: the server has spoken.
    Open(OpenLink),
    /// Ended; only `connect` leaves it.
    Ended(End),
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `disconnect`, or a normal close by the server.
    Closed,
    /// Realtime is unusable; text goes over HTTP.
    Text,
    /// Failed for a reason retrying will not fix.
    Failed(FailReason),
}

/// An established link and the evidence that it is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLink {
    /// The server's first frame on this socket.
    pub since: u64,
    /// A server frame is owed since then (a response in progress, a request unanswered).
    pub frame_due_since: Option<u64>,
    /// The socket's `bufferedAmount` as last reported.
    pub buffered: u32,
    /// Bytes handed to the socket since that report.
    pub sent_since_report: u64,
    /// Queued bytes have not drained since then.
    pub undrained_since: Option<u64>,
}

impl OpenLink {
    fn new(now_ms: u64) -> OpenLink {
        OpenLink {
            since: now_ms,
            frame_due_since: None,
            buffered: 0,
            sent_since_report: 0,
            undrained_since: None,
        }
    }

    /// When the link is declared dead if nothing changes.
    pub fn dead_at(&self, timeout_ms: u64) -> Option<u64> {
        [self.frame_due_since, self.undrained_since]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t + timeout_ms)
    }
}

/// The reconnect sequence of one `connect()`: what every attempt of it shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Retries since the last healthy connection (0 for the first connection).
    pub count: u32,
    /// This sequence has been connected: a drop is a reconnect (`reconnecting`).
    pub connected_once: bool,
    /// The one 1008 retry with a fresh token was used (re-armed by a healthy connection).
    pub auth_retry_used: bool,
    /// When the current outage began (the last healthy link was lost).
    pub outage_since: Option<u64>,
    /// A reconnect refused 4409 is retried until then.
    pub held_until: Option<u64>,
    /// Token provider failures in a row that were not network errors.
    pub provider_refusals: u32,
    /// The previous connection's session id (`session.created`), presented on a reconnect so
    /// the relay hands the interview back at once (`&resume=`).
    pub resume: Option<String>,
    /// The current attempt uses the last token because the provider could not be reached: a
    /// 1008 on it asks the provider again instead of spending the one auth retry.
    pub stale_token: bool,
}

/// How a failed attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// The network failed: after a connection, retried for `reconnectWindowMs` at least.
    Network,
    /// The server failed (1011, 1013, other codes): `maxReconnectAttempts`.
    Server,
    /// 4429: a longer wait.
    RateLimited,
    /// 4409 on a reconnect: within `HELD_RETRY_WINDOW_MS`, not counted against the attempts.
    Held,
}

/// How the connection leaves its current state without help: the liveness property is that a
/// `connecting`/`reconnecting` session always has a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WayOut {
    /// Idle, open or ended: nothing needs to happen by itself.
    Steady,
    /// The state's deadline (also what `poll_timeout` returns at the latest).
    Timer(u64),
}

impl Session {
    // ------------------------------------------------------------ derived status

    /// The app-facing state of the current link.
    pub(super) fn derived_state(&self) -> State {
        match &self.link {
            Link::Idle => State::Idle,
            Link::Ended(End::Closed) => State::Closed,
            Link::Ended(End::Text) => State::Text,
            Link::Ended(End::Failed(r)) => State::Failed(*r),
            Link::Open(_) => State::Connected,
            _ if self.attempts.connected_once => State::Reconnecting,
            _ => State::Connecting,
        }
    }

    /// The connection state, for tests and diagnostics.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// How the current state is left if no input comes (see [`WayOut`]).
    pub fn way_out(&self) -> WayOut {
        match self.link {
            Link::Backoff { at } => WayOut::Timer(at),
            Link::AwaitOnline { probe_at } => WayOut::Timer(probe_at),
            Link::AwaitToken { deadline }
            | Link::Opening { deadline, .. }
            | Link::Handshaking { deadline } => WayOut::Timer(deadline),
            Link::Idle | Link::Open(_) | Link::Ended(_) => WayOut::Steady,
        }
    }

    pub(super) fn set_link(&mut self, link: Link) {
        self.link = link;
        self.status.state = self.derived_state();
        self.status.attempt = self.attempts.count;
    }

    /// The link's own deadline (`Timer::Link`).
    pub(super) fn link_deadline(&self) -> Option<u64> {
        match self.way_out() {
            WayOut::Timer(t) => Some(t),
            WayOut::Steady => None,
        }
    }

    /// The dead-link deadline of an open link (`Timer::DeadLink`).
    pub(super) fn dead_link_deadline(&self) -> Option<u64> {
        match &self.link {
            Link::Open(o) => o.dead_at(u64::from(self.cfg.dead_link_timeout_ms)),
            _ => None,
        }
    }

    pub(super) fn is_open(&self) -> bool {
        matches!(self.link, Link::Open(_))
    }

    /// A connection is wanted: `connecting`, `connected` or `reconnecting`.
    pub(super) fn is_active(&self) -> bool {
        !matches!(self.link, Link::Idle | Link::Ended(_))
    }

    // ------------------------------------------------------------ attempts

    /// Starts an attempt now (`force`: even while the browser says it is offline).
    pub(super) fn begin_attempt(&mut self, now_ms: u64, force: bool) {
        if !self.online && !force {
            self.set_link(Link::AwaitOnline {
                probe_at: now_ms + OFFLINE_PROBE_MS,
            });
            return;
        }
        self.snap.connection_attempts += 1;
        self.attempts.stale_token = false;
        let timeout = u64::from(self.cfg.connect_timeout_ms);
        match self.cfg.token {
            TokenSource::Static(_) => self.open_socket(now_ms + timeout),
            TokenSource::Provider => {
                // A fresh token for every (re)connect, so an expired one is not reused while the
                // provider can answer; the last one is kept as the fallback of a provider the
                // network took down.
                if let Some(t) = self.token.take() {
                    self.last_token = Some(t);
                }
                let deadline = now_ms + TOKEN_TIMEOUT_MS.min(timeout);
                self.set_link(Link::AwaitToken { deadline });
                self.request_token();
            }
        }
    }

    /// Asks the shell for a token unless a request is already running.
    pub(super) fn request_token(&mut self) {
        if !self.token_outstanding {
            self.token_outstanding = true;
            self.out.push_back(Output::RequestToken);
        }
    }

    fn open_socket(&mut self, deadline: u64) {
        let token = match (&self.cfg.token, &self.token) {
            (TokenSource::Static(t), _) | (_, Some(t)) => t.clone(),
            (TokenSource::Provider, None) => return,
        };
        let mut url = self.cfg.base.socket_url(&self.cfg.interview_id);
        let mut sep = '?';
        let protocols = match self.cfg.auth_via {
            AuthVia::Query => {
                url.push_str("?token=");
                percent_encode_into(&mut url, &token);
                sep = '&';
                Vec::new()
            }
            AuthVia::Subprotocol => {
                let mut bearer = String::from("bearer.");
                bearer.push_str(&token);
                vec!["realtime".to_string(), bearer]
            }
        };
        if let Some(id) = self.attempts.resume.as_deref() {
            url.push(sep);
            url.push_str("resume=");
            percent_encode_into(&mut url, id);
        }
        self.set_link(Link::Opening {
            deadline,
            saw_offline: false,
        });
        self.out.push_back(Output::OpenSocket { url, protocols });
    }

    /// A failed attempt or a lost connection: back off and retry, or give up when the sequence
    /// is exhausted (text mode over HTTP if configured, else `failed{network|server}`).
    pub(super) fn schedule_reconnect(
        &mut self,
        now_ms: u64,
        reason: &'static str,
        code: Option<u16>,
        retry: Retry,
    ) {
        let out_of_attempts = self.attempts.count >= self.cfg.max_reconnect_attempts;
        let exhausted = match retry {
            Retry::Held => false,
            // After a connection, a network outage is retried for the whole window: the
            // interview is worth waiting for, and text over HTTP would not work either.
            Retry::Network if self.attempts.connected_once => {
                out_of_attempts
                    && self
                        .attempts
                        .outage_since
                        .is_none_or(|t| now_ms >= t + u64::from(self.cfg.reconnect_window_ms))
            }
            Retry::Network | Retry::Server | Retry::RateLimited => out_of_attempts,
        };
        if exhausted {
            let otherwise = match (retry, code) {
                (Retry::Network, _) | (_, None | Some(1006)) => FailReason::Network,
                _ => FailReason::Server,
            };
            self.fallback_text("reconnect_exhausted", code, otherwise);
            return;
        }
        self.attempts.count = self.attempts.count.saturating_add(1);
        self.snap.reconnects += 1;
        let n = self.attempts.count;
        let delay = match retry {
            Retry::RateLimited => self.cfg.backoff.rate_limited_delay_ms(n, &mut self.rng),
            _ => self.cfg.backoff.delay_ms(n, &mut self.rng),
        };
        self.set_link(Link::Backoff { at: now_ms + delay });
        self.set_status(Some(reason), code);
    }

    /// The server's first valid frame on a new socket: the connection is established.
    pub(super) fn established(&mut self, now_ms: u64) {
        if !matches!(self.link, Link::Handshaking { .. }) {
            return;
        }
        let reason = if self.attempts.connected_once {
            "reconnected"
        } else {
            "connected"
        };
        self.attempts.connected_once = true;
        self.attempts.outage_since = None;
        self.attempts.held_until = None;
        self.attempts.provider_refusals = 0;
        self.snap.connection_successes += 1;
        self.set_link(Link::Open(OpenLink::new(now_ms)));
        self.set_status(Some(reason), None);
        if let Some(frame) = self.session_update.clone() {
            self.send_expecting_reply(frame);
        }
        if let Some(frame) = self.tools.frame.clone() {
            self.send_expecting_reply(frame);
        }
        if self.cfg.metrics_interval_ms > 0 {
            self.next_metrics_at = Some(now_ms + u64::from(self.cfg.metrics_interval_ms));
        }
        self.pump_audio(now_ms);
        self.report_overflow(now_ms, true);
    }

    /// Leaves the current socket (if any) without reporting its close back.
    pub(super) fn close_socket(&mut self, reason: &'static str) {
        if matches!(
            self.link,
            Link::Opening { .. } | Link::Handshaking { .. } | Link::Open(_)
        ) {
            self.out
                .push_back(Output::CloseSocket { code: 1000, reason });
        }
    }

    /// Ends the sequence: the socket is closed and every connection timer goes with the state.
    pub(super) fn end(&mut self, end: End, reason: &'static str, code: Option<u16>) {
        self.close_socket(reason);
        self.token_outstanding = false;
        self.next_metrics_at = None;
        self.response_active = None;
        self.response_owed = false;
        self.tools.abandon();
        self.set_link(Link::Ended(end));
        self.set_status(Some(reason), code);
    }

    pub(super) fn fail(&mut self, reason: FailReason, detail: &'static str, code: Option<u16>) {
        self.stop_audio();
        self.end(End::Failed(reason), detail, code);
    }

    /// Realtime is unusable: text mode, over HTTP if configured, else `failed{otherwise}`.
    pub(super) fn fallback_text(
        &mut self,
        reason: &'static str,
        code: Option<u16>,
        otherwise: FailReason,
    ) {
        self.stop_audio();
        self.set_mode(Mode::Text, reason);
        let end = if self.cfg.http_fallback {
            End::Text
        } else {
            End::Failed(otherwise)
        };
        self.end(end, reason, code);
    }

    /// The socket went away while open (or half-open): the outage starts now.
    fn lost(&mut self, now_ms: u64, since: Option<u64>) {
        if since.is_some_and(|s| now_ms.saturating_sub(s) >= STABLE_AFTER_MS) {
            // A healthy connection: attempts and the one-time 1008 retry start over.
            self.attempts.count = 0;
            self.attempts.auth_retry_used = false;
        }
        if self.attempts.outage_since.is_none() {
            self.attempts.outage_since = Some(now_ms);
        }
        self.response_active = None;
        self.response_owed = false;
        self.next_metrics_at = None;
        self.tools.abandon();
    }

    // ------------------------------------------------------------ inputs

    /// The token provider answered (`Err` carries its message; it counts as a refusal, see
    /// [`Session::handle_token_result`] to say it was a network failure). Ignored when no token
    /// was asked.
    pub fn handle_token(&mut self, now_ms: u64, token: Result<String, String>) {
        self.handle_token_result(now_ms, token.map_err(TokenFailure::Refused));
    }

    /// The token provider answered, with its failure classified: a network failure (the
    /// provider's own `fetch` failed, a timeout) is a failed attempt that is retried; a refusal
    /// while online fails with `auth` on the first connect, and after three in a row on a
    /// reconnect. Ignored when no token was asked.
    pub fn handle_token_result(&mut self, now_ms: u64, token: Result<String, TokenFailure>) {
        if !self.token_outstanding {
            return;
        }
        self.token_outstanding = false;
        let token = match token {
            Ok(t) if t.is_empty() => Err(TokenFailure::Refused("empty token".to_string())),
            Ok(t)
                if self.cfg.auth_via == AuthVia::Subprotocol
                    && !super::config::subprotocol_safe(&t) =>
            {
                Err(TokenFailure::Refused(
                    "token has characters a subprotocol cannot carry".to_string(),
                ))
            }
            other => other,
        };
        match token {
            Ok(t) => {
                self.token = Some(t);
                if let Link::AwaitToken { .. } = self.link {
                    self.attempts.provider_refusals = 0;
                    self.open_socket(now_ms + u64::from(self.cfg.connect_timeout_ms));
                }
                self.pump_http(now_ms);
            }
            Err(failure) => {
                let message: String = failure.message().chars().take(200).collect();
                self.error(ErrorKind::Token, "token_provider_failed", message);
                self.clear_http();
                if matches!(self.link, Link::AwaitToken { .. }) {
                    self.token_failed(now_ms, &failure);
                }
            }
        }
    }

    fn token_failed(&mut self, now_ms: u64, failure: &TokenFailure) {
        let network = !self.online || !matches!(failure, TokenFailure::Refused(_));
        if network {
            return self.token_unreachable(now_ms, "token_unavailable");
        }
        self.attempts.provider_refusals += 1;
        if !self.attempts.connected_once || self.attempts.provider_refusals >= PROVIDER_REFUSALS {
            self.fail(FailReason::Auth, "token_provider_failed", None);
        } else {
            self.schedule_reconnect(now_ms, "token_unavailable", None, Retry::Network);
        }
    }

    /// The provider could not be reached (a network failure or no answer in time): the attempt
    /// goes on with the last token the provider gave, if any — the server says 1008 if it has
    /// expired — else it is a failed attempt, retried like any network fault.
    fn token_unreachable(&mut self, now_ms: u64, reason: &'static str) {
        match self.last_token.clone() {
            Some(t) => {
                self.token = Some(t);
                self.attempts.stale_token = true;
                self.open_socket(now_ms + u64::from(self.cfg.connect_timeout_ms));
            }
            None => self.schedule_reconnect(now_ms, reason, None, Retry::Network),
        }
    }

    /// The socket opened. Ignored unless one was being opened.
    pub fn handle_socket_opened(&mut self, _now_ms: u64) {
        if let Link::Opening { deadline, .. } = self.link {
            // Connected only once the server speaks; the attempt's deadline keeps running.
            self.set_link(Link::Handshaking { deadline });
        }
    }

    /// The socket closed (`was_open`: it had opened). Ignored when no socket is current (e.g.
    /// after the session asked to close it).
    pub fn handle_socket_closed(&mut self, now_ms: u64, code: u16, reason: &str, was_open: bool) {
        let (opened, since) = match &self.link {
            Link::Opening { .. } => (was_open, None),
            Link::Handshaking { .. } => (true, None),
            Link::Open(o) => (true, Some(o.since)),
            _ => return,
        };
        self.snap.last_close_code = Some(code);
        self.snap.last_close_reason = Some(clip_bytes(reason, 123).to_string());
        self.lost(now_ms, since);
        // The socket is gone: nothing to close any more.
        self.set_link(Link::Backoff { at: now_ms });
        match code {
            1000 => {
                self.stop_audio();
                self.end(End::Closed, "server_closed", Some(code));
            }
            1008 if self.attempts.stale_token => {
                // Our fallback token expired: never again, and the provider is asked, without
                // spending the one retry meant for a token the provider itself just gave.
                self.token = None;
                self.last_token = None;
                self.schedule_reconnect(now_ms, "token_refresh", Some(code), Retry::Network);
            }
            1008 => {
                self.last_token = None;
                if self.cfg.token == TokenSource::Provider && !self.attempts.auth_retry_used {
                    // Once per healthy connection, through the normal backoff: a relay that
                    // keeps refusing cannot make the client loop.
                    self.attempts.auth_retry_used = true;
                    self.token = None;
                    self.schedule_reconnect(now_ms, "token_refresh", Some(code), Retry::Server);
                } else {
                    self.fail(FailReason::Auth, "token_rejected", Some(code));
                }
            }
            4403 => self.fallback_text("realtime_disabled", Some(code), FailReason::Unsupported),
            4409 if self.attempts.connected_once => {
                // Most likely our own previous socket, which the relay has not seen die yet.
                let until = *self
                    .attempts
                    .held_until
                    .get_or_insert(now_ms + HELD_RETRY_WINDOW_MS);
                if now_ms < until {
                    self.schedule_reconnect(now_ms, "interview_held", Some(code), Retry::Held);
                } else {
                    self.fail(FailReason::Busy, "duplicate_connection", Some(code));
                }
            }
            4409 => self.fail(FailReason::Busy, "duplicate_connection", Some(code)),
            TAKEN_OVER => self.fail(FailReason::Busy, "taken_over", Some(code)),
            4429 => self.schedule_reconnect(now_ms, "rate_limited", Some(code), Retry::RateLimited),
            1006 if !opened => {
                self.schedule_reconnect(now_ms, "handshake_rejected", Some(code), Retry::Network)
            }
            1001 => self.schedule_reconnect(now_ms, "going_away", Some(code), Retry::Server),
            1006 => self.schedule_reconnect(now_ms, "connection_lost", Some(code), Retry::Network),
            1011 => self.schedule_reconnect(now_ms, "server_error", Some(code), Retry::Server),
            1013 => self.schedule_reconnect(now_ms, "try_again_later", Some(code), Retry::Server),
            _ => self.schedule_reconnect(now_ms, "closed", Some(code), Retry::Server),
        }
    }

    /// The socket reported an error; its close follows and decides what happens.
    pub fn handle_socket_error(&mut self, _now_ms: u64) {}

    /// The browser went online/offline. Back online, a connection waiting to retry (backing
    /// off or waiting for the network) tries at once, and an attempt that saw the network go
    /// away starts over; while offline, due attempts wait (and are not spent).
    pub fn handle_online(&mut self, now_ms: u64, online: bool) {
        let was = std::mem::replace(&mut self.online, online);
        if !online {
            if let Link::Opening { saw_offline, .. } = &mut self.link {
                *saw_offline = true;
            }
            return;
        }
        match self.link {
            Link::Backoff { .. } | Link::AwaitOnline { .. } => self.begin_attempt(now_ms, false),
            Link::Opening {
                saw_offline: true, ..
            } if !was => {
                self.close_socket("network_changed");
                self.begin_attempt(now_ms, false);
            }
            _ => {}
        }
    }

    /// Bytes the socket has queued but not yet sent (`bufferedAmount`), reported after every
    /// send and before every `handle_timeout`. Feeds flow control (no mic audio into a socket
    /// holding more than [`MAX_SOCKET_BUFFERED`]) and dead-link detection (queued bytes that do
    /// not drain for `deadLinkTimeoutMs`).
    pub fn handle_socket_buffered(&mut self, now_ms: u64, bytes: u32) {
        let b = u64::from(bytes);
        if b > 0 {
            self.snap.socket_backpressure_events += 1;
        }
        self.snap.socket_buffered_max_bytes = self.snap.socket_buffered_max_bytes.max(b);
        let Link::Open(o) = &mut self.link else {
            return;
        };
        let drained = u64::from(bytes) < u64::from(o.buffered) + o.sent_since_report;
        o.undrained_since = match (bytes, o.undrained_since) {
            (0, _) => None,
            (_, None) => Some(now_ms),
            (_, Some(_)) if drained => Some(now_ms),
            (_, since) => since,
        };
        o.buffered = bytes;
        o.sent_since_report = 0;
    }

    /// `bufferedAmount` without a time: kept for shells written against the first API; use
    /// [`Session::handle_socket_buffered`].
    pub fn handle_socket_backlog(&mut self, bytes: u32) {
        let now = self.last_now;
        self.handle_socket_buffered(now, bytes);
    }

    /// The link's timers: its state's deadline and the dead-link check, served until nothing of
    /// theirs is due. Serving one can make the next due at once (a retry drawn with no delay by
    /// the full jitter, after a connect timeout or a dead link), and a timer left at `now` would
    /// cost the shell another turn of its timer for nothing.
    pub(super) fn link_timeouts(&mut self, now_ms: u64) {
        // At most: dead link or attempt timeout → backoff due now → a new attempt, whose
        // deadline (or the offline probe) is in the future. The bound only guards against a
        // change that would make that chain loop.
        for _ in 0..4 {
            let due = |t: Option<u64>| t.is_some_and(|t| t <= now_ms);
            if !due(self.link_deadline()) && !due(self.dead_link_deadline()) {
                return;
            }
            self.link_timeouts_once(now_ms);
        }
    }

    fn link_timeouts_once(&mut self, now_ms: u64) {
        if self.link_deadline().is_some_and(|t| t <= now_ms) {
            match self.link {
                Link::Backoff { .. } => self.begin_attempt(now_ms, false),
                Link::AwaitOnline { .. } => self.begin_attempt(now_ms, true),
                Link::AwaitToken { .. } => {
                    // A provider that never answers: the next attempt asks again.
                    self.token_outstanding = false;
                    self.token_unreachable(now_ms, "token_timeout");
                }
                Link::Opening { .. } | Link::Handshaking { .. } => {
                    self.close_socket("connect_timeout");
                    let opened = matches!(self.link, Link::Handshaking { .. });
                    self.lost(now_ms, None);
                    self.set_link(Link::Backoff { at: now_ms });
                    let retry = if opened {
                        Retry::Server
                    } else {
                        Retry::Network
                    };
                    self.schedule_reconnect(now_ms, "connect_timeout", None, retry);
                }
                Link::Idle | Link::Open(_) | Link::Ended(_) => {}
            }
        }
        if self.dead_link_deadline().is_some_and(|t| t <= now_ms) {
            let since = match &self.link {
                Link::Open(o) => Some(o.since),
                _ => None,
            };
            self.snap.dead_links += 1;
            self.close_socket("dead_link");
            self.lost(now_ms, since);
            self.set_link(Link::Backoff { at: now_ms });
            self.schedule_reconnect(now_ms, "dead_link", None, Retry::Network);
        }
    }

    /// A frame arrived on the open link: the server is alive. While a response is in progress
    /// the next frame is due from now on; otherwise nothing is owed.
    pub(super) fn frame_arrived(&mut self, now_ms: u64) {
        let responding = self.response_active.is_some();
        if let Link::Open(o) = &mut self.link {
            o.frame_due_since = responding.then_some(now_ms);
        }
    }

    /// Sends a client event that the server answers (`session.update`, a text item,
    /// `response.create`, `conversation.item.truncate`): a frame is due from now on.
    pub(super) fn send_expecting_reply(&mut self, frame: String) {
        let now = self.last_now;
        if let Link::Open(o) = &mut self.link {
            o.frame_due_since.get_or_insert(now);
        }
        self.send(frame);
    }

    /// Mic audio may be handed to the socket: open, and not holding too much already.
    pub(super) fn socket_accepts_audio(&self) -> bool {
        match &self.link {
            Link::Open(o) => o.buffered <= MAX_SOCKET_BUFFERED,
            _ => false,
        }
    }

    /// Counts bytes handed to the open socket (drain detection).
    pub(super) fn count_sent(&mut self, bytes: usize) {
        if let Link::Open(o) = &mut self.link {
            o.sent_since_report += bytes as u64;
        }
    }

    /// Learns the server's session id (`session.created`): the take-back proof of the next
    /// reconnect. Ids longer than 128 bytes are not kept.
    pub(super) fn learn_session_id(&mut self, id: &str) {
        if !id.is_empty() && id.len() <= 128 {
            self.attempts.resume = Some(id.to_string());
        }
    }

    /// Whether the state is one where `connect` starts a new sequence.
    pub(super) fn may_connect(&self) -> bool {
        matches!(self.link, Link::Idle | Link::Ended(_))
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
pub(super) fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}
