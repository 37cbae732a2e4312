//! Decisions the shell used to take itself, now made by the core: a player ring overflow
//! (`handle_playback_overflow`), a binary frame from the relay (`handle_socket_binary`), and
//! `connect()` while already connected (a documented no-op).

mod session_support;

use realtime_voice::session::{Output, State};
use session_support::*;

fn errors_with(v: &[Output], code: &str) -> Vec<String> {
    let needle = format!(r#""code":"{code}""#);
    events(v)
        .iter()
        .filter(|e| e.name() == "error" && e.to_json().contains(&needle))
        .map(|e| e.to_json())
        .collect()
}

#[test]
fn playback_overflow_is_counted_and_reported_at_most_once_a_second() {
    // No metrics timer: no `handle_timeout` (which also flushes a pending report) in between.
    let mut sim = Sim::new(r#","metricsIntervalMs":0"#);
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    sim.s.handle_playback_overflow(sim.now, 2_400); // 100 ms
    let v = sim.drain();
    let e = errors_with(&v, "playback_overflow");
    assert_eq!(e.len(), 1, "{v:?}");
    assert!(e[0].contains(r#""kind":"audio""#), "{}", e[0]);
    assert!(e[0].contains("100 ms"), "{}", e[0]);
    assert_eq!(sim.s.metrics().dropped_playback_ms, 100);
    // Within the second: counted, not reported again.
    sim.advance(300);
    for _ in 0..10 {
        sim.s.handle_playback_overflow(sim.now, 12); // 0.5 ms each: 5 ms without rounding loss
    }
    assert!(errors_with(&sim.drain(), "playback_overflow").is_empty());
    assert_eq!(sim.s.metrics().dropped_playback_ms, 105);
    // A second later the next overflow reports what was dropped meanwhile too.
    sim.advance(1_000);
    sim.s.handle_playback_overflow(sim.now, 240);
    let e = errors_with(&sim.drain(), "playback_overflow");
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("15 ms"), "{}", e[0]);
    assert!(e[0].contains("115 ms in total"), "{}", e[0]);
    assert_eq!(sim.s.metrics().dropped_playback_ms, 115);
    assert!(sim
        .s
        .metrics()
        .to_json()
        .contains(r#""droppedPlaybackMs":115"#));
}

#[test]
fn a_binary_frame_is_a_protocol_error_and_the_session_goes_on() {
    let mut sim = Sim::new("");
    sim.connect_open();
    let before = sim.s.metrics().protocol_errors;
    sim.s.handle_socket_binary(sim.now, 512);
    let v = sim.drain();
    let e = errors_with(&v, "binary_frame");
    assert_eq!(e.len(), 1, "{v:?}");
    assert!(e[0].contains(r#""kind":"protocol""#), "{}", e[0]);
    assert!(e[0].contains("512 bytes"), "{}", e[0]);
    assert_eq!(sim.s.metrics().protocol_errors, before + 1);
    assert_eq!(sim.state(), State::Connected);
    assert!(!v.iter().any(|o| matches!(o, Output::CloseSocket { .. })));
    // Without a socket it is ignored.
    sim.s.disconnect(sim.now);
    sim.drain();
    sim.s.handle_socket_binary(sim.now, 8);
    assert!(sim.drain().is_empty());
}

#[test]
fn connect_while_connected_is_a_silent_no_op() {
    let mut sim = Sim::new("");
    sim.connect_open();
    assert_eq!(sim.state(), State::Connected);
    let status = sim.s.status().clone();
    sim.s.connect(sim.now);
    assert!(sim.drain().is_empty(), "no output, no status event");
    assert_eq!(sim.s.status(), &status);
}

#[test]
fn a_pending_playback_overflow_report_goes_out_with_the_next_timer() {
    let mut sim = Sim::new(r#","metricsIntervalMs":1000"#);
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    sim.s.handle_playback_overflow(sim.now, 240);
    assert_eq!(errors_with(&sim.drain(), "playback_overflow").len(), 1);
    sim.advance(10);
    sim.s.handle_playback_overflow(sim.now, 480); // 20 ms, rate-limited
    assert!(errors_with(&sim.drain(), "playback_overflow").is_empty());
    let v = sim.advance(1_000); // the metrics timer fires at 1000 ms
    let e = errors_with(&v, "playback_overflow");
    assert_eq!(e.len(), 1, "{v:?}");
    assert!(e[0].contains("dropped 20 ms"), "{}", e[0]);
}
