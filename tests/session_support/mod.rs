//! Shared virtual-clock harness for the session scenario tests.
#![allow(dead_code)]

use realtime_voice::audio::pcm16;
use realtime_voice::protocol::json;
use realtime_voice::session::{AppEvent, Output, Session, SessionConfig, State};

/// Options every scenario starts from (a static token, query auth).
pub const BASE: &str =
    r#""baseUrl":"https://api.example.com","interviewId":"iv1","token":"tok.SECRET.sig""#;

/// The server's first frame, which establishes the connection (a bare `session.created`
/// without a model, so no price table is picked).
pub const SESSION_CREATED: &str = r#"{"type":"session.created","session":{}}"#;

/// A session on a virtual clock, recording every output.
pub struct Sim {
    pub s: Session,
    pub now: u64,
    pub log: Vec<Output>,
    /// Virtual time at which each `log` entry was drained.
    pub times: Vec<u64>,
}

impl Sim {
    /// `extra` is appended to [`BASE`] (e.g. `,"httpFallback":true`).
    pub fn new(extra: &str) -> Sim {
        Sim::with_opts(&format!("{{{BASE}{extra}}}"))
    }

    pub fn with_opts(opts: &str) -> Sim {
        let cfg = SessionConfig::from_json(opts).expect("valid test options");
        Sim {
            s: Session::new(cfg, 0x5EED),
            now: 0,
            log: Vec::new(),
            times: Vec::new(),
        }
    }

    /// A connected session whose player is up at `rate` (no microphone), outputs drained.
    pub fn with_player(rate: u32) -> Sim {
        let mut sim = Sim::new("");
        sim.connect_open();
        sim.s.handle_playback_started(0, rate);
        sim.drain();
        sim
    }

    /// A connected session with a 48 kHz mono microphone and a 24 kHz player, and a response
    /// under way (`resp_1`) whose audio the test sends.
    pub fn answering(extra: &str) -> Sim {
        let mut sim = Sim::new(extra);
        sim.connect_open();
        sim.s.handle_audio_started(0, 48_000, 1);
        sim.s.handle_playback_started(0, 24_000);
        sim.msg(r#"{"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}"#);
        sim
    }

    /// Drains outputs into the log and returns the new ones.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = self.s.poll_output() {
            v.push(o);
        }
        self.log.extend(v.iter().cloned());
        self.times.extend(v.iter().map(|_| self.now));
        v
    }

    /// Advances the clock to `t`, firing every timer due on the way; returns the outputs.
    pub fn advance_to(&mut self, t: u64) -> Vec<Output> {
        let mut v = self.drain();
        while let Some(due) = self.s.poll_timeout() {
            if due > t {
                break;
            }
            assert!(due >= self.now, "timer in the past: {due} < {}", self.now);
            self.now = due;
            self.s.handle_timeout(due);
            v.extend(self.drain());
        }
        self.now = t;
        v
    }

    pub fn advance(&mut self, ms: u64) -> Vec<Output> {
        self.advance_to(self.now + ms)
    }

    /// The socket opens and the server speaks first ([`SESSION_CREATED`]): the session is
    /// `connected` only once the server has spoken (a relay may accept and then refuse).
    pub fn opened(&mut self, t: u64) -> Vec<Output> {
        self.s.handle_socket_opened(t);
        self.s.handle_socket_message(t, SESSION_CREATED);
        self.drain()
    }

    /// connect + open (static token) + the server's first frame.
    pub fn connect_open(&mut self) -> Vec<Output> {
        self.s.connect(self.now);
        let mut v = self.drain();
        assert!(
            v.iter().any(|o| matches!(o, Output::OpenSocket { .. })),
            "{v:?}"
        );
        let now = self.now;
        v.extend(self.opened(now));
        v
    }

    pub fn msg(&mut self, frame: &str) -> Vec<Output> {
        self.s.handle_socket_message(self.now, frame);
        self.drain()
    }

    pub fn close(&mut self, code: u16, was_open: bool) -> Vec<Output> {
        self.s.handle_socket_closed(self.now, code, "bye", was_open);
        self.drain()
    }

    pub fn state(&self) -> State {
        self.s.status().state
    }

    /// The player's number for assistant item `item_id` (it must be tracked).
    pub fn slot(&self, item_id: &str) -> u32 {
        self.s
            .player_slot(item_id)
            .expect("a tracked assistant item")
    }
}

pub fn events(v: &[Output]) -> Vec<&AppEvent> {
    v.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The JSON of every app event named `name` in `v`.
pub fn event_jsons(v: &[Output], name: &str) -> Vec<String> {
    events(v)
        .iter()
        .filter(|e| e.name() == name)
        .map(|e| e.to_json())
        .collect()
}

pub fn sends(v: &[Output]) -> Vec<&str> {
    v.iter()
        .filter_map(|o| match o {
            Output::Send(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

pub fn opens(v: &[Output]) -> usize {
    v.iter()
        .filter(|o| matches!(o, Output::OpenSocket { .. }))
        .count()
}

/// The `conversation.item.truncate` frames among the outputs.
pub fn truncates(v: &[Output]) -> Vec<String> {
    sends(v)
        .into_iter()
        .filter(|f| frame_type(f) == "conversation.item.truncate")
        .map(str::to_string)
        .collect()
}

/// `response.create` frames among `v`'s sends.
pub fn response_creates(v: &[Output]) -> usize {
    sends(v)
        .iter()
        .filter(|f| frame_type(f) == "response.create")
        .count()
}

pub fn frame_type(frame: &str) -> String {
    json::parse(frame, 1 << 24)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_string)))
        .unwrap_or_default()
}

/// Decodes every `input_audio_buffer.append` in `v` back to i16 samples, in order.
pub fn appended_samples(v: &[Output]) -> (Vec<i16>, usize) {
    let mut out = Vec::new();
    let mut chunks = 0;
    for f in sends(v) {
        let j = json::parse(f, 1 << 24).expect("frames we send are JSON");
        if j.get("type").and_then(|t| t.as_str()) != Some("input_audio_buffer.append") {
            continue;
        }
        chunks += 1;
        let mut bytes = Vec::new();
        pcm16::decode_base64(
            j.get("audio").and_then(|a| a.as_str()).expect("audio"),
            &mut bytes,
        )
        .expect("valid base64");
        out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]])),
        );
    }
    (out, chunks)
}

/// Status events in `v`: (state, reason, closeCode, attempt) from their JSON.
pub fn statuses(v: &[Output]) -> Vec<(String, String, Option<u64>, u64)> {
    events(v)
        .into_iter()
        .filter(|e| e.name() == "status")
        .map(|e| {
            let j = e.to_json();
            let p = json::parse(&j, 1 << 16).expect("status JSON");
            (
                p.get("state")
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string(),
                p.get("reason")
                    .and_then(|x| x.as_str())
                    .unwrap_or("")
                    .to_string(),
                p.get("closeCode").and_then(|x| x.as_u64()),
                p.get("attempt").and_then(|x| x.as_u64()).unwrap_or(0),
            )
        })
        .collect()
}

/// Base64 PCM16 of `n` samples of value `v`.
pub fn pcm_b64(n: usize, v: i16) -> String {
    let mut s = String::new();
    pcm16::encode_i16_as_pcm16_base64(&vec![v; n], &mut s);
    s
}

/// `response.output_audio.done` for `item`.
pub fn audio_done(item: &str) -> String {
    format!(
        r#"{{"type":"response.output_audio.done","item_id":"{item}","output_index":0,"content_index":0}}"#
    )
}

pub fn audio_delta(item: &str, n: usize) -> String {
    format!(
        r#"{{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"{item}","output_index":0,"content_index":0,"delta":"{}"}}"#,
        pcm_b64(n, 1000)
    )
}

/// Send times of every `input_audio_buffer.append` in the log.
pub fn append_times(sim: &Sim) -> Vec<u64> {
    sim.log
        .iter()
        .zip(&sim.times)
        .filter(|(o, _)| matches!(o, Output::Send(f) if f.starts_with("{\"type\":\"input_audio_buffer.append\"")))
        .map(|(_, t)| *t)
        .collect()
}

/// Panics if any 1000 ms window holds more than 10 appends.
pub fn assert_rate_ok(times: &[u64]) {
    for w in times.windows(11) {
        assert!(
            w[10] - w[0] >= 1000,
            "11 chunks within {} ms: {w:?}",
            w[10] - w[0]
        );
    }
}
