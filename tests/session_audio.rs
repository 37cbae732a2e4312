#![cfg(not(target_arch = "wasm32"))] // proptest is a native-only dev-dependency
//! Mic audio through the session: continuity across reconnects, bounded loss, the 10 chunks/s
//! limit (proptest), mute.

mod session_support;

use proptest::prelude::*;
use realtime_voice::audio::pcm16;
use realtime_voice::session::{Output, State};
use session_support::*;

/// A 24 kHz mono mic (pass-through resampling) whose sample k has value k mod 16001.
struct Mic {
    next: u64,
    captured: Vec<i16>,
}

impl Mic {
    fn new() -> Mic {
        Mic {
            next: 0,
            captured: Vec::new(),
        }
    }
    fn block(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = (self.next % 16001) as i16;
                self.next += 1;
                self.captured.push(v);
                pcm16::i16_to_f32(v)
            })
            .collect()
    }
}

/// Feeds 20 ms blocks from `sim.now` to `until`, firing timers on the way.
fn feed(sim: &mut Sim, mic: &mut Mic, until: u64) {
    while sim.now + 20 <= until {
        let t = sim.now + 20;
        sim.advance_to(t);
        let b = mic.block(480);
        sim.s.handle_mic_samples(t, &b);
        sim.drain();
    }
}

fn voice_sim(extra: &str) -> Sim {
    let mut sim = Sim::new(extra);
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    sim
}

/// Flushes what is left (mute flushes the partial chunk) and lets the rate limit drain it.
fn finish(sim: &mut Sim) {
    sim.s.set_muted(sim.now, true);
    sim.drain();
    let t = sim.now + 5_000;
    sim.advance_to(t);
}

#[test]
fn mic_samples_round_trip_exactly() {
    for v in [-16000i16, -1, 0, 1, 12345, 16000] {
        assert_eq!(pcm16::f32_to_i16(pcm16::i16_to_f32(v)), v);
    }
}

#[test]
fn reconnect_keeps_every_sample_exactly_once_in_order() {
    let mut sim = voice_sim("");
    let mut mic = Mic::new();
    feed(&mut sim, &mut mic, 2_000);
    sim.close(1006, true);
    assert_eq!(sim.state(), State::Reconnecting);
    // The retry opens a socket; the handshake takes until t = 7 s (5 s of mic audio buffered).
    feed(&mut sim, &mut mic, 7_000);
    assert_eq!(opens(&sim.log), 2);
    sim.opened(sim.now);
    sim.drain();
    feed(&mut sim, &mut mic, 15_000);
    finish(&mut sim);
    let (sent, chunks) = appended_samples(&sim.log);
    assert_eq!(
        sent.len(),
        mic.captured.len(),
        "nothing lost within the 10 s bound"
    );
    assert!(sent == mic.captured, "samples reordered or duplicated");
    assert_eq!(sim.s.metrics().dropped_audio_ms, 0);
    assert!(!events(&sim.log).iter().any(|e| e.name() == "error"));
    let times = append_times(&sim);
    assert_eq!(times.len(), chunks);
    assert_rate_ok(&times);
    // The catch-up used larger chunks: 15 s of audio in fewer than 150 chunks.
    assert!(chunks < 140, "{chunks} chunks");
}

#[test]
fn loss_beyond_the_bound_is_counted_and_reported() {
    let mut sim = voice_sim(r#","maxBacklogMs":3000"#);
    let mut mic = Mic::new();
    feed(&mut sim, &mut mic, 1_000);
    sim.s.handle_online(sim.now, false);
    sim.close(1006, true);
    feed(&mut sim, &mut mic, 9_000); // 8 s offline, bound 3 s → ~5 s lost
    sim.s.handle_online(sim.now, true);
    sim.drain();
    sim.opened(sim.now);
    sim.drain();
    feed(&mut sim, &mut mic, 10_000);
    finish(&mut sim);
    let (sent, _) = appended_samples(&sim.log);
    let lost = mic.captured.len() - sent.len();
    let m = sim.s.metrics();
    assert_eq!(m.dropped_audio_ms, lost as u64 * 1000 / 24_000);
    assert!(
        (4_900..=5_100).contains(&m.dropped_audio_ms),
        "{}",
        m.dropped_audio_ms
    );
    // What was sent is the captured stream with one gap: the oldest buffered audio.
    let a = sent
        .iter()
        .zip(&mic.captured)
        .position(|(x, y)| x != y)
        .unwrap();
    assert!(sent[a..] == mic.captured[a + lost..]);
    // Reported, never silent.
    let reported: Vec<String> = events(&sim.log)
        .iter()
        .filter(|e| e.name() == "error")
        .map(|e| e.to_json())
        .collect();
    assert!(!reported.is_empty() && reported.iter().all(|r| r.contains("audio_overflow")));
    assert_rate_ok(&append_times(&sim));
}

#[test]
fn mute_drops_and_does_not_buffer() {
    let mut sim = voice_sim("");
    let mut mic = Mic::new();
    feed(&mut sim, &mut mic, 1_000);
    sim.s.set_muted(sim.now, true);
    let before = mic.captured.len();
    feed(&mut sim, &mut mic, 3_000);
    assert_eq!(sim.s.metrics().buffered_audio_ms, 0);
    sim.s.set_muted(sim.now, false);
    feed(&mut sim, &mut mic, 4_000);
    finish(&mut sim);
    let (sent, _) = appended_samples(&sim.log);
    let after = &mic.captured[mic.captured.len() - (sent.len() - before)..];
    assert!(sent[..before] == mic.captured[..before]);
    assert!(sent[before..] == *after);
    assert_eq!(
        sent.len(),
        before + 50 * 480,
        "only the unmuted second after"
    );
}

#[test]
fn resampled_48k_stereo_mic_is_sent_at_24k() {
    let mut sim = Sim::new("");
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 2);
    sim.s.handle_playback_started(0, 24_000);
    for i in 1..=100u64 {
        sim.advance_to(i * 10);
        sim.s.handle_mic_samples(i * 10, &[0.25f32; 960]); // 10 ms of 48 kHz stereo
    }
    sim.drain();
    let (sent, chunks) = appended_samples(&sim.log);
    assert!(chunks >= 9, "{chunks}");
    // ~1 s at 24 kHz minus the filter's warm-up, in 100 ms chunks.
    assert!((21_000..=24_000).contains(&sent.len()), "{}", sent.len());
    let tail = &sent[sent.len() - 100..];
    assert!(
        tail.iter().all(|&x| (x - 8192).abs() <= 2),
        "{:?}",
        &tail[..4]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Long randomised runs (blocks of random size and timing, drops, offline spells, mute
    /// toggles): never more than 10 appends in any 1000 ms window, never a sample duplicated.
    #[test]
    fn never_more_than_ten_chunks_per_second(
        steps in proptest::collection::vec((1u64..200, 0usize..4000, 0u8..100), 200..800),
        seed in any::<u64>(),
    ) {
        let cfg = realtime_voice::session::SessionConfig::from_json(&format!("{{{BASE}}}")).unwrap();
        let mut sim = Sim { s: realtime_voice::session::Session::new(cfg, seed), now: 0, log: vec![], times: vec![] };
        sim.connect_open();
        sim.s.handle_audio_started(0, 24_000, 1);
    sim.s.handle_playback_started(0, 24_000);
        let mut mic = Mic::new();
        for (dt, n, action) in steps {
            let t = sim.now + dt;
            sim.advance_to(t);
            let b = mic.block(n);
            sim.s.handle_mic_samples(t, &b);
            match action {
                0..=1 => { sim.s.handle_socket_closed(t, 1006, "", true); }
                2 => sim.s.set_muted(t, !sim.s.is_muted()),
                3 => sim.s.handle_socket_opened(t),
                _ => {}
            }
            if sim.log.last().is_some_and(|o| matches!(o, Output::OpenSocket { .. })) || sim.drain().iter().any(|o| matches!(o, Output::OpenSocket { .. })) {
                sim.opened(t);
            }
            sim.drain();
        }
        let times = append_times(&sim);
        for w in times.windows(11) {
            prop_assert!(w[10] - w[0] >= 1000, "11 chunks in {} ms", w[10] - w[0]);
        }
        let (sent, _) = appended_samples(&sim.log);
        prop_assert!(sent.len() <= mic.captured.len());
    }
}
