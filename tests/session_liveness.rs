//! Liveness as a property: random input sequences through the public sans-IO API, with the
//! properties of `session_support/properties.rs` checked after every input (the
//! `session_inputs` fuzz target checks the same ones). The bugs they found have deterministic
//! regression tests beside their subject: `session_network_faults.rs` (a retry drawn with no
//! delay) and `session_audio_accounting.rs` (audio discarded when audio stops).
#![cfg(not(target_arch = "wasm32"))] // proptest is a native-only dev-dependency

#[path = "session_support/properties.rs"]
mod properties;
mod session_support;

use properties::{check_after_input, check_settles, check_timeout_served, MAX_OUTPUTS_PER_INPUT};
use proptest::prelude::*;
use realtime_voice::session::{
    AudioFailure, HttpFailure, Link, MicLoss, Output, Session, SessionConfig, TokenFailure,
};
use session_support::{audio_delta, SESSION_CREATED};

/// One input from the app, the browser or the network, as the shell would deliver it.
#[derive(Debug, Clone)]
enum In {
    /// The clock moves on by this many ms; every timer due on the way fires.
    Advance(u32),
    /// The shell's timer fires: the clock jumps to `poll_timeout()`.
    TimerFires,
    /// `handle_timeout(now)` with nothing (necessarily) due.
    SpuriousTimeout,
    /// The network and the provider work: the shell answers what the connection waits for
    /// (a token, the socket's open, the server's first frame with a session id).
    Serve,
    Connect,
    Disconnect,
    Mute(bool),
    SendText,
    Interrupt,
    UpdateSession(bool),
    /// `handle_token`: a token, or the provider's error.
    Token(bool),
    /// `handle_token_result`: 0 a token, 1 network failure, 2 timeout, 3 refused.
    TokenResult(u8),
    Opened,
    /// A server frame (see [`frame`]).
    Frame(u8, u8),
    Binary,
    Closed {
        code: u16,
        was_open: bool,
    },
    SocketError,
    Buffered(u32),
    Online(bool),
    AudioStarted(u8),
    AudioFailed(u8),
    /// Mic samples at the device rate: this many ms, at a level (silence, a murmur, speech,
    /// near full scale).
    Mic(u16, u8),
    Progress(u8, u32),
    PlaybackFinished(u8),
    PlaybackOverflow(u32),
    /// A reply to the latest HTTP request (or a stale one): 0 ok, 1 network, 2 status 500.
    HttpReply {
        stale: bool,
        kind: u8,
    },
    Visibility(bool),
    BusyElsewhere,
    /// `handle_mic_lost`: the track ended (true) or the device went.
    MicLost(bool),
    /// `handle_devices_changed` with the devices of this bit mask (0: none listed; bit 4: no
    /// output list).
    DevicesChanged(u8),
    /// The latest `OpenMic` succeeded (or an older, stale one: `true`).
    MicOpened(bool),
    /// The latest `OpenMic` failed: 0 absent, 1 denied, 2 other, 3 a stale one.
    MicOpenFailed(u8),
    /// The app chooses a microphone (0: the default).
    SetInput(u8),
    /// The app chooses an output device (0: the default).
    SetOutput(u8),
    SinkFailed,
}

/// Device ids the inputs draw from.
const DEVICES: [&str; 4] = ["default", "usb", "bt", "hdmi"];

fn device(i: u8) -> Option<&'static str> {
    (i > 0).then(|| DEVICES[usize::from(i) % DEVICES.len()])
}

/// Close codes with their own handling, and any other.
fn close_code() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![1000u16, 1001, 1006, 1008, 1011, 1013, 4403, 4409, 4410, 4429]),
        1 => any::<u16>(),
    ]
}

fn input() -> impl Strategy<Value = In> {
    prop_oneof![
        8 => (0u32..3_000).prop_map(In::Advance),
        1 => (0u32..120_000).prop_map(In::Advance),
        4 => Just(In::TimerFires),
        1 => Just(In::SpuriousTimeout),
        10 => Just(In::Serve),
        4 => Just(In::Connect),
        1 => Just(In::Disconnect),
        1 => any::<bool>().prop_map(In::Mute),
        1 => Just(In::SendText),
        1 => Just(In::Interrupt),
        1 => any::<bool>().prop_map(In::UpdateSession),
        2 => any::<bool>().prop_map(In::Token),
        3 => (0u8..4).prop_map(In::TokenResult),
        4 => Just(In::Opened),
        8 => (any::<u8>(), 0u8..3).prop_map(|(w, i)| In::Frame(w, i)),
        1 => Just(In::Binary),
        3 => (close_code(), any::<bool>()).prop_map(|(code, was_open)| In::Closed { code, was_open }),
        1 => Just(In::SocketError),
        2 => prop_oneof![Just(0u32), 1u32..100_000].prop_map(In::Buffered),
        3 => any::<bool>().prop_map(In::Online),
        2 => any::<u8>().prop_map(In::AudioStarted),
        1 => any::<u8>().prop_map(In::AudioFailed),
        4 => (1u16..200, 0u8..4).prop_map(|(ms, level)| In::Mic(ms, level)),
        1 => (0u8..3, 0u32..48_000).prop_map(|(i, p)| In::Progress(i, p)),
        1 => (0u8..3).prop_map(In::PlaybackFinished),
        1 => (0u32..48_000).prop_map(In::PlaybackOverflow),
        2 => (any::<bool>(), 0u8..3).prop_map(|(stale, kind)| In::HttpReply { stale, kind }),
        1 => any::<bool>().prop_map(In::Visibility),
        1 => Just(In::BusyElsewhere),
        2 => any::<bool>().prop_map(In::MicLost),
        2 => (0u8..32).prop_map(In::DevicesChanged),
        3 => any::<bool>().prop_map(In::MicOpened),
        3 => (0u8..4).prop_map(In::MicOpenFailed),
        1 => (0u8..4).prop_map(In::SetInput),
        1 => (0u8..4).prop_map(In::SetOutput),
        1 => Just(In::SinkFailed),
    ]
}

/// A server frame: the ones that move the connection (`session.created` with an id, a
/// response that makes a frame due and the one that settles it) weigh most.
fn frame(which: u8, item: u8) -> String {
    let item = format!("it{item}");
    match which % 14 {
        0 | 1 => format!(r#"{{"type":"session.created","session":{{"id":"sess_{item}"}}}}"#),
        2 => SESSION_CREATED.to_string(),
        3 | 4 => r#"{"type":"response.created","response":{"id":"r1"}}"#.to_string(),
        5 => r#"{"type":"response.created","response":{}}"#.to_string(),
        6 => audio_delta(&item, 480),
        7 => format!(r#"{{"type":"response.output_text.delta","item_id":"{item}","delta":"x"}}"#),
        8 | 9 => r#"{"type":"response.done","response":{"id":"r1","usage":{"input_tokens":5,"output_tokens":7}}}"#.to_string(),
        10 => format!(r#"{{"type":"response.output_audio.done","item_id":"{item}"}}"#),
        11 => r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#
            .to_string(),
        12 => r#"{"type":"input_audio_buffer.committed","item_id":"u"}"#.to_string(),
        _ => r#"{"type":"response.created","#.to_string(), // malformed: still a sign of life
    }
}

/// A session driven like the web shell drives it, on a virtual clock.
struct Shell {
    s: Session,
    now: u64,
    /// The device rate and channel count given to `handle_audio_started`.
    rate: u32,
    channels: u16,
    /// The tag of the latest `Output::HttpText`.
    http_seq: Option<u64>,
    /// The tag of the latest `Output::OpenMic`.
    mic_seq: u64,
}

impl Shell {
    fn new(opts: &str, seed: u64) -> Shell {
        let cfg = SessionConfig::from_json(opts).expect("valid generated options");
        Shell {
            s: Session::new(cfg, seed),
            now: 0,
            rate: 48_000,
            channels: 1,
            http_seq: None,
            mic_seq: 0,
        }
    }

    /// Performs every output, as the shell must after each input.
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(o) = self.s.poll_output() {
            n += 1;
            assert!(
                n <= MAX_OUTPUTS_PER_INPUT,
                "memory: more than {MAX_OUTPUTS_PER_INPUT} outputs from one input"
            );
            match o {
                Output::HttpText { seq, .. } => self.http_seq = Some(seq),
                Output::OpenMic { seq, .. } => self.mic_seq = seq,
                _ => {}
            }
        }
    }

    /// `handle_timeout(now)`, drained and checked: nothing due is left behind.
    fn timeout(&mut self, what: &In) {
        let before = self.s.poll_timeout();
        self.s.handle_timeout(self.now);
        self.drain();
        if before.is_some_and(|t| t <= self.now) {
            check_timeout_served(&self.s, self.now, before);
        }
        check_after_input(&self.s, what);
    }

    /// Delivers one input, drains it and checks every property.
    fn apply(&mut self, input: &In) {
        let now = self.now;
        match *input {
            In::Advance(ms) => {
                let target = now + u64::from(ms);
                while let Some(t) = self.s.poll_timeout().filter(|&t| t <= target) {
                    self.now = self.now.max(t);
                    self.timeout(input);
                }
                self.now = target;
            }
            In::TimerFires => {
                if let Some(t) = self.s.poll_timeout() {
                    self.now = now.max(t);
                }
                self.timeout(input);
            }
            In::SpuriousTimeout => self.timeout(input),
            In::Serve => match self.s.link() {
                Link::AwaitToken { .. } => self.s.handle_token(now, Ok("tok".to_string())),
                Link::Opening { .. } => self.s.handle_socket_opened(now),
                Link::Handshaking { .. } => self.s.handle_socket_message(now, &frame(0, 0)),
                _ => {}
            },
            In::Connect => self.s.connect(now),
            In::Disconnect => self.s.disconnect(now),
            In::Mute(m) => self.s.set_muted(now, m),
            In::SendText => {
                let _ = self.s.send_text(now, "hello");
            }
            In::Interrupt => self.s.interrupt(now),
            In::UpdateSession(valid) => {
                let json = if valid {
                    r#"{"instructions":"be brief"}"#
                } else {
                    "["
                };
                let _ = self.s.update_session(now, json);
            }
            In::Token(ok) => {
                let t = if ok {
                    Ok("tok".to_string())
                } else {
                    Err("no".to_string())
                };
                self.s.handle_token(now, t);
            }
            In::TokenResult(kind) => {
                let t = match kind {
                    0 => Ok("tok2".to_string()),
                    1 => Err(TokenFailure::Network("Failed to fetch".to_string())),
                    2 => Err(TokenFailure::Timeout),
                    _ => Err(TokenFailure::Refused("401".to_string())),
                };
                self.s.handle_token_result(now, t);
            }
            In::Opened => self.s.handle_socket_opened(now),
            In::Frame(which, item) => self.s.handle_socket_message(now, &frame(which, item)),
            In::Binary => self.s.handle_socket_binary(now, 16),
            In::Closed { code, was_open } => self.s.handle_socket_closed(now, code, "r", was_open),
            In::SocketError => self.s.handle_socket_error(now),
            In::Buffered(b) => self.s.handle_socket_buffered(now, b),
            In::Online(o) => self.s.handle_online(now, o),
            In::AudioStarted(k) => {
                self.rate = [16_000, 24_000, 44_100, 48_000][usize::from(k % 4)];
                self.channels = 1 + u16::from(k / 4 % 2);
                self.s.handle_playback_started(now, self.rate);
                self.s.handle_audio_started(now, self.rate, self.channels);
            }
            In::AudioFailed(k) => {
                let f = [
                    AudioFailure::MicDenied,
                    AudioFailure::NoAudioWorklet,
                    AudioFailure::TrackEnded,
                    AudioFailure::Other,
                ][usize::from(k % 4)];
                self.s.handle_audio_failed(now, f);
            }
            In::Mic(ms, level) => {
                let frames = (u64::from(self.rate) * u64::from(ms) / 1000) as usize;
                let amp = [0.0, 0.003, 0.1, 0.9][usize::from(level % 4)];
                // A square wave: every level but silence is as loud as its amplitude.
                let pcm: Vec<f32> = (0..frames * usize::from(self.channels))
                    .map(|i| if i / 48 % 2 == 0 { amp } else { -amp })
                    .collect();
                self.s.handle_mic_samples(now, &pcm);
            }
            In::Progress(item, played) => {
                // The player's numbers are 1, 2, … in the order items first arrive.
                self.s
                    .handle_playback_progress(now, u32::from(item) + 1, u64::from(played), 0)
            }
            In::PlaybackFinished(item) => self.s.handle_playback_finished(now, u32::from(item) + 1),
            In::PlaybackOverflow(n) => self.s.handle_playback_overflow(now, u64::from(n)),
            In::HttpReply { stale, kind } => {
                let seq = self.http_seq.unwrap_or(0) + u64::from(stale);
                let reply = match kind {
                    0 => Ok(r#"{"reply":"ok"}"#.to_string()),
                    1 => Err(HttpFailure::Network),
                    _ => Err(HttpFailure::Status(500)),
                };
                self.s.handle_http_reply(now, seq, reply);
            }
            In::Visibility(v) => self.s.handle_visibility(now, v),
            In::BusyElsewhere => self.s.handle_busy_elsewhere(now),
            In::MicLost(ended) => {
                let loss = if ended {
                    MicLoss::TrackEnded
                } else {
                    MicLoss::DeviceRemoved
                };
                self.s.handle_mic_lost(now, loss);
            }
            In::DevicesChanged(mask) => {
                let ids: Vec<&str> = (0..4)
                    .filter(|b| mask & (1 << b) != 0)
                    .map(|b| DEVICES[b])
                    .collect();
                let outputs = (mask & 16 == 0).then_some(&ids[..]);
                self.s.handle_devices_changed(now, &ids, outputs);
            }
            In::MicOpened(stale) => {
                let seq = self.mic_seq.saturating_sub(u64::from(stale));
                self.s.handle_mic_opened(now, seq);
            }
            In::MicOpenFailed(k) => {
                let seq = self.mic_seq.saturating_sub(u64::from(k == 3));
                let f = [
                    AudioFailure::MicAbsent,
                    AudioFailure::MicDenied,
                    AudioFailure::Other,
                    AudioFailure::Other,
                ][usize::from(k % 4)];
                self.s.handle_mic_open_failed(now, seq, f);
            }
            In::SetInput(i) => self.s.set_input_device(now, device(i)),
            In::SetOutput(i) => self.s.set_output_device(now, device(i)),
            In::SinkFailed => self.s.handle_sink_failed(now),
        }
        self.drain();
        check_after_input(&self.s, input);
    }

    /// Progress from here: timers alone settle a connecting session.
    fn settles(&mut self) {
        let Shell { s, now, .. } = self;
        check_settles(s, *now, &mut |s, _| while s.poll_output().is_some() {});
    }
}

/// Session options: a static token or a `tokenProvider`, with or without `httpFallback`, the
/// default timers or short ones (a reconnect sequence then ends within a few steps), and a
/// small mic backlog sometimes (so it overflows).
fn options() -> impl Strategy<Value = String> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(provider, fallback, short, text, small_backlog)| {
            let mut o = String::from(
                r#"{"baseUrl":"https://api.example.com","interviewId":"iv1","metricsIntervalMs":0"#,
            );
            o.push_str(if provider {
                r#","tokenProvider":true"#
            } else {
                r#","token":"tok.SECRET.sig""#
            });
            if fallback {
                o.push_str(r#","httpFallback":true"#);
            }
            if short {
                o.push_str(r#","connectTimeoutMs":1000,"backoffBaseMs":10,"backoffMaxMs":400,"reconnectWindowMs":3000,"deadLinkTimeoutMs":2000,"maxReconnectAttempts":3"#);
            }
            if text {
                o.push_str(r#","mode":"text""#);
            }
            if small_backlog {
                o.push_str(r#","maxBacklogMs":1000"#);
            }
            o.push('}');
            o
        },
    )
}

proptest! {
    // XorShift: the default ChaCha generator dominates the run time in debug builds.
    #![proptest_config(ProptestConfig {
        cases: CASES,
        rng_algorithm: prop::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    /// Every property after every input; then, from the end of the sequence and from a cut
    /// inside it (replayed: the session is deterministic), timers alone settle the session.
    #[test]
    fn every_input_sequence_keeps_the_session_live(
        opts in options(),
        seed in any::<u64>(),
        inputs in prop::collection::vec(input(), 0..LEN),
        cut in any::<prop::sample::Index>(),
    ) {
        // Every sequence begins with a connect: an idle session has little to show.
        let inputs: Vec<In> = std::iter::once(In::Connect).chain(inputs).collect();
        let mut sh = Shell::new(&opts, seed);
        for i in &inputs {
            sh.apply(i);
        }
        sh.settles();

        let mut sh = Shell::new(&opts, seed);
        for i in &inputs[..cut.index(inputs.len())] {
            sh.apply(i);
        }
        sh.settles();
    }
}

/// Cases of the property test, and the longest input sequence of one.
const CASES: u32 = 1_500;
const LEN: usize = 120;
