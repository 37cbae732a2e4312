//! The uplink: the audio device's lifecycle as the session sees it, the capture resampler,
//! mute, the chunker's bounded backlog, and sending chunks within the backend's rate limit and
//! the socket's flow control.

use super::connection::Link;
use super::events::{AppEvent, ErrorKind};
use super::machine::{Session, API_RATE};
use super::output::{AudioFailure, Output};
use super::status::{AudioState, FailReason, Mode};
use crate::audio::{pcm16, Chunker, ChunkerConfig, Resampler};
use crate::text::{concat, Message, Part::*};

/// Minimum spacing of `audio_overflow` error events.
const OVERFLOW_EVENT_EVERY_MS: u64 = 1_000;
/// While flow control holds audio back, the socket is looked at again this often.
const FLOW_RECHECK_MS: u64 = 100;

/// The audio device, as far as the session knows.
#[derive(Debug)]
pub(super) enum Audio {
    /// Not running (text mode, ended, or not started yet).
    Off,
    /// `Output::StartAudio` went out; `handle_audio_started`/`_failed` will answer.
    Requested,
    /// Running at the device format this resampler was built for.
    Running(Resampler),
}

/// `samples` through the capture resampler `r` into `pcm` (24 kHz PCM16), `resampled` its
/// reused working buffer.
fn resample(
    r: &mut Resampler,
    samples: &[f32],
    resampled: &mut Vec<f32>,
    pcm: &mut Vec<i16>,
) -> Result<(), crate::audio::ResamplerError> {
    let frames = samples.len() / usize::from(r.channels());
    let need = r.output_capacity(frames);
    if resampled.len() < need {
        resampled.resize(need, 0.0);
    }
    let n = r.process_into(samples, resampled)?;
    pcm.clear();
    pcm.extend(resampled[..n].iter().map(|&x| pcm16::f32_to_i16(x)));
    Ok(())
}

/// The microphone path's state.
#[derive(Debug)]
pub(super) struct Uplink {
    pub audio: Audio,
    /// The browser's audio state while audio is on (None until the shell first reports it).
    pub audio_state: Option<AudioState>,
    pub muted: bool,
    pub chunker: Chunker,
    resampled: Vec<f32>,
    /// The last microphone block at 24 kHz (a reused buffer): what the ducker and the guard see.
    pub pcm: Vec<i16>,
    /// The raw capture's resampler and last block (24 kHz), while the shell delivers the
    /// microphone as a pair (`Session::handle_mic_pair`).
    raw: Option<Resampler>,
    raw_pcm: Vec<i16>,
    chunk: Vec<i16>,
    /// Microphone samples (24 kHz) taken in and handed to the socket, in total: their
    /// difference is the backlog plus what overflowed.
    pub captured_samples: u64,
    pub sent_samples: u64,
    dropped_reported: u64,
    last_overflow_event: Option<u64>,
    pub capture_delay_sum: u64,
    pub capture_delay_count: u64,
    /// Flow control holds audio back; the socket is looked at again then.
    pub flow_recheck_at: Option<u64>,
}

impl Uplink {
    pub fn new(chunk_ms: u32, max_chunk_ms: u32, max_backlog_ms: u32) -> Uplink {
        let cfg = ChunkerConfig {
            sample_rate: API_RATE,
            chunk_ms,
            max_chunks_per_second: 10,
            max_chunk_ms,
            max_backlog_ms,
        };
        // SessionConfig validation keeps every field inside the chunker's accepted ranges
        // (chunkMs ≥ 100, maxChunkMs ≥ chunkMs, maxBacklogMs ≥ maxChunkMs); the fallback only
        // guards a config built by hand with other values.
        let chunker = match Chunker::new(cfg) {
            Ok(c) => c,
            Err(_) => match Chunker::new(ChunkerConfig::default()) {
                Ok(c) => c,
                // Local invariant: the default config is valid (and unit-tested by the audio core).
                Err(_) => unreachable!("the default chunker config is valid"),
            },
        };
        Uplink {
            audio: Audio::Off,
            audio_state: None,
            muted: false,
            chunk: Vec::with_capacity(chunker.max_chunk_samples()),
            chunker,
            resampled: Vec::new(),
            pcm: Vec::new(),
            raw: None,
            raw_pcm: Vec::new(),
            captured_samples: 0,
            sent_samples: 0,
            dropped_reported: 0,
            last_overflow_event: None,
            capture_delay_sum: 0,
            capture_delay_count: 0,
            flow_recheck_at: None,
        }
    }
}

impl Session {
    /// Mutes (drops mic audio: not sent, not buffered) or unmutes. On mute, audio captured
    /// before it is still sent (the partial last chunk is flushed).
    pub fn set_muted(&mut self, now_ms: u64, muted: bool) {
        self.last_now = now_ms;
        if muted && !self.up.muted {
            self.up.chunker.flush();
            self.pump_audio(now_ms);
            self.release_duck();
        }
        self.up.muted = muted;
    }

    /// Audio started at the device's rate (after `Output::StartAudio`). Called again while
    /// running when the microphone's format changes (another device): the resampler is rebuilt
    /// and the change reported (`audio` event, reason `format_changed`).
    pub fn handle_audio_started(&mut self, now_ms: u64, sample_rate: u32, channels: u16) {
        self.last_now = now_ms;
        match &self.up.audio {
            Audio::Requested => {}
            Audio::Running(r) if r.input_rate() != sample_rate || r.channels() != channels => {}
            _ => return,
        }
        match Resampler::new(sample_rate, API_RATE, channels) {
            Ok(r) => {
                let starting = matches!(self.up.audio, Audio::Requested);
                self.up.audio = Audio::Running(r);
                if starting {
                    self.devices_started(now_ms);
                } else {
                    self.mic_format_changed();
                }
            }
            Err(e) => {
                self.error(ErrorKind::Audio, "unsupported_audio_format", {
                    let mut m = concat(&[
                        S("cannot resample "),
                        N(u64::from(sample_rate)),
                        S(" Hz × "),
                        N(u64::from(channels)),
                        S(": "),
                    ]);
                    m.push_str(&e.message());
                    m
                });
                self.handle_audio_failed(now_ms, AudioFailure::AudioContextFailed);
            }
        }
    }

    /// The AudioContext's state changed (`statechange`, or as read right after start). A
    /// suspended or interrupted context while the session uses audio asks the shell to resume it
    /// on the next user gesture and tells the app (`audio` event, `needsGesture: true`).
    pub fn handle_audio_state(&mut self, _now_ms: u64, state: AudioState) {
        if matches!(self.up.audio, Audio::Off) || self.up.audio_state == Some(state) {
            return;
        }
        let was = self.up.audio_state.replace(state);
        let needs_gesture = matches!(state, AudioState::Suspended | AudioState::Interrupted);
        if needs_gesture {
            if was == Some(AudioState::Running) {
                self.snap.audio_interruptions += 1;
            }
            self.out.push_back(Output::ResumeAudio { on_gesture: true });
        }
        self.push_event(AppEvent::Audio {
            state,
            needs_gesture,
            device: None,
        });
    }

    /// The page became visible or hidden. Back in view with audio stopped by the browser, the
    /// shell is asked to resume it at once (browsers that need a gesture keep the gesture
    /// listener armed by `handle_audio_state`).
    pub fn handle_visibility(&mut self, _now_ms: u64, visible: bool) {
        if visible
            && !matches!(self.up.audio, Audio::Off)
            && matches!(
                self.up.audio_state,
                Some(AudioState::Suspended | AudioState::Interrupted)
            )
        {
            self.out
                .push_back(Output::ResumeAudio { on_gesture: false });
        }
    }

    /// Audio could not start or stopped working beyond repair: falls back to text mode (the
    /// socket, if any, stays up for text). A microphone that merely stopped is reported with
    /// `handle_mic_lost` instead, which reopens it.
    pub fn handle_audio_failed(&mut self, _now_ms: u64, reason: AudioFailure) {
        if self.mode != Mode::Voice || matches!(self.up.audio, Audio::Off) {
            return;
        }
        self.up.audio = Audio::Off;
        self.up.audio_state = None;
        self.devices.reset();
        self.play.audio_stopped();
        self.echo.forget_duck();
        self.out.push_back(Output::StopAudio);
        self.up.chunker.clear();
        self.set_mode(Mode::Text, reason.as_str());
        if !self.cfg.http_fallback && matches!(self.link, Link::Ended(_)) {
            self.fail(FailReason::Unsupported, reason.as_str(), None);
        }
    }

    /// Microphone samples, interleaved at the device rate given to `handle_audio_started`.
    /// Dropped while muted, in text mode or before audio started.
    pub fn handle_mic_samples(&mut self, now_ms: u64, samples: &[f32]) {
        self.mic_block(now_ms, samples, None, None);
    }

    /// As [`Session::handle_mic_samples`], with the audio context's frame (`currentFrame`)
    /// at which the block's first sample was captured: the echo guard then places what the
    /// player reports played ([`Session::handle_playback_progress_at`]) on the same clock.
    pub fn handle_mic_samples_at(&mut self, now_ms: u64, samples: &[f32], context_frame: u64) {
        self.mic_block(now_ms, samples, None, Some(context_frame));
    }

    /// The microphone captured twice (where [`Session::echo_hears_raw`] asks for it): `sent` as
    /// the browser processed it and `heard` raw, mono each, at the device rate given to
    /// `handle_audio_started` (with one channel), sample `i` of each at the same instant. The
    /// echo guard judges by `heard`; `sent` goes on as [`Session::handle_mic_samples`] sends
    /// its samples. A block without the raw capture (it could not be opened, or a new
    /// microphone came without it) goes to `handle_mic_samples`: the guard then judges by the
    /// processed capture again.
    pub fn handle_mic_pair(&mut self, now_ms: u64, sent: &[f32], heard: &[f32]) {
        self.mic_block(now_ms, sent, Some(heard), None);
    }

    /// As [`Session::handle_mic_pair`], with the audio context's frame at which the block's
    /// first sample was captured (see [`Session::handle_mic_samples_at`]).
    pub fn handle_mic_pair_at(
        &mut self,
        now_ms: u64,
        sent: &[f32],
        heard: &[f32],
        context_frame: u64,
    ) {
        self.mic_block(now_ms, sent, Some(heard), Some(context_frame));
    }

    fn mic_block(
        &mut self,
        now_ms: u64,
        samples: &[f32],
        heard: Option<&[f32]>,
        context_frame: Option<u64>,
    ) {
        self.last_now = now_ms;
        self.input_level(now_ms, samples);
        if self.up.muted || self.mode != Mode::Voice {
            return;
        }
        let up = &mut self.up;
        let Audio::Running(r) = &mut up.audio else {
            return;
        };
        let clock = context_frame.map(|f| (f, r.input_rate()));
        let mut n = resample(r, samples, &mut up.resampled, &mut up.pcm);
        if let (Ok(_), Some(h)) = (&n, heard) {
            // The raw capture's resampler runs beside the processed one's from the first pair
            // on (both at the device rate, mono).
            let raw = match up.raw.take() {
                Some(q) if q.input_rate() == r.input_rate() => Ok(q),
                _ => Resampler::new(r.input_rate(), API_RATE, 1),
            };
            n = raw.and_then(|mut q| {
                let n = resample(&mut q, h, &mut up.resampled, &mut up.raw_pcm);
                up.raw = Some(q);
                n
            });
        } else if heard.is_none() {
            up.raw = None;
        }
        if let Err(e) = n {
            self.error(ErrorKind::Audio, "invalid_mic_block", e.message());
            return;
        }
        self.duck_on_mic();
        let up = &mut self.up;
        let heard = up.raw.is_some().then_some(&up.raw_pcm[..]);
        let sent = self.echo.gate(&up.pcm, heard, clock);
        up.captured_samples += sent.len() as u64;
        up.chunker.push(now_ms, sent);
        self.pump_audio(now_ms);
        self.report_overflow(now_ms, false);
    }

    /// Mic audio flows to the server: open, voice mode.
    pub(super) fn sending_audio(&self) -> bool {
        self.is_open() && self.mode == Mode::Voice
    }

    /// When the uplink wants `handle_timeout` (`Timer::Audio`).
    pub(super) fn audio_deadline(&self) -> Option<u64> {
        if !self.sending_audio() {
            return None;
        }
        self.up
            .flow_recheck_at
            .or_else(|| self.up.chunker.next_ready_ms(0))
    }

    /// Hands every ready chunk to the socket, unless flow control holds it back (then it waits
    /// in the chunker's backlog: nothing is lost or sent twice).
    pub(super) fn pump_audio(&mut self, now_ms: u64) {
        if !self.sending_audio() {
            return;
        }
        if !self.socket_accepts_audio() {
            self.up.flow_recheck_at = Some(now_ms + FLOW_RECHECK_MS);
            return;
        }
        self.up.flow_recheck_at = None;
        while let Some(info) = self.up.chunker.poll_chunk(now_ms, &mut self.up.chunk) {
            let chunk = &self.up.chunk;
            let mut frame = String::with_capacity(48 + pcm16::encoded_len(chunk.len() * 2));
            frame.push_str("{\"type\":\"input_audio_buffer.append\",\"audio\":\"");
            pcm16::encode_i16_as_pcm16_base64(chunk, &mut frame);
            frame.push_str("\"}");
            let delay = now_ms.saturating_sub(info.captured_at_ms);
            self.snap.capture_to_send_last_ms = Some(delay);
            self.snap.capture_to_send_max_ms = self.snap.capture_to_send_max_ms.max(delay);
            self.up.capture_delay_sum += delay;
            self.up.capture_delay_count += 1;
            self.up.sent_samples += chunk.len() as u64;
            self.send(frame);
            if !self.socket_accepts_audio() {
                self.up.flow_recheck_at = Some(now_ms + FLOW_RECHECK_MS);
                return;
            }
        }
    }

    /// An `audio_overflow` error for mic audio dropped beyond the backlog bound (at most one a
    /// second unless `force`; the next one carries what was dropped meanwhile).
    pub(super) fn report_overflow(&mut self, now_ms: u64, force: bool) {
        let dropped = self.up.chunker.dropped_samples();
        if dropped <= self.up.dropped_reported {
            return;
        }
        if !force
            && self
                .up
                .last_overflow_event
                .is_some_and(|t| now_ms < t + OVERFLOW_EVENT_EVERY_MS)
        {
            return;
        }
        let new_ms = (dropped - self.up.dropped_reported) * 1000 / u64::from(API_RATE);
        self.up.dropped_reported = dropped;
        self.up.last_overflow_event = Some(now_ms);
        let total_ms = dropped * 1000 / u64::from(API_RATE);
        self.error(
            ErrorKind::Audio,
            "audio_overflow",
            concat(&[
                S("dropped "),
                N(new_ms),
                S(" ms of microphone audio beyond the "),
                N(u64::from(self.cfg.max_backlog_ms)),
                S(" ms backlog bound ("),
                N(total_ms),
                S(" ms in total)"),
            ]),
        );
    }

    /// Asks the shell to start audio (voice mode) unless it runs or was asked already.
    pub(super) fn start_audio(&mut self) {
        if self.mode == Mode::Voice && matches!(self.up.audio, Audio::Off) {
            self.up.audio = Audio::Requested;
            self.devices_starting();
            self.out.push_back(Output::StartAudio);
        }
    }

    pub(super) fn stop_audio(&mut self) {
        self.up.audio_state = None;
        self.devices.reset();
        self.play.audio_stopped();
        self.echo.forget_duck();
        if !matches!(self.up.audio, Audio::Off) {
            self.up.audio = Audio::Off;
            self.out.push_back(Output::StopAudio);
        }
        self.up.chunker.clear();
        self.up.flow_recheck_at = None;
        self.play.assistant_speaking = false;
    }
}
