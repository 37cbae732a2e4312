//! The per-block audio path allocates nothing once constructed: a counting global allocator
//! wraps the system one in this test binary, and each test checks the count around the calls.
//! (One test binary of its own, so no other test's allocations are counted; the tests in it run
//! on one thread at a time through a lock.)
// Native only: the counting allocator would clash with the package's own wasm heap (src/lib.rs).
#![cfg(not(target_arch = "wasm32"))]

mod echo_support;

use realtime_voice::audio::{pcm16, Chunker, ChunkerConfig, Resampler};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls on this thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

/// Allocations made on this thread while running `f`.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn counter_sees_allocations() {
    let _g = SERIAL.lock();
    let n = allocations(|| {
        std::hint::black_box(vec![1u8; 10]);
    });
    assert_eq!(n, 1);
}

#[test]
fn resampler_process_into_does_not_allocate() {
    let _g = SERIAL.lock();
    for (fi, fo, ch) in [
        (48_000, 24_000, 1),
        (44_100, 24_000, 2),
        (44_055, 24_000, 1),
        (24_000, 48_000, 1),
    ] {
        let mut r = Resampler::new(fi, fo, ch).unwrap();
        let input: Vec<f32> = (0..128 * usize::from(ch))
            .map(|i| (i as f32 * 0.01).sin())
            .collect();
        let mut out = vec![0.0f32; r.max_output_capacity(128)];
        let mut produced = 0;
        let n = allocations(|| {
            for _ in 0..200 {
                produced += r.process_into(&input, &mut out).unwrap();
            }
        });
        assert!(produced > 0);
        assert_eq!(n, 0, "{fi}->{fo} x{ch}: {n} allocations");
    }
}

#[test]
fn chunker_push_and_poll_do_not_allocate() {
    let _g = SERIAL.lock();
    let mut c = Chunker::new(ChunkerConfig::default()).unwrap();
    let mut out: Vec<i16> = Vec::with_capacity(c.max_chunk_samples());
    let block = [123i16; 480]; // 20 ms
    let mut chunks = 0;
    let n = allocations(|| {
        // 30 s of audio, pushed every 20 ms; includes a catch-up after a 3 s pause in polling
        // and a backlog overflow.
        for step in 0..1500u64 {
            let now = step * 20;
            c.push(now, &block);
            if !(500..650).contains(&step) && c.poll_chunk(now, &mut out).is_some() {
                chunks += 1;
            }
            if step == 1000 {
                c.push(now, &[0; 300_000]);
            }
        }
        c.flush();
        while c.poll_chunk(60_000, &mut out).is_some() {}
    });
    assert!(chunks > 100);
    assert!(c.dropped_samples() > 0);
    assert_eq!(n, 0, "{n} allocations");
}

#[test]
fn pcm16_encode_into_reserved_string_and_decode_into_reserved_vec_do_not_allocate() {
    let _g = SERIAL.lock();
    let samples: Vec<f32> = (0..2400).map(|i| (i as f32 * 0.05).sin() * 0.8).collect();
    let ints: Vec<i16> = samples.iter().map(|&x| pcm16::f32_to_i16(x)).collect();
    let mut text = String::with_capacity(pcm16::encoded_len(2 * samples.len()));
    let mut back: Vec<f32> = Vec::with_capacity(samples.len());
    let n = allocations(|| {
        for _ in 0..50 {
            text.clear();
            pcm16::encode_f32_as_pcm16_base64(&samples, &mut text);
            text.clear();
            pcm16::encode_i16_as_pcm16_base64(&ints, &mut text);
            back.clear();
            pcm16::decode_pcm16_base64_to_f32(&text, &mut back).unwrap();
        }
    });
    assert_eq!(back.len(), samples.len());
    assert_eq!(n, 0, "{n} allocations");
}

#[test]
fn echo_guard_gate_and_progress_do_not_allocate() {
    use realtime_voice::audio::echo_guard::{EchoGuard, FRAME};
    let _g = SERIAL.lock();
    // The lab's interviewer and its echo in the mild room: the path is evidenced after ~2.4 s,
    // then the gate guards.
    let reference: Vec<f32> = echo_support::wav("assistant.wav")
        .iter()
        .map(|&s| f32::from(s) / 32_768.0)
        .collect();
    let mic = echo_support::wav("mild-echo.wav");
    let mut g = EchoGuard::new(true);
    g.push_reference(1, &reference);
    let mut out = Vec::with_capacity(mic.len() + FRAME);
    // Reference played and mic captured in 10 ms steps, through the idle and guard states.
    let n = allocations(|| {
        for (i, block) in mic.chunks(FRAME).enumerate() {
            g.played(1, ((i + 1) * FRAME).min(reference.len()) as u64);
            g.process(block, &mut out);
        }
    });
    assert_eq!(n, 0);
    assert!(g.stats().guarded_ms > 0);
}
