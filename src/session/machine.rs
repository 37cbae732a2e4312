//! The session: routes inputs (`handle_*` and commands, each with `now_ms`) to the part they
//! concern and queues their outputs ([`Output`], drained with [`Session::poll_output`]); one
//! timer ([`Session::poll_timeout`]) serves them all. See [`crate::session`] for the contract
//! and the drain order. The parts live beside it: the connection lifecycle
//! (`connection.rs`), the uplink (`uplink.rs`), playback tracking (`playback.rs`), text over
//! HTTP (`http_text.rs`), tools (`tools.rs`) and server events (`server_events.rs`).

use std::collections::VecDeque;

use super::config::{SessionConfig, TokenSource};
use super::connection::{Attempts, Link};
use super::cost::Prices;
use super::devices::Devices;
use super::echo::EchoPath;
use super::events::{AppEvent, ErrorKind};
use super::http_text::{HttpText, HTTP_QUEUE};
use super::metrics::{LatencyWindow, MetricsSnapshot};
use super::output::{CommandError, Output};
use super::playback::Playback;
use super::rng::Rng;
use super::status::{Mode, State, Status};
use super::timers::Timer;
use super::tools::Tools;
use super::uplink::Uplink;
use crate::protocol::{session_update_frame, ClientEvent, OutputKind};

pub use super::connection::STABLE_AFTER_MS;
pub use super::http_text::HTTP_TIMEOUT_MS;
pub use super::playback::{BARGE_IN_RAMP_MS, LEVEL_EVERY_MS};

/// Rate of the realtime API's audio, both ways: 24 kHz mono.
pub const API_RATE: u32 = 24_000;
/// Beyond this many queued outputs, app events that can be lost (raw server events, metrics)
/// are dropped and counted, so a shell that stops draining cannot grow memory without bound.
const MAX_QUEUED_OUTPUTS: usize = 4096;

/// The sans-IO realtime voice session. See [`crate::session`] for the contract.
pub struct Session {
    pub(super) cfg: SessionConfig,
    pub(super) rng: Rng,
    pub(super) out: VecDeque<Output>,
    pub(super) status: Status,
    pub(super) mode: Mode,
    /// The browser's `navigator.onLine`, as last reported.
    pub(super) online: bool,
    /// The latest `now_ms` seen by an input that carries one.
    pub(super) last_now: u64,

    /// The connection lifecycle: the one source of the app-facing state.
    pub(super) link: Link,
    pub(super) attempts: Attempts,
    /// The last token the provider gave (or the static one); `None` while a fresh one is due.
    pub(super) token: Option<String>,
    /// The last token the provider gave, kept while a fresh one is asked for: used when the
    /// provider cannot be reached (never after a 1008).
    pub(super) last_token: Option<String>,
    /// The shell is running the token provider (`Output::RequestToken` not yet answered).
    pub(super) token_outstanding: bool,
    /// The app's `session.update` frame, sent again after every reconnect.
    pub(super) session_update: Option<String>,
    /// Someone reads raw server events (`AppEvent::ServerEvent`); when not, frames are not
    /// copied for them.
    pub(super) raw_events_wanted: bool,
    /// The response in progress (its id, or empty when the server gave none).
    pub(super) response_active: Option<String>,
    /// A `response.create` is owed: a text message came while a response was in progress, or
    /// the server refused one of ours for that (`conversation_already_has_active_response`:
    /// a response it started that we had not heard of yet). It is sent once that response is
    /// done, unless another response answers first (a tool call's continuation, or the one that
    /// ends a turn the server's VAD started).
    pub(super) response_owed: bool,

    pub(super) up: Uplink,
    pub(super) devices: Devices,
    pub(super) play: Playback,
    pub(super) echo: EchoPath,
    pub(super) http: HttpText,
    pub(super) tools: Tools,

    pub(super) latency: LatencyWindow,
    pub(super) latency_mark: Option<u64>,
    pub(super) connect_called_at: Option<u64>,
    pub(super) next_metrics_at: Option<u64>,
    pub(super) snap: MetricsSnapshot,
    pub(super) prices: Option<Prices>,
}

impl std::fmt::Debug for Session {
    /// A short summary: no token, no buffers, no transcripts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("status", &self.status)
            .field("mode", &self.mode)
            .field("link", &self.link)
            .field("muted", &self.up.muted)
            .field("online", &self.online)
            .field("backlog_samples", &self.up.chunker.backlog_samples())
            .field("pending_outputs", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new idle session. `rng_seed` seeds the backoff jitter (the shell passes random bits;
    /// tests pass a constant).
    pub fn new(config: SessionConfig, rng_seed: u64) -> Session {
        let model = config.model.clone();
        let prices = config
            .prices
            .or_else(|| model.as_deref().and_then(Prices::for_model));
        Session {
            latency: LatencyWindow::new(config.latency_window),
            up: Uplink::new(config.chunk_ms, config.max_chunk_ms, config.max_backlog_ms),
            devices: Devices::new(config.sink_id.clone()),
            play: Playback::new(config.prebuffer_ms, config.max_prebuffer_ms),
            echo: EchoPath::new(
                config.echo_guard,
                config.echo_canceller,
                config.barge_in_duck,
                config.echo_guard_raw,
            ),
            http: HttpText::default(),
            tools: Tools::default(),
            rng: Rng::new(rng_seed),
            out: VecDeque::new(),
            status: Status {
                state: State::Idle,
                reason: None,
                close_code: None,
                attempt: 0,
            },
            mode: config.mode,
            online: true,
            last_now: 0,
            link: Link::Idle,
            attempts: Attempts::default(),
            token: match &config.token {
                TokenSource::Static(t) => Some(t.clone()),
                TokenSource::Provider => None,
            },
            last_token: None,
            token_outstanding: false,
            session_update: None,
            raw_events_wanted: true,
            response_active: None,
            response_owed: false,
            latency_mark: None,
            connect_called_at: None,
            next_metrics_at: None,
            snap: MetricsSnapshot {
                model,
                ..MetricsSnapshot::default()
            },
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
        self.up.muted
    }

    /// A snapshot of the metrics now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.snap.clone();
        let [p50, p95, p99] = self.latency.percentiles([50, 95, 99]);
        m.latency_p50_ms = p50;
        m.latency_p95_ms = p95;
        m.latency_p99_ms = p99;
        m.latency_samples = self.latency.len();
        m.capture_to_send_avg_ms = self
            .up
            .capture_delay_sum
            .checked_div(self.up.capture_delay_count);
        let rate = u64::from(API_RATE);
        m.buffered_audio_ms = self.up.chunker.backlog_samples() as u64 * 1000 / rate;
        m.captured_audio_ms = self.up.captured_samples * 1000 / rate;
        m.sent_audio_ms = self.up.sent_samples * 1000 / rate;
        m.dropped_audio_ms = self.up.chunker.dropped_samples() * 1000 / rate;
        m.discarded_audio_ms = self.up.chunker.discarded_samples() * 1000 / rate;
        m.prebuffer_ms = u64::from(self.play.prebuffer_ms);
        self.echo.fill_metrics(&mut m);
        let [d50, d95] = self.play.delays.percentiles([50, 95]);
        m.prebuffer_p50_ms = d50;
        m.prebuffer_p95_ms = d95;
        m.arrival_jitter_ms = u64::from(self.play.jitter_ms());
        m.underruns_per_min = self.play.started_at.map_or(0.0, |t| {
            let minutes = self.last_now.saturating_sub(t) as f64 / 60_000.0;
            if minutes > 0.0 {
                m.underruns as f64 / minutes
            } else {
                0.0
            }
        });
        m
    }

    /// The current playout delay (ms), learnt from arrival jitter: the shell builds the player
    /// with it, so what was learnt survives audio restarts.
    pub fn prebuffer_ms(&self) -> u32 {
        self.play.prebuffer_ms
    }

    /// Whether anyone reads raw server events: the shell says no while the app has no `event`
    /// listener, so frames are not copied for nobody (default: yes).
    pub fn set_raw_events_wanted(&mut self, wanted: bool) {
        self.raw_events_wanted = wanted;
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
        Timer::ALL.iter().filter_map(|&t| self.timer(t)).min()
    }

    /// When the timer of kind `t` is due, if it is armed.
    pub fn timer(&self, t: Timer) -> Option<u64> {
        match t {
            Timer::Link => self.link_deadline(),
            Timer::DeadLink => self.dead_link_deadline(),
            Timer::Audio => self.audio_deadline(),
            Timer::Metrics if self.is_open() => self.next_metrics_at,
            Timer::Metrics => None,
            Timer::Http => self.http.deadline(),
            Timer::Tool => self.tools.deadline(),
            Timer::Mic => self.devices.deadline(),
        }
    }

    // ---------------------------------------------------------------- commands

    /// Starts connecting (from idle, closed, failed or text). A no-op while already connecting,
    /// connected (in either mode) or reconnecting: no output and no `status` event, so a caller
    /// that waits for one reads [`Session::status`] instead. In voice mode it also asks the shell
    /// to start audio, so mic audio captured while connecting is kept (bounded) and sent once the
    /// socket opens.
    pub fn connect(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        if !self.may_connect() {
            return;
        }
        self.attempts = Attempts::default();
        self.connect_called_at = Some(now_ms);
        self.snap.time_to_first_audio_ms = None;
        self.snap.time_to_first_sound_ms = None;
        if self.mode != self.cfg.mode {
            self.set_mode(self.cfg.mode, "connect");
        }
        // An attempt is due now: `connecting`, then the attempt's own outputs.
        self.set_link(Link::Backoff { at: now_ms });
        self.set_status(Some("connect"), None);
        self.start_audio();
        self.begin_attempt(now_ms, false);
    }

    /// Ends the session: closes the socket (1000), stops audio, cancels timers. No-op when idle
    /// or closed.
    pub fn disconnect(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        if matches!(self.status.state, State::Idle | State::Closed) {
            return;
        }
        self.stop_audio();
        self.clear_http();
        self.end(super::connection::End::Closed, "client_disconnect", None);
    }

    /// Sends a user text message: over the open socket (`conversation.item.create` +
    /// `response.create`, text output in text mode, audio in voice mode; the `response.create`
    /// waits for the end of a response in progress), else over HTTP when `httpFallback` is on and
    /// realtime is unusable.
    pub fn send_text(&mut self, now_ms: u64, text: &str) -> Result<(), CommandError> {
        self.last_now = now_ms;
        let max = self.cfg.max_frame_bytes.saturating_sub(256);
        if text.len() > max {
            return Err(CommandError::TooLong {
                len: text.len(),
                max,
            });
        }
        if self.is_open() {
            let item = ClientEvent::UserText { text }.to_json(self.cfg.shape);
            self.send_expecting_reply(item);
            if self.response_active.is_some() {
                self.response_owed = true;
            } else {
                self.create_response();
            }
            return Ok(());
        }
        let http_ok = self.cfg.http_fallback
            && matches!(
                self.status.state,
                State::Text
                    | State::Connecting
                    | State::Reconnecting
                    | State::Failed(
                        super::status::FailReason::Network
                            | super::status::FailReason::Server
                            | super::status::FailReason::Unsupported
                    )
            );
        if !http_ok {
            return Err(CommandError::NoTextTransport {
                state: self.status.state,
            });
        }
        if self.http.queue.len() >= HTTP_QUEUE {
            return Err(CommandError::QueueFull);
        }
        self.queue_http(now_ms, text);
        Ok(())
    }

    /// Asks for a response (`response.create`: text output in text mode, audio in voice mode);
    /// it answers a text message still waiting for one too.
    pub(super) fn create_response(&mut self) {
        self.response_owed = false;
        if !self.is_open() {
            return;
        }
        let output = if self.mode == Mode::Text {
            OutputKind::Text
        } else {
            OutputKind::Audio
        };
        let create = ClientEvent::ResponseCreate { output }.to_json(self.cfg.shape);
        self.send_expecting_reply(create);
    }

    /// Interrupts the assistant on demand: flushes playback, truncates the playing item at the
    /// played position and cancels the response if one is in progress.
    pub fn interrupt(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        self.barge_in(now_ms, true);
    }

    /// Sends `session.update` with the app's session object (beta or GA shape by `protocol`),
    /// now if connected, and again after every reconnect (a new server session forgets it).
    pub fn update_session(&mut self, now_ms: u64, session_json: &str) -> Result<(), CommandError> {
        self.last_now = now_ms;
        let frame = session_update_frame(session_json, self.cfg.shape, self.cfg.max_frame_bytes)
            .map_err(CommandError::InvalidSessionUpdate)?;
        if self.is_open() {
            self.send_expecting_reply(frame.clone());
        }
        self.session_update = Some(frame);
        Ok(())
    }

    // ---------------------------------------------------------------- timer and shell inputs

    /// Calls due timers. Spurious or early calls are no-ops.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        self.link_timeouts(now_ms);
        if self.audio_deadline().is_some_and(|t| t <= now_ms) {
            self.pump_audio(now_ms);
        }
        if self.is_open() && self.next_metrics_at.is_some_and(|t| t <= now_ms) {
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
        self.http_timeouts(now_ms);
        self.tool_timeouts(now_ms);
        self.mic_timeouts(now_ms);
    }

    /// Another tab of this browser holds the interview's connection (the shell's Web Locks
    /// check, before `connect`): `failed{busy}` without opening a socket.
    pub fn handle_busy_elsewhere(&mut self, _now_ms: u64) {
        if self.is_active() {
            return;
        }
        self.fail(super::status::FailReason::Busy, "other_tab", None);
    }

    // ---------------------------------------------------------------- helpers for the parts

    /// Emits a `status` event for the current state with this reason and close code.
    pub(super) fn set_status(&mut self, reason: Option<&'static str>, close_code: Option<u16>) {
        self.status.state = self.derived_state();
        self.status.attempt = self.attempts.count;
        self.status.reason = reason;
        self.status.close_code = close_code;
        self.push_event(AppEvent::Status(self.status.clone()));
    }

    pub(super) fn set_mode(&mut self, mode: Mode, reason: &'static str) {
        if self.mode != mode {
            self.mode = mode;
            self.push_event(AppEvent::Mode { mode, reason });
        }
    }

    pub(super) fn push_event(&mut self, e: AppEvent) {
        self.out.push_back(Output::Event(e));
    }

    pub(super) fn push_lossy_event(&mut self, e: AppEvent) {
        if self.out.len() >= MAX_QUEUED_OUTPUTS {
            self.snap.events_dropped += 1;
        } else {
            self.out.push_back(Output::Event(e));
        }
    }

    pub(super) fn error(&mut self, kind: ErrorKind, code: &str, message: String) {
        self.push_event(AppEvent::Error {
            kind,
            code: code.chars().take(64).collect(),
            message,
        });
    }

    pub(super) fn send(&mut self, frame: String) {
        self.snap.bytes_sent += frame.len() as u64;
        self.snap.frames_sent += 1;
        self.count_sent(frame.len());
        self.out.push_back(Output::Send(frame));
    }

    pub(super) fn send_client_event(&mut self, e: &ClientEvent<'_>) {
        let frame = e.to_json(self.cfg.shape);
        self.send(frame);
    }
}
