//! Playback: the assistant's items and how much of each was received and played, the playback
//! resampler (24 kHz → the device rate, flushed exactly at item ends), audio held while the
//! player starts, barge-in truncation at the played position, the playout delay learnt from
//! arrival jitter (`jitter.rs`), the player's underrun and overflow accounting, and the level
//! meters (throttled `level` events).
//!
//! Positions: the resampler is reset when an item starts feeding the player, so the player's
//! frame `j` of that run is the item's 24 kHz time `base + j · 24000 / rate` exactly (the
//! resampler is zero-phase); `played` frames map to `base + floor(played · 24000 / rate)`
//! samples. At the item's end the resampler's held-back tail is pushed out with silence and cut
//! at `ceil(fed · rate / 24000)` frames, so a fully played item maps back to all it received.

use std::collections::VecDeque;

use super::events::{AppEvent, ErrorKind, LevelSource, Role};
use super::jitter::{ItemClock, JitterEstimator};
use super::machine::{Session, API_RATE};
use super::metrics::LatencyWindow;
use super::output::{AudioFailure, Output};
use super::status::Mode;
use super::uplink::Audio;
use crate::audio::resample::MAX_RATE;
use crate::audio::{conceal, measure_level, pcm16, Level, Resampler};
use crate::protocol::ClientEvent;
use crate::text::{concat, Message, Part::*};

/// Fade applied to playback on barge-in.
pub const BARGE_IN_RAMP_MS: u32 = 8;
/// `level` events per source go out once per this period on average (~20 Hz).
pub const LEVEL_EVERY_MS: u64 = 50;
/// Assistant items whose audio bookkeeping is kept (older ones are finished).
const TRACKED_ITEMS: usize = 4;
/// Spare `Vec<f32>` buffers kept for `Output::Play`.
const PLAY_POOL: usize = 4;
/// AI audio held while the player starts: 20 s at 24 kHz (bounded; the rest is counted).
const HELD_PLAYBACK_SAMPLES: usize = 20 * API_RATE as usize;
/// Minimum spacing of `playback_overflow` error events.
const OVERFLOW_EVENT_EVERY_MS: u64 = 1_000;
/// The playout delay is sent to the player again only when it moved by this much (or rose).
const PREBUFFER_HYSTERESIS_MS: u32 = 5;
/// Playout delays applied at item starts kept for the metrics' p50/p95.
const DELAY_WINDOW: usize = 256;
/// Silence pushed through the resampler per step when flushing an item's tail.
const ZEROS: [f32; 64] = [0.0; 64];

/// Audio bookkeeping of one assistant item (samples at 24 kHz).
#[derive(Debug, Clone)]
struct ItemAudio {
    item_id: String,
    /// The player's number for it (never 0).
    slot: u32,
    received: u64,
    /// Samples handed to the player's resampler, and where its current run started.
    fed: u64,
    base: u64,
    played: u64,
    done: bool,
    truncated: bool,
    /// The player drained it after its end marker (`handle_playback_finished`).
    finished: bool,
    clock: ItemClock,
}

/// The running player: its rate, the resampler feeding it, and the end of what it was given.
#[derive(Debug)]
struct Player {
    rate: u32,
    resampler: Resampler,
    /// The last `conceal::history_len(rate)` frames of the current run, oldest first: where the
    /// pitch period the player repeats when it runs dry is found.
    history: Vec<f32>,
    /// The item whose run the resampler is in, with samples in and frames out of that run.
    current: Option<u32>,
    run_in: u64,
    run_out: u64,
}

/// A count each player keeps from 0, summed over the players of the session.
#[derive(Debug, Default)]
struct PlayerCount {
    /// What earlier players counted, and the highest total the current one reported.
    offset: u64,
    current: u64,
}

impl PlayerCount {
    /// A new player starts at 0; `session_total` is what the earlier ones counted.
    fn restart(&mut self, session_total: u64) {
        self.offset = session_total;
        self.current = 0;
    }

    /// The current player reported `player_total`: the session's total, never going back.
    fn report(&mut self, session_total: u64, player_total: u64) -> u64 {
        self.current = self.current.max(player_total);
        session_total.max(self.offset + self.current)
    }
}

impl Player {
    /// Keeps the end of `samples` (the next frames the player gets) and returns the pitch
    /// period to repeat if it runs dry after them.
    fn remember(&mut self, samples: &[f32]) -> u32 {
        let keep = conceal::history_len(self.rate);
        let h = &mut self.history;
        if samples.len() >= keep {
            h.clear();
            h.extend_from_slice(&samples[samples.len() - keep..]);
        } else {
            let drop = (h.len() + samples.len()).saturating_sub(keep);
            h.drain(..drop);
            h.extend_from_slice(samples);
        }
        conceal::pitch_period(h, self.rate)
    }
}

/// Player outputs waiting for the player to start (24 kHz samples, not yet resampled).
#[derive(Debug)]
enum Held {
    Play { slot: u32, samples: Vec<f32> },
    End { slot: u32 },
}

/// The playback side's state.
#[derive(Debug)]
pub(super) struct Playback {
    items: VecDeque<ItemAudio>,
    next_slot: u32,
    pub assistant_speaking: bool,
    /// The playout delay the player uses now (ms), learnt by `jitter`.
    pub prebuffer_ms: u32,
    jitter: JitterEstimator,
    /// The delay applied at each item start (for p50/p95: the latency playback adds).
    pub delays: LatencyWindow,
    /// The player's underruns and concealed late deltas, summed over players.
    underruns: PlayerCount,
    concealments: PlayerCount,
    /// When a player first started (underruns per minute count from there).
    pub started_at: Option<u64>,
    /// Audio the player's ring refused (24 kHz samples, with the remainder of the conversion),
    /// as last reported, and when the last `playback_overflow` event went out.
    overflow_samples: u64,
    overflow_rem: u64,
    overflow_reported: u64,
    last_overflow_event: Option<u64>,
    player: Option<Player>,
    held: VecDeque<Held>,
    held_samples: usize,
    pool: Vec<Vec<f32>>,
    /// When the next `level` event of each source (input, output) may go out.
    next_level: [Option<u64>; 2],
}

impl Playback {
    pub fn new(prebuffer_ms: u32, max_prebuffer_ms: u32) -> Playback {
        Playback {
            items: VecDeque::with_capacity(TRACKED_ITEMS),
            next_slot: 1,
            assistant_speaking: false,
            prebuffer_ms,
            jitter: JitterEstimator::new(prebuffer_ms, max_prebuffer_ms),
            delays: LatencyWindow::new(DELAY_WINDOW),
            underruns: PlayerCount::default(),
            concealments: PlayerCount::default(),
            started_at: None,
            overflow_samples: 0,
            overflow_rem: 0,
            overflow_reported: 0,
            last_overflow_event: None,
            player: None,
            held: VecDeque::new(),
            held_samples: 0,
            pool: Vec::new(),
            next_level: [None; 2],
        }
    }

    /// Audio stopped: the player is gone and what was held is dropped.
    pub fn audio_stopped(&mut self) {
        self.player = None;
        self.held.clear();
        self.held_samples = 0;
    }

    /// The arrival jitter the delay covers now (the learnt quantile, ms).
    pub fn jitter_ms(&self) -> u32 {
        self.jitter.quantile_ms()
    }

    fn recycle(&mut self, mut samples: Vec<f32>) {
        if self.pool.len() < PLAY_POOL {
            samples.clear();
            self.pool.push(samples);
        }
    }

    fn item(&mut self, slot: u32) -> Option<&mut ItemAudio> {
        self.items.iter_mut().find(|i| i.slot == slot)
    }

    /// Whether `now_ms` may carry a `level` event of `source` (and books the next slot): one
    /// per `LEVEL_EVERY_MS` on average, on a grid that tolerates reports arriving a little early
    /// or late, restarted after a pause.
    fn level_due(&mut self, now_ms: u64, source: LevelSource) -> bool {
        let next = &mut self.next_level[source as usize];
        match *next {
            Some(t) if now_ms < t => false,
            Some(t) if now_ms < t + LEVEL_EVERY_MS => {
                *next = Some(t + LEVEL_EVERY_MS);
                true
            }
            _ => {
                *next = Some(now_ms + LEVEL_EVERY_MS);
                true
            }
        }
    }
}

impl Session {
    /// Gives back a `Vec` from `Output::Play` so the next delta reuses its allocation.
    pub fn recycle(&mut self, samples: Vec<f32>) {
        self.play.recycle(samples);
    }

    /// The player's number for the assistant item `item_id` (the `item` of `Output::Play` and
    /// of the player's reports), while it is tracked.
    pub fn player_slot(&self, item_id: &str) -> Option<u32> {
        let it = self.play.items.iter().find(|i| i.item_id == item_id)?;
        Some(it.slot)
    }

    /// The player is up at the AudioContext's `sample_rate` (independently of the microphone):
    /// from now on `Output::Play` carries samples at that rate, and AI audio held while it
    /// started is released, in order. A new player (after audio restarted) counts underruns
    /// from 0 again; the session adds those of earlier ones.
    pub fn handle_playback_started(&mut self, now_ms: u64, sample_rate: u32) {
        self.last_now = now_ms;
        if matches!(self.up.audio, Audio::Off) {
            return;
        }
        let resampler = match Resampler::new(API_RATE, sample_rate, 1) {
            Ok(r) => r,
            Err(e) => {
                self.error(ErrorKind::Audio, "unsupported_audio_format", {
                    let mut m =
                        concat(&[S("cannot play at "), N(u64::from(sample_rate)), S(" Hz: ")]);
                    m.push_str(&e.message());
                    m
                });
                self.handle_audio_failed(now_ms, AudioFailure::AudioContextFailed);
                return;
            }
        };
        // A new player starts at full level.
        self.echo.forget_duck();
        let p = &mut self.play;
        p.underruns.restart(self.snap.underruns);
        p.concealments.restart(self.snap.concealments);
        p.started_at.get_or_insert(now_ms);
        p.player = Some(Player {
            rate: sample_rate,
            resampler,
            history: Vec::with_capacity(conceal::history_len(sample_rate)),
            current: None,
            run_in: 0,
            run_out: 0,
        });
        // What was learnt while the player was being built.
        let ms = p.prebuffer_ms;
        self.out.push_back(Output::SetPrebuffer { ms });
        self.play.held_samples = 0;
        let held = std::mem::take(&mut self.play.held);
        for h in held {
            match h {
                Held::Play { slot, samples } => self.feed(slot, samples),
                Held::End { slot } => self.end_item(slot),
            }
        }
    }

    /// Playback progress of an assistant item (`item`: its player number): frames played of
    /// it at the device rate (a count that never goes back, underruns included) and underruns
    /// of the current player so far.
    pub fn handle_playback_progress(
        &mut self,
        now_ms: u64,
        item: u32,
        played_frames: u64,
        underruns_total: u64,
    ) {
        self.progress(now_ms, item, played_frames, underruns_total, None);
    }

    /// As [`Session::handle_playback_progress`], with the audio context's frame
    /// (`currentFrame`) by which the player had played `played_frames`: with the capture's
    /// (`Session::handle_mic_samples_at`) the echo guard places what played where it played.
    pub fn handle_playback_progress_at(
        &mut self,
        now_ms: u64,
        item: u32,
        played_frames: u64,
        underruns_total: u64,
        context_frame: u64,
    ) {
        self.progress(
            now_ms,
            item,
            played_frames,
            underruns_total,
            Some(context_frame),
        );
    }

    fn progress(
        &mut self,
        now_ms: u64,
        item: u32,
        played_frames: u64,
        underruns_total: u64,
        at: Option<u64>,
    ) {
        let p = &mut self.play;
        self.snap.underruns = p.underruns.report(self.snap.underruns, underruns_total);
        let Some(rate) = p.player.as_ref().map(|pl| u64::from(pl.rate)) else {
            return;
        };
        if let Some(it) = p.item(item) {
            let played = it.base + played_frames * u64::from(API_RATE) / rate;
            it.played = it.played.max(played.min(it.received));
            if played_frames > 0 && self.snap.time_to_first_sound_ms.is_none() {
                self.snap.time_to_first_sound_ms =
                    self.connect_called_at.map(|t| now_ms.saturating_sub(t));
            }
            self.echo.played(it.slot, it.played, at);
        }
        self.check_assistant_done();
    }

    /// The player bridged a late delta with concealment (`Output::Play`'s `period`): the
    /// current player's total so far, counted in `concealments`, not as an underrun.
    pub fn handle_playback_concealed(&mut self, _now_ms: u64, concealed_total: u64) {
        let p = &mut self.play;
        self.snap.concealments = p
            .concealments
            .report(self.snap.concealments, concealed_total);
    }

    /// The player drained this item after its end marker (`Output::EndOfItem`): all of it was
    /// played, so the assistant's turn ends and a later barge-in does not truncate it. Unknown
    /// or truncated items are ignored.
    pub fn handle_playback_finished(&mut self, _now_ms: u64, item: u32) {
        if let Some(it) = self.play.item(item).filter(|i| !i.truncated) {
            it.played = it.received;
            it.finished = true;
        }
        self.check_assistant_done();
    }

    /// The player's ring refused `frames` (device rate) of assistant audio: counted in
    /// `droppedPlaybackMs` and reported as an `error` (`playback_overflow`, at most one a
    /// second; the next one carries what was dropped meanwhile).
    pub fn handle_playback_overflow(&mut self, now_ms: u64, frames: u64) {
        let p = &mut self.play;
        let Some(rate) = p.player.as_ref().map(|pl| u64::from(pl.rate)) else {
            return;
        };
        if frames == 0 {
            return;
        }
        let api = u64::from(API_RATE);
        let before_ms = p.overflow_samples * 1000 / api;
        let scaled = frames * api + p.overflow_rem;
        p.overflow_samples += scaled / rate;
        p.overflow_rem = scaled % rate;
        self.snap.dropped_playback_ms += p.overflow_samples * 1000 / api - before_ms;
        self.report_playback_overflow(now_ms, false);
    }

    /// The level of what the player output during its last period (linear RMS and peak, full
    /// scale 1.0): a `level` event of source `output`, at most one per `LEVEL_EVERY_MS`.
    pub fn handle_output_level(&mut self, now_ms: u64, rms: f32, peak: f32) {
        if self.play.level_due(now_ms, LevelSource::Output) {
            let level = Level::from_linear(rms, peak);
            self.push_lossy_event(AppEvent::Level {
                source: LevelSource::Output,
                level,
            });
        }
    }

    /// The microphone's level (a `level` event of source `input`, at most one per
    /// `LEVEL_EVERY_MS`), measured on the block given to `handle_mic_samples`.
    pub(super) fn input_level(&mut self, now_ms: u64, samples: &[f32]) {
        if self.play.level_due(now_ms, LevelSource::Input) {
            let level = measure_level(samples);
            self.push_lossy_event(AppEvent::Level {
                source: LevelSource::Input,
                level,
            });
        }
    }

    pub(super) fn report_playback_overflow(&mut self, now_ms: u64, force: bool) {
        let p = &mut self.play;
        let dropped = p.overflow_samples;
        if dropped <= p.overflow_reported {
            return;
        }
        if !force
            && p.last_overflow_event
                .is_some_and(|t| now_ms < t + OVERFLOW_EVENT_EVERY_MS)
        {
            return;
        }
        let rate = u64::from(API_RATE);
        let new_ms = (dropped - p.overflow_reported) * 1000 / rate;
        p.overflow_reported = dropped;
        p.last_overflow_event = Some(now_ms);
        let total_ms = dropped * 1000 / rate;
        self.error(
            ErrorKind::Audio,
            "playback_overflow",
            concat(&[
                S("the player dropped "),
                N(new_ms),
                S(" ms of assistant audio: its buffer was full ("),
                N(total_ms),
                S(" ms in total)"),
            ]),
        );
    }

    /// An audio delta of an assistant item: its lateness trains the playout delay, then it is
    /// decoded into a pooled buffer and played (or held while the player starts); audio still
    /// arriving for an item cut off by barge-in is dropped.
    pub(super) fn on_audio_delta(&mut self, now_ms: u64, kind: &str, item_id: &str, delta: &str) {
        if self.mode != Mode::Voice {
            return;
        }
        let mut buf = self.play.pool.pop().unwrap_or_default();
        let n = match pcm16::decode_pcm16_base64_to_f32(delta, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                self.snap.protocol_errors += 1;
                self.play.recycle(buf);
                let err = crate::protocol::ProtocolError::InvalidAudio {
                    event: kind.chars().take(64).collect(),
                    reason: e.message(),
                };
                self.error(ErrorKind::Protocol, err.code(), err.message());
                return;
            }
        };
        let p = &mut self.play;
        let idx = match p.items.iter().position(|i| i.item_id == item_id) {
            Some(i) => i,
            None => {
                if p.items.len() == TRACKED_ITEMS {
                    p.items.pop_front();
                }
                let slot = p.next_slot;
                p.next_slot = p.next_slot.checked_add(1).unwrap_or(1);
                p.items.push_back(ItemAudio {
                    item_id: item_id.to_string(),
                    slot,
                    received: 0,
                    fed: 0,
                    base: 0,
                    played: 0,
                    done: false,
                    truncated: false,
                    finished: false,
                    clock: ItemClock::default(),
                });
                p.items.len() - 1
            }
        };
        let it = &mut p.items[idx];
        if it.truncated {
            // Audio still in flight for an item we cut off: not played.
            self.play.recycle(buf);
            return;
        }
        let first = it.received == 0;
        let media_ms = it.received * 1000 / u64::from(API_RATE);
        let late = it.clock.lateness(now_ms, media_ms);
        it.received += n as u64;
        it.finished = false;
        let slot = it.slot;
        p.jitter.observe(now_ms, late);
        self.echo.guard.push_reference(slot, &buf[..n]);
        self.update_prebuffer();
        if first {
            let ms = self.play.prebuffer_ms;
            self.play.delays.push(u64::from(ms));
        }
        if let Some(mark) = self.latency_mark.take() {
            self.latency.push(now_ms.saturating_sub(mark));
        }
        if self.snap.time_to_first_audio_ms.is_none() {
            if let Some(t) = self.connect_called_at {
                self.snap.time_to_first_audio_ms = Some(now_ms.saturating_sub(t));
            }
        }
        if !self.play.assistant_speaking {
            self.play.assistant_speaking = true;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: true,
            });
        }
        self.feed(slot, buf);
    }

    /// The server finished an item's audio: the player is told its end.
    pub(super) fn on_audio_done(&mut self, item_id: &str) {
        let mut ended = None;
        if let Some(it) = self.play.items.iter_mut().find(|i| i.item_id == item_id) {
            it.done = true;
            if !it.truncated {
                ended = Some(it.slot);
            }
        }
        if let Some(slot) = ended {
            self.end_item(slot);
        }
        self.check_assistant_done();
    }

    /// A new playout delay from the estimator: rises go to the player at once, falls once they
    /// exceed the hysteresis or reach the floor (the player applies it when it next starts an
    /// item or refills).
    fn update_prebuffer(&mut self) {
        let floor = self.cfg.prebuffer_ms;
        let p = &mut self.play;
        let target = p.jitter.target_ms();
        if target > p.prebuffer_ms
            || target + PREBUFFER_HYSTERESIS_MS <= p.prebuffer_ms
            || (target == floor && target < p.prebuffer_ms)
        {
            p.prebuffer_ms = target;
            if p.player.is_some() {
                self.out.push_back(Output::SetPrebuffer { ms: target });
            }
        }
    }

    /// 24 kHz samples of item `slot` for the player: resampled to its rate, or held while it
    /// starts (up to `HELD_PLAYBACK_SAMPLES`; beyond that dropped and counted), or dropped when
    /// audio is off.
    fn feed(&mut self, slot: u32, samples: Vec<f32>) {
        if matches!(self.up.audio, Audio::Off) {
            self.play.recycle(samples);
            return;
        }
        let p = &mut self.play;
        let Some(player) = p.player.as_mut() else {
            if p.held_samples + samples.len() > HELD_PLAYBACK_SAMPLES {
                self.snap.dropped_playback_ms += samples.len() as u64 * 1000 / u64::from(API_RATE);
                p.recycle(samples);
            } else {
                p.held_samples += samples.len();
                p.held.push_back(Held::Play { slot, samples });
            }
            return;
        };
        if player.current != Some(slot) {
            self.finish_run();
            let p = &mut self.play;
            let fed = p.item(slot).map_or(0, |it| it.fed);
            if let Some(it) = p.item(slot) {
                it.base = fed;
            }
            if let Some(pl) = p.player.as_mut() {
                pl.resampler.reset();
                pl.history.clear();
                pl.current = Some(slot);
                pl.run_in = 0;
                pl.run_out = 0;
            }
        }
        let p = &mut self.play;
        if let Some(it) = p.item(slot) {
            it.fed += samples.len() as u64;
        }
        let Some(pl) = p.player.as_mut() else { return };
        pl.run_in += samples.len() as u64;
        if pl.rate == API_RATE {
            pl.run_out += samples.len() as u64;
            let period = pl.remember(&samples);
            self.out.push_back(Output::Play {
                item: slot,
                samples,
                period,
            });
            return;
        }
        let mut out = p.pool.pop().unwrap_or_default();
        out.resize(pl.resampler.output_capacity(samples.len()), 0.0);
        let n = pl.resampler.process_into(&samples, &mut out).unwrap_or(0);
        out.truncate(n);
        pl.run_out += n as u64;
        let period = pl.remember(&out[..n]);
        p.recycle(samples);
        if n > 0 {
            self.out.push_back(Output::Play {
                item: slot,
                samples: out,
                period,
            });
        } else {
            p.recycle(out);
        }
    }

    /// Ends the resampler's current run: its held-back tail is pushed out with silence, cut at
    /// the frame that matches the last sample fed, and played.
    fn finish_run(&mut self) {
        let p = &mut self.play;
        let Some(pl) = p.player.as_mut() else { return };
        let Some(slot) = pl.current.take() else {
            return;
        };
        let api = u64::from(API_RATE);
        let want = (pl.run_in * u64::from(pl.rate)).div_ceil(api);
        let missing = want.saturating_sub(pl.run_out) as usize;
        if missing == 0 {
            return;
        }
        let mut tail = p.pool.pop().unwrap_or_default();
        tail.clear();
        let mut step = [0.0f32; 2 * ZEROS.len() * (MAX_RATE / API_RATE) as usize];
        // Each step moves the resampler 64 input samples on; its delay is at most a few steps
        // (half its filter, ≤ 40 samples from 24 kHz up, more down to 8 kHz).
        for _ in 0..16 {
            if tail.len() >= missing {
                break;
            }
            let n = pl.resampler.process_into(&ZEROS, &mut step).unwrap_or(0);
            tail.extend_from_slice(&step[..n.min(missing - tail.len())]);
        }
        pl.run_out += tail.len() as u64;
        let period = pl.remember(&tail);
        self.out.push_back(Output::Play {
            item: slot,
            samples: tail,
            period,
        });
    }

    /// No more audio for item `slot`: its tail is flushed to the player, then its end marked.
    fn end_item(&mut self, slot: u32) {
        if matches!(self.up.audio, Audio::Off) {
            return;
        }
        match self.play.player.as_ref() {
            None => self.play.held.push_back(Held::End { slot }),
            Some(pl) => {
                if pl.current == Some(slot) {
                    self.finish_run();
                }
                self.out.push_back(Output::EndOfItem { item: slot });
            }
        }
    }

    /// Barge-in reached the player: queued audio fades out; held audio is dropped.
    fn flush_playback(&mut self) {
        let p = &mut self.play;
        match p.player.as_mut() {
            Some(pl) => {
                pl.resampler.reset();
                pl.current = None;
                self.out.push_back(Output::FlushPlayback {
                    ramp_ms: BARGE_IN_RAMP_MS,
                });
            }
            None => {
                let held = std::mem::take(&mut p.held);
                for h in held {
                    if let Held::Play { samples, .. } = h {
                        p.recycle(samples);
                    }
                }
                p.held_samples = 0;
            }
        }
    }

    fn check_assistant_done(&mut self) {
        if !self.play.assistant_speaking {
            return;
        }
        let busy = self
            .play
            .items
            .iter()
            .any(|i| !i.truncated && (!i.done || i.played < i.received));
        if !busy {
            self.release_duck();
            self.play.assistant_speaking = false;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: false,
            });
        }
    }

    /// Barge-in. Flushes playback and truncates the playing item at the played position
    /// (clamped to the audio received). Only an item still playing is truncated: not one the
    /// player finished (`handle_playback_finished`) nor one fully played. `response.cancel` is
    /// sent only when `explicit` (`interrupt()`) and a response is in progress: on
    /// `speech_started` the server's VAD (`interrupt_response`, on by default) has already
    /// cancelled it, and a second cancel would only earn a `response_cancel_not_active` error.
    pub(super) fn barge_in(&mut self, _now_ms: u64, explicit: bool) {
        // The model moved on: calls in progress get no output.
        self.tools.abandon();
        let playing = self.play.items.iter().rposition(|i| {
            !i.truncated && !i.finished && i.received > 0 && (!i.done || i.played < i.received)
        });
        if let Some(idx) = playing {
            let it = &mut self.play.items[idx];
            it.truncated = true;
            let end_samples = it.played.min(it.received);
            let audio_end_ms = end_samples * 1000 / u64::from(API_RATE);
            let item_id = it.item_id.clone();
            if !matches!(self.up.audio, Audio::Off) {
                self.flush_playback();
            }
            if self.is_open() {
                let frame = ClientEvent::Truncate {
                    item_id: &item_id,
                    audio_end_ms,
                }
                .to_json(self.cfg.shape);
                self.send_expecting_reply(frame);
            }
        }
        if explicit && self.is_open() {
            if let Some(id) = self.response_active.take() {
                let response_id = (!id.is_empty()).then_some(id.as_str());
                self.send_client_event(&ClientEvent::ResponseCancel { response_id });
            }
        }
        self.release_duck();
        if self.play.assistant_speaking && playing.is_some() {
            self.play.assistant_speaking = false;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: false,
            });
        }
    }
}
