//! The playout delay learnt from arrival jitter: each audio delta's lateness against the
//! playback clock (the item's earliest point plus the audio before it) trains a histogram; the
//! delay covers its p99 plus a margin, rises at once for a late delta, falls slowly (1 ms per
//! 4 s), and stays
//! within `prebufferMs..=maxPrebufferMs`. A model of the player checks that the learnt delay
//! plays jittered audio without a gap.

mod session_support;

use realtime_voice::session::Output;
use session_support::{audio_delta, audio_done, Sim};

fn set_prebuffer(v: &[Output]) -> Vec<u32> {
    v.iter()
        .filter_map(|o| match o {
            Output::SetPrebuffer { ms } => Some(*ms),
            _ => None,
        })
        .collect()
}

fn voice(extra: &str) -> Sim {
    let mut sim = Sim::new(extra);
    sim.connect_open();
    sim.s.handle_audio_started(0, 48_000, 1);
    sim.s.handle_playback_started(0, 24_000);
    sim.drain();
    sim
}

/// Deterministic pseudo-random lateness in `0..max` ms (xorshift).
struct Jitter(u64);
impl Jitter {
    fn next(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max.max(1)
    }
}

/// A model of the playback worklet for one item of 100 ms deltas: it starts `delay` ms after the
/// first audio arrives (or at once once the item ended), and runs dry (an underrun, then it
/// waits `delay` again) when a delta arrives after its audio was due.
struct Player {
    start: Option<u64>,
    /// Audio queued ahead of the play head, in ms of media, at `start`.
    media_at_start: u64,
    underruns: u32,
}

impl Player {
    fn arrive(&mut self, now: u64, media_ms: u64, delay: u64) {
        match self.start {
            None => {
                self.start = Some(now + delay);
                self.media_at_start = media_ms;
            }
            Some(s) => {
                let due = s + (media_ms - self.media_at_start);
                if now > due {
                    self.underruns += 1;
                    self.start = Some(now + delay);
                    self.media_at_start = media_ms;
                }
            }
        }
    }
}

/// `items` answers of `deltas` 100 ms deltas each, sent at real time and delivered up to
/// `jitter_ms` late (in order, as over TCP); returns underruns of the player model from item
/// `from` on, and every delay the session set.
fn converse(
    sim: &mut Sim,
    items: usize,
    deltas: u64,
    jitter_ms: u64,
    from: usize,
) -> (u32, Vec<u32>) {
    let mut rng = Jitter(0x9E37_79B9_7F4A_7C15);
    let mut underruns = 0;
    let mut sets = Vec::new();
    for i in 0..items {
        let id = format!("it{i}");
        let t0 = sim.now + 2_000;
        let mut player = Player {
            start: None,
            media_at_start: 0,
            underruns: 0,
        };
        let mut last = t0;
        for k in 0..deltas {
            // Sent at t0 + 100·k, delayed by the network (never overtaking the one before).
            let at = (t0 + 100 * k + rng.next(jitter_ms + 1)).max(last);
            last = at;
            sets.extend(set_prebuffer(&sim.advance_to(at)));
            let delay = u64::from(sim.s.prebuffer_ms());
            sets.extend(set_prebuffer(&sim.msg(&audio_delta(&id, 2400))));
            // The player uses the delay it was told before this delta reached it.
            player.arrive(at, 100 * k, u64::from(sim.s.prebuffer_ms()).max(delay));
        }
        sim.msg(&audio_done(&id));
        if i >= from {
            underruns += player.underruns;
        }
    }
    (underruns, sets)
}

#[test]
fn steady_arrivals_keep_the_configured_start() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":300"#);
    let (underruns, sets) = converse(&mut sim, 5, 30, 0, 0);
    assert_eq!(underruns, 0);
    assert!(sets.is_empty(), "{sets:?}");
    assert_eq!(sim.s.prebuffer_ms(), 60);
    let m = sim.s.metrics();
    assert_eq!(
        (m.prebuffer_p50_ms, m.prebuffer_p95_ms),
        (Some(60), Some(60))
    );
}

#[test]
fn jitter_is_learnt_and_then_played_without_gaps() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":300"#);
    // 100 ms of jitter: the first answer may underrun while the delay is learnt; none after.
    let (underruns, sets) = converse(&mut sim, 20, 50, 100, 1);
    assert_eq!(underruns, 0, "delays set: {sets:?}");
    let d = sim.s.prebuffer_ms();
    assert!(
        (100..=130).contains(&d),
        "delay {d} ms for 100 ms of jitter"
    );
    let m = sim.s.metrics();
    assert!(m.arrival_jitter_ms >= 90, "{m:?}");
    assert!(m.prebuffer_p95_ms.is_some_and(|p| (100..=130).contains(&p)));
}

#[test]
fn a_late_delta_raises_the_delay_at_once_and_it_decays_slowly() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":300"#);
    sim.msg(&audio_delta("a", 2400));
    sim.advance(100);
    sim.msg(&audio_delta("a", 2400));
    sim.advance(250); // due 100 ms after the one before: 150 ms late
    let v = sim.msg(&audio_delta("a", 2400));
    // Fast attack: the lateness, rounded up to its 10 ms bucket, plus the 10 ms margin.
    assert_eq!(set_prebuffer(&v), [170]);
    sim.msg(&audio_done("a"));
    // A minute of calm answers: the delay falls by 1 ms every 4 s, not at once.
    let (underruns, sets) = converse(&mut sim, 12, 40, 0, 0);
    assert_eq!(underruns, 0);
    let d = sim.s.prebuffer_ms();
    assert!((145..=160).contains(&d), "after ~72 s calm: {d} ({sets:?})");
    assert!(sets.windows(2).all(|w| w[1] < w[0]), "only falls: {sets:?}");
    // Much later (~8 min) it is back at the configured start.
    converse(&mut sim, 80, 40, 0, 0);
    assert_eq!(sim.s.prebuffer_ms(), 60);
}

#[test]
fn the_delay_is_bounded_and_equal_bounds_keep_it_fixed() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":150"#);
    converse(&mut sim, 3, 20, 400, 0);
    assert_eq!(sim.s.prebuffer_ms(), 150, "capped");
    let mut sim = voice(r#","prebufferMs":80,"maxPrebufferMs":80"#);
    let (_, sets) = converse(&mut sim, 3, 20, 400, 0);
    assert!(sets.is_empty(), "{sets:?}");
    assert_eq!(sim.s.metrics().prebuffer_ms, 80);
}

/// The worklet's underrun counter starts at 0 with each new player: the session keeps the
/// earlier players' total, and what was learnt survives for the rebuilt player
/// (`prebuffer_ms()`, and a `SetPrebuffer` when it starts).
#[test]
fn underruns_and_the_delay_survive_an_audio_restart() {
    let mut sim = voice(r#","prebufferMs":60,"maxPrebufferMs":300"#);
    converse(&mut sim, 2, 20, 100, 0);
    let learnt = sim.s.prebuffer_ms();
    assert!(learnt > 60);
    let a = sim.slot("it1");
    sim.s.handle_playback_progress(sim.now, a, 2400, 3);
    assert_eq!(sim.s.metrics().underruns, 3);
    sim.s.disconnect(sim.now);
    sim.drain();
    assert_eq!(sim.s.prebuffer_ms(), learnt, "kept across the restart");
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 48_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    assert_eq!(
        set_prebuffer(&sim.drain()),
        [learnt],
        "the new player is told"
    );
    sim.msg(&audio_delta("b", 2400));
    let b = sim.slot("b");
    sim.s.handle_playback_progress(sim.now, b, 1200, 1);
    assert_eq!(
        sim.s.metrics().underruns,
        4,
        "the new player's own count adds up"
    );
}

/// `SetPrebuffer` is a player output: not sent while audio is off (the shell reads
/// `prebuffer_ms()` when it builds the next player); the delay is learnt all the same.
#[test]
fn set_prebuffer_is_not_sent_to_a_player_that_is_gone() {
    let mut sim = voice(r#","prebufferMs":60"#);
    sim.msg(&audio_delta("a", 2400));
    sim.s
        .handle_audio_failed(sim.now, realtime_voice::session::AudioFailure::TrackEnded);
    assert!(sim.drain().iter().any(|o| matches!(o, Output::StopAudio)));
    // Text mode now: audio deltas are not played and teach nothing.
    sim.advance(500);
    let v = sim.msg(&audio_delta("a", 2400));
    assert!(set_prebuffer(&v).is_empty(), "no player to tell: {v:?}");
}

#[test]
fn underruns_per_minute_count_from_the_player_start() {
    let mut sim = voice("");
    sim.msg(&audio_delta("a", 2400));
    let a = sim.slot("a");
    sim.advance(120_000);
    sim.s.handle_playback_progress(sim.now, a, 2400, 3);
    let m = sim.s.metrics();
    assert_eq!(m.underruns, 3);
    assert!((m.underruns_per_min - 1.5).abs() < 1e-9, "{m:?}");
    assert!(m.to_json().contains(r#""underrunsPerMin":1.5,"#));
}
