//! A simulated 60-minute voice session (virtual clock): conversation turns every 10 s, mic audio
//! all along, a server-side drop every 15 minutes. Live heap bytes, measured by a counting
//! allocator, must not grow with session length.
// Native only: the counting allocator would clash with the package's own wasm heap (src/lib.rs).
#![cfg(not(target_arch = "wasm32"))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use realtime_voice::audio::pcm16;
use realtime_voice::session::{Output, Session, SessionConfig, State};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Run {
    s: Session,
    now: u64,
    appends: u64,
    plays: u64,
    opens: u64,
}

impl Run {
    fn drain(&mut self) {
        while let Some(o) = self.s.poll_output() {
            match o {
                Output::Send(f) if f.starts_with("{\"type\":\"input_audio_buffer.append\"") => {
                    self.appends += 1
                }
                Output::Play { samples, .. } => {
                    self.plays += 1;
                    self.s.recycle(samples);
                }
                Output::OpenSocket { .. } => self.opens += 1,
                _ => {}
            }
        }
    }
    fn msg(&mut self, f: &str) {
        self.s.handle_socket_message(self.now, f);
        self.drain();
    }
}

#[test]
fn sixty_minutes_stay_bounded() {
    let cfg = SessionConfig::from_json(r#"{"baseUrl":"https://h","interviewId":"i","token":"t"}"#)
        .unwrap();
    let mut r = Run {
        s: Session::new(cfg, 1),
        now: 0,
        appends: 0,
        plays: 0,
        opens: 0,
    };
    r.s.connect(0);
    r.drain();
    r.s.handle_socket_opened(0);
    r.s.handle_playback_started(0, 24_000);
    r.s.handle_audio_started(0, 24_000, 1);
    r.drain();
    r.msg(r#"{"type":"session.created","session":{"model":"gpt-realtime"}}"#);
    let mic: Vec<f32> = (0..2400).map(|i| ((i as f32) * 0.05).sin() * 0.3).collect();
    let mut delta = String::new();
    pcm16::encode_i16_as_pcm16_base64(&[300i16; 2400], &mut delta);
    let mut live_at_5min = 0isize;
    let mut max_backlog_ms = 0;
    let mut turn = 0u64;
    let mut played = 0u64;
    for step in 1..=36_000u64 {
        let t = step * 100;
        while let Some(due) = r.s.poll_timeout().filter(|&d| d <= t) {
            r.now = due;
            r.s.handle_timeout(due);
            r.drain();
        }
        r.now = t;
        r.s.handle_mic_samples(t, &mic);
        r.drain();
        // A turn every 10 s: the user speaks, the assistant answers with 2 s of audio.
        let phase = t % 10_000;
        let item = format!("item_{turn}");
        match phase {
            1_000 => r.msg(
                r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#,
            ),
            3_000 => {
                r.msg(r#"{"type":"input_audio_buffer.speech_stopped","audio_end_ms":2,"item_id":"u"}"#);
                r.msg(r#"{"type":"conversation.item.input_audio_transcription.completed","item_id":"u","content_index":0,"transcript":"words words"}"#);
                r.msg(r#"{"type":"response.created","response":{"id":"r"}}"#);
            }
            3_500..=5_400 => {
                r.msg(&format!(r#"{{"type":"response.output_audio.delta","response_id":"r","item_id":"{item}","delta":"{delta}"}}"#));
                r.msg(&format!(r#"{{"type":"response.output_audio_transcript.delta","response_id":"r","item_id":"{item}","delta":"more "}}"#));
                played += 2400;
                let slot = r.s.player_slot(&item).expect("a tracked item");
                r.s.handle_playback_progress(t, slot, played, 0);
                r.drain();
            }
            5_500 => {
                r.msg(&format!(r#"{{"type":"response.output_audio.done","response_id":"r","item_id":"{item}"}}"#));
                r.msg(r#"{"type":"response.done","response":{"id":"r","usage":{"input_tokens":100,"output_tokens":50,"input_token_details":{"text_tokens":20,"audio_tokens":80,"cached_tokens":0},"output_token_details":{"text_tokens":10,"audio_tokens":40}}}}"#);
                turn += 1;
                played = 0;
            }
            _ => {}
        }
        // A server-side drop every 15 minutes, reconnected after the backoff.
        if t % 900_000 == 0 && t < 3_600_000 {
            r.s.handle_socket_closed(t, 1001, "session_expired", true);
            r.drain();
        }
        if r.s.status().state == State::Reconnecting && r.opens > 0 {
            // The shell opens the socket as soon as asked.
            r.s.handle_socket_opened(t);
            r.drain();
        }
        assert_eq!(r.s.pending_outputs(), 0);
        max_backlog_ms = max_backlog_ms.max(r.s.metrics().buffered_audio_ms);
        if t == 300_000 {
            live_at_5min = LIVE.load(Ordering::Relaxed);
        }
    }
    let live_at_60min = LIVE.load(Ordering::Relaxed);
    let m = r.s.metrics();
    assert_eq!(r.s.status().state, State::Connected);
    assert_eq!(m.reconnects, 3);
    assert_eq!(m.dropped_audio_ms, 0);
    assert!(max_backlog_ms <= 10_000, "backlog {max_backlog_ms} ms");
    assert_eq!(m.latency_samples, 256, "window full, not growing");
    assert!(r.appends > 30_000, "{} appends", r.appends);
    assert_eq!(r.plays, 360 * 20);
    assert!(m.cost_usd > 0.0);
    let growth = live_at_60min - live_at_5min;
    println!("live heap: {live_at_5min} B at 5 min, {live_at_60min} B at 60 min (growth {growth} B); {} appends, {} plays", r.appends, r.plays);
    assert!(
        growth.abs() < 16 * 1024,
        "heap grew by {growth} bytes between minute 5 and 60"
    );
}
