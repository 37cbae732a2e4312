//! Every microphone sample the session takes in is accounted for: sent, still buffered, or
//! counted as dropped — across a reconnect and an overflow of the backlog bound.

mod session_support;

use session_support::Sim;

fn feed_until(sim: &mut Sim, until_ms: u64) {
    while sim.now < until_ms {
        let t = sim.now + 20;
        sim.advance_to(t);
        let block: Vec<f32> = (0..480)
            .map(|i| ((t as usize + i) % 97) as f32 / 200.0)
            .collect();
        sim.s.handle_mic_samples(t, &block);
        sim.drain();
    }
}

fn assert_accounted(sim: &Sim) {
    let m = sim.s.metrics();
    let total = m.sent_audio_ms + m.buffered_audio_ms + m.dropped_audio_ms;
    // Each figure is rounded down to whole ms on its own.
    assert!(
        m.captured_audio_ms.abs_diff(total) <= 3,
        "captured {} ms = sent {} + buffered {} + dropped {} ms",
        m.captured_audio_ms,
        m.sent_audio_ms,
        m.buffered_audio_ms,
        m.dropped_audio_ms
    );
}

#[test]
fn captured_audio_is_sent_buffered_or_counted_as_dropped() {
    let mut sim = Sim::new(r#","maxBacklogMs":2000"#);
    sim.connect_open();
    sim.s.handle_audio_started(0, 24_000, 1);
    sim.drain();
    feed_until(&mut sim, 2_000);
    assert_accounted(&sim);
    assert!(sim.s.metrics().sent_audio_ms >= 1_800);
    // Offline for 5 s with a 2 s bound: about 3 s overflow.
    sim.s.handle_online(sim.now, false);
    sim.close(1006, true);
    feed_until(&mut sim, 7_000);
    assert_accounted(&sim);
    assert!(sim.s.metrics().dropped_audio_ms >= 2_900);
    sim.s.handle_online(sim.now, true);
    sim.drain();
    let now = sim.now;
    sim.opened(now);
    feed_until(&mut sim, 12_000);
    assert_accounted(&sim);
    let m = sim.s.metrics();
    assert_eq!(m.captured_audio_ms, 12_000);
    assert!(
        m.buffered_audio_ms < 200,
        "the backlog drained: {}",
        m.buffered_audio_ms
    );
}
