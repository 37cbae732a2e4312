//! The adaptive playback pre-buffer: underruns during a response raise it (up to
//! `maxPrebufferMs`), calm responses lower it back towards `prebufferMs`.

mod session_support;

use realtime_voice::session::Output;
use session_support::{audio_delta, Sim};

fn set_prebuffer(v: &[Output]) -> Vec<u32> {
    v.iter()
        .filter_map(|o| match o {
            Output::SetPrebuffer { ms } => Some(*ms),
            _ => None,
        })
        .collect()
}

/// One response of `n` samples on item `id`, played to the end with `underruns` reported.
fn response(sim: &mut Sim, id: &str, underruns_total: u64) -> Vec<Output> {
    let mut v = sim.msg(&audio_delta(id, 2400));
    v.extend(sim.msg(&format!(
        r#"{{"type":"response.output_audio.done","item_id":"{id}","output_index":0,"content_index":0}}"#
    )));
    sim.s
        .handle_playback_progress(sim.now, id, 2400, underruns_total);
    v.extend(sim.drain());
    v
}

fn voice(extra: &str) -> Sim {
    let mut sim = Sim::new(extra);
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.drain();
    sim
}

#[test]
fn underruns_raise_the_prebuffer_up_to_the_ceiling() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":150"#);
    assert_eq!(set_prebuffer(&response(&mut sim, "a", 1)), [100]);
    assert_eq!(set_prebuffer(&response(&mut sim, "b", 3)), [140]);
    assert_eq!(set_prebuffer(&response(&mut sim, "c", 4)), [150], "capped");
    assert!(
        set_prebuffer(&response(&mut sim, "d", 5)).is_empty(),
        "already at the ceiling"
    );
    assert_eq!(sim.s.metrics().prebuffer_ms, 150);
}

#[test]
fn calm_responses_lower_it_back_to_the_start() {
    let mut sim = voice(r#","prebufferMs":60"#);
    assert_eq!(set_prebuffer(&response(&mut sim, "a", 1)), [100]);
    let mut seen = Vec::new();
    for (i, id) in ["b", "c", "d", "e", "f", "g", "h", "i", "j"]
        .iter()
        .enumerate()
    {
        let v = response(&mut sim, id, 1);
        seen.extend(set_prebuffer(&v).into_iter().map(|ms| (i, ms)));
    }
    assert_eq!(
        seen,
        [(2, 80), (5, 60)],
        "every third calm response steps down, not below 60"
    );
}

#[test]
fn equal_bounds_keep_it_fixed() {
    let mut sim = voice(r#","prebufferMs":80,"maxPrebufferMs":80"#);
    for (id, u) in [("a", 1), ("b", 2), ("c", 3)] {
        assert!(set_prebuffer(&response(&mut sim, id, u)).is_empty());
    }
    assert_eq!(sim.s.metrics().prebuffer_ms, 80);
}
