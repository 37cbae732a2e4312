//! Server voice activity detection on input energy, like OpenAI's `server_vad`: speech starts once
//! `start_ms` of 10 ms frames above the threshold gathered within `start_ms` + 50 ms, and stops
//! after `silence_ms` below it. Positions are in milliseconds of input audio (24 kHz samples), not
//! wall-clock time.

/// Samples per analysis frame: 10 ms at 24 kHz.
const FRAME: usize = 240;

/// Quiet frames tolerated among the loud ones of a start: speech has 10–30 ms dips between
/// syllables (deeper still after a browser's noise suppression), which a model-based VAD such as
/// OpenAI's rides over; echo residue that is loud only in patches does not fill the window.
const START_DIP_FRAMES: u32 = 5;

/// VAD tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadParams {
    /// Frame RMS threshold in dBFS (default −40).
    pub threshold_dbfs: f64,
    /// Loud audio needed before `speech_started` (default 150 ms).
    pub start_ms: u64,
    /// Quiet audio needed before `speech_stopped` (default 500 ms).
    pub silence_ms: u64,
    /// Audio before the detected start reported in `audio_start_ms` (default 300 ms).
    pub prefix_padding_ms: u64,
}

impl Default for VadParams {
    fn default() -> Self {
        Self {
            threshold_dbfs: -40.0,
            start_ms: 150,
            silence_ms: 500,
            prefix_padding_ms: 300,
        }
    }
}

/// A VAD transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VadEvent {
    /// Speech began; `audio_start_ms` includes the prefix padding.
    Started {
        /// Start of the speech (minus padding), ms of input audio.
        audio_start_ms: u64,
    },
    /// Speech ended.
    Stopped {
        /// End of the last loud frame, ms of input audio.
        audio_end_ms: u64,
        /// Loud span from the first to the last loud frame, ms.
        speech_ms: u64,
        /// Where the silence was confirmed (`audio_end_ms` + silence), ms of input audio.
        detected_at_ms: u64,
    },
}

/// Streaming energy VAD; constant memory.
#[derive(Debug, Clone)]
pub struct Vad {
    params: VadParams,
    threshold_sq: f64,
    frame_sumsq: f64,
    frame_len: usize,
    frames: u64,
    /// The last 64 frames, newest in bit 0: set where loud.
    recent: u64,
    quiet_run: u64,
    run_start_frame: u64,
    in_speech: bool,
    last_loud_end_frame: u64,
}

impl Vad {
    /// A detector with `params`.
    pub fn new(params: VadParams) -> Self {
        let rms = 32768.0 * 10f64.powf(params.threshold_dbfs / 20.0);
        Self {
            params,
            threshold_sq: rms * rms,
            frame_sumsq: 0.0,
            frame_len: 0,
            frames: 0,
            recent: 0,
            quiet_run: 0,
            run_start_frame: 0,
            in_speech: false,
            last_loud_end_frame: 0,
        }
    }

    /// Current parameters.
    pub fn params(&self) -> VadParams {
        self.params
    }

    /// Whether speech is in progress.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Forgets the current speech state (after a clear or manual commit); the timeline goes on.
    pub fn reset(&mut self) {
        self.recent = 0;
        self.quiet_run = 0;
        self.in_speech = false;
    }

    /// Feeds samples; transitions are appended to `events`.
    pub fn push(&mut self, samples: impl IntoIterator<Item = i16>, events: &mut Vec<VadEvent>) {
        for s in samples {
            let v = s as f64;
            self.frame_sumsq += v * v;
            self.frame_len += 1;
            if self.frame_len == FRAME {
                let loud = self.frame_sumsq / FRAME as f64 > self.threshold_sq;
                self.frame_sumsq = 0.0;
                self.frame_len = 0;
                self.on_frame(loud, events);
            }
        }
    }

    fn on_frame(&mut self, loud: bool, events: &mut Vec<VadEvent>) {
        let frame = self.frames;
        self.frames += 1;
        self.recent = (self.recent << 1) | u64::from(loud);
        if loud {
            self.quiet_run = 0;
            self.last_loud_end_frame = frame + 1;
            let need = self.params.start_ms.div_ceil(10).clamp(1, 59) as u32;
            let window = need + START_DIP_FRAMES;
            let in_window = self.recent & (u64::MAX >> (64 - window));
            if !self.in_speech && in_window.count_ones() >= need {
                self.in_speech = true;
                // The window's oldest loud frame.
                self.run_start_frame = frame - u64::from(63 - in_window.leading_zeros());
                events.push(VadEvent::Started {
                    audio_start_ms: (self.run_start_frame * 10)
                        .saturating_sub(self.params.prefix_padding_ms),
                });
            }
        } else if self.in_speech {
            self.quiet_run += 1;
            if self.quiet_run * 10 >= self.params.silence_ms {
                self.in_speech = false;
                self.quiet_run = 0;
                events.push(VadEvent::Stopped {
                    audio_end_ms: self.last_loud_end_frame * 10,
                    speech_ms: (self.last_loud_end_frame - self.run_start_frame) * 10,
                    detected_at_ms: self.frames * 10,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: usize, amp: f64) -> Vec<i16> {
        (0..ms * 24)
            .map(|i| {
                (amp * 32767.0 * (i as f64 * 2.0 * std::f64::consts::PI * 220.0 / 24000.0).sin())
                    as i16
            })
            .collect()
    }

    #[test]
    fn detects_a_2400_ms_utterance() {
        let mut v = Vad::new(VadParams::default());
        let mut ev = Vec::new();
        v.push(tone(1000, 0.0), &mut ev);
        assert!(ev.is_empty());
        v.push(tone(2400, 0.1), &mut ev); // −23 dBFS RMS
        assert_eq!(
            ev,
            vec![VadEvent::Started {
                audio_start_ms: 700
            }]
        );
        v.push(tone(490, 0.0), &mut ev);
        assert_eq!(ev.len(), 1);
        v.push(tone(10, 0.0), &mut ev);
        assert_eq!(
            ev[1],
            VadEvent::Stopped {
                audio_end_ms: 3400,
                speech_ms: 2400,
                detected_at_ms: 3900,
            }
        );
    }

    #[test]
    fn quiet_noise_and_short_clicks_are_not_speech() {
        let mut v = Vad::new(VadParams::default());
        let mut ev = Vec::new();
        v.push(tone(3000, 0.005), &mut ev); // about −49 dBFS RMS
        v.push(tone(100, 0.5), &mut ev); // 100 ms click < 150 ms
        v.push(tone(1000, 0.0), &mut ev);
        assert!(ev.is_empty());
    }

    /// `loud_ms` on, `dip_ms` off, repeated for `ms`.
    fn syllables(ms: usize, loud_ms: usize, dip_ms: usize) -> Vec<i16> {
        let mut out = Vec::new();
        while out.len() < ms * 24 {
            out.extend(tone(loud_ms, 0.1));
            out.extend(tone(dip_ms, 0.0));
        }
        out.truncate(ms * 24);
        out
    }

    #[test]
    fn speech_with_short_dips_between_syllables_starts() {
        let mut v = Vad::new(VadParams::default());
        let mut ev = Vec::new();
        v.push(tone(1000, 0.0), &mut ev);
        // 80 ms syllables with 20 ms dips: never 150 ms loud in a row.
        v.push(syllables(1000, 80, 20), &mut ev);
        assert_eq!(
            ev,
            vec![VadEvent::Started {
                audio_start_ms: 700
            }]
        );
    }

    #[test]
    fn patchy_audio_is_not_speech_but_dense_syllables_are() {
        for (loud, dip) in [(50, 50), (100, 200), (140, 60)] {
            let mut v = Vad::new(VadParams::default());
            let mut ev = Vec::new();
            v.push(syllables(3000, loud, dip), &mut ev);
            assert!(ev.is_empty(), "{loud} ms loud, {dip} ms quiet: {ev:?}");
        }
        // 30 ms on, 10 ms off fills 15 of any 20 frames.
        let mut v = Vad::new(VadParams::default());
        let mut ev = Vec::new();
        v.push(syllables(3000, 30, 10), &mut ev);
        assert_eq!(ev, vec![VadEvent::Started { audio_start_ms: 0 }]);
    }
}
