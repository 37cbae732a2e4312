//! Random input sequences to the session machine: never a panic, outputs always drain, the mic
//! never exceeds 10 chunks per second, and the token never shows up in Debug output. After
//! every input the liveness properties of `tests/session_support/properties.rs` hold (a
//! violation is a crash): a connecting session always has a timer, the status agrees with the
//! link, `handle_timeout` serves everything due, outputs stay bounded and every captured mic
//! sample is accounted for, a microphone being reopened has a timer; at the end of each
//! sequence, timers alone settle the session (and end any microphone recovery).
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use realtime_voice::session::{
    AudioFailure, AudioState, HttpFailure, MicLoss, Output, Session, SessionConfig, TokenFailure,
};

#[path = "../../tests/session_support/properties.rs"]
mod properties;
use properties::{check_after_input, check_settles, check_timeout_served, MAX_OUTPUTS_PER_INPUT};

/// Close codes with their own handling; `Closed` picks one of these or any other code.
const CLOSE_CODES: [u16; 10] = [1000, 1001, 1006, 1008, 1011, 1013, 4403, 4409, 4410, 4429];

const TOKEN: &str = "tok.SECRETSECRET.sig";

#[derive(Arbitrary, Debug)]
enum Input {
    Advance(u16),
    Connect,
    Disconnect,
    Mute(bool),
    SendText(String),
    Interrupt,
    UpdateSession(String),
    Token(Option<String>),
    /// The provider's answer, its failure classified (0 ok, 1 network, 2 timeout, 3 refused).
    TokenResult(u8, String),
    Opened,
    Message(String),
    Known {
        which: u8,
        item: u8,
        n: u16,
    },
    Closed {
        code: u16,
        listed: bool,
        was_open: bool,
    },
    SocketError,
    AudioStarted {
        rate: u32,
        channels: u8,
    },
    AudioFailed(u8),
    Mic {
        n: u16,
        value: i16,
    },
    MicRaw(Vec<f32>),
    Progress {
        item: u8,
        played: u32,
        underruns: u32,
    },
    Online(bool),
    HttpReply(Option<String>, u16),
    Recycle,
    PlaybackFinished(u8),
    PlaybackOverflow(u32),
    /// `handle_playback_started` at one of the usual rates or any.
    PlaybackStarted(u32),
    /// `handle_output_level` with any rms and peak.
    OutputLevel(f32, f32),
    Binary(u16),
    AudioState(u8),
    Visibility(bool),
    BusyElsewhere,
    SocketBacklog(u32),
    SocketBuffered(u32),
    /// The shell's timer fires: the clock jumps to `poll_timeout()` (if any) and
    /// `handle_timeout` is called.
    TimerFires,
    /// A spurious `handle_timeout(now)` (a no-op unless something is due).
    SpuriousTimeout,
    /// `handle_mic_lost`: the track ended (true) or the device went.
    MicLost(bool),
    /// `handle_devices_changed` with these microphones and outputs (if listed).
    DevicesChanged(Vec<String>, Option<Vec<String>>),
    /// `handle_mic_opened` for the latest `OpenMic`, or one `back` requests before it.
    MicOpened {
        back: u8,
    },
    /// `handle_mic_open_failed` (the failure picked by `kind`), for the latest `OpenMic` or one
    /// `back` requests before it.
    MicOpenFailed {
        kind: u8,
        back: u8,
    },
    SetInputDevice(Option<String>),
    SetOutputDevice(Option<String>),
    SinkFailed,
}

#[derive(Arbitrary, Debug)]
struct Case {
    config: u8,
    seed: u64,
    inputs: Vec<Input>,
}

fn config(sel: u8) -> SessionConfig {
    let auth = if sel & 1 == 0 {
        format!(r#""token":"{TOKEN}""#)
    } else {
        r#""tokenProvider":true"#.to_string()
    };
    let mut o = format!(
        r#"{{"baseUrl":"https://h.example","interviewId":"iv","maxFrameBytes":65536,{auth}"#
    );
    if sel & 2 != 0 {
        o.push_str(r#","httpFallback":true"#);
    }
    if sel & 4 != 0 {
        o.push_str(r#","protocol":"beta""#);
    }
    if sel & 8 != 0 {
        o.push_str(r#","mode":"text""#);
    }
    if sel & 16 != 0 {
        o.push_str(r#","authVia":"subprotocol","maxReconnectAttempts":2,"maxBacklogMs":1000"#);
    }
    if sel & 32 != 0 {
        // Short timers: reconnect sequences run to their end within a few inputs.
        o.push_str(
            r#","connectTimeoutMs":1000,"backoffBaseMs":10,"backoffMaxMs":400,"reconnectWindowMs":3000,"deadLinkTimeoutMs":2000"#,
        );
        if sel & 16 == 0 {
            o.push_str(r#","maxReconnectAttempts":3"#);
        }
    }
    o.push('}');
    SessionConfig::from_json(&o).expect("fuzz configs are valid")
}

fn known(which: u8, item: &str, n: u16) -> String {
    let mut b64 = String::new();
    realtime_voice::audio::pcm16::encode_i16_as_pcm16_base64(
        &vec![100; usize::from(n % 4800)],
        &mut b64,
    );
    match which % 16 {
        0 => format!(r#"{{"type":"response.output_audio.delta","response_id":"r","item_id":"{item}","delta":"{b64}"}}"#),
        1 => format!(r#"{{"type":"response.audio.done","item_id":"{item}"}}"#),
        2 => r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#.into(),
        3 => r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":1,"item_id":"u"}"#.into(),
        4 => r#"{"type":"response.created","response":{"id":"r"}}"#.into(),
        5 => r#"{"type":"response.done","response":{"id":"r","usage":{"input_tokens":5,"output_tokens":7}}}"#.into(),
        6 => r#"{"type":"session.created","session":{"model":"gpt-realtime"}}"#.into(),
        7 => format!(r#"{{"type":"response.output_audio_transcript.delta","item_id":"{item}","delta":"x"}}"#),
        8 => r#"{"type":"error","error":{"type":"x","code":"rate_limit_exceeded","message":"m"}}"#.into(),
        9 => r#"{"type":"input_audio_buffer.committed","item_id":"u"}"#.into(),
        10 => format!(r#"{{"type":"conversation.item.truncated","item_id":"{item}","audio_end_ms":{n}}}"#),
        12 => format!(r#"{{"type":"session.created","session":{{"id":"sess_{item}"}}}}"#),
        13 => r#"{"type":"response.created","response":{}}"#.into(),
        14 => format!(r#"{{"type":"response.output_text.delta","item_id":"{item}","delta":"y"}}"#),
        _ => r#"{"type":"brand.new"}"#.into(),
    }
}

fuzz_target!(|case: Case| {
    let mut s = Session::new(config(case.config), case.seed);
    let mut now = 0u64;
    let mut appends: Vec<u64> = Vec::new();
    let mut spare: Vec<Vec<f32>> = Vec::new();
    let mut mic_seq = 0u64;
    for input in case.inputs.into_iter().take(400) {
        let what = format!("{input:?}");
        match input {
            Input::Advance(ms) => {
                let target = now + u64::from(ms);
                while let Some(t) = s.poll_timeout().filter(|&t| t <= target) {
                    now = now.max(t);
                    s.handle_timeout(now);
                    drain(&mut s, now, &mut appends, &mut spare, &mut mic_seq);
                    check_timeout_served(&s, now, Some(t));
                    check_after_input(&s, &what);
                }
                now = target;
            }
            Input::TimerFires => {
                let before = s.poll_timeout();
                if let Some(t) = before {
                    now = now.max(t);
                }
                s.handle_timeout(now);
                drain(&mut s, now, &mut appends, &mut spare, &mut mic_seq);
                if before.is_some() {
                    check_timeout_served(&s, now, before);
                }
            }
            Input::SpuriousTimeout => {
                let before = s.poll_timeout();
                s.handle_timeout(now);
                drain(&mut s, now, &mut appends, &mut spare, &mut mic_seq);
                if before.is_some_and(|t| t <= now) {
                    check_timeout_served(&s, now, before);
                }
            }
            Input::Connect => s.connect(now),
            Input::Disconnect => s.disconnect(now),
            Input::Mute(m) => s.set_muted(now, m),
            Input::SendText(t) => {
                let _ = s.send_text(now, &t);
            }
            Input::Interrupt => s.interrupt(now),
            Input::UpdateSession(j) => {
                let _ = s.update_session(now, &j);
            }
            Input::Token(t) => s.handle_token(now, t.ok_or_else(|| "no".to_string())),
            Input::TokenResult(k, t) => {
                // Failure messages are the app's text: keep the fuzzer's bytes out of them (the
                // Debug checks look for the token's marker).
                let message = format!("failed after {} bytes", t.len());
                let r = match k % 4 {
                    0 => Ok(t),
                    1 => Err(TokenFailure::Network(message)),
                    2 => Err(TokenFailure::Timeout),
                    _ => Err(TokenFailure::Refused(message)),
                };
                s.handle_token_result(now, r)
            }
            Input::Opened => s.handle_socket_opened(now),
            Input::Message(m) => s.handle_socket_message(now, &m),
            Input::Known { which, item, n } => {
                let f = known(which, &format!("it{}", item % 3), n);
                s.handle_socket_message(now, &f);
            }
            Input::Closed {
                code,
                listed,
                was_open,
            } => {
                let code = if listed {
                    CLOSE_CODES[usize::from(code) % CLOSE_CODES.len()]
                } else {
                    code
                };
                s.handle_socket_closed(now, code, "r", was_open)
            }
            Input::SocketError => s.handle_socket_error(now),
            Input::AudioStarted { rate, channels } => {
                let rate = [8_000, 16_000, 24_000, 44_100, 48_000, rate][(rate % 6) as usize];
                s.handle_audio_started(now, rate, u16::from(channels % 4));
            }
            Input::AudioFailed(k) => {
                let f = [
                    AudioFailure::MicDenied,
                    AudioFailure::MicAbsent,
                    AudioFailure::NoAudioWorklet,
                    AudioFailure::AudioContextFailed,
                    AudioFailure::TrackEnded,
                    AudioFailure::Other,
                ][usize::from(k % 6)];
                s.handle_audio_failed(now, f);
            }
            Input::Mic { n, value } => {
                let block = vec![f32::from(value) / 32768.0; usize::from(n % 9600)];
                s.handle_mic_samples(now, &block);
            }
            Input::MicRaw(v) => s.handle_mic_samples(now, &v),
            Input::Progress {
                item,
                played,
                underruns,
            } => s.handle_playback_progress(
                now,
                u32::from(item % 4),
                u64::from(played),
                u64::from(underruns),
            ),
            Input::Online(o) => s.handle_online(now, o),
            Input::PlaybackFinished(item) => {
                s.handle_playback_finished(now, u32::from(item % 4))
            }
            Input::PlaybackOverflow(n) => s.handle_playback_overflow(now, u64::from(n)),
            Input::PlaybackStarted(rate) => {
                let rate = [16_000, 24_000, 44_100, 48_000, rate][(rate % 5) as usize];
                s.handle_playback_started(now, rate)
            }
            Input::OutputLevel(rms, peak) => s.handle_output_level(now, rms, peak),
            Input::Binary(len) => s.handle_socket_binary(now, usize::from(len)),
            Input::AudioState(k) => {
                let state = ["running", "suspended", "interrupted", "closed", "other"];
                if let Some(st) = AudioState::from_browser(state[usize::from(k) % state.len()]) {
                    s.handle_audio_state(now, st)
                }
            }
            Input::Visibility(v) => s.handle_visibility(now, v),
            Input::BusyElsewhere => s.handle_busy_elsewhere(now),
            Input::SocketBacklog(b) => s.handle_socket_backlog(b),
            Input::SocketBuffered(b) => s.handle_socket_buffered(now, b),
            Input::HttpReply(body, status) => s.handle_http_reply(
                now,
                u64::from(status % 4), // right or stale request numbers alike
                body.ok_or(if status == 0 {
                    HttpFailure::Network
                } else {
                    HttpFailure::Status(status)
                }),
            ),
            Input::Recycle => {
                if let Some(b) = spare.pop() {
                    s.recycle(b);
                }
            }
            Input::MicLost(ended) => s.handle_mic_lost(
                now,
                if ended {
                    MicLoss::TrackEnded
                } else {
                    MicLoss::DeviceRemoved
                },
            ),
            Input::DevicesChanged(inputs, outputs) => {
                let inputs: Vec<&str> = inputs.iter().take(80).map(String::as_str).collect();
                let outputs: Option<Vec<&str>> = outputs
                    .as_ref()
                    .map(|o| o.iter().take(80).map(String::as_str).collect());
                s.handle_devices_changed(now, &inputs, outputs.as_deref());
            }
            Input::MicOpened { back } => {
                s.handle_mic_opened(now, mic_seq.saturating_sub(u64::from(back % 3)))
            }
            Input::MicOpenFailed { kind, back } => {
                let f = [
                    AudioFailure::MicAbsent,
                    AudioFailure::MicDenied,
                    AudioFailure::AudioContextFailed,
                    AudioFailure::Other,
                ][usize::from(kind % 4)];
                s.handle_mic_open_failed(now, mic_seq.saturating_sub(u64::from(back % 3)), f);
            }
            Input::SetInputDevice(d) => s.set_input_device(now, device_id(&d).as_deref()),
            Input::SetOutputDevice(d) => s.set_output_device(now, device_id(&d).as_deref()),
            Input::SinkFailed => s.handle_sink_failed(now),
        }
        drain(&mut s, now, &mut appends, &mut spare, &mut mic_seq);
        check_after_input(&s, &what);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("SECRET"));
        let _ = s.metrics().to_json();
    }
    check_settles(&mut s, now, &mut |s, t| {
        drain(s, t, &mut appends, &mut spare, &mut mic_seq)
    });
    for w in appends.windows(11) {
        assert!(w[10] - w[0] >= 1000, "11 chunks within {} ms", w[10] - w[0]);
    }
});

/// A device id from the fuzzer's bytes. Device ids are the app's text and show in events and
/// Debug output: keep the token's marker out of them (the Debug checks look for it).
fn device_id(d: &Option<String>) -> Option<String> {
    d.as_ref().map(|d| d.replace("SECRET", "secret"))
}

fn drain(
    s: &mut Session,
    now: u64,
    appends: &mut Vec<u64>,
    spare: &mut Vec<Vec<f32>>,
    mic_seq: &mut u64,
) {
    let mut n = 0;
    while let Some(o) = s.poll_output() {
        n += 1;
        assert!(
            n <= MAX_OUTPUTS_PER_INPUT,
            "memory: more than {MAX_OUTPUTS_PER_INPUT} outputs from one input"
        );
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("SECRET"), "token in Debug: {dbg}");
        match o {
            Output::Send(f) if f.starts_with("{\"type\":\"input_audio_buffer.append\"") => {
                appends.push(now)
            }
            Output::Play { samples, .. } if spare.len() < 8 => spare.push(samples),
            Output::OpenMic { seq, .. } => *mic_seq = seq,
            Output::Event(e) => {
                let _ = (e.name(), e.to_json());
            }
            _ => {}
        }
    }
}
