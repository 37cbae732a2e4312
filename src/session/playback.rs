//! Playback tracking: the assistant's items and how much of each was received and played,
//! audio held while the device starts, barge-in truncation at the played position, the
//! adaptive pre-buffer, and the player's underrun and overflow accounting.

use std::collections::VecDeque;

use super::events::{AppEvent, ErrorKind, Role};
use super::machine::{Session, API_RATE};
use super::output::Output;
use super::status::Mode;
use super::uplink::Audio;
use crate::audio::pcm16;
use crate::protocol::ClientEvent;

/// Fade applied to playback on barge-in.
pub const BARGE_IN_RAMP_MS: u32 = 8;
/// Assistant items whose audio bookkeeping is kept (older ones are finished).
const TRACKED_ITEMS: usize = 4;
/// Spare `Vec<f32>` buffers kept for `Output::Play`.
const PLAY_POOL: usize = 4;
/// Adaptive pre-buffer: raised by this much after a response with underruns, lowered by
/// `PREBUFFER_STEP_DOWN_MS` after `CALM_RESPONSES` responses in a row without one.
const PREBUFFER_STEP_UP_MS: u32 = 40;
const PREBUFFER_STEP_DOWN_MS: u32 = 20;
const CALM_RESPONSES: u32 = 3;
/// AI audio held while audio is starting: 20 s at 24 kHz (bounded; the rest is counted).
const HELD_PLAYBACK_SAMPLES: usize = 20 * API_RATE as usize;
/// Minimum spacing of `playback_overflow` error events.
const OVERFLOW_EVENT_EVERY_MS: u64 = 1_000;

/// Audio bookkeeping of one assistant item (samples at 24 kHz).
#[derive(Debug, Clone)]
struct ItemAudio {
    item_id: String,
    received: u64,
    played: u64,
    done: bool,
    truncated: bool,
    /// The player drained it after its end marker (`handle_playback_finished`).
    finished: bool,
}

/// The playback side's state.
#[derive(Debug)]
pub(super) struct Playback {
    items: VecDeque<ItemAudio>,
    pub assistant_speaking: bool,
    /// The adaptive pre-buffer (ms), underruns seen when the current response began playing,
    /// and responses in a row that played without one.
    pub prebuffer_ms: u32,
    underruns_at_speech_start: u64,
    calm_responses: u32,
    /// Underruns of earlier audio graphs (the worklet's counter starts at 0 with each one),
    /// and the highest total the current graph reported.
    underruns_offset: u64,
    underruns_graph: u64,
    /// Samples the player's ring refused, in total and as last reported, and when the last
    /// `playback_overflow` event went out.
    overflow_samples: u64,
    overflow_reported: u64,
    last_overflow_event: Option<u64>,
    /// Player outputs held while audio starts (see `playback_out`), and their samples.
    held: VecDeque<Output>,
    held_samples: usize,
    pool: Vec<Vec<f32>>,
}

impl Playback {
    pub fn new(prebuffer_ms: u32) -> Playback {
        Playback {
            items: VecDeque::with_capacity(TRACKED_ITEMS),
            assistant_speaking: false,
            prebuffer_ms,
            underruns_at_speech_start: 0,
            calm_responses: 0,
            underruns_offset: 0,
            underruns_graph: 0,
            overflow_samples: 0,
            overflow_reported: 0,
            last_overflow_event: None,
            held: VecDeque::new(),
            held_samples: 0,
            pool: Vec::new(),
        }
    }

    /// A new audio graph: its worklet counts underruns from 0 again.
    pub fn new_graph(&mut self, underruns_so_far: u64) {
        self.underruns_offset = underruns_so_far;
        self.underruns_graph = 0;
    }

    /// The held player outputs, in order (audio is running now).
    pub fn take_held(&mut self) -> VecDeque<Output> {
        self.held_samples = 0;
        std::mem::take(&mut self.held)
    }

    /// Audio stopped: what was held is dropped.
    pub fn drop_held(&mut self) {
        self.held.clear();
        self.held_samples = 0;
    }

    fn recycle(&mut self, mut samples: Vec<f32>) {
        if self.pool.len() < PLAY_POOL {
            samples.clear();
            self.pool.push(samples);
        }
    }
}

impl Session {
    /// Gives back a `Vec` from `Output::Play` so the next delta reuses its allocation.
    pub fn recycle(&mut self, samples: Vec<f32>) {
        self.play.recycle(samples);
    }

    /// Playback progress of an assistant item: samples played so far for it (a monotonic count
    /// that survives underruns) and underruns since audio started (the current audio graph's
    /// own counter: the session adds those of earlier graphs).
    pub fn handle_playback_progress(
        &mut self,
        _now_ms: u64,
        item_id: &str,
        played_total: u64,
        underruns_total: u64,
    ) {
        let p = &mut self.play;
        p.underruns_graph = p.underruns_graph.max(underruns_total);
        self.snap.underruns = self
            .snap
            .underruns
            .max(p.underruns_offset + p.underruns_graph);
        if let Some(it) = p.items.iter_mut().find(|i| i.item_id == item_id) {
            it.played = it.played.max(played_total);
        }
        self.echo.guard.played(item_id, played_total);
        self.check_assistant_done();
    }

    /// The player drained this item after its end marker (`Output::EndOfItem`): it counts as
    /// fully played, whatever the resampler's rounding left of `played`, so the assistant's
    /// turn ends and a later barge-in does not truncate it. Unknown or truncated items are
    /// ignored.
    pub fn handle_playback_finished(&mut self, _now_ms: u64, item_id: &str) {
        if let Some(it) = self
            .play
            .items
            .iter_mut()
            .find(|i| i.item_id == item_id && !i.truncated)
        {
            it.played = it.received;
            it.finished = true;
        }
        self.check_assistant_done();
    }

    /// The player's ring refused `samples` (24 kHz) of assistant audio: counted in
    /// `droppedPlaybackMs` and reported as an `error` (`playback_overflow`, at most one a
    /// second; the next one carries what was dropped meanwhile).
    pub fn handle_playback_overflow(&mut self, now_ms: u64, samples: u64) {
        if samples == 0 {
            return;
        }
        let rate = u64::from(API_RATE);
        let before_ms = self.play.overflow_samples * 1000 / rate;
        self.play.overflow_samples += samples;
        self.snap.dropped_playback_ms += self.play.overflow_samples * 1000 / rate - before_ms;
        self.report_playback_overflow(now_ms, false);
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
            format!(
                "the player dropped {new_ms} ms of assistant audio: its buffer was full ({total_ms} ms in total)"
            ),
        );
    }

    /// An audio delta of an assistant item: decoded into a pooled buffer and played (or held
    /// while audio starts); audio still arriving for an item cut off by barge-in is dropped.
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
                    reason: e.to_string(),
                };
                self.error(ErrorKind::Protocol, err.code(), err.to_string());
                return;
            }
        };
        let items = &mut self.play.items;
        let idx = match items.iter().position(|i| i.item_id == item_id) {
            Some(i) => i,
            None => {
                if items.len() == TRACKED_ITEMS {
                    items.pop_front();
                }
                items.push_back(ItemAudio {
                    item_id: item_id.to_string(),
                    received: 0,
                    played: 0,
                    done: false,
                    truncated: false,
                    finished: false,
                });
                items.len() - 1
            }
        };
        if items[idx].truncated {
            // Audio still in flight for an item we cut off: not played.
            self.play.recycle(buf);
            return;
        }
        items[idx].received += n as u64;
        self.echo.guard.push_reference(item_id, &buf[..n]);
        items[idx].finished = false;
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
            self.play.underruns_at_speech_start = self.snap.underruns;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: true,
            });
        }
        self.playback_out(Output::Play {
            item_id: item_id.to_string(),
            samples: buf,
        });
    }

    /// The server finished an item's audio: the player is told its end.
    pub(super) fn on_audio_done(&mut self, item_id: &str) {
        let mut ended = None;
        if let Some(it) = self.play.items.iter_mut().find(|i| i.item_id == item_id) {
            it.done = true;
            if !it.truncated {
                ended = Some(it.item_id.clone());
            }
        }
        if let Some(item_id) = ended {
            self.playback_out(Output::EndOfItem { item_id });
        }
        self.check_assistant_done();
    }

    /// Player outputs go out once audio runs; while it is still starting (the microphone
    /// prompt, worklet loading) they are held in order, up to `HELD_PLAYBACK_SAMPLES`, so the
    /// greeting that arrives meanwhile is not lost. Beyond the bound AI audio is dropped and
    /// counted (`droppedPlaybackMs`).
    fn playback_out(&mut self, o: Output) {
        let p = &mut self.play;
        match (&self.up.audio, o) {
            (Audio::Running(_), o) => self.out.push_back(o),
            (Audio::Requested, Output::FlushPlayback { .. }) => {
                // Audio is dropped; a held pre-buffer setting still applies.
                let held = std::mem::take(&mut p.held);
                for o in held {
                    match o {
                        Output::Play { samples, .. } => p.recycle(samples),
                        o @ Output::SetPrebuffer { .. } => p.held.push_back(o),
                        _ => {}
                    }
                }
                p.held_samples = 0;
            }
            (Audio::Requested, Output::Play { item_id, samples }) => {
                if p.held_samples + samples.len() > HELD_PLAYBACK_SAMPLES {
                    self.snap.dropped_playback_ms +=
                        samples.len() as u64 * 1000 / u64::from(API_RATE);
                    p.recycle(samples);
                } else {
                    p.held_samples += samples.len();
                    p.held.push_back(Output::Play { item_id, samples });
                }
            }
            (Audio::Requested, o) => p.held.push_back(o),
            (Audio::Off, Output::Play { samples, .. }) => p.recycle(samples),
            (Audio::Off, _) => {}
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
            self.play.assistant_speaking = false;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: false,
            });
            self.adapt_prebuffer();
        }
    }

    /// After each response: underruns during it raise the pre-buffer (the network delivers
    /// less evenly than it holds); `CALM_RESPONSES` clean ones in a row lower it towards the
    /// configured start, so latency comes back when the network does.
    fn adapt_prebuffer(&mut self) {
        let (base, max) = (self.cfg.prebuffer_ms, self.cfg.max_prebuffer_ms);
        let p = &mut self.play;
        let next = if self.snap.underruns > p.underruns_at_speech_start {
            p.calm_responses = 0;
            (p.prebuffer_ms + PREBUFFER_STEP_UP_MS).min(max)
        } else {
            p.calm_responses += 1;
            if p.calm_responses < CALM_RESPONSES {
                return;
            }
            p.calm_responses = 0;
            p.prebuffer_ms
                .saturating_sub(PREBUFFER_STEP_DOWN_MS)
                .max(base)
        };
        if next != p.prebuffer_ms {
            p.prebuffer_ms = next;
            // Held while audio starts, dropped while it is off: a player built later reads
            // `prebuffer_ms()`.
            self.playback_out(Output::SetPrebuffer { ms: next });
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
            self.playback_out(Output::FlushPlayback {
                ramp_ms: BARGE_IN_RAMP_MS,
            });
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
        if self.play.assistant_speaking && playing.is_some() {
            self.play.assistant_speaking = false;
            self.push_event(AppEvent::Speech {
                who: Role::Assistant,
                speaking: false,
            });
            // An answer cut short still tells how evenly its audio arrived.
            self.adapt_prebuffer();
        }
    }
}
