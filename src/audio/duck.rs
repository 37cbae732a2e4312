//! Ducking the assistant's voice when the microphone gets loud over it (option `bargeInDuck`).
//!
//! Behind an echo canceller the user's first syllables during the assistant's speech come
//! through only in 10–30 ms blips: the canceller's suppressor holds the near end down while the
//! far end plays, so the server's VAD never hears a barge-in. Turning the far end down on the
//! first blips lets the canceller pass the voice. A false alarm (a leak of the echo) only lowers
//! the assistant for a moment, and lowers the echo with it.
//!
//! Pure and allocation-free: input is the 24 kHz microphone audio, time is its 10 ms frames.

use super::echo_guard::FRAME;

/// A frame's sum of squares above this is loud: −40 dBFS RMS, the server VAD's threshold
/// (32768 × 10^(−40/20))² × 240. The least the threshold falls to.
const LOUD_SUMSQ: f32 = 25_769_803.0;
/// The most the threshold rises to after false alarms: −20 dBFS.
const LOUD_SUMSQ_MAX: f32 = LOUD_SUMSQ * 100.0;
/// A false alarm (a duck released without the assistant being interrupted: an echo leak) raises
/// the threshold 5 dB.
const FALSE_ALARM_STEP: f32 = 3.162_277_7;
/// While the assistant plays without a duck, the threshold falls back 1 dB per 10 s (per frame:
/// 10^(−0.1/1000)).
const DECAY: f32 = 0.999_769_8;
/// Loud frames among the last [`WINDOW`] that duck: 20 ms of voice within 40 ms.
const TRIGGER: u32 = 2;
/// Frames looked at for the trigger.
const WINDOW: u32 = 4;
/// Quiet frames that release the duck (and re-arm it after a spent one): 250 ms.
const RELEASE_FRAMES: u32 = 25;
/// Longest duck, frames (3 s): a leak that keeps the microphone loud does not keep the assistant
/// down; after it, the ducker waits for [`RELEASE_FRAMES`] of quiet before it ducks again.
const MAX_FRAMES: u32 = 300;

/// Frames of the assistant playing before the first duck (1.5 s): an echo canceller needs about
/// a second of far end to converge, and leaks loudly meanwhile.
const WARMUP_FRAMES: u32 = 150;

/// How far the assistant's voice is turned down while ducked, dB: the deeper, the more of a
/// barge-in the canceller lets through (25 dB against 15 in the echo lab: 93 % of barge-ins
/// against 81 %, docs/AUDIO.md); a false alarm takes the assistant as far down, briefly.
pub const DUCK_DB: u32 = 25;

/// What a duck leaves of the played energy, 10^(−[`DUCK_DB`]/10): derived here (no libm in a
/// const), so the echo guard's ducked reference cannot part from the duck.
pub const DUCK_ENERGY: f32 = {
    let (mut e, mut db) = (1.0f32, 0);
    while db < DUCK_DB {
        e *= 0.794_328_2; // 10^(−0.1): one dB of energy
        db += 1;
    }
    e
};

/// Where the ducker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Watching for the microphone to get loud while the assistant speaks.
    Open,
    /// The assistant is turned down: `frames` since the duck, `quiet` of them at the end.
    Ducked { frames: u32, quiet: u32 },
    /// A duck lasted [`MAX_FRAMES`]: waiting for `quiet` to reach [`RELEASE_FRAMES`].
    Spent { quiet: u32 },
}

/// The microphone-over-assistant detector and its duck state.
#[derive(Debug, Clone)]
pub struct Ducker {
    state: State,
    /// The last frames' loudness, newest in bit 0.
    recent: u32,
    sumsq: u64,
    len: usize,
    ducks: u32,
    /// The frame loudness that counts, as a sum of squares: it learns the room's leaks.
    loud_sumsq: f32,
    /// Frames heard while the assistant played, up to [`WARMUP_FRAMES`].
    warm: u32,
    /// The shortest duck, frames ([`Ducker::hold_at_least`]).
    min_frames: u32,
}

impl Default for Ducker {
    fn default() -> Self {
        Self::new()
    }
}

impl Ducker {
    /// A ducker watching, not ducked.
    pub fn new() -> Ducker {
        Ducker {
            state: State::Open,
            recent: 0,
            sumsq: 0,
            len: 0,
            ducks: 0,
            loud_sumsq: LOUD_SUMSQ,
            warm: 0,
            min_frames: 0,
        }
    }

    /// A duck lasts at least `frames` (quiet or not): long enough for its effect to reach the
    /// microphone and be judged there (the echo guard on a pair: the ramp, the loop, a little
    /// more), where the quiet it watches may be the canceller's suppression of a voice.
    pub fn hold_at_least(&mut self, frames: u32) {
        self.min_frames = frames.min(MAX_FRAMES);
    }

    /// The loudness a frame needs now, dBFS.
    #[cfg(test)]
    fn threshold_dbfs(&self) -> f32 {
        // 10·log10 without libm, to the nearest dB (steps of 1 dB up from −40).
        let mut db = -40.0;
        let mut p = LOUD_SUMSQ;
        while p * 1.122_018_5 < self.loud_sumsq {
            p *= 1.258_925_4;
            db += 1.0;
        }
        db
    }

    /// Whether the assistant is turned down now.
    pub fn ducked(&self) -> bool {
        matches!(self.state, State::Ducked { .. })
    }

    /// Ducks so far.
    pub fn ducks(&self) -> u32 {
        self.ducks
    }

    /// Microphone audio (24 kHz) in; `armed` while the assistant's voice plays. Returns the
    /// change to make, if the duck state changed over this block: `Some(true)` duck,
    /// `Some(false)` back to full level.
    pub fn push(&mut self, pcm: &[i16], armed: bool) -> Option<bool> {
        let before = self.ducked();
        if !armed {
            self.state = State::Open;
        }
        for &s in pcm {
            let v = i64::from(s);
            self.sumsq += (v * v) as u64;
            self.len += 1;
            if self.len == FRAME {
                let loud = self.sumsq as f32 > self.loud_sumsq;
                self.sumsq = 0;
                self.len = 0;
                self.on_frame(loud, armed);
            }
        }
        let after = self.ducked();
        (before != after).then_some(after)
    }

    /// Back to watching (the assistant was interrupted — a duck then was no false alarm — or
    /// stopped, the microphone muted). Returns whether it was ducked, i.e. the assistant must be
    /// turned up again.
    pub fn reset(&mut self) -> bool {
        let was = self.ducked();
        self.state = State::Open;
        self.recent = 0;
        was
    }

    fn on_frame(&mut self, loud: bool, armed: bool) {
        self.recent = (self.recent << 1) | u32::from(loud);
        let quiet_step = |q: u32| if loud { 0 } else { q + 1 };
        self.state = match self.state {
            State::Open => {
                let hits = (self.recent & ((1 << WINDOW) - 1)).count_ones();
                if armed {
                    self.loud_sumsq = (self.loud_sumsq * DECAY).max(LOUD_SUMSQ);
                    self.warm = (self.warm + 1).min(WARMUP_FRAMES);
                }
                if armed && self.warm >= WARMUP_FRAMES && loud && hits >= TRIGGER {
                    self.ducks += 1;
                    State::Ducked {
                        frames: 0,
                        quiet: 0,
                    }
                } else {
                    State::Open
                }
            }
            State::Ducked { frames, quiet } => {
                let quiet = quiet_step(quiet);
                let quiet_enough = quiet >= RELEASE_FRAMES && frames + 1 >= self.min_frames;
                let released = quiet_enough || frames + 1 >= MAX_FRAMES;
                if released {
                    // Nobody interrupted the assistant: an echo leak. Ask more of the next one.
                    self.loud_sumsq = (self.loud_sumsq * FALSE_ALARM_STEP).min(LOUD_SUMSQ_MAX);
                }
                if quiet_enough {
                    State::Open
                } else if released {
                    State::Spent { quiet }
                } else {
                    State::Ducked {
                        frames: frames + 1,
                        quiet,
                    }
                }
            }
            State::Spent { quiet } => {
                let quiet = quiet_step(quiet);
                if quiet >= RELEASE_FRAMES {
                    State::Open
                } else {
                    State::Spent { quiet }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of a 220 Hz tone at `dbfs` RMS.
    fn tone(ms: usize, dbfs: f64) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbfs / 20.0) * std::f64::consts::SQRT_2;
        (0..ms * 24)
            .map(|i| {
                (amp * (i as f64 * 2.0 * std::f64::consts::PI * 220.0 / 24_000.0).sin()) as i16
            })
            .collect()
    }

    /// A ducker past its warm-up.
    fn warm() -> Ducker {
        let mut d = Ducker::new();
        assert_eq!(
            d.push(&tone(WARMUP_FRAMES as usize * 10, -60.0), true),
            None
        );
        d
    }

    #[test]
    fn no_duck_while_the_canceller_converges() {
        let mut d = Ducker::new();
        assert_eq!(d.push(&tone(1000, -60.0), false), None);
        // The first 1.5 s the assistant plays: leaks do not duck.
        for _ in 0..(WARMUP_FRAMES / 5 - 1) {
            assert_eq!(d.push(&tone(50, -30.0), true), None);
        }
        assert_eq!(d.push(&tone(50, -30.0), true), Some(true));
    }

    #[test]
    fn blips_over_the_assistant_duck_it_and_quiet_releases_it() {
        let mut d = warm();
        assert_eq!(d.push(&tone(500, -55.0), true), None);
        // A 30 ms blip of voice through the canceller: ducked within it.
        assert_eq!(d.push(&tone(30, -30.0), true), Some(true));
        let release_ms = RELEASE_FRAMES as usize * 10;
        assert_eq!(d.push(&tone(release_ms - 10, -55.0), true), None);
        assert_eq!(d.push(&tone(10, -55.0), true), Some(false));
        assert_eq!(d.ducks(), 1);
    }

    #[test]
    fn a_duck_held_at_least_so_long_outlasts_the_quiet_that_would_release_it() {
        let mut d = warm();
        d.hold_at_least(57);
        assert_eq!(d.push(&tone(30, -30.0), true), Some(true));
        // Ducked 20 ms in, then quiet: released 570 ms after the duck, not 250 ms.
        assert_eq!(d.push(&tone(550, -55.0), true), None);
        assert_eq!(d.push(&tone(10, -55.0), true), Some(false));
    }

    #[test]
    fn false_alarms_raise_the_threshold_and_it_falls_back_with_time() {
        let mut d = warm();
        assert_eq!(d.threshold_dbfs(), -40.0);
        // A leak at −35 dBFS ducks, nobody interrupts: the next leak that loud does not duck.
        assert_eq!(d.push(&tone(30, -35.0), true), Some(true));
        assert_eq!(d.push(&tone(300, -60.0), true), Some(false));
        assert_eq!(d.threshold_dbfs(), -35.0);
        assert_eq!(d.push(&tone(30, -36.0), true), None);
        // A voice louder than the leaks still does.
        assert_eq!(d.push(&tone(30, -25.0), true), Some(true));
        d.reset(); // the assistant was interrupted: no false alarm
        assert_eq!(d.threshold_dbfs(), -35.0);
        // Bounded: a room full of leaks cannot push it past −20 dBFS.
        for _ in 0..10 {
            d.push(&tone(30, -5.0), true);
            d.push(&tone(300, -60.0), true);
        }
        assert_eq!(d.threshold_dbfs(), -20.0);
        assert_eq!(d.push(&tone(30, -15.0), true), Some(true));
        d.reset();
        // 1 dB per 10 s of the assistant playing without a duck, back to −40.
        d.push(&tone(50_000, -60.0), true);
        assert_eq!(d.threshold_dbfs(), -25.0);
        d.push(&tone(150_000, -60.0), true);
        assert_eq!(d.threshold_dbfs(), -40.0);
        // Time without the assistant playing does not count.
        let mut e = warm();
        e.push(&tone(30, -35.0), true);
        e.push(&tone(300, -60.0), true);
        e.push(&tone(100_000, -60.0), false);
        assert_eq!(e.threshold_dbfs(), -35.0);
    }

    #[test]
    fn one_loud_frame_or_a_quiet_room_does_not_duck() {
        let mut d = warm();
        for _ in 0..20 {
            assert_eq!(d.push(&tone(10, -30.0), true), None);
            assert_eq!(d.push(&tone(40, -50.0), true), None);
        }
        assert_eq!(d.ducks(), 0);
    }

    #[test]
    fn nothing_ducks_while_the_assistant_is_silent_and_its_end_releases() {
        let mut d = warm();
        assert_eq!(d.push(&tone(1000, -20.0), false), None);
        assert_eq!(d.push(&tone(50, -20.0), true), Some(true));
        // The assistant stops (interrupted or done): back to full level at once.
        assert_eq!(d.push(&tone(10, -20.0), false), Some(false));
        assert!(!d.ducked());
        assert_eq!(d.push(&tone(50, -20.0), true), Some(true));
        assert!(d.reset());
        assert!(!d.reset());
    }

    #[test]
    fn a_duck_is_bounded_and_needs_quiet_to_come_back() {
        let mut d = warm();
        assert_eq!(d.push(&tone(50, -20.0), true), Some(true));
        // A leak that never stops: released after 3 s, not ducked again while it lasts.
        let mut released_at = None;
        for i in 0..1000 {
            if d.push(&tone(10, -20.0), true) == Some(false) {
                released_at.get_or_insert(i);
            }
        }
        assert!(
            released_at.is_some_and(|i| (290..=300).contains(&i)),
            "{released_at:?}"
        );
        assert_eq!(d.ducks(), 1);
        assert_eq!(
            d.push(&tone(RELEASE_FRAMES as usize * 10, -60.0), true),
            None
        );
        assert_eq!(d.push(&tone(30, -10.0), true), Some(true));
        assert_eq!(d.ducks(), 2);
    }

    #[test]
    fn frames_span_blocks_of_any_size() {
        let mut d = warm();
        let quiet = tone(500, -60.0);
        for c in quiet.chunks(7) {
            assert_eq!(d.push(c, true), None);
        }
        let loud = tone(30, -25.0);
        let changes: Vec<_> = loud.chunks(13).filter_map(|c| d.push(c, true)).collect();
        assert_eq!(changes, vec![true]);
    }
}
