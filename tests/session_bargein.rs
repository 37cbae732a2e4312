//! Barge-in and interrupt: flush with a ramp, truncate at the samples actually played (clamped to
//! the audio received, never wall-clock time), cancel only where the server will not.

mod session_support;

use realtime_voice::session::Output;
use session_support::*;

fn playing_sim(extra: &str) -> Sim {
    let mut sim = Sim::answering(extra);
    for _ in 0..3 {
        sim.advance(100);
        let v = sim.msg(&audio_delta("item_a", 4800)); // 200 ms each
        assert!(v.iter().any(|o| matches!(o, Output::Play { item, samples, .. } if *item == sim.slot("item_a") && samples.len() == 4800)));
    }
    sim
}

#[test]
fn speech_started_flushes_and_truncates_at_played_samples_under_underruns() {
    let mut sim = playing_sim("");
    // The worklet played 100 ms, underran twice (no progress), then reached 250 ms; meanwhile
    // 3 s of wall-clock time passed, which must not matter.
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 2400, 0);
    sim.advance(1000);
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 2400, 2);
    sim.advance(2000);
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 6000, 2);
    let v = sim.msg(
        r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1000,"item_id":"u1"}"#,
    );
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::FlushPlayback { ramp_ms: 8 })));
    assert_eq!(
        truncates(&v),
        [
            r#"{"type":"conversation.item.truncate","item_id":"item_a","content_index":0,"audio_end_ms":250}"#
        ]
    );
    assert!(
        !sends(&v).iter().any(|f| frame_type(f) == "response.cancel"),
        "server VAD already cancelled"
    );
    let speech: Vec<String> = events(&v)
        .iter()
        .filter(|e| e.name() == "speech")
        .map(|e| e.to_json())
        .collect();
    assert_eq!(
        speech,
        [
            r#"{"who":"user","speaking":true}"#,
            r#"{"who":"assistant","speaking":false}"#
        ]
    );
    assert_eq!(sim.s.metrics().underruns, 2);
    // Deltas still in flight for the cut item are not played.
    let v = sim.msg(&audio_delta("item_a", 4800));
    assert!(!v.iter().any(|o| matches!(o, Output::Play { .. })));
}

#[test]
fn truncation_is_clamped_to_audio_received() {
    let mut sim = playing_sim("");
    // A confused shell reports more than was ever sent for the item.
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 1_000_000, 0);
    let v =
        sim.msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#);
    // Everything received was played: nothing left to cut unless the response is still streaming.
    let t = truncates(&v);
    assert_eq!(
        t.len(),
        1,
        "item not done yet, so it is still being produced"
    );
    assert!(t[0].ends_with(r#""audio_end_ms":600}"#), "{}", t[0]);
}

#[test]
fn finished_item_is_not_truncated() {
    let mut sim = playing_sim("");
    sim.msg(r#"{"type":"response.output_audio.done","response_id":"resp_1","item_id":"item_a","output_index":0,"content_index":0}"#);
    let v = {
        sim.s
            .handle_playback_progress(sim.now, sim.slot("item_a"), 14_400, 0);
        sim.drain()
    };
    let speech: Vec<String> = events(&v).iter().map(|e| e.to_json()).collect();
    assert_eq!(
        speech,
        [r#"{"who":"assistant","speaking":false}"#],
        "assistant stops when playback ends"
    );
    let v =
        sim.msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#);
    assert!(truncates(&v).is_empty());
    assert!(!v.iter().any(|o| matches!(o, Output::FlushPlayback { .. })));
}

#[test]
fn interrupt_truncates_and_cancels_the_active_response() {
    let mut sim = playing_sim("");
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 4800, 0);
    sim.s.interrupt(sim.now);
    let v = sim.drain();
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::FlushPlayback { ramp_ms: 8 })));
    let f = sends(&v);
    assert_eq!(
        f,
        [
            r#"{"type":"conversation.item.truncate","item_id":"item_a","content_index":0,"audio_end_ms":200}"#,
            r#"{"type":"response.cancel","response_id":"resp_1"}"#,
        ]
    );
    // A second interrupt has nothing to do.
    sim.s.interrupt(sim.now);
    assert!(sends(&sim.drain()).is_empty());
}

#[test]
fn interrupt_in_beta_shape_and_after_response_done() {
    let mut sim = playing_sim(r#","protocol":"beta""#);
    sim.msg(r#"{"type":"response.done","response":{"id":"resp_1","status":"completed","output":[],"usage":null}}"#);
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 2400, 0);
    sim.s.interrupt(sim.now);
    let v = sim.drain();
    // Response already done: truncate the playing audio, no cancel.
    assert_eq!(sends(&v).len(), 1);
    assert_eq!(frame_type(sends(&v)[0]), "conversation.item.truncate");
    let mut sim = playing_sim(r#","protocol":"beta""#);
    sim.s.interrupt(sim.now);
    let v = sim.drain();
    assert_eq!(sends(&v)[1], r#"{"type":"response.cancel"}"#);
}

#[test]
fn play_buffers_are_recycled() {
    let mut sim = playing_sim("");
    let bufs: Vec<Vec<f32>> = sim
        .log
        .iter()
        .filter_map(|o| match o {
            Output::Play { samples, .. } => Some(samples.clone()),
            _ => None,
        })
        .collect();
    for mut b in bufs {
        b.reserve(10_000);
        sim.s.recycle(b);
    }
    let v = sim.msg(&audio_delta("item_b", 480));
    let cap = v
        .iter()
        .find_map(|o| match o {
            Output::Play { samples, .. } => Some(samples.capacity()),
            _ => None,
        })
        .unwrap();
    assert!(cap >= 10_000, "reused a recycled buffer (capacity {cap})");
}

#[test]
fn end_of_item_marks_the_tail_of_untruncated_items_only() {
    let mut sim = playing_sim("");
    let v = sim.msg(r#"{"type":"response.output_audio.done","item_id":"item_a"}"#);
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::EndOfItem { item } if *item == sim.slot("item_a"))));
    let mut sim = playing_sim("");
    sim.msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#);
    let v = sim.msg(r#"{"type":"response.output_audio.done","item_id":"item_a"}"#);
    assert!(!v.iter().any(|o| matches!(o, Output::EndOfItem { .. })));
}
