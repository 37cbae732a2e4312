//! The echo guard: keeps microphone audio that the assistant's own echo explains away from the
//! server's voice activity detection, while a person talking over the assistant gets through.
//!
//! The client knows what it plays and when; a browser echo canceller does not know which of its
//! residue is worth a turn. Everything here works on 10 ms energy frames at 24 kHz:
//!
//! ```text
//! reference: decoded assistant audio ─► energy frames per item ─► placed on the mic timeline
//!            when the player reports them played (`played`)
//! mic 24 kHz ─► energy frame ─► predicted echo = min(coupling₁ × decaying peak,
//!   coupling₂ × decaying sum) of the reference over every lag 0–400 ms; the couplings are
//!   peak holds over frames the gate kept back (a browser canceller leaks as loud as the raw
//!   echo now and then: the guard expects the leaks, not the typical residue)
//!   ─► gate: Idle (no echo possible: audio passes unchanged, undelayed)
//!            Guard (echo possible: audio goes through a 300 ms pre-roll line; frames leave it
//!                   as silence unless the gate opens)
//!            Pass  (5 frames above the prediction + 4 dB, one below taking one back: the
//!                   pre-roll line and all that follows pass unchanged until 300 ms are
//!                   explained by echo again)
//! ```
//!
//! The delay (log-envelope covariance over the lags) is estimated for the metrics only: the
//! player's progress reports jitter by tens of ms, so the prediction takes every lag.
//!
//! Guarded audio is replaced by digital silence, not left out: the server's input timeline
//! (`audio_start_ms`, `audio_end_ms`) stays the microphone's, and its VAD keeps seeing the
//! silence that ends a user turn. With gating off the guard still estimates and counts (shadow
//! mode) but sends the audio unchanged and undelayed.
//!
//! Memory is fixed after construction (the per-item reference queues are bounded); `process`
//! does not allocate once its output vector has grown to the largest block.

/// Samples per analysis frame: 10 ms at 24 kHz.
pub const FRAME: usize = 240;
/// Longest echo delay considered, frames (400 ms: a speakerphone's room plus the browser's
/// output and input latency).
const MAX_LAG: usize = 40;
/// Reference frames kept on the mic timeline (a power of two above the pre-roll plus lags).
const RING: usize = 128;
/// Pre-roll held while guarding, frames (300 ms): the onset of a word that opens the gate.
pub const PREROLL_FRAMES: usize = 30;
/// Frames above the predicted echo that open the gate (50 ms, one frame below takes one back):
/// a browser
/// canceller's leaks rarely stay above the prediction that long, a voice does.
const OPEN_FRAMES: u32 = 5;
/// Explained frames in a row that close it again (300 ms).
const CLOSE_FRAMES: u32 = 30;
/// How far above the predicted echo a frame must be to count as someone talking, dB.
const MARGIN_DB: f32 = 4.0;
/// Frames below this level (dBFS) are never taken for a voice.
const VOICE_FLOOR_DB: f32 = -50.0;
/// Echo is possible while the decaying reference peak is above this (dBFS).
const ACTIVE_FLOOR_DB: f32 = -60.0;
/// Coupling (echo level over the reference's decaying peak, dB): where it starts — the echo
/// may be as loud as what is played, plus a browser's gain control — its bounds, and how fast
/// it is forgotten. It is a peak hold over frames the gate kept back, not an average: a browser
/// canceller's output is bimodal (deep cancellation, then leaks as loud as the raw echo), and
/// the guard must expect the leaks.
const COUPLING_START_DB: f32 = 3.0;
const COUPLING_MIN_DB: f32 = -30.0;
const COUPLING_MAX_DB: f32 = 12.0;
const COUPLING_RELEASE_DB: f32 = 0.02;
/// Correlation forgetting factor per learnt frame (time constant 2 s).
const CORR_ALPHA: f32 = 0.005;
/// The delay estimate is reported from this correlation and this many learnt frames on.
const CORR_TRUSTED: f32 = 0.3;
const MIN_LEARNT_FRAMES: u32 = 100;
/// Assistant items whose reference is kept, and reference frames per item (60 s).
const ITEMS: usize = 4;
const ITEM_FRAMES: usize = 6000;
/// Floor of the log envelopes, dB.
const LOG_FLOOR: f32 = -90.0;
/// Recent decisions remembered for `speech_started` (200 ms).
const RECENT_FRAMES: u32 = 20;

/// The gate's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateState {
    /// No echo possible: audio passes unchanged, without delay.
    Idle,
    /// Echo possible: audio is delayed by the pre-roll and leaves as silence.
    Guard,
    /// Someone talks over the echo: audio passes unchanged.
    Pass,
}

/// What the guard has measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoStats {
    /// Estimated echo return loss: how much quieter the echo reaches the capture than the
    /// reference was played, dB (None until 1 s of playback was analysed).
    pub return_loss_db: Option<f32>,
    /// Estimated echo delay, ms (None until trusted).
    pub delay_ms: Option<u32>,
    /// Microphone audio replaced by silence, ms.
    pub guarded_ms: u64,
    /// Microphone audio waiting in the pre-roll line now, ms.
    pub held_ms: u64,
    /// `speech_started` while the assistant spoke and the recent audio was explained by echo.
    pub suspected_self_interruptions: u64,
    /// The gate's state now.
    pub state: GateState,
}

/// Reference energy frames of one assistant item; those before `next` were played.
#[derive(Debug)]
struct RefItem {
    id: String,
    frames: Vec<f32>,
    next: usize,
    /// Energy sum and count of the samples after the last whole frame.
    partial: (f32, usize),
    /// Frames of this item already placed on the mic timeline.
    placed: u64,
}

/// What the gate knew of a frame in the pre-roll line.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    frame: u64,
    level_db: f32,
    /// The reference envelopes (dB) the frame was judged on: peak and sum.
    env_db: [f32; 2],
    explained: bool,
}

/// The echo guard (see the module docs).
#[derive(Debug)]
pub struct EchoGuard {
    gating: bool,
    items: Vec<RefItem>,
    /// Reference energy on the mic timeline: (frame index, energy) by index % RING.
    ring: [(u64, f32); RING],
    /// Mic frames completed so far (the mic timeline).
    mic_frames: u64,
    acc: [i16; FRAME],
    acc_len: usize,
    /// Two envelopes of the reference over every lag, each with its coupling: the decaying
    /// peak (a dry room: the echo follows the last loud frame) and the decaying sum (a
    /// reverberant one: the echo is the sum of the tails). Each is an upper bound of the echo
    /// over the frames learnt from, so their minimum is too, and tighter than either.
    peak: f32,
    sum: f32,
    coupling: [f32; 2],
    /// Correlation statistics of the log envelopes, per lag.
    mean_m: f32,
    var_m: f32,
    mean_r: f32,
    var_r: f32,
    cov: [f32; MAX_LAG + 1],
    learnt_frames: u32,
    delay: Option<usize>,
    state: GateState,
    run: u32,
    /// The pre-roll line: frames in a ring (oldest at `line_head`), and whether each was
    /// explained by echo.
    line: Box<[[i16; FRAME]; PREROLL_FRAMES]>,
    held: [Held; PREROLL_FRAMES],
    line_head: usize,
    line_len: usize,
    /// Recent active frames and how many of them were explained (a shift register).
    recent: u32,
    recent_explained: u32,
    guarded_samples: u64,
    suspected: u64,
}

/// 10·log10 of an energy, floored; a bit-level log2 with a cubic for the mantissa (error
/// below 0.05 dB), so no libm code lands in the wasm package.
fn db(energy: f32) -> f32 {
    if energy <= 1e-9 || !energy.is_finite() {
        return LOG_FLOOR;
    }
    let bits = energy.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // mantissa in [1, 2)
    let log2_m = (((0.160_964_2 * m - 1.051_966_8) * m + 3.048_224) * m) - 2.157_079;
    // 10·log10(2) = 3.0103
    (3.010_3 * (exp as f32 + log2_m)).max(LOG_FLOOR)
}

/// The reference's decaying peak falls by 0.1 dB per frame (10 dB/s, T60 6 s): a reverberant
/// room's tail outlasts a browser canceller's filter and comes through whole. 10^(−0.01).
const DECAY: f32 = 0.977_237_2;

impl EchoGuard {
    /// Whether the guard gates (`echoGuard: "auto"`) or only measures.
    pub fn gating(&self) -> bool {
        self.gating
    }

    /// A guard; with `gating` false it only measures (shadow mode).
    pub fn new(gating: bool) -> EchoGuard {
        EchoGuard {
            gating,
            items: Vec::with_capacity(ITEMS),
            ring: [(u64::MAX, 0.0); RING],
            mic_frames: 0,
            acc: [0; FRAME],
            acc_len: 0,
            peak: 0.0,
            sum: 0.0,
            // A steady reference's decaying sum is 1/(1 − DECAY) ≈ 16.4 dB above its peak.
            coupling: [COUPLING_START_DB, COUPLING_START_DB - 16.4],
            mean_m: 0.0,
            var_m: 0.0,
            mean_r: 0.0,
            var_r: 0.0,
            cov: [0.0; MAX_LAG + 1],
            learnt_frames: 0,
            delay: None,
            state: GateState::Idle,
            run: 0,
            line: Box::new([[0; FRAME]; PREROLL_FRAMES]),
            held: [Held::default(); PREROLL_FRAMES],
            line_head: 0,
            line_len: 0,
            recent: 0,
            recent_explained: 0,
            guarded_samples: 0,
            suspected: 0,
        }
    }

    /// Assistant audio of `item_id` as decoded (24 kHz, in the item's order), before it plays.
    pub fn push_reference(&mut self, item_id: &str, samples: &[f32]) {
        let idx = match self.items.iter().position(|i| i.id == item_id) {
            Some(i) => i,
            None => {
                if self.items.len() == ITEMS {
                    self.items.remove(0);
                }
                self.items.push(RefItem {
                    id: item_id.to_string(),
                    frames: Vec::new(),
                    next: 0,
                    partial: (0.0, 0),
                    placed: 0,
                });
                self.items.len() - 1
            }
        };
        let it = &mut self.items[idx];
        let (mut sum, mut n) = it.partial;
        for &x in samples {
            sum += x * x;
            n += 1;
            if n == FRAME {
                if it.frames.len() == ITEM_FRAMES && it.next > 0 {
                    // Played frames make room (a long item keeps its unplayed ones).
                    it.frames.drain(..it.next.min(ITEM_FRAMES));
                    it.next = 0;
                }
                if it.frames.len() < ITEM_FRAMES {
                    it.frames.push(sum / FRAME as f32);
                }
                sum = 0.0;
                n = 0;
            }
        }
        it.partial = (sum, n);
    }

    /// The player has played `played_total` samples (24 kHz) of `item_id`: the frames played
    /// since the last report are placed on the mic timeline, ending at the frame being captured.
    pub fn played(&mut self, item_id: &str, played_total: u64) {
        let Some(it) = self.items.iter_mut().find(|i| i.id == item_id) else {
            return;
        };
        let total = played_total / FRAME as u64;
        if total <= it.placed {
            return;
        }
        let k = total - it.placed;
        it.placed = total;
        let now = self.mic_frames;
        for j in (0..k).rev() {
            let e = it.frames.get(it.next).copied().unwrap_or(0.0);
            it.next += 1;
            if j >= RING as u64 || j > now {
                continue;
            }
            let pos = now - j;
            let slot = &mut self.ring[(pos % RING as u64) as usize];
            *slot = if slot.0 == pos {
                (pos, slot.1.max(e))
            } else {
                (pos, e)
            };
        }
    }

    fn reference_at(&self, pos: u64) -> f32 {
        let slot = self.ring[(pos % RING as u64) as usize];
        if slot.0 == pos {
            slot.1
        } else {
            0.0
        }
    }

    /// Captured audio (24 kHz mono PCM16, after the capture resampler): appends to `out` what
    /// goes to the server, delayed by the pre-roll and silenced while guarding.
    pub fn process(&mut self, mic: &[i16], out: &mut Vec<i16>) {
        let mut rest = mic;
        while !rest.is_empty() {
            let take = (FRAME - self.acc_len).min(rest.len());
            self.acc[self.acc_len..self.acc_len + take].copy_from_slice(&rest[..take]);
            self.acc_len += take;
            rest = &rest[take..];
            if self.acc_len == FRAME {
                self.acc_len = 0;
                self.frame(out);
            }
        }
    }

    /// One whole mic frame (in `acc`) through the estimate and the gate.
    fn frame(&mut self, out: &mut Vec<i16>) {
        let frame = self.acc;
        let e_m = frame
            .iter()
            .map(|&s| {
                let x = f32::from(s) / 32768.0;
                x * x
            })
            .sum::<f32>()
            / FRAME as f32;
        let f = self.mic_frames;
        self.mic_frames += 1;
        let level_db = db(e_m);
        let (active, explained, env_db) = self.analyse(f, level_db);
        let held = Held {
            frame: f,
            level_db,
            env_db,
            explained,
        };
        if active {
            self.recent = (self.recent << 1) | 1;
            self.recent_explained = (self.recent_explained << 1) | u32::from(explained);
        } else {
            self.recent <<= 1;
            self.recent_explained <<= 1;
        }
        let mask = (1u32 << RECENT_FRAMES) - 1;
        self.recent &= mask;
        self.recent_explained &= mask;
        // Guarding, `run` counts frames above the prediction (a frame below takes one back:
        // a voice's syllables dip); passing, it counts explained frames in a row.
        self.run = match (self.state == GateState::Pass, explained) {
            (true, true) => self.run + 1,
            (true, false) => 0,
            (false, true) => self.run.saturating_sub(1),
            (false, false) => self.run + 1,
        };
        let next = match self.state {
            GateState::Idle if active => GateState::Guard,
            GateState::Idle => GateState::Idle,
            GateState::Guard if !active => GateState::Idle,
            GateState::Guard if self.run >= OPEN_FRAMES => GateState::Pass,
            GateState::Guard => GateState::Guard,
            GateState::Pass if !active => GateState::Idle,
            GateState::Pass if self.run >= CLOSE_FRAMES => GateState::Guard,
            GateState::Pass => GateState::Pass,
        };
        if next != self.state {
            self.run = 0;
        }
        // The pre-roll line is kept in shadow mode too (the coupling learns from what leaves
        // it guarded); only the output differs.
        let gating = self.gating;
        match next {
            GateState::Guard => {
                if self.line_len == PREROLL_FRAMES {
                    // The oldest frame leaves as silence, teaching the coupling what echo is.
                    let old = self.held[self.line_head];
                    self.learn(old);
                    if gating {
                        out.resize(out.len() + FRAME, 0);
                        self.guarded_samples += FRAME as u64;
                    }
                    self.line[self.line_head] = frame;
                    self.held[self.line_head] = held;
                    self.line_head = (self.line_head + 1) % PREROLL_FRAMES;
                } else {
                    let slot = (self.line_head + self.line_len) % PREROLL_FRAMES;
                    self.line[slot] = frame;
                    self.held[slot] = held;
                    self.line_len += 1;
                }
            }
            // The pre-roll holds the start of the voice that opened the gate: all of it goes.
            GateState::Pass => self.release(gating.then_some(&mut *out), false),
            // Echo is over: what is still held leaves, echo-explained frames as silence.
            GateState::Idle => self.release(gating.then_some(&mut *out), true),
        }
        if !gating || next != GateState::Guard {
            out.extend_from_slice(&frame);
        }
        self.state = next;
    }

    /// Empties the pre-roll line into `out` (None in shadow mode); with `silence_explained`,
    /// frames the echo explained leave as silence.
    fn release(&mut self, mut out: Option<&mut Vec<i16>>, silence_explained: bool) {
        for k in 0..self.line_len {
            let slot = (self.line_head + k) % PREROLL_FRAMES;
            let Some(out) = out.as_deref_mut() else {
                continue;
            };
            if silence_explained && self.held[slot].explained {
                out.resize(out.len() + FRAME, 0);
                self.guarded_samples += FRAME as u64;
            } else {
                out.extend_from_slice(&self.line[slot]);
            }
        }
        self.line_head = 0;
        self.line_len = 0;
    }

    /// Mic frame `f` at `level_db` against the predicted echo: whether echo is possible now,
    /// whether the frame is explained by it, and the reference peak (dB) it was judged on.
    fn analyse(&mut self, f: u64, level_db: f32) -> (bool, bool, [f32; 2]) {
        let mut newest = 0.0f32;
        for d in 0..=MAX_LAG.min(f as usize) {
            newest = newest.max(self.reference_at(f - d as u64));
        }
        self.peak = newest.max(self.peak * DECAY);
        self.sum = newest + self.sum * DECAY;
        let env_db = [db(self.peak), db(self.sum)];
        if env_db[0] <= ACTIVE_FLOOR_DB {
            return (false, true, env_db);
        }
        let predicted = (env_db[0] + self.coupling[0]).min(env_db[1] + self.coupling[1]);
        let explained = level_db <= VOICE_FLOOR_DB || level_db <= predicted + MARGIN_DB;
        (true, explained, env_db)
    }

    /// Learns from a frame that left the pre-roll line as echo: the coupling tracker, and the
    /// log-envelope correlation per lag (the delay estimate).
    fn learn(&mut self, h: Held) {
        if h.env_db[0] <= ACTIVE_FLOOR_DB {
            return;
        }
        self.learnt_frames = self.learnt_frames.saturating_add(1);
        for (c, e) in self.coupling.iter_mut().zip(h.env_db) {
            *c = (h.level_db - e)
                .max(*c - COUPLING_RELEASE_DB)
                .clamp(COUPLING_MIN_DB, COUPLING_MAX_DB);
        }
        let a = CORR_ALPHA;
        self.mean_m += a * (h.level_db - self.mean_m);
        let dm = h.level_db - self.mean_m;
        self.var_m += a * (dm * dm - self.var_m);
        // Every lag sees the same reference shifted: one mean and variance serve them all,
        // and the covariances rank the lags.
        let l_r0 = db(self.reference_at(h.frame));
        self.mean_r += a * (l_r0 - self.mean_r);
        let dr0 = l_r0 - self.mean_r;
        self.var_r += a * (dr0 * dr0 - self.var_r);
        let mut best = (0usize, f32::MIN);
        for d in 0..=MAX_LAG {
            let l_r = match h.frame.checked_sub(d as u64) {
                Some(p) => db(self.reference_at(p)),
                None => LOG_FLOOR,
            };
            self.cov[d] += a * (dm * (l_r - self.mean_r) - self.cov[d]);
            if self.cov[d] > best.1 {
                best = (d, self.cov[d]);
            }
        }
        let trusted = best.1 >= CORR_TRUSTED * (self.var_m * self.var_r).sqrt();
        if self.learnt_frames >= MIN_LEARNT_FRAMES && trusted {
            self.delay = Some(best.0);
        }
    }

    /// The server's VAD started speech; returns whether it looks like a self-interruption:
    /// the assistant was speaking and most of the last 200 ms of active audio was echo.
    pub fn speech_started(&mut self, assistant_speaking: bool) -> bool {
        let active = self.recent.count_ones();
        let suspected = assistant_speaking
            && active >= RECENT_FRAMES / 2
            && self.recent_explained.count_ones() * 5 >= active * 4;
        if suspected {
            self.suspected += 1;
        }
        suspected
    }

    /// What the guard has measured so far.
    pub fn stats(&self) -> EchoStats {
        EchoStats {
            return_loss_db: (self.learnt_frames >= MIN_LEARNT_FRAMES).then_some(-self.coupling[0]),
            delay_ms: self.delay.map(|d| d as u32 * 10),
            guarded_ms: self.guarded_samples / 24,
            held_ms: (if self.gating {
                self.line_len * FRAME
            } else {
                0
            } + self.acc_len) as u64
                / 24,
            suspected_self_interruptions: self.suspected,
            state: self.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (i as f32 * 0.07).sin() * if (i / 2400) % 2 == 0 { 1.0 } else { 0.1 })
            .collect()
    }

    #[test]
    fn db_approximation_is_within_a_tenth_of_a_db() {
        for i in 0..2000 {
            let e = 10f32.powf(-9.0 + i as f32 * 0.0045);
            let exact = 10.0 * e.log10();
            assert!(
                (db(e) - exact.max(LOG_FLOOR)).abs() < 0.1,
                "{e}: {} vs {exact}",
                db(e)
            );
        }
        assert!((10.0 * DECAY.log10() + 0.1).abs() < 1e-4);
        assert_eq!(db(0.0), LOG_FLOOR);
    }

    #[test]
    fn idle_passes_audio_unchanged_without_delay() {
        let mut g = EchoGuard::new(true);
        let mic: Vec<i16> = (0..1000).map(|i| (i * 7 % 300) as i16).collect();
        let mut out = Vec::new();
        g.process(&mic, &mut out);
        assert_eq!(out, mic[..960]);
        assert_eq!(g.stats().state, GateState::Idle);
    }

    #[test]
    fn guard_conserves_samples_and_releases_held_audio_when_echo_ends() {
        let mut g = EchoGuard::new(true);
        g.push_reference("a", &tone(24_000, 0.3));
        let mut out = Vec::new();
        let mut fed = 0usize;
        for step in 0..800 {
            if step < 100 {
                g.played("a", (step as u64 + 1) * 240);
            }
            let mic = vec![5i16; 240];
            g.process(&mic, &mut out);
            fed += mic.len();
        }
        assert_eq!(g.stats().state, GateState::Idle, "{:?}", g.stats());
        assert_eq!(out.len(), fed, "every sample leaves once echo is over");
        assert!(g.stats().guarded_ms > 0);
    }
}
