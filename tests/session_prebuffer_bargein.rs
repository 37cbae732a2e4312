//! The adaptive pre-buffer also learns from answers cut short by barge-in.

mod session_support;

use realtime_voice::session::Output;
use session_support::{audio_delta, Sim};

#[test]
fn underruns_in_an_interrupted_answer_raise_the_prebuffer() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.drain();
    sim.msg(&audio_delta("a", 4800));
    sim.s.handle_playback_progress(sim.now, "a", 2400, 1);
    sim.drain();
    let v = sim
        .msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":100,"item_id":"u1"}"#);
    let set: Vec<u32> = v
        .iter()
        .filter_map(|o| match o {
            Output::SetPrebuffer { ms } => Some(*ms),
            _ => None,
        })
        .collect();
    assert_eq!(set, [100], "{v:?}");
}
