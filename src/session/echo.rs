//! Session glue of the echo guard (`crate::audio::echo_guard`): the reference comes from the
//! playback path (decoded deltas, then played-sample progress), the gate sits in the uplink
//! between the capture resampler and the chunker, and the server VAD's `speech_started` is
//! checked against what the guard saw. Option `echoGuard`: "auto" (the default) gates once the
//! capture is shown to follow what is played, judging by a raw capture beside the processed one
//! where the browser is known to give both (desktop Chromium, Firefox on Linux and Windows);
//! "raw" wherever it gives both, "processed" never; "off" only measures.
//!
//! Also the ducker (option `bargeInDuck`, `crate::audio::duck`): the assistant turned down while
//! the microphone is loud over it, so that the canceller lets a barge-in through.
//!
//! Also the echo canceller in use (option `echoCanceller`): the browser's, or the opt-in wasm
//! one in the capture worklet (whose frames come as a pair: its output sent, the microphone as
//! it came judged), which falls back to the browser's for the rest of the session when it
//! cannot load or stops working (`Session::handle_echo_canceller_failed`).

use super::config::{EchoCanceller, RawCapture};
use super::devices::MicLoss;
use super::events::ErrorKind;
use super::machine::Session;
use super::metrics::MetricsSnapshot;
use super::output::Output;
use crate::audio::duck::{Ducker, DUCK_DB};
use crate::audio::echo_guard::{Capture, EchoGuard};

/// The guard and its output buffer (reused: no allocation per block once grown), and the
/// echo canceller in use.
#[derive(Debug)]
pub(super) struct EchoPath {
    pub guard: EchoGuard,
    out: Vec<i16>,
    /// Where the shell is asked to capture the microphone raw beside the processed capture
    /// for the guard to judge by (`Capture::Pair` while it does).
    raw: RawCapture,
    pub canceller: Canceller,
    /// The ducker, unless `bargeInDuck` is "off".
    pub ducker: Option<Ducker>,
    /// Whether the server interrupts the assistant when the user speaks (its turn detection,
    /// as the last `session.created`/`updated` said; assumed until it says otherwise). Without
    /// it a duck would only hold the assistant down: the ducker is disarmed.
    pub server_interrupts: bool,
}

/// The echo canceller in use; the wasm one with its last figures.
#[derive(Debug, Clone, Copy)]
pub(super) enum Canceller {
    Browser,
    /// None: the raw microphone, the guard alone against the echo.
    None,
    Wasm {
        stats: Option<AecStats>,
    },
}

impl Canceller {
    /// What the guard judges behind this canceller: a pair where the raw capture comes beside
    /// the processed one, the raw capture where there is no canceller, else the processed one.
    fn capture(self, pair: bool) -> Capture {
        match (pair, self) {
            (true, _) => Capture::Pair,
            (false, Canceller::None) => Capture::Raw,
            _ => Capture::Processed,
        }
    }

    /// Which canceller this is, as the options name it.
    fn kind(self) -> EchoCanceller {
        match self {
            Canceller::Browser => EchoCanceller::Browser,
            Canceller::None => EchoCanceller::None,
            Canceller::Wasm { .. } => EchoCanceller::Wasm,
        }
    }

    /// The wasm canceller's last figures; none for the browser's.
    fn stats(self) -> Option<AecStats> {
        match self {
            Canceller::Browser | Canceller::None => None,
            Canceller::Wasm { stats } => stats,
        }
    }
}

/// What the wasm canceller last reported.
#[derive(Debug, Clone, Copy)]
pub(super) struct AecStats {
    /// How much quieter its output was than the microphone over the last second, dB.
    attenuation_db: f32,
    /// Its estimate of the echo path's delay, ms.
    delay_ms: u32,
}

impl EchoPath {
    pub fn new(gating: bool, canceller: EchoCanceller, duck: bool, raw: RawCapture) -> EchoPath {
        let raw = match canceller {
            EchoCanceller::Browser => raw,
            _ => RawCapture::Never,
        };
        let canceller = match canceller {
            EchoCanceller::Wasm => Canceller::Wasm { stats: None },
            EchoCanceller::None => Canceller::None,
            _ => Canceller::Browser,
        };
        // The wasm canceller hands the microphone as it came beside its output.
        let hears_raw = raw != RawCapture::Never || matches!(canceller, Canceller::Wasm { .. });
        EchoPath {
            // Judging raw capture from the start where the pair is asked for: its reference
            // then has bands from the first item.
            guard: EchoGuard::for_capture(gating, canceller.capture(hears_raw)),
            out: Vec::new(),
            raw,
            // Without a canceller there is no suppressor for a duck to open; ducking on the
            // raw echo (always loud) would only pump the assistant's voice.
            ducker: (duck && !matches!(canceller, Canceller::None)).then(Ducker::new),
            server_interrupts: true,
            canceller,
        }
    }

    /// Captured 24 kHz audio in, what goes on to the chunker out (the same, at once, unless
    /// the guard is guarding); `heard`: the raw capture beside it, judged instead; `clock`:
    /// the audio context's frame the block was captured from and the context's rate.
    pub fn gate(
        &mut self,
        pcm: &[i16],
        heard: Option<&[i16]>,
        clock: Option<(u64, u32)>,
    ) -> &[i16] {
        self.out.clear();
        if let Some((frame, rate)) = clock {
            self.guard.capture_clock(frame, rate);
        }
        let capture = self.canceller.capture(heard.is_some());
        self.guard.set_capture(capture, &mut self.out);
        self.sync_duck();
        match heard {
            Some(h) => self.guard.process_pair(h, pcm, &mut self.out),
            None => self.guard.process(pcm, &mut self.out),
        }
        &self.out
    }

    /// The player has played `played_total` samples (24 kHz) of item `slot` (the player's
    /// number for it), by the audio context's frame `at` if known: the guard places them on its
    /// reference (at the level the ducker leaves them).
    pub fn played(&mut self, slot: u32, played_total: u64, at: Option<u64>) {
        self.sync_duck();
        self.guard.played_at(slot, played_total, at);
    }

    /// The guard told whether the ducker holds the assistant down: the ducker's state is the
    /// one source, read before each input the guard judges by it.
    fn sync_duck(&mut self) {
        let ducked = self.ducker.as_ref().is_some_and(Ducker::ducked);
        self.guard.set_ducked(ducked);
    }

    /// The ducker back to watching without telling the player: it is stopping, or new and at
    /// full level.
    pub fn forget_duck(&mut self) {
        if let Some(d) = self.ducker.as_mut() {
            d.reset();
        }
    }

    /// Adds the guard's figures to a metrics snapshot.
    pub fn fill_metrics(&self, m: &mut MetricsSnapshot) {
        let s = self.guard.stats();
        m.echo_return_loss_db = s.return_loss_db.map(f64::from);
        m.echo_delay_ms = s.delay_ms.map(u64::from);
        m.echo_guarded_ms = s.guarded_ms;
        m.echo_held_ms = s.held_ms;
        m.suspected_self_interruptions = s.suspected_self_interruptions;
        m.echo_guard_raw = s.raw;
        m.echo_canceller = self.canceller.kind();
        let stats = self.canceller.stats();
        m.aec_attenuation_db = stats.map(|a| f64::from(a.attenuation_db));
        m.aec_delay_ms = stats.map(|a| u64::from(a.delay_ms));
        m.barge_in_ducks = self.ducker.as_ref().map_or(0, Ducker::ducks);
    }
}

impl Session {
    /// The ducker's look at the captured 24 kHz audio (`up.pcm`) while the assistant's voice
    /// plays.
    pub(super) fn duck_on_mic(&mut self) {
        let armed = self.play.assistant_speaking && self.echo.server_interrupts;
        // Judged on a pair with a path known: a duck lasts until its effect can be heard and
        // judged there.
        let min = self.echo.guard.duck_hold_frames().unwrap_or(0);
        if let Some(d) = self.echo.ducker.as_mut() {
            d.hold_at_least(min);
        }
        let pcm = &self.up.pcm;
        let change = self.echo.ducker.as_mut().and_then(|d| d.push(pcm, armed));
        if let Some(on) = change {
            let db = if on { DUCK_DB } else { 0 };
            self.out.push_back(Output::DuckPlayback { db });
        }
    }

    /// The server's turn detection, as a `session.created`/`updated` describes it: whether
    /// the user's voice interrupts the assistant. When it does not (push-to-talk), a duck is
    /// released and no new one is made.
    pub(super) fn learn_server_interrupts(&mut self, interrupts: bool) {
        self.echo.server_interrupts = interrupts;
        if !interrupts {
            self.release_duck();
        }
    }

    /// The assistant back at full level (interrupted, done, the microphone muted or stopped).
    pub(super) fn release_duck(&mut self) {
        if self.echo.ducker.as_mut().is_some_and(Ducker::reset) {
            self.out.push_back(Output::DuckPlayback { db: 0 });
        }
    }

    /// The echo canceller the shell sets up with the next microphone (`Output::StartAudio`,
    /// `Output::OpenMic`): the wasm one with the browser's processing off, or the browser's.
    pub fn echo_canceller(&self) -> EchoCanceller {
        self.echo.canceller.kind()
    }

    /// Whether the shell is asked to capture the raw microphone beside the processed one for
    /// the echo guard (`echoGuard` "auto" or "raw" with the browser's canceller) and to deliver
    /// the two with [`Session::handle_mic_pair`] where it can: [`Session::echo_raw_capture`]
    /// says where.
    pub fn echo_hears_raw(&self) -> bool {
        self.echo.raw != RawCapture::Never
    }

    /// Where the shell opens the raw capture beside the processed one (see [`RawCapture`]).
    pub fn echo_raw_capture(&self) -> RawCapture {
        self.echo.raw
    }

    /// The wasm echo canceller's figures (it reports them about once a second): how much
    /// quieter its output was than the microphone over the last second (dB) and its estimate
    /// of the echo path's delay (ms), for the metrics (a report that is not a number is
    /// ignored).
    pub fn handle_echo_canceller_stats(&mut self, now_ms: u64, attenuation_db: f32, delay_ms: u32) {
        self.last_now = now_ms;
        if !attenuation_db.is_finite() {
            return;
        }
        if let Canceller::Wasm { stats } = &mut self.echo.canceller {
            *stats = Some(AecStats {
                attenuation_db,
                delay_ms,
            });
        }
    }

    /// The wasm echo canceller could not be loaded or stopped working. The microphone it ran
    /// on has the browser's processing off, so it is reopened (reason `echo_canceller_failed`
    /// on the `audio` event) with the browser's canceller, which stays for the rest of the
    /// session; an open already in flight is asked again; an error event says why. Ignored
    /// unless the wasm canceller is the one in use.
    pub fn handle_echo_canceller_failed(&mut self, now_ms: u64) {
        self.last_now = now_ms;
        if !matches!(self.echo.canceller, Canceller::Wasm { .. }) {
            return;
        }
        self.echo.canceller = Canceller::Browser;
        self.error(
            ErrorKind::Audio,
            "echo_canceller_failed",
            "the wasm echo canceller could not run; the browser's is used instead".to_string(),
        );
        self.reopen_for_new_constraints(now_ms, MicLoss::EchoCancellerFailed);
    }
}
