//! Chunker behaviour on a virtual clock: chunk sizes, the 10-per-second sliding window, catch-up
//! after a pause, flush, clear, bounded backlog with counted overflow.
#![cfg(not(target_arch = "wasm32"))] // proptest is a native-only dev-dependency

use proptest::prelude::*;
use realtime_voice::audio::{ChunkInfo, Chunker, ChunkerConfig};

/// 20 ms of 24 kHz samples numbered from `start` (wrapping), to check order and completeness.
fn block(start: u64, len: usize) -> Vec<i16> {
    (0..len as u64).map(|i| (start + i) as u16 as i16).collect()
}

/// Asserts that no 1000 ms window holds more than `limit` of `times` (sorted).
fn assert_rate(times: &[u64], limit: usize) {
    for (i, &t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|&&u| u < t + 1000).count();
        assert!(
            in_window <= limit,
            "{in_window} chunks in the 1000 ms from {t}: {times:?}"
        );
    }
}

struct Run {
    c: Chunker,
    out: Vec<i16>,
    sent: Vec<i16>,
    times: Vec<u64>,
    infos: Vec<ChunkInfo>,
}

impl Run {
    fn new(config: ChunkerConfig) -> Self {
        let c = Chunker::new(config).unwrap();
        let out = Vec::with_capacity(c.max_chunk_samples());
        Run {
            c,
            out,
            sent: Vec::new(),
            times: Vec::new(),
            infos: Vec::new(),
        }
    }
    fn poll(&mut self, now: u64) -> bool {
        match self.c.poll_chunk(now, &mut self.out) {
            Some(info) => {
                assert_eq!(info.samples, self.out.len());
                self.sent.extend_from_slice(&self.out);
                self.times.push(now);
                self.infos.push(info);
                true
            }
            None => false,
        }
    }
}

#[test]
fn steady_capture_gives_100_ms_chunks_at_10_per_second() {
    let mut r = Run::new(ChunkerConfig::default());
    let mut pushed = 0u64;
    for ms in 0..5_000u64 {
        if ms % 20 == 0 {
            r.c.push(ms, &block(pushed, 480));
            pushed += 480;
        }
        r.poll(ms);
    }
    assert_eq!(r.infos.len(), 50);
    assert!(r
        .infos
        .iter()
        .all(|i| i.samples == 2400 && i.duration_ms == 100));
    // Captured-at times: 0, 100, 200, ... exactly.
    for (k, i) in r.infos.iter().enumerate() {
        assert_eq!(i.captured_at_ms, k as u64 * 100);
    }
    assert_eq!(r.sent, block(0, r.sent.len()));
    assert_rate(&r.times, 10);
}

#[test]
fn catch_up_after_a_pause_uses_larger_chunks_and_keeps_the_rate() {
    let mut r = Run::new(ChunkerConfig::default());
    let mut pushed = 0u64;
    for ms in 0..20_000u64 {
        if ms % 20 == 0 {
            r.c.push(ms, &block(pushed, 480));
            pushed += 480;
        }
        // A 6 s reconnect: nothing is polled (sent) from 3 s to 9 s.
        if !(3_000..9_000).contains(&ms) {
            r.poll(ms);
        }
    }
    assert_eq!(r.c.dropped_samples(), 0, "6 s fits the 10 s backlog");
    assert_eq!(r.sent, block(0, r.sent.len()), "every sample, in order");
    assert!(
        r.c.backlog_samples() < 2400,
        "caught up: {}",
        r.c.backlog_samples()
    );
    assert_rate(&r.times, 10);
    let biggest = r.infos.iter().map(|i| i.samples).max().unwrap();
    assert_eq!(biggest, 24_000, "catch-up chunks reach max_chunk_ms");
    assert!(r
        .infos
        .iter()
        .all(|i| i.samples >= 2400 && i.samples <= 24_000));
    // Caught up within about a second of resuming.
    let back = r
        .infos
        .iter()
        .position(|i| i.captured_at_ms >= 8_900)
        .unwrap();
    assert!(r.times[back] <= 10_500, "caught up at {}", r.times[back]);
}

#[test]
fn next_ready_ms_tells_when_the_rate_limit_opens() {
    // Chunks capped at 100 ms, so 5 s of backlog needs 50 chunks.
    let config = ChunkerConfig {
        max_chunk_ms: 100,
        ..ChunkerConfig::default()
    };
    let mut r = Run::new(config);
    r.c.push(0, &[0; 24_000 * 5]);
    for _ in 0..10 {
        assert!(r.poll(0));
    }
    assert!(!r.poll(999));
    assert_eq!(r.c.next_ready_ms(500), Some(1000));
    assert!(r.poll(1000));
    let mut empty = Chunker::new(ChunkerConfig::default()).unwrap();
    assert_eq!(empty.next_ready_ms(5), None);
    empty.push(0, &[1; 100]);
    assert_eq!(empty.next_ready_ms(5), None, "partial chunk, no flush");
    empty.flush();
    assert_eq!(empty.next_ready_ms(5), Some(5));
}

#[test]
fn flush_emits_the_partial_remainder_and_only_it() {
    let mut r = Run::new(ChunkerConfig::default());
    r.c.push(0, &block(0, 3000)); // 125 ms
    assert!(r.poll(130));
    assert_eq!(
        r.infos[0].samples, 3000,
        "a late poll takes the whole backlog"
    );
    r.c.push(130, &block(3000, 1000));
    assert!(!r.poll(140));
    r.c.flush();
    assert!(r.c.flush_pending());
    r.c.push(140, &block(4000, 5000)); // after the flush: next turn
    assert!(r.poll(150));
    let last = *r.infos.last().unwrap();
    assert_eq!(last.samples, 1000);
    assert!(last.ends_flush);
    assert!(!r.c.flush_pending());
    assert_eq!(r.c.backlog_samples(), 5000);
    assert!(r.poll(160));
    assert!(!r.infos.last().unwrap().ends_flush);
    assert_eq!(r.sent, block(0, 9000));
    // Flushing an empty chunker is a no-op.
    r.c.flush();
    assert!(!r.c.flush_pending());
}

#[test]
fn overflow_drops_the_oldest_and_counts_them() {
    let config = ChunkerConfig {
        max_backlog_ms: 2_000,
        ..ChunkerConfig::default()
    };
    let mut r = Run::new(config);
    assert_eq!(r.c.capacity_samples(), 48_000);
    r.c.push(0, &block(0, 30_000));
    r.c.push(1_250, &block(30_000, 30_000));
    assert_eq!(r.c.backlog_samples(), 48_000);
    assert_eq!(r.c.dropped_samples(), 12_000);
    assert!(r.poll(2_500));
    // The first chunk starts at the oldest kept sample, 12 000 (500 ms after the first push).
    assert_eq!(r.sent[0], 12_000);
    assert_eq!(r.infos[0].captured_at_ms, 500);
    // A single push larger than the bound keeps only its newest samples.
    r.c.clear();
    r.c.push(10_000, &block(100_000, 50_000));
    assert_eq!(r.c.backlog_samples(), 48_000);
    assert_eq!(r.c.dropped_samples(), 14_000);
    r.c.flush();
    while r.poll(20_000 + r.times.len() as u64 * 1000) {}
    let tail = &r.sent[r.sent.len() - 48_000..];
    assert_eq!(tail, &block(102_000, 48_000)[..]);
    assert_eq!(
        r.infos.last().unwrap().captured_at_ms,
        10_000 + 26_000 * 1000 / 24_000
    );
}

#[test]
fn clear_discards_without_counting_loss() {
    let mut c = Chunker::new(ChunkerConfig::default()).unwrap();
    c.push(0, &[5; 5000]);
    c.flush();
    c.clear();
    assert_eq!(c.backlog_samples(), 0);
    assert_eq!(c.discarded_samples(), 5000);
    assert_eq!(c.dropped_samples(), 0);
    assert!(!c.flush_pending());
    let mut out = Vec::new();
    assert_eq!(c.poll_chunk(10, &mut out), None);
}

#[derive(Debug, Clone)]
enum Op {
    Push(u16),
    Poll,
    Flush,
    Clear,
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u16..6000).prop_map(Op::Push),
        6 => Just(Op::Poll),
        1 => Just(Op::Flush),
        1 => Just(Op::Clear),
        4 => (0u16..400).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever the schedule: never more than the limit per window, chunk sizes within bounds,
    /// every pushed sample is sent, dropped, discarded or still buffered, in order.
    #[test]
    fn invariants_hold_for_any_schedule(ops in prop::collection::vec(op(), 1..300)) {
        let config = ChunkerConfig { max_backlog_ms: 3_000, ..ChunkerConfig::default() };
        let mut r = Run::new(config);
        let (mut now, mut pushed) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Push(n) => {
                    r.c.push(now, &block(pushed, usize::from(n)));
                    pushed += u64::from(n);
                }
                Op::Poll => {
                    let flush_before = r.c.flush_pending();
                    if r.poll(now) {
                        let i = *r.infos.last().unwrap();
                        prop_assert!(i.samples <= 24_000);
                        prop_assert!(i.samples >= 2400 || (flush_before && i.ends_flush),
                            "short chunk {} without a flush", i.samples);
                    } else if let Some(t) = r.c.next_ready_ms(now) {
                        prop_assert!(t > now, "ready at {t} but poll at {now} gave nothing");
                    }
                }
                Op::Flush => r.c.flush(),
                Op::Clear => r.c.clear(),
                Op::Wait(ms) => now += u64::from(ms),
            }
            prop_assert!(r.c.backlog_samples() <= r.c.capacity_samples());
        }
        assert_rate(&r.times, 10);
        let accounted = r.sent.len() as u64 + r.c.dropped_samples() + r.c.discarded_samples()
            + r.c.backlog_samples() as u64;
        prop_assert_eq!(accounted, pushed);
        // Sent samples are increasing (as numbered, modulo gaps from drops and clears).
        let nums: Vec<u16> = r.sent.iter().map(|&s| s as u16).collect();
        let mut seq = 0u64;
        let mut last: Option<u64> = None;
        for &n in &nums {
            // Recover the absolute number as the smallest value ≥ seq with the same low bits.
            let mut abs = (seq & !0xffff) | u64::from(n);
            if abs < seq { abs += 0x1_0000; }
            if let Some(l) = last { prop_assert!(abs > l); }
            last = Some(abs);
            seq = abs + 1;
        }
    }
}
