//! The session state machine: inputs (`handle_*` and commands, each with `now_ms`), outputs
//! ([`Output`], drained with [`Session::poll_output`]) and one timer ([`Session::poll_timeout`]).
//! See the module docs of [`crate::session`] for the contract and the drain order.

use std::collections::VecDeque;

use super::config::{AuthVia, ServerEventFilter, SessionConfig, TokenSource};
use super::cost::Prices;
use super::events::{AppEvent, ErrorKind, Role};
use super::metrics::{LatencyWindow, MetricsSnapshot};
use super::output::{AudioFailure, CommandError, HttpFailure, Output};
use super::rng::Rng;
use super::status::{AudioState, FailReason, Mode, State, Status};
use crate::audio::{pcm16, Chunker, ChunkerConfig, Resampler};
use crate::protocol::{
    json, parse_server_frame, session_update_frame, ClientEvent, OutputKind, ServerEvent, Usage,
};

/// Output rate of the realtime API and of `Output::Play`: 24 kHz mono.
pub const API_RATE: u32 = 24_000;
/// A connection open this long counts as healthy: the reconnect attempt counter starts over.
pub const STABLE_AFTER_MS: u64 = 5_000;
/// Fade applied to playback on barge-in.
pub const BARGE_IN_RAMP_MS: u32 = 8;
/// Assistant items whose audio bookkeeping is kept (older ones are finished).
const TRACKED_ITEMS: usize = 4;
/// Text messages that may wait for the HTTP transport.
const HTTP_QUEUE: usize = 16;
/// Beyond this many queued outputs, app events that can be lost (raw server events, metrics)
/// are dropped and counted, so a shell that stops draining cannot grow memory without bound.
const MAX_QUEUED_OUTPUTS: usize = 4096;
/// Spare `Vec<f32>` buffers kept for `Output::Play`.
const PLAY_POOL: usize = 4;
/// Adaptive pre-buffer: raised by this much after a response with underruns, lowered by
/// `PREBUFFER_STEP_DOWN_MS` after `CALM_RESPONSES` responses in a row without one.
const PREBUFFER_STEP_UP_MS: u32 = 40;
const PREBUFFER_STEP_DOWN_MS: u32 = 20;
const CALM_RESPONSES: u32 = 3;
/// AI audio held while audio is starting: 20 s at 24 kHz (bounded; the rest is counted).
const HELD_PLAYBACK_SAMPLES: usize = 20 * API_RATE as usize;
/// Minimum spacing of `audio_overflow` (and of `playback_overflow`) error events.
const OVERFLOW_EVENT_EVERY_MS: u64 = 1_000;
/// An HTTP text request without a reply this long fails as `HttpFailure::Timeout`.
pub const HTTP_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sock {
    None,
    Opening,
    /// The WebSocket opened but the server has not spoken yet: a relay that accepts the
    /// upgrade and then refuses (1008, 4403, 4409) must not look connected.
    Handshaking {
        since: u64,
    },
    Open {
        since: u64,
    },
}

#[derive(Debug)]
enum Audio {
    Off,
    Requested,
    Running(Resampler),
}

/// Audio bookkeeping of one assistant item (samples at 24 kHz).
#[derive(Debug, Clone)]
struct ItemAudio {
    item_id: String,
    received: u64,
    played: u64,
    done: bool,
    truncated: bool,
    /// The player drained it after its end marker (`handle_playback_finished`).
    finished: bool,
}

/// The HTTP text request in flight: its tag and its deadline.
#[derive(Debug, Clone, Copy)]
struct HttpInFlight {
    seq: u64,
    deadline: u64,
}

/// The sans-IO realtime voice session. See [`crate::session`] for the contract.
pub struct Session {
    cfg: SessionConfig,
    rng: Rng,
    out: VecDeque<Output>,
    status: Status,
    mode: Mode,
    online: bool,

    sock: Sock,
    /// A socket attempt waits for `handle_token`.
    attempt_wants_token: bool,
    /// `RequestToken` is outstanding.
    token_requested: bool,
    token: Option<String>,
    auth_retry_used: bool,
    attempt_deadline: Option<u64>,
    reconnect_at: Option<u64>,
    /// The reconnect timer fired while offline: attempt when `handle_online(true)` comes.
    waiting_online: bool,
    opened_in_sequence: bool,
    session_update: Option<String>,

    audio: Audio,
    /// Microphone samples (24 kHz) taken in and sent, in total: their difference is the
    /// backlog plus what overflowed.
    captured_samples: u64,
    sent_samples: u64,
    /// The adaptive pre-buffer (ms), underruns seen when the current response began playing,
    /// and responses in a row that played without one.
    prebuffer_ms: u32,
    underruns_at_speech_start: u64,
    calm_responses: u32,
    /// Underruns of earlier audio graphs (the worklet's counter starts at 0 with each one),
    /// and the highest total the current graph reported.
    underruns_offset: u64,
    underruns_graph: u64,
    /// Samples the player's ring refused (`handle_playback_overflow`), in total and as last
    /// reported, and when the last `playback_overflow` event went out.
    playback_overflow_samples: u64,
    playback_overflow_reported: u64,
    last_playback_overflow_event: Option<u64>,
    /// Player outputs held while audio starts (see `playback_out`), and their samples.
    held_playback: VecDeque<Output>,
    held_samples: usize,
    /// The browser's audio state while audio is on (None until the shell first reports it).
    audio_state: Option<AudioState>,
    muted: bool,
    chunker: Chunker,
    resampled: Vec<f32>,
    pcm: Vec<i16>,
    chunk: Vec<i16>,
    dropped_reported: u64,
    last_overflow_event: Option<u64>,

    items: VecDeque<ItemAudio>,
    assistant_speaking: bool,
    response_active: Option<String>,
    play_pool: Vec<Vec<f32>>,

    http_queue: VecDeque<String>,
    http_in_flight: Option<HttpInFlight>,
    /// Tag of the last `Output::HttpText` (every request gets a new one).
    http_seq: u64,
    /// Replies shown so far (`http_<n>` transcript item ids).
    http_replies: u64,

    latency: LatencyWindow,
    latency_mark: Option<u64>,
    connect_called_at: Option<u64>,
    next_metrics_at: Option<u64>,
    snap: MetricsSnapshot,
    capture_delay_sum: u64,
    capture_delay_count: u64,
    prices: Option<Prices>,
}

impl std::fmt::Debug for Session {
    /// A short summary: no token, no buffers, no transcripts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("status", &self.status)
            .field("mode", &self.mode)
            .field("socket", &self.sock)
            .field("muted", &self.muted)
            .field("online", &self.online)
            .field("backlog_samples", &self.chunker.backlog_samples())
            .field("pending_outputs", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new idle session. `rng_seed` seeds the backoff jitter (the shell passes random bits;
    /// tests pass a constant).
    pub fn new(config: SessionConfig, rng_seed: u64) -> Session {
        let chunker_cfg = ChunkerConfig {
            sample_rate: API_RATE,
            chunk_ms: config.chunk_ms,
            max_chunks_per_second: 10,
            max_chunk_ms: config.max_chunk_ms,
            max_backlog_ms: config.max_backlog_ms,
        };
        // SessionConfig validation keeps every field inside the chunker's accepted ranges
        // (chunkMs ≥ 100, maxChunkMs ≥ chunkMs, maxBacklogMs ≥ maxChunkMs); the fallback only
        // guards a config built by hand with other values.
        let chunker = match Chunker::new(chunker_cfg) {
            Ok(c) => c,
            Err(_) => match Chunker::new(ChunkerConfig::default()) {
                Ok(c) => c,
                // Local invariant: the default config is valid (and unit-tested by the audio core).
                Err(_) => unreachable!("the default chunker config is valid"),
            },
        };
        let model = config.model.clone();
        let prices = config
            .prices
            .or_else(|| model.as_deref().and_then(Prices::for_model));
        let mode = config.mode;
        Session {
            latency: LatencyWindow::new(config.latency_window),
            chunk: Vec::with_capacity(chunker.max_chunk_samples()),
            chunker,
            rng: Rng::new(rng_seed),
            out: VecDeque::new(),
            status: Status {
                state: State::Idle,
                reason: None,
                close_code: None,
                attempt: 0,
            },
            mode,
            online: true,
            sock: Sock::None,
            attempt_wants_token: false,
            token_requested: false,
            token: match &config.token {
                TokenSource::Static(t) => Some(t.clone()),
                TokenSource::Provider => None,
            },
            auth_retry_used: false,
            attempt_deadline: None,
            reconnect_at: None,
            waiting_online: false,
            opened_in_sequence: false,
            session_update: None,
            audio: Audio::Off,
            audio_state: None,
            captured_samples: 0,
            sent_samples: 0,
            prebuffer_ms: config.prebuffer_ms,
            underruns_at_speech_start: 0,
            calm_responses: 0,
            underruns_offset: 0,
            underruns_graph: 0,
            playback_overflow_samples: 0,
            playback_overflow_reported: 0,
            last_playback_overflow_event: None,
            held_playback: VecDeque::new(),
            held_samples: 0,
            muted: false,
            resampled: Vec::new(),
            pcm: Vec::new(),
            dropped_reported: 0,
            last_overflow_event: None,
            items: VecDeque::with_capacity(TRACKED_ITEMS),
            assistant_speaking: false,
            response_active: None,
            play_pool: Vec::new(),
            http_queue: VecDeque::new(),
            http_in_flight: None,
            http_seq: 0,
            http_replies: 0,
            latency_mark: None,
            connect_called_at: None,
            next_metrics_at: None,
            snap: MetricsSnapshot {
                model,
                ..MetricsSnapshot::default()
            },
            capture_delay_sum: 0,
            capture_delay_count: 0,
            prices,
            cfg: config,
        }
    }

    // ---------------------------------------------------------------- getters

    /// The current status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The configuration (the shell reads its pass-through options here, e.g. `prebuffer_ms`).
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Whether mic audio is currently dropped by `set_muted(true)`.
    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// A snapshot of the metrics now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.snap.clone();
        let [p50, p95, p99] = self.latency.percentiles([50, 95, 99]);
        m.latency_p50_ms = p50;
        m.latency_p95_ms = p95;
        m.latency_p99_ms = p99;
        m.latency_samples = self.latency.len();
        m.capture_to_send_avg_ms = self.capture_delay_sum.checked_div(self.capture_delay_count);
        m.buffered_audio_ms = self.chunker.backlog_samples() as u64 * 1000 / u64::from(API_RATE);
        m.captured_audio_ms = self.captured_samples * 1000 / u64::from(API_RATE);
        m.sent_audio_ms = self.sent_samples * 1000 / u64::from(API_RATE);
        m.dropped_audio_ms = self.chunker.dropped_samples() * 1000 / u64::from(API_RATE);
        m.prebuffer_ms = u64::from(self.prebuffer_ms);
        m
    }

    /// The current adaptive playback pre-buffer (ms): the shell uses it whenever it (re)builds
    /// the player, so what was learnt survives audio restarts (`Output::SetPrebuffer` only
    /// reaches a running player).
    pub fn prebuffer_ms(&self) -> u32 {
        self.prebuffer_ms
    }

    /// Number of outputs waiting to be drained (for tests and debugging).
    pub fn pending_outputs(&self) -> usize {
        self.out.len()
    }

    // ---------------------------------------------------------------- outputs

    /// The next thing for the shell to do, in order; call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The absolute time (ms) at which `handle_timeout` must be called, if any. Read it after
    /// draining the outputs; it may move after any input.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = [
            self.attempt_deadline,
            self.reconnect_at,
            None,
            None,
            self.http_in_flight.map(|h| h.deadline),
        ];
        if self.sending_audio() {
            t[2] = self.chunker.next_ready_ms(0);
        }
        if self.status.state == State::Connected {
            t[3] = self.next_metrics_at;
        }
        t.into_iter().flatten().min()
    }

    /// Gives back a `Vec` from `Output::Play` so the next delta reuses its allocation.
    pub fn recycle(&mut self, mut samples: Vec<f32>) {
        if self.play_pool.len() < PLAY_POOL {
            samples.clear();
            self.play_pool.push(samples);
        }
    }

    // ---------------------------------------------------------------- commands

    /// Starts connecting (from idle, closed, failed or text). A no-op while already connecting,
    /// connected (in either mode) or reconnecting: no output and no `status` event, so a caller
    /// that waits for one reads [`Session::status`] instead. In voice mode it also asks the shell to start audio, so mic audio captured
    /// while connecting is kept (bounded) and sent once the socket opens.
    pub fn connect(&mut self, now_ms: u64) {
        match self.status.state {
            State::Connecting | State::Connected | State::Reconnecting => return,
            _ => {}
        }
        self.status.attempt = 0;
        self.auth_retry_used = false;
        self.opened_in_sequence = false;
        self.waiting_online = false;
        self.reconnect_at = None;
        self.connect_called_at = Some(now_ms);
        self.snap.time_to_first_audio_ms = None;
        if self.mode != self.cfg.mode {
            self.set_mode(self.cfg.mode, "connect");
        }
        self.set_state(State::Connecting, Some("connect"), None);
        if self.mode == Mode::Voice && matches!(self.audio, Audio::Off) {
            self.audio = Audio::Requested;
            self.out.push_back(Output::StartAudio);
        }
        self.begin_attempt(now_ms);
    }

    /// Ends the session: closes the socket (1000), stops audio, cancels timers. No-op when idle
    /// or closed.
    pub fn disconnect(&mut self, _now_ms: u64) {
        if matches!(self.status.state, State::Idle | State::Closed) {
            return;
        }
        self.close_socket("client_disconnect");
        self.stop_audio();
        self.clear_timers();
        self.clear_http();
        self.set_state(State::Closed, Some("client_disconnect"), None);
    }

    /// Mutes (drops mic audio: not sent, not buffered) or unmutes. On mute, audio captured
    /// before it is still sent (the partial last chunk is flushed).
    pub fn set_muted(&mut self, now_ms: u64, muted: bool) {
        if muted && !self.muted {
            self.chunker.flush();
            self.pump_audio(now_ms);
        }
        self.muted = muted;
    }

    /// Sends a user text message: over the open socket (`conversation.item.create` +
    /// `response.create`, text output in text mode, audio in voice mode), else over HTTP when
    /// `httpFallback` is on and realtime is unusable.
    pub fn send_text(&mut self, now_ms: u64, text: &str) -> Result<(), CommandError> {
        let max = self.cfg.max_frame_bytes.saturating_sub(256);
        if text.len() > max {
            return Err(CommandError::TooLong {
                len: text.len(),
                max,
            });
        }
        if matches!(self.sock, Sock::Open { .. }) {
            self.send_event(&ClientEvent::UserText { text });
            let output = if self.mode == Mode::Text {
                OutputKind::Text
            } else {
                OutputKind::Audio
            };
            self.send_event(&ClientEvent::ResponseCreate { output });
            return Ok(());
        }
        let http_ok = self.cfg.http_fallback
            && matches!(
                self.status.state,
                State::Text
                    | State::Connecting
                    | State::Reconnecting
                    | State::Failed(
                        FailReason::Network | FailReason::Server | FailReason::Unsupported
                    )
            );
        if !http_ok {
            return Err(CommandError::NoTextTransport {
                state: self.status.state,
            });
        }
        if self.http_queue.len() >= HTTP_QUEUE {
            return Err(CommandError::QueueFull);
        }
        let mut body = String::with_capacity(text.len() + 12);
        body.push_str("{\"text\":");
        json::write_str(&mut body, text);
        body.push('}');
        self.http_queue.push_back(body);
        self.pump_http(now_ms);
        Ok(())
    }

    /// Interrupts the assistant on demand: flushes playback, truncates the playing item at the
    /// played position and cancels the response if one is in progress.
    pub fn interrupt(&mut self, now_ms: u64) {
        self.barge_in(now_ms, true);
    }

    /// Sends `session.update` with the app's session object (beta or GA shape by `protocol`),
    /// now if connected, and again after every reconnect (a new server session forgets it).
    pub fn update_session(&mut self, _now_ms: u64, session_json: &str) -> Result<(), CommandError> {
        let frame = session_update_frame(session_json, self.cfg.shape, self.cfg.max_frame_bytes)
            .map_err(CommandError::InvalidSessionUpdate)?;
        if matches!(self.sock, Sock::Open { .. }) {
            self.send(frame.clone());
        }
        self.session_update = Some(frame);
        Ok(())
    }

    // ---------------------------------------------------------------- socket inputs

    /// The token provider answered (`Err` carries its message). Ignored when no token was asked.
    pub fn handle_token(&mut self, now_ms: u64, token: Result<String, String>) {
        if !self.token_requested {
            return;
        }
        self.token_requested = false;
        let token = match token {
            Ok(t) if t.is_empty() => Err("empty token".to_string()),
            Ok(t)
                if self.cfg.auth_via == AuthVia::Subprotocol
                    && !super::config::subprotocol_safe(&t) =>
            {
                Err("token has characters a subprotocol cannot carry".to_string())
            }
            other => other,
        };
        match token {
            Ok(t) => {
                self.token = Some(t);
                if self.attempt_wants_token {
                    self.attempt_wants_token = false;
                    self.open_socket();
                }
                self.pump_http(now_ms);
            }
            Err(msg) => {
                let message: String = msg.chars().take(200).collect();
                self.error(ErrorKind::Token, "token_provider_failed", message);
                self.clear_http();
                if self.attempt_wants_token {
                    self.attempt_wants_token = false;
                    self.fail(FailReason::Auth, "token_provider_failed", None);
                }
            }
        }
    }

    /// The socket opened. Ignored unless one was being opened.
    pub fn handle_socket_opened(&mut self, now_ms: u64) {
        if self.sock != Sock::Opening {
            return;
        }
        // Connected only once the server speaks (its first valid frame, normally
        // session.created): see `Sock::Handshaking`. The connect timeout keeps running.
        self.sock = Sock::Handshaking { since: now_ms };
    }

    /// The server's first valid frame on a new socket: the connection is established.
    fn established(&mut self, now_ms: u64) {
        let Sock::Handshaking { since } = self.sock else {
            return;
        };
        self.sock = Sock::Open { since };
        self.attempt_deadline = None;
        self.opened_in_sequence = true;
        self.snap.connection_successes += 1;
        let reason = if self.status.attempt > 0 {
            "reconnected"
        } else {
            "connected"
        };
        self.set_state(State::Connected, Some(reason), None);
        if let Some(frame) = self.session_update.clone() {
            self.send(frame);
        }
        if self.cfg.metrics_interval_ms > 0 {
            self.next_metrics_at = Some(now_ms + u64::from(self.cfg.metrics_interval_ms));
        }
        self.pump_audio(now_ms);
        self.report_overflow(now_ms, true);
    }

    /// A text frame arrived. Malformed frames become an `error` event; the session goes on.
    pub fn handle_socket_message(&mut self, now_ms: u64, text: &str) {
        if !matches!(self.sock, Sock::Open { .. } | Sock::Handshaking { .. }) {
            return;
        }
        self.snap.frames_received += 1;
        let frame = match parse_server_frame(text, self.cfg.max_frame_bytes) {
            Ok(f) => f,
            Err(e) => {
                self.snap.protocol_errors += 1;
                self.error(ErrorKind::Protocol, e.code(), e.to_string());
                return;
            }
        };
        self.established(now_ms);
        let forward = match self.cfg.server_events {
            ServerEventFilter::All => true,
            ServerEventFilter::NoAudio => !matches!(frame.event, ServerEvent::AudioDelta { .. }),
            ServerEventFilter::None => false,
        };
        if forward {
            self.push_lossy_event(AppEvent::ServerEvent {
                kind: frame.kind.to_string(),
                raw: text.to_string(),
            });
        }
        self.on_server_event(now_ms, &frame.kind, frame.event);
    }

    /// The socket closed (`was_open`: it had opened). Ignored when no socket is current (e.g.
    /// after the session asked to close it).
    pub fn handle_socket_closed(&mut self, now_ms: u64, code: u16, reason: &str, was_open: bool) {
        let since = match self.sock {
            Sock::None => return,
            Sock::Opening => None,
            Sock::Open { since } | Sock::Handshaking { since } => Some(since),
        };
        self.sock = Sock::None;
        self.attempt_deadline = None;
        self.response_active = None;
        self.next_metrics_at = None;
        self.snap.last_close_code = Some(code);
        self.snap.last_close_reason = Some(clip_bytes(reason, 123).to_string());
        if since.is_some_and(|s| now_ms.saturating_sub(s) >= STABLE_AFTER_MS) {
            // A healthy connection: attempts and the one-time 1008 token retry start over.
            self.status.attempt = 0;
            self.auth_retry_used = false;
        }
        let opened = was_open || since.is_some();
        match code {
            1000 => {
                self.stop_audio();
                self.clear_timers();
                self.set_state(State::Closed, Some("server_closed"), Some(code));
            }
            1008 => {
                if self.cfg.token == TokenSource::Provider && !self.auth_retry_used {
                    // Once per healthy connection, through the normal backoff: a relay
                    // that keeps refusing cannot make the client loop.
                    self.auth_retry_used = true;
                    self.token = None;
                    self.schedule_reconnect(now_ms, "token_refresh", Some(code), false);
                } else {
                    self.fail(FailReason::Auth, "token_rejected", Some(code));
                }
            }
            4403 => self.fallback_text("realtime_disabled", Some(code), FailReason::Unsupported),
            4409 => self.fail(FailReason::Busy, "duplicate_connection", Some(code)),
            4429 => self.schedule_reconnect(now_ms, "rate_limited", Some(code), true),
            1006 if !opened => {
                self.schedule_reconnect(now_ms, "handshake_rejected", Some(code), false)
            }
            1001 => self.schedule_reconnect(now_ms, "going_away", Some(code), false),
            1006 => self.schedule_reconnect(now_ms, "connection_lost", Some(code), false),
            1011 => self.schedule_reconnect(now_ms, "server_error", Some(code), false),
            1013 => self.schedule_reconnect(now_ms, "try_again_later", Some(code), false),
            _ => self.schedule_reconnect(now_ms, "closed", Some(code), false),
        }
    }

    /// The socket reported an error; its close follows and decides what happens.
    pub fn handle_socket_error(&mut self, _now_ms: u64) {}

    /// A binary frame of `len` bytes arrived: the protocol is JSON text, so it is a protocol
    /// error (`binary_frame`, counted in `protocolErrors`) and the session goes on.
    pub fn handle_socket_binary(&mut self, _now_ms: u64, len: usize) {
        if !matches!(self.sock, Sock::Open { .. } | Sock::Handshaking { .. }) {
            return;
        }
        self.snap.frames_received += 1;
        self.snap.protocol_errors += 1;
        self.error(
            ErrorKind::Protocol,
            "binary_frame",
            format!("ignored a binary frame of {len} bytes: the protocol is JSON text"),
        );
    }

    /// Calls due timers. Spurious or early calls are no-ops.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.attempt_deadline.is_some_and(|t| t <= now_ms) {
            self.attempt_deadline = None;
            if matches!(self.sock, Sock::Opening | Sock::Handshaking { .. }) {
                self.close_socket("connect_timeout");
            }
            self.attempt_wants_token = false;
            self.token_requested = false;
            self.schedule_reconnect(now_ms, "connect_timeout", None, false);
        }
        if self.reconnect_at.is_some_and(|t| t <= now_ms) {
            self.reconnect_at = None;
            if self.online {
                self.begin_attempt(now_ms);
            } else {
                self.waiting_online = true;
            }
        }
        if self.sending_audio() {
            self.pump_audio(now_ms);
        }
        if self.status.state == State::Connected
            && self.next_metrics_at.is_some_and(|t| t <= now_ms)
        {
            let every = u64::from(self.cfg.metrics_interval_ms);
            let mut next = self.next_metrics_at.unwrap_or(now_ms) + every;
            if next <= now_ms {
                next = now_ms + every;
            }
            self.next_metrics_at = Some(next);
            let m = self.metrics();
            self.push_lossy_event(AppEvent::Metrics(Box::new(m)));
        }
        self.report_overflow(now_ms, false);
        self.report_playback_overflow(now_ms, false);
        if self.http_in_flight.is_some_and(|h| h.deadline <= now_ms) {
            self.finish_http(now_ms, Err(HttpFailure::Timeout));
        }
    }

    /// The browser went online/offline. Online while waiting to reconnect attempts at once;
    /// while offline, due attempts wait (and are not spent).
    pub fn handle_online(&mut self, now_ms: u64, online: bool) {
        self.online = online;
        if online
            && self.status.state == State::Reconnecting
            && (self.reconnect_at.is_some() || self.waiting_online)
        {
            self.reconnect_at = None;
            self.waiting_online = false;
            self.begin_attempt(now_ms);
        }
    }

    /// Another tab of this browser holds the interview's connection (the shell's Web Locks
    /// check, before `connect`): `failed{busy}` without opening a socket.
    pub fn handle_busy_elsewhere(&mut self, _now_ms: u64) {
        if matches!(
            self.status.state,
            State::Connecting | State::Connected | State::Reconnecting
        ) {
            return;
        }
        self.fail(FailReason::Busy, "other_tab", None);
    }

    /// Bytes the socket has queued but not yet sent (`bufferedAmount`), as the shell sees it
    /// after a send: a rising figure means the network is slower than the audio.
    pub fn handle_socket_backlog(&mut self, bytes: u32) {
        let bytes = u64::from(bytes);
        if bytes > 0 {
            self.snap.socket_backpressure_events += 1;
        }
        self.snap.socket_buffered_max_bytes = self.snap.socket_buffered_max_bytes.max(bytes);
    }

    // ---------------------------------------------------------------- audio inputs

    /// Audio started at the device's rate (after `Output::StartAudio`). Called again while
    /// running when the microphone's format changes (another device): the resampler is rebuilt.
    /// AI audio that arrived while audio was starting is released to the player now, in order.
    pub fn handle_audio_started(&mut self, now_ms: u64, sample_rate: u32, channels: u16) {
        match &self.audio {
            Audio::Requested => {}
            Audio::Running(r) if r.input_rate() != sample_rate || r.channels() != channels => {}
            _ => return,
        }
        match Resampler::new(sample_rate, API_RATE, channels) {
            Ok(r) => {
                if matches!(self.audio, Audio::Requested) {
                    // A new audio graph: its worklet counts underruns from 0 again.
                    self.underruns_offset = self.snap.underruns;
                    self.underruns_graph = 0;
                }
                self.audio = Audio::Running(r);
                self.held_samples = 0;
                self.out.extend(self.held_playback.drain(..));
            }
            Err(e) => {
                self.error(
                    ErrorKind::Audio,
                    "unsupported_audio_format",
                    format!("cannot resample {sample_rate} Hz × {channels}: {e}"),
                );
                self.handle_audio_failed(now_ms, AudioFailure::AudioContextFailed);
            }
        }
    }

    /// The AudioContext's state changed (`statechange`, or as read right after start). A
    /// suspended or interrupted context while the session uses audio asks the shell to resume it
    /// on the next user gesture and tells the app (`audio` event, `needsGesture: true`).
    pub fn handle_audio_state(&mut self, _now_ms: u64, state: AudioState) {
        if matches!(self.audio, Audio::Off) || self.audio_state == Some(state) {
            return;
        }
        let was = self.audio_state.replace(state);
        let needs_gesture = matches!(state, AudioState::Suspended | AudioState::Interrupted);
        if needs_gesture {
            if was == Some(AudioState::Running) {
                self.snap.audio_interruptions += 1;
            }
            self.out.push_back(Output::ResumeAudio { on_gesture: true });
        }
        self.push_event(AppEvent::Audio {
            state,
            needs_gesture,
        });
    }

    /// The page became visible or hidden. Back in view with audio stopped by the browser, the
    /// shell is asked to resume it at once (browsers that need a gesture keep the gesture
    /// listener armed by `handle_audio_state`).
    pub fn handle_visibility(&mut self, _now_ms: u64, visible: bool) {
        if visible
            && !matches!(self.audio, Audio::Off)
            && matches!(
                self.audio_state,
                Some(AudioState::Suspended | AudioState::Interrupted)
            )
        {
            self.out
                .push_back(Output::ResumeAudio { on_gesture: false });
        }
    }

    /// Audio could not start or stopped working: falls back to text mode (the socket, if any,
    /// stays up for text).
    pub fn handle_audio_failed(&mut self, _now_ms: u64, reason: AudioFailure) {
        if self.mode != Mode::Voice || matches!(self.audio, Audio::Off) {
            return;
        }
        self.audio = Audio::Off;
        self.audio_state = None;
        self.held_playback.clear();
        self.held_samples = 0;
        self.out.push_back(Output::StopAudio);
        self.chunker.clear();
        self.set_mode(Mode::Text, reason.as_str());
        if !self.cfg.http_fallback && self.sock == Sock::None && self.status.state == State::Text {
            self.fail(FailReason::Unsupported, reason.as_str(), None);
        }
    }

    /// Microphone samples, interleaved at the device rate given to `handle_audio_started`.
    /// Dropped while muted, in text mode or before audio started.
    pub fn handle_mic_samples(&mut self, now_ms: u64, samples: &[f32]) {
        if self.muted || self.mode != Mode::Voice {
            return;
        }
        let Audio::Running(r) = &mut self.audio else {
            return;
        };
        let frames = samples.len() / usize::from(r.channels());
        let need = r.output_capacity(frames);
        if self.resampled.len() < need {
            self.resampled.resize(need, 0.0);
        }
        let n = match r.process_into(samples, &mut self.resampled) {
            Ok(n) => n,
            Err(e) => {
                self.error(ErrorKind::Audio, "invalid_mic_block", e.to_string());
                return;
            }
        };
        self.pcm.clear();
        self.pcm
            .extend(self.resampled[..n].iter().map(|&x| pcm16::f32_to_i16(x)));
        self.captured_samples += n as u64;
        self.chunker.push(now_ms, &self.pcm);
        if self.sending_audio() {
            self.pump_audio(now_ms);
        }
        self.report_overflow(now_ms, false);
    }

    /// Playback progress of an assistant item: samples played so far for it (a monotonic count
    /// that survives underruns) and underruns since audio started (the current audio graph's
    /// own counter: the session adds those of earlier graphs).
    pub fn handle_playback_progress(
        &mut self,
        _now_ms: u64,
        item_id: &str,
        played_total: u64,
        underruns_total: u64,
    ) {
        self.underruns_graph = self.underruns_graph.max(underruns_total);
        self.snap.underruns = self
            .snap
            .underruns
            .max(self.underruns_offset + self.underruns_graph);
        if let Some(it) = self.items.iter_mut().find(|i| i.item_id == item_id) {
            it.played = it.played.max(played_total);
        }
        self.check_assistant_done();
    }

    /// The player drained this item after its end marker (`Output::EndOfItem`): it counts as
    /// fully played, whatever the resampler's rounding left of `played`, so the assistant's
    /// turn ends and a later barge-in does not truncate it. Unknown or truncated items are
    /// ignored.
    pub fn handle_playback_finished(&mut self, _now_ms: u64, item_id: &str) {
        if let Some(it) = self
            .items
            .iter_mut()
            .find(|i| i.item_id == item_id && !i.truncated)
        {
            it.played = it.received;
            it.finished = true;
        }
        self.check_assistant_done();
    }

    /// The player's ring refused `samples` (24 kHz) of assistant audio: counted in
    /// `droppedPlaybackMs` and reported as an `error` (`playback_overflow`, at most one a
    /// second; the next one carries what was dropped meanwhile).
    pub fn handle_playback_overflow(&mut self, now_ms: u64, samples: u64) {
        if samples == 0 {
            return;
        }
        let rate = u64::from(API_RATE);
        let before_ms = self.playback_overflow_samples * 1000 / rate;
        self.playback_overflow_samples += samples;
        self.snap.dropped_playback_ms += self.playback_overflow_samples * 1000 / rate - before_ms;
        self.report_playback_overflow(now_ms, false);
    }

    // ---------------------------------------------------------------- HTTP input

    /// The reply to the `Output::HttpText` tagged `seq`: `Ok(body)` with `{"reply": "..."}`,
    /// or the failure. A reply for any other `seq` (stale: after a disconnect, a failed token,
    /// a timeout) is ignored.
    pub fn handle_http_reply(&mut self, now_ms: u64, seq: u64, reply: Result<String, HttpFailure>) {
        if self.http_in_flight.is_some_and(|h| h.seq == seq) {
            self.finish_http(now_ms, reply);
        }
    }

    /// Ends the request in flight with `reply`: a transcript or an `error` event (the message
    /// is never lost silently), then the next queued message goes out.
    fn finish_http(&mut self, now_ms: u64, reply: Result<String, HttpFailure>) {
        if self.http_in_flight.take().is_none() {
            return;
        }
        self.http_queue.pop_front();
        match reply {
            Ok(body) => {
                let text = json::parse(&body, self.cfg.max_frame_bytes)
                    .ok()
                    .and_then(|v| v.get("reply").and_then(|r| r.as_str().map(str::to_string)));
                match text {
                    Some(text) => {
                        self.http_replies += 1;
                        self.push_event(AppEvent::Transcript {
                            role: Role::Assistant,
                            item_id: format!("http_{}", self.http_replies),
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
                    HttpFailure::Status(s) => format!("text request failed with HTTP status {s}"),
                    HttpFailure::Timeout => {
                        format!("text request timed out after {HTTP_TIMEOUT_MS} ms")
                    }
                };
                self.error(ErrorKind::Http, &f.code(), message);
            }
        }
        self.pump_http(now_ms);
    }

    // ---------------------------------------------------------------- internals

    fn set_state(&mut self, state: State, reason: Option<&'static str>, close_code: Option<u16>) {
        self.status.state = state;
        self.status.reason = reason;
        self.status.close_code = close_code;
        self.push_event(AppEvent::Status(self.status.clone()));
    }

    fn set_mode(&mut self, mode: Mode, reason: &'static str) {
        if self.mode != mode {
            self.mode = mode;
            self.push_event(AppEvent::Mode { mode, reason });
        }
    }

    fn push_event(&mut self, e: AppEvent) {
        self.out.push_back(Output::Event(e));
    }

    fn push_lossy_event(&mut self, e: AppEvent) {
        if self.out.len() >= MAX_QUEUED_OUTPUTS {
            self.snap.events_dropped += 1;
        } else {
            self.out.push_back(Output::Event(e));
        }
    }

    fn error(&mut self, kind: ErrorKind, code: &str, message: String) {
        self.push_event(AppEvent::Error {
            kind,
            code: code.chars().take(64).collect(),
            message,
        });
    }

    fn send(&mut self, frame: String) {
        self.snap.bytes_sent += frame.len() as u64;
        self.snap.frames_sent += 1;
        self.out.push_back(Output::Send(frame));
    }

    fn send_event(&mut self, e: &ClientEvent<'_>) {
        let frame = e.to_json(self.cfg.shape);
        self.send(frame);
    }

    fn sending_audio(&self) -> bool {
        matches!(self.sock, Sock::Open { .. }) && self.mode == Mode::Voice
    }

    /// Drops every waiting text message and forgets the request in flight (its reply, if it
    /// still comes, is stale).
    fn clear_http(&mut self) {
        self.http_queue.clear();
        self.http_in_flight = None;
    }

    fn clear_timers(&mut self) {
        self.attempt_deadline = None;
        self.reconnect_at = None;
        self.waiting_online = false;
        self.next_metrics_at = None;
        self.attempt_wants_token = false;
        self.token_requested = false;
    }

    fn close_socket(&mut self, reason: &'static str) {
        if self.sock != Sock::None {
            self.sock = Sock::None;
            self.out
                .push_back(Output::CloseSocket { code: 1000, reason });
        }
    }

    fn stop_audio(&mut self) {
        self.audio_state = None;
        self.held_playback.clear();
        self.held_samples = 0;
        if !matches!(self.audio, Audio::Off) {
            self.audio = Audio::Off;
            self.out.push_back(Output::StopAudio);
        }
        self.chunker.clear();
        self.assistant_speaking = false;
    }

    fn fail(&mut self, reason: FailReason, detail: &'static str, code: Option<u16>) {
        self.close_socket("failed");
        self.stop_audio();
        self.clear_timers();
        self.set_state(State::Failed(reason), Some(detail), code);
    }

    /// Realtime is unusable: text mode, over HTTP if configured, else `failed{otherwise}`.
    fn fallback_text(&mut self, reason: &'static str, code: Option<u16>, otherwise: FailReason) {
        self.close_socket(reason);
        self.stop_audio();
        self.clear_timers();
        self.set_mode(Mode::Text, reason);
        if self.cfg.http_fallback {
            self.set_state(State::Text, Some(reason), code);
        } else {
            self.set_state(State::Failed(otherwise), Some(reason), code);
        }
    }

    fn begin_attempt(&mut self, now_ms: u64) {
        self.snap.connection_attempts += 1;
        self.attempt_deadline = Some(now_ms + u64::from(self.cfg.connect_timeout_ms));
        match (&self.cfg.token, &self.token) {
            (TokenSource::Static(_), _) => self.open_socket(),
            (TokenSource::Provider, _) => {
                // A fresh token for every (re)connect, so an expired one is never reused.
                self.token = None;
                self.attempt_wants_token = true;
                if !self.token_requested {
                    self.token_requested = true;
                    self.out.push_back(Output::RequestToken);
                }
            }
        }
    }

    fn open_socket(&mut self) {
        let Some(token) = self.token.as_deref() else {
            return;
        };
        let mut url = self.cfg.base.socket_url(&self.cfg.interview_id);
        let protocols = match self.cfg.auth_via {
            AuthVia::Query => {
                url.push_str("?token=");
                super::url::percent_encode_into(&mut url, token);
                Vec::new()
            }
            AuthVia::Subprotocol => vec!["realtime".to_string(), format!("bearer.{token}")],
        };
        self.sock = Sock::Opening;
        self.out.push_back(Output::OpenSocket { url, protocols });
    }

    fn schedule_reconnect(
        &mut self,
        now_ms: u64,
        reason: &'static str,
        code: Option<u16>,
        rate_limited: bool,
    ) {
        if self.status.attempt >= self.cfg.max_reconnect_attempts {
            let otherwise = match code {
                None | Some(1006) => FailReason::Network,
                Some(_) => FailReason::Server,
            };
            self.snap.last_close_code = code.or(self.snap.last_close_code);
            self.fallback_text_exhausted(reason, code, otherwise);
            return;
        }
        self.status.attempt += 1;
        self.snap.reconnects += 1;
        let delay = if rate_limited {
            self.cfg
                .backoff
                .rate_limited_delay_ms(self.status.attempt, &mut self.rng)
        } else {
            self.cfg
                .backoff
                .delay_ms(self.status.attempt, &mut self.rng)
        };
        self.reconnect_at = Some(now_ms + delay);
        let state = if self.opened_in_sequence {
            State::Reconnecting
        } else {
            State::Connecting
        };
        self.set_state(state, Some(reason), code);
    }

    fn fallback_text_exhausted(
        &mut self,
        _last: &'static str,
        code: Option<u16>,
        otherwise: FailReason,
    ) {
        self.fallback_text("reconnect_exhausted", code, otherwise);
    }

    fn pump_audio(&mut self, now_ms: u64) {
        if !self.sending_audio() {
            return;
        }
        while let Some(info) = self.chunker.poll_chunk(now_ms, &mut self.chunk) {
            let mut frame = String::with_capacity(48 + pcm16::encoded_len(self.chunk.len() * 2));
            frame.push_str("{\"type\":\"input_audio_buffer.append\",\"audio\":\"");
            pcm16::encode_i16_as_pcm16_base64(&self.chunk, &mut frame);
            frame.push_str("\"}");
            let delay = now_ms.saturating_sub(info.captured_at_ms);
            self.snap.capture_to_send_last_ms = Some(delay);
            self.snap.capture_to_send_max_ms = self.snap.capture_to_send_max_ms.max(delay);
            self.capture_delay_sum += delay;
            self.capture_delay_count += 1;
            self.sent_samples += self.chunk.len() as u64;
            self.send(frame);
        }
    }

    fn report_overflow(&mut self, now_ms: u64, force: bool) {
        let dropped = self.chunker.dropped_samples();
        if dropped <= self.dropped_reported {
            return;
        }
        if !force
            && self
                .last_overflow_event
                .is_some_and(|t| now_ms < t + OVERFLOW_EVENT_EVERY_MS)
        {
            return;
        }
        let new_ms = (dropped - self.dropped_reported) * 1000 / u64::from(API_RATE);
        self.dropped_reported = dropped;
        self.last_overflow_event = Some(now_ms);
        let total_ms = dropped * 1000 / u64::from(API_RATE);
        self.error(
            ErrorKind::Audio,
            "audio_overflow",
            format!(
                "dropped {new_ms} ms of microphone audio beyond the {} ms backlog bound ({total_ms} ms in total)",
                self.cfg.max_backlog_ms
            ),
        );
    }

    fn report_playback_overflow(&mut self, now_ms: u64, force: bool) {
        let dropped = self.playback_overflow_samples;
        if dropped <= self.playback_overflow_reported {
            return;
        }
        if !force
            && self
                .last_playback_overflow_event
                .is_some_and(|t| now_ms < t + OVERFLOW_EVENT_EVERY_MS)
        {
            return;
        }
        let rate = u64::from(API_RATE);
        let new_ms = (dropped - self.playback_overflow_reported) * 1000 / rate;
        self.playback_overflow_reported = dropped;
        self.last_playback_overflow_event = Some(now_ms);
        let total_ms = dropped * 1000 / rate;
        self.error(
            ErrorKind::Audio,
            "playback_overflow",
            format!(
                "the player dropped {new_ms} ms of assistant audio: its buffer was full ({total_ms} ms in total)"
            ),
        );
    }

    fn pump_http(&mut self, now_ms: u64) {
        if self.http_in_flight.is_some() || self.http_queue.is_empty() {
            return;
        }
        let Some(token) = self.token.clone() else {
            if !self.token_requested {
                self.token_requested = true;
                self.out.push_back(Output::RequestToken);
            }
            return;
        };
        let Some(body) = self.http_queue.front() else {
            return;
        };
        self.http_seq += 1;
        let seq = self.http_seq;
        self.http_in_flight = Some(HttpInFlight {
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

    fn on_server_event(&mut self, now_ms: u64, kind: &str, ev: ServerEvent<'_>) {
        match ev {
            ServerEvent::Session {
                updated: false,
                model: Some(m),
            } if self.cfg.model.is_none() => {
                self.prices = self.cfg.prices.or_else(|| Prices::for_model(&m));
                self.snap.model = Some(m.chars().take(128).collect());
            }
            ServerEvent::AudioDelta { item_id, delta, .. } => {
                self.on_audio_delta(now_ms, kind, &item_id, &delta)
            }
            ServerEvent::AudioDone { item_id } => {
                let mut ended = None;
                if let Some(it) = self.items.iter_mut().find(|i| i.item_id == item_id) {
                    it.done = true;
                    if !it.truncated {
                        ended = Some(it.item_id.clone());
                    }
                }
                if let Some(item_id) = ended {
                    self.playback_out(Output::EndOfItem { item_id });
                }
                self.check_assistant_done();
            }
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
            }
            ServerEvent::ResponseDone { usage, .. } => {
                self.response_active = None;
                if let Some(u) = usage {
                    self.add_usage(&u);
                }
            }
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
                self.error(ErrorKind::Server, &code, message);
            }
            _ => {}
        }
    }

    fn on_audio_delta(&mut self, now_ms: u64, kind: &str, item_id: &str, delta: &str) {
        if self.mode != Mode::Voice {
            return;
        }
        let mut buf = self.play_pool.pop().unwrap_or_default();
        let n = match pcm16::decode_pcm16_base64_to_f32(delta, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                self.snap.protocol_errors += 1;
                self.recycle(buf);
                let err = crate::protocol::ProtocolError::InvalidAudio {
                    event: kind.chars().take(64).collect(),
                    reason: e.to_string(),
                };
                self.error(ErrorKind::Protocol, err.code(), err.to_string());
                return;
            }
        };
        let idx = match self.items.iter().position(|i| i.item_id == item_id) {
            Some(i) => i,
            None => {
                if self.items.len() == TRACKED_ITEMS {
                    self.items.pop_front();
                }
                self.items.push_back(ItemAudio {
                    item_id: item_id.to_string(),
                    received: 0,
                    played: 0,
                    done: false,
                    truncated: false,
                    finished: false,
                });
                self.items.len() - 1
            }
        };
        if self.items[idx].truncated {
            // Audio still in flight for an item we cut off: not played.
            self.recycle(buf);
            return;
        }
        self.items[idx].received += n as u64;
        self.items[idx].finished = false;
        if let Some(mark) = self.latency_mark.take() {
            self.latency.push(now_ms.saturating_sub(mark));
        }
        if self.snap.time_to_first_audio_ms.is_none() {
            if let Some(t) = self.connect_called_at {
                self.snap.time_to_first_audio_ms = Some(now_ms.saturating_sub(t));
            }
        }
        if !self.assistant_speaking {
            self.assistant_speaking = true;
            self.underruns_at_speech_start = self.snap.underruns;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: true,
            });
        }
        self.playback_out(Output::Play {
            item_id: item_id.to_string(),
            samples: buf,
        });
    }

    /// Player outputs go out once audio runs; while it is still starting (the microphone
    /// prompt, worklet loading) they are held in order, up to `HELD_PLAYBACK_SAMPLES`, so the
    /// greeting that arrives meanwhile is not lost. Beyond the bound AI audio is dropped and
    /// counted (`droppedPlaybackMs`).
    fn playback_out(&mut self, o: Output) {
        match (&self.audio, o) {
            (Audio::Running(_), o) => self.out.push_back(o),
            (Audio::Requested, Output::FlushPlayback { .. }) => {
                // Audio is dropped; a held pre-buffer setting still applies.
                let held = std::mem::take(&mut self.held_playback);
                for o in held {
                    match o {
                        Output::Play { samples, .. } => {
                            self.play_pool.push(samples);
                            self.play_pool.truncate(PLAY_POOL);
                        }
                        o @ Output::SetPrebuffer { .. } => self.held_playback.push_back(o),
                        _ => {}
                    }
                }
                self.held_samples = 0;
            }
            (Audio::Requested, Output::Play { item_id, samples }) => {
                if self.held_samples + samples.len() > HELD_PLAYBACK_SAMPLES {
                    self.snap.dropped_playback_ms +=
                        samples.len() as u64 * 1000 / u64::from(API_RATE);
                    self.recycle(samples);
                } else {
                    self.held_samples += samples.len();
                    self.held_playback
                        .push_back(Output::Play { item_id, samples });
                }
            }
            (Audio::Requested, o) => self.held_playback.push_back(o),
            (Audio::Off, Output::Play { samples, .. }) => self.recycle(samples),
            (Audio::Off, _) => {}
        }
    }

    fn check_assistant_done(&mut self) {
        if !self.assistant_speaking {
            return;
        }
        let busy = self
            .items
            .iter()
            .any(|i| !i.truncated && (!i.done || i.played < i.received));
        if !busy {
            self.assistant_speaking = false;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: false,
            });
            self.adapt_prebuffer();
        }
    }

    /// After each response: underruns during it raise the pre-buffer (the network delivers
    /// less evenly than it holds); `CALM_RESPONSES` clean ones in a row lower it towards the
    /// configured start, so latency comes back when the network does.
    fn adapt_prebuffer(&mut self) {
        let (base, max) = (self.cfg.prebuffer_ms, self.cfg.max_prebuffer_ms);
        let next = if self.snap.underruns > self.underruns_at_speech_start {
            self.calm_responses = 0;
            (self.prebuffer_ms + PREBUFFER_STEP_UP_MS).min(max)
        } else {
            self.calm_responses += 1;
            if self.calm_responses < CALM_RESPONSES {
                return;
            }
            self.calm_responses = 0;
            self.prebuffer_ms
                .saturating_sub(PREBUFFER_STEP_DOWN_MS)
                .max(base)
        };
        if next != self.prebuffer_ms {
            self.prebuffer_ms = next;
            // Held while audio starts, dropped while it is off: a player built later reads
            // `prebuffer_ms()`.
            self.playback_out(Output::SetPrebuffer { ms: next });
        }
    }

    /// Barge-in. Flushes playback and truncates the playing item at the played position
    /// (clamped to the audio received). Only an item still playing is truncated: not one the
    /// player finished (`handle_playback_finished`) nor one fully played. `response.cancel` is sent only when `explicit`
    /// (`interrupt()`) and a response is in progress: on `speech_started` the server's VAD
    /// (`interrupt_response`, on by default) has already cancelled it, and a second cancel
    /// would only earn a `response_cancel_not_active` error.
    fn barge_in(&mut self, _now_ms: u64, explicit: bool) {
        let playing = self.items.iter().rposition(|i| {
            !i.truncated && !i.finished && i.received > 0 && (!i.done || i.played < i.received)
        });
        if let Some(idx) = playing {
            let it = &mut self.items[idx];
            it.truncated = true;
            let end_samples = it.played.min(it.received);
            let audio_end_ms = end_samples * 1000 / u64::from(API_RATE);
            let item_id = it.item_id.clone();
            self.playback_out(Output::FlushPlayback {
                ramp_ms: BARGE_IN_RAMP_MS,
            });
            if matches!(self.sock, Sock::Open { .. }) {
                self.send_event(&ClientEvent::Truncate {
                    item_id: &item_id,
                    audio_end_ms,
                });
            }
        }
        if explicit && matches!(self.sock, Sock::Open { .. }) {
            if let Some(id) = self.response_active.take() {
                let response_id = (!id.is_empty()).then_some(id.as_str());
                self.send_event(&ClientEvent::ResponseCancel { response_id });
            }
        }
        if self.assistant_speaking && playing.is_some() {
            self.assistant_speaking = false;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: false,
            });
            // An answer cut short still tells how evenly its audio arrived.
            self.adapt_prebuffer();
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

/// `s` cut to at most `max` bytes at a char boundary.
fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
