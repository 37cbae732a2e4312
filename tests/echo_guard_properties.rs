//! The echo guard as a property: random sequences of what the session feeds it (the decoded
//! reference, played progress with and without the capture clock, captured blocks of any size,
//! alone or as a pair with a shorter raw side, ducks, capture switches, the server's speech
//! starts), with an echo of what played (at a fixed loop) and a voice in the microphone. After
//! every input:
//! - it never sends more than it was given, and never holds back more than its line and the
//!   frame being captured (`(LINE_FRAMES + 1) × FRAME`): the delay is bounded;
//! - each 10 ms frame leaves as it was sent, as the raw side of a pair, or as silence, in
//!   order: audio is never reordered, altered or lost, only silenced;
//! - in shadow mode (not gating) everything leaves unchanged and undelayed.
//!
//! Then liveness: with the ducks over and nothing played any more, the guard lets all it held
//! go and passes audio unchanged and undelayed again, whatever state the sequence left it in.
#![cfg(not(target_arch = "wasm32"))] // proptest is a native-only dev-dependency

mod echo_support;

use echo_support::wav;
use proptest::prelude::*;
use realtime_voice::audio::echo_guard::{Capture, EchoGuard, GateState, FRAME, LINE_FRAMES};

/// The echo's loop in the model room, samples (120 ms).
const LOOP: usize = 2_880;
/// Cases per run; `PROPTEST_CASES` overrides.
const CASES: u32 = 96;
/// Longest input sequence of one case.
const LEN: usize = 48;
/// Quiet with nothing played that the guard needs at most to let go: its reference's peak
/// falls 0.1 dB a frame from full scale to the −60 dB floor (6 s), then the line leaves.
const DRAIN_MS: usize = 8_000;

/// One input, as the session would deliver it.
#[derive(Debug, Clone)]
enum In {
    /// `push_reference`: `ms` of the interviewer's voice from `from_ms` on (round the 3 s
    /// fixture) as item `item` (five ids, one more than the guard keeps).
    Push {
        item: u8,
        from_ms: u16,
        ms: u16,
    },
    /// `played` / `played_at`: `ms` more of `item` played (beyond what was pushed, too).
    Play {
        item: u8,
        ms: u16,
    },
    /// `capture_clock` before the next capture: the context at 48, 44.1 or 0 (no clock) kHz,
    /// read `skew_ms` off.
    Clock {
        rate: u8,
        skew_ms: i16,
    },
    /// `ms` captured in blocks of `block` samples: the echo at a gain (none, −20, −6, 0 dB),
    /// a voice (none, quiet, loud), as a pair (the processed side the echo 20 dB down, the raw
    /// side `short` samples shorter per block) or alone.
    Capture {
        ms: u16,
        block: u16,
        echo: u8,
        voice: u8,
        pair: bool,
        short: u8,
    },
    /// An answer: `ms` of the interviewer's voice from `from_ms` pushed as `item`, then played
    /// and captured in step, 20 ms at a time (as a session does), blocks of 10 ms.
    Answer {
        item: u8,
        from_ms: u16,
        ms: u16,
        echo: u8,
        voice: u8,
        pair: bool,
    },
    Duck(bool),
    SetCapture(u8),
    Speech(bool),
}

fn input() -> impl Strategy<Value = In> {
    prop_oneof![
        2 => (0..5u8, 0..8_000u16, 10..3_000u16)
            .prop_map(|(item, from_ms, ms)| In::Push { item, from_ms, ms }),
        4 => (0..5u8, 0..600u16).prop_map(|(item, ms)| In::Play { item, ms }),
        1 => (0..3u8, -200..200i16).prop_map(|(rate, skew_ms)| In::Clock { rate, skew_ms }),
        6 => (1..600u16, 1..700u16, 0..4u8, 0..3u8, any::<bool>(), 0..3u8).prop_map(
            |(ms, block, echo, voice, pair, short)| In::Capture { ms, block, echo, voice, pair, short }
        ),
        3 => (0..5u8, 0..6_000u16, 200..4_000u16, 0..4u8, 0..3u8, any::<bool>()).prop_map(
            |(item, from_ms, ms, echo, voice, pair)| In::Answer { item, from_ms, ms, echo, voice, pair }
        ),
        1 => any::<bool>().prop_map(In::Duck),
        1 => (0..3u8).prop_map(In::SetCapture),
        1 => any::<bool>().prop_map(In::Speech),
    ]
}

/// The guard, what it was given and what it sent, and the model room around it.
struct Bench {
    g: EchoGuard,
    gating: bool,
    /// The interviewer's voice (assistant.wav, 3 s): what is pushed and played, and, read
    /// 1.3 s further on, the user's voice in the microphone.
    voice: Vec<f32>,
    /// What each item was pushed with, and how much of it has played.
    items: [(Vec<f32>, usize); 5],
    /// What the speaker played, on the microphone's timeline (sample index = capture index).
    speaker: Vec<f32>,
    /// The clock's rate, and how far off it reads, context frames.
    clock: Option<(u32, i64)>,
    sent: Vec<i16>,
    heard: Vec<i16>,
    out: Vec<i16>,
    /// Output frames already checked.
    checked: usize,
    noise: u32,
}

impl Bench {
    fn new(gating: bool, capture: Capture) -> Bench {
        let voice: Vec<f32> = wav("assistant.wav")
            .iter()
            .map(|&s| f32::from(s) / 32768.0)
            .collect();
        Bench {
            g: EchoGuard::for_capture(gating, capture),
            gating,
            voice,
            items: Default::default(),
            speaker: Vec::new(),
            clock: None,
            sent: Vec::new(),
            heard: Vec::new(),
            out: Vec::new(),
            checked: 0,
            noise: 0x9e37_79b9,
        }
    }

    fn id(item: u8) -> u32 {
        u32::from(item % 5)
    }

    /// Context frame of the next captured sample, as the clock reads it.
    fn context_frame(&self, rate: u32, skew: i64) -> u64 {
        (self.sent.len() as i64 * i64::from(rate) / 24_000 + skew).max(0) as u64
    }

    fn apply(&mut self, input: &In) {
        match *input {
            In::Push { item, from_ms, ms } => {
                let from = usize::from(from_ms) * 24;
                let samples: Vec<f32> = (from..from + usize::from(ms) * 24)
                    .map(|t| self.voice[t % self.voice.len()])
                    .collect();
                self.g.push_reference(Self::id(item), &samples);
                self.items[usize::from(item)].0.extend_from_slice(&samples);
            }
            In::Play { item, ms } => {
                let (pushed, played) = &mut self.items[usize::from(item)];
                let n = usize::from(ms) * 24;
                // What plays now reaches the speaker now: on the mic timeline from here on.
                let at = self.sent.len();
                if self.speaker.len() < at {
                    self.speaker.resize(at, 0.0);
                }
                for k in 0..n {
                    let x = pushed.get(*played + k).copied().unwrap_or(0.0);
                    match self.speaker.get_mut(at + k) {
                        Some(s) => *s += x,
                        None => self.speaker.push(x),
                    }
                }
                *played += n;
                let total = *played as u64;
                match self.clock {
                    Some((rate, skew)) => {
                        let frame = self.context_frame(rate, skew);
                        self.g.played_at(Self::id(item), total, Some(frame));
                    }
                    None => self.g.played(Self::id(item), total),
                }
            }
            In::Clock { rate, skew_ms } => {
                let rate = [48_000, 44_100, 0][usize::from(rate) % 3];
                self.clock =
                    (rate > 0).then_some((rate, i64::from(skew_ms) * i64::from(rate) / 1000));
            }
            In::Capture {
                ms,
                block,
                echo,
                voice,
                pair,
                short,
            } => {
                let gain = [0.0, 0.1, 0.5, 1.0][usize::from(echo) % 4];
                let level = [0.0, 0.05, 0.5][usize::from(voice) % 3];
                let n = usize::from(ms) * 24;
                let start = self.sent.len();
                let (mut raw, mut processed) = (Vec::with_capacity(n), Vec::with_capacity(n));
                for k in 0..n {
                    let t = start + k;
                    let e = t
                        .checked_sub(LOOP)
                        .and_then(|p| self.speaker.get(p))
                        .copied()
                        .unwrap_or(0.0)
                        * gain;
                    // The user: the fixture 1.3 s on, out of step with what plays.
                    let v = self.voice[(t + 31_200) % self.voice.len()] * level;
                    self.noise ^= self.noise << 13;
                    self.noise ^= self.noise >> 17;
                    self.noise ^= self.noise << 5;
                    let hiss = (self.noise as f32 / u32::MAX as f32 - 0.5) * 1e-3;
                    let q = |x: f32| (x * 32767.0).clamp(-32768.0, 32767.0) as i16;
                    raw.push(q(e + v + hiss));
                    processed.push(q(if pair {
                        e * 0.1 + v + hiss
                    } else {
                        e + v + hiss
                    }));
                }
                let block = usize::from(block).max(1);
                for (i, chunk) in processed.chunks(block).enumerate() {
                    let from = i * block;
                    if pair {
                        let cut = usize::from(short).min(chunk.len());
                        let heard = &raw[from..from + chunk.len() - cut];
                        self.g.process_pair(heard, chunk, &mut self.out);
                        // The guard takes a shorter raw side as silence where it ends.
                        self.heard.extend_from_slice(heard);
                        self.heard.extend(std::iter::repeat_n(0, cut));
                    } else {
                        self.g.process(chunk, &mut self.out);
                        self.heard.extend_from_slice(chunk);
                    }
                    self.sent.extend_from_slice(chunk);
                }
            }
            In::Answer {
                item,
                from_ms,
                ms,
                echo,
                voice,
                pair,
            } => {
                self.apply(&In::Push { item, from_ms, ms });
                for _ in 0..ms / 20 {
                    self.apply(&In::Play { item, ms: 20 });
                    self.apply(&In::Capture {
                        ms: 20,
                        block: FRAME as u16,
                        echo,
                        voice,
                        pair,
                        short: 0,
                    });
                }
            }
            In::Duck(d) => self.g.set_ducked(d),
            In::SetCapture(c) => {
                let c = [Capture::Processed, Capture::Raw, Capture::Pair][usize::from(c) % 3];
                self.g.set_capture(c, &mut self.out);
            }
            In::Speech(s) => {
                self.g.speech_started(s);
            }
        }
        self.check();
    }

    /// The properties that hold after every input.
    fn check(&mut self) {
        let (given, sent) = (self.sent.len(), self.out.len());
        assert!(sent <= given, "sent {sent} samples of {given} given");
        assert!(
            given - sent <= (LINE_FRAMES + 1) * FRAME,
            "{} ms held back",
            (given - sent) / 24
        );
        if !self.gating {
            // Unchanged and undelayed: all of it has left, as given (checked from where the
            // last check ended).
            assert_eq!(sent, given, "shadow mode delayed audio");
            let new = self.checked * FRAME..sent;
            assert_eq!(
                &self.out[new.clone()],
                &self.sent[new],
                "shadow mode changed audio"
            );
            self.checked = sent / FRAME;
            return;
        }
        // Each whole frame out is the frame sent, the raw side's, or silence.
        while (self.checked + 1) * FRAME <= sent {
            let at = self.checked * FRAME..(self.checked + 1) * FRAME;
            let o = &self.out[at.clone()];
            assert!(
                o == &self.sent[at.clone()]
                    || o == &self.heard[at.clone()]
                    || o.iter().all(|&s| s == 0),
                "frame {} left altered",
                self.checked
            );
            self.checked += 1;
        }
        // What has left of the frame begun leaves as it came (only whole frames are held).
        let begun = self.checked * FRAME..sent;
        assert_eq!(
            &self.out[begun.clone()],
            &self.sent[begun],
            "a frame begun left altered"
        );
    }

    /// The ducks over and nothing played: quiet until the guard lets go, then a voice passes
    /// unchanged and undelayed.
    fn drain(&mut self) {
        self.g.set_ducked(false);
        let quiet = In::Capture {
            ms: 10,
            block: FRAME as u16,
            echo: 0,
            voice: 0,
            pair: true,
            short: 0,
        };
        for _ in 0..DRAIN_MS / 10 {
            self.apply(&quiet);
        }
        assert_eq!(
            self.out.len(),
            self.sent.len(),
            "audio still held after {DRAIN_MS} ms"
        );
        let s = self.g.stats();
        assert_eq!(s.held_ms, 0);
        assert_eq!(s.state, GateState::Idle);
        let before = self.out.len();
        self.apply(&In::Capture {
            ms: 100,
            block: 128,
            echo: 0,
            voice: 2,
            pair: true,
            short: 0,
        });
        assert_eq!(
            &self.out[before..],
            &self.sent[before..],
            "after draining, a voice left delayed or altered"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        rng_algorithm: prop::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    /// Bounded delay and untouched audio after every input; then the guard lets go.
    #[test]
    fn every_input_sequence_keeps_the_guards_audio_whole_and_its_delay_bounded(
        gating in prop::bool::weighted(0.85),
        capture in 0..3u8,
        inputs in prop::collection::vec(input(), 0..LEN),
    ) {
        let capture = [Capture::Processed, Capture::Raw, Capture::Pair][usize::from(capture)];
        let mut b = Bench::new(gating, capture);
        for i in &inputs {
            b.apply(i);
        }
        b.drain();
    }
}
