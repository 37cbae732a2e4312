//! The end of an answer: the player's resampler and rounding leave `played` a few samples short
//! of `received`, so the player reports draining an item after its end marker
//! (`handle_playback_finished`); that counts as fully played — the assistant's turn ends and a
//! later barge-in does not truncate the finished item.

mod session_support;

use realtime_voice::session::Output;
use session_support::*;

const AUDIO_DONE: &str = r#"{"type":"response.output_audio.done","response_id":"resp_1","item_id":"item_a","output_index":0,"content_index":0}"#;
const SPEECH_STARTED: &str =
    r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":1,"item_id":"u"}"#;

/// Voice session with 600 ms (14 400 samples) of item_a received and its audio done.
fn answered() -> Sim {
    let mut sim = Sim::answering("");
    for _ in 0..3 {
        sim.advance(100);
        sim.msg(&audio_delta("item_a", 4800));
    }
    let v = sim.msg(AUDIO_DONE);
    assert!(v
        .iter()
        .any(|o| matches!(o, Output::EndOfItem { item } if *item == sim.slot("item_a"))));
    sim
}

fn assistant_speech(v: &[Output]) -> Vec<String> {
    events(v)
        .iter()
        .filter(|e| e.name() == "speech" && e.to_json().contains("assistant"))
        .map(|e| e.to_json())
        .collect()
}

fn has_truncate(v: &[Output]) -> bool {
    sends(v)
        .iter()
        .any(|f| frame_type(f) == "conversation.item.truncate")
}

#[test]
fn a_drained_item_ends_the_turn_and_is_not_truncated_by_a_later_barge_in() {
    let mut sim = answered();
    // The player's last progress report is 10 samples short (resampler rounding).
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 14_390, 0);
    let v = sim.drain();
    assert!(
        assistant_speech(&v).is_empty(),
        "not yet fully played by count"
    );
    sim.advance(50);
    sim.s.handle_playback_finished(sim.now, sim.slot("item_a"));
    let v = sim.drain();
    assert_eq!(
        assistant_speech(&v),
        [r#"{"who":"assistant","speaking":false}"#],
        "the drained item ends the assistant's turn"
    );
    // The user speaks later: nothing is playing, so nothing is flushed or truncated.
    sim.advance(2_000);
    let v = sim.msg(SPEECH_STARTED);
    assert!(!has_truncate(&v), "{v:?}");
    assert!(!v.iter().any(|o| matches!(o, Output::FlushPlayback { .. })));
    // Finishing again, or an unknown item, changes nothing.
    sim.s.handle_playback_finished(sim.now, sim.slot("item_a"));
    sim.s.handle_playback_finished(sim.now, 999);
    assert!(sim.drain().is_empty());
}

#[test]
fn an_item_still_playing_is_still_truncated() {
    let mut sim = answered();
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_a"), 7_200, 0);
    let v = sim.msg(SPEECH_STARTED);
    let t: Vec<&str> = sends(&v)
        .into_iter()
        .filter(|f| frame_type(f) == "conversation.item.truncate")
        .collect();
    assert_eq!(t.len(), 1, "{v:?}");
    assert!(t[0].ends_with(r#""audio_end_ms":300}"#), "{}", t[0]);
    // A finish report for the truncated item (its flushed tail) does not undo the cut.
    sim.s.handle_playback_finished(sim.now, sim.slot("item_a"));
    assert!(assistant_speech(&sim.drain()).is_empty());
    let v = sim.msg(SPEECH_STARTED);
    assert!(!has_truncate(&v), "truncated once only");
}

#[test]
fn a_finished_item_does_not_hide_the_next_one_playing() {
    let mut sim = answered();
    sim.s.handle_playback_finished(sim.now, sim.slot("item_a"));
    sim.drain();
    sim.msg(&audio_delta("item_b", 4800));
    sim.s
        .handle_playback_progress(sim.now, sim.slot("item_b"), 2_400, 0);
    let v = sim.msg(SPEECH_STARTED);
    let t: Vec<&str> = sends(&v)
        .into_iter()
        .filter(|f| frame_type(f) == "conversation.item.truncate")
        .collect();
    assert_eq!(t.len(), 1, "{v:?}");
    assert!(t[0].contains(r#""item_id":"item_b""#), "{}", t[0]);
    assert!(t[0].ends_with(r#""audio_end_ms":100}"#), "{}", t[0]);
}
