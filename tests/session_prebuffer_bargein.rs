//! The playout delay also learns from an answer cut short by barge-in: it rose when the late
//! delta arrived, and the barge-in does not undo it.

mod session_support;

use realtime_voice::session::Output;
use session_support::{audio_delta, Sim};

#[test]
fn a_late_delta_of_an_interrupted_answer_keeps_the_raised_delay() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    sim.msg(&audio_delta("a", 2400));
    sim.advance(200); // due at 100: 100 ms late
    let v = sim.msg(&audio_delta("a", 2400));
    let set: Vec<u32> = v
        .iter()
        .filter_map(|o| match o {
            Output::SetPrebuffer { ms } => Some(*ms),
            _ => None,
        })
        .collect();
    assert_eq!(
        set,
        [120],
        "100 ms late: its bucket's edge plus the margin: {v:?}"
    );
    let v = sim
        .msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":100,"item_id":"u1"}"#);
    assert!(v.iter().any(|o| matches!(o, Output::FlushPlayback { .. })));
    assert_eq!(sim.s.prebuffer_ms(), 120);
}
