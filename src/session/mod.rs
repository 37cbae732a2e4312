//! The sans-IO realtime session: one [`Session`] that owns every decision — connection state,
//! reconnect with backoff, text fallback, mic chunking within the backend's rate limit, barge-in
//! truncation, metrics and cost — while the web shell only performs I/O.
//!
//! # Contract (quinn-proto / str0m style)
//!
//! - **Time** enters as `now_ms: u64` (any monotonic ms clock, e.g. `performance.now()`), first
//!   argument of every input. The session never reads a clock, never blocks, never spawns.
//! - **Inputs**: commands ([`Session::connect`], [`Session::disconnect`],
//!   [`Session::set_muted`], [`Session::send_text`], [`Session::interrupt`],
//!   [`Session::update_session`], [`Session::set_input_device`],
//!   [`Session::set_output_device`]) and events (`handle_token`, `handle_socket_opened`,
//!   `handle_socket_message`, `handle_socket_binary`, `handle_socket_closed`,
//!   `handle_socket_error`, `handle_timeout`, `handle_audio_started` / `handle_audio_failed`,
//!   `handle_mic_samples`, `handle_playback_started`, `handle_playback_progress`,
//!   `handle_playback_finished`, `handle_playback_overflow`, `handle_output_level`,
//!   `handle_online`, `handle_socket_buffered`, `handle_token_result`, `handle_http_reply` with
//!   the request's `seq`; devices: `handle_mic_lost`, `handle_devices_changed`,
//!   `handle_mic_opened` / `handle_mic_open_failed` with the `OpenMic` request's `seq`,
//!   `handle_sink_failed`). Calls in the wrong state
//!   are no-ops (or a typed [`CommandError`]), never panics.
//! - **Outputs**: after *every* input, drain [`Session::poll_output`] until it returns `None`
//!   and perform each [`Output`] **in order** (a `CloseSocket` always precedes the next
//!   `OpenSocket`; `Send`s follow the `OpenSocket`/`handle_socket_opened` they belong to). Then
//!   read [`Session::poll_timeout`] and arm one timer for that absolute time; when it fires call
//!   [`Session::handle_timeout`] and drain again. Re-read `poll_timeout` after every drain (it
//!   moves).
//!
//! ```text
//! loop {
//!     input(now, ...)                      // a command or a handle_* call
//!     while let Some(o) = s.poll_output() { perform(o) }
//!     timer.set(s.poll_timeout())          // absolute ms, or none
//! }
//! ```
//!
//! - **Getters**: [`Session::status`], [`Session::mode`], [`Session::metrics`] (and
//!   [`MetricsSnapshot::to_json`]), [`Session::config`], [`Session::prebuffer_ms`].
//!
//! # States
//!
//! `idle → connecting → connected ⇄ reconnecting → closed`, plus `text` (realtime unusable, text
//! over HTTP) and `failed{auth|busy|unsupported|network|server}`. Every transition is an
//! [`AppEvent::Status`] with the reason, close code and attempt number. The mode (voice/text) is
//! separate ([`AppEvent::Mode`]): a text-mode session over an open socket is `connected`.
//!
//! The connection is one [`Link`] state with per-state data and deadlines (`connection.rs`);
//! the app's [`State`] is derived from it. Every `connecting`/`reconnecting` state has a way out
//! ([`Session::way_out`]): a tested liveness property.
//!
//! Close codes: 1000 → `closed`; 1001, 1011, 1013 and others → reconnect with exponential
//! backoff and full jitter (250 ms × 2ⁿ up to 8 s), bounded attempts; 1006, timeouts, dead links
//! and token-provider network failures are network faults, retried after a connection for
//! `reconnectWindowMs` beyond the attempts; 1006 before the socket ever opened is a rejected
//! handshake; 1008 → one retry (through the backoff) with a fresh token from the provider, then
//! `failed{auth}`, re-armed only by a connection healthy for 5 s after the server's first frame;
//! 4403 → text mode at once; 4409 → `failed{busy}` on the first connect, retried for 30 s on a
//! reconnect (our own dead socket); 4410 (taken over) → `failed{busy}`; 4429 → reconnect after
//! a longer wait. Attempts exhausted → text mode (`reconnect_exhausted`) over HTTP if
//! `httpFallback`, else `failed{network|server}`. Reconnects present the previous session id
//! (`&resume=`) so the relay can hand the interview back at once.
//!
//! # Memory
//!
//! Bounded by design: the mic backlog is the chunker's ring (`maxBacklogMs`), latency samples a
//! ring of `latencyWindow`, assistant items tracked: 4, HTTP queue: 16 (one in flight, 30 s
//! deadline), play buffer pool: 4, device ids listed: 64 per kind,
//! droppable app events stop queueing at 4096 undrained outputs (counted).

pub mod backoff;
pub mod config;
pub mod connection;
pub mod cost;
pub mod devices;
mod echo;
pub mod events;
mod http_text;
mod jitter;
pub mod machine;
pub mod metrics;
pub mod output;
mod playback;
pub mod rng;
mod server_events;
pub mod status;
pub mod timers;
mod tools;
mod uplink;
pub mod url;

pub use config::{
    AuthVia, ConfigError, EchoCanceller, RawCapture, ServerEventFilter, SessionConfig, TokenSource,
};
pub use connection::{Link, WayOut};
pub use devices::{DeviceChange, DeviceKind, MicLoss};
pub use events::{AppEvent, ErrorKind, LevelSource, Role};
pub use machine::{Session, LEVEL_EVERY_MS};
pub use metrics::MetricsSnapshot;
pub use output::{AudioFailure, CommandError, HttpFailure, Output, TokenFailure};
pub use status::{AudioState, FailReason, Mode, State, Status};
pub use timers::Timer;
