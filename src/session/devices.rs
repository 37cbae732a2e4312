//! Audio devices that come and go: the microphone the app chose and the one in use, the output
//! device, and the recovery of a microphone that stopped (track ended, device unplugged, a
//! Bluetooth headset taking over). The session reopens the chosen microphone if it is still
//! present, else the default one, in a few tries spaced by [`Timer::Mic`](super::Timer::Mic);
//! only when none of them works does it fall back to text mode. An output device that
//! disappears is replaced by the default one. Every change is reported on the `audio` event.

use super::events::AppEvent;
use super::machine::Session;
use super::output::{AudioFailure, Output};
use super::status::{AudioState, Mode};
use super::uplink::Audio;
use crate::protocol::json;

/// Tries to reopen a lost microphone before falling back to text mode.
pub const MIC_REOPEN_TRIES: u32 = 4;
/// Wait before the second try; doubled for each next one, up to [`MIC_RETRY_MAX_MS`].
pub const MIC_RETRY_BASE_MS: u64 = 500;
/// Longest wait between two tries.
pub const MIC_RETRY_MAX_MS: u64 = 2_000;
/// An `Output::OpenMic` not answered by then counts as a failed try (a getUserMedia that hangs).
pub const MIC_OPEN_TIMEOUT_MS: u64 = 5_000;
/// Device ids kept per kind from `handle_devices_changed` (more are ignored).
const MAX_DEVICES: usize = 64;

/// Why the microphone stopped delivering audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MicLoss {
    /// The track ended (unplugged, the system took the device, permission revoked).
    TrackEnded,
    /// The device in use is no longer listed (`devicechange`).
    DeviceRemoved,
    /// The wasm echo canceller stopped working: the microphone is reopened with the browser's
    /// canceller.
    EchoCancellerFailed,
}

impl MicLoss {
    /// The snake_case reason used on the `audio` event.
    pub fn as_str(self) -> &'static str {
        match self {
            MicLoss::TrackEnded => "track_ended",
            MicLoss::DeviceRemoved => "device_removed",
            MicLoss::EchoCancellerFailed => "echo_canceller_failed",
        }
    }
}

/// Which side of the audio a [`DeviceChange`] concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceKind {
    /// The microphone.
    Mic,
    /// The output device (where the AI's voice plays).
    Output,
}

impl DeviceKind {
    /// `mic` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Mic => "mic",
            DeviceKind::Output => "output",
        }
    }
}

/// A device change the session acted on, carried by the `audio` event: a microphone being
/// reopened (`recovering`) or audio flowing again on another device (`recovered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChange {
    /// Microphone or output.
    pub kind: DeviceKind,
    /// False while a try is under way, true once audio flows again.
    pub recovered: bool,
    /// `track_ended`, `device_removed`, `device_returned`, `format_changed` or `sink_failed`.
    pub reason: &'static str,
    /// The device tried or now in use (`None`: the browser's default).
    pub device: Option<String>,
    /// The try number (1 for the first; 0 for a change that needed no try).
    pub attempt: u32,
}

impl DeviceChange {
    /// Appends `,"recovering"|"recovered":kind,"reason":…,"device":…,"attempt":n` to an
    /// `audio` event's JSON object.
    pub(super) fn write_fields(&self, s: &mut String) {
        s.push_str(if self.recovered {
            ",\"recovered\":\""
        } else {
            ",\"recovering\":\""
        });
        s.push_str(self.kind.as_str());
        s.push_str("\",\"reason\":\"");
        s.push_str(self.reason);
        s.push_str("\",\"device\":");
        json::write_str(s, self.device.as_deref().unwrap_or("default"));
        s.push_str(",\"attempt\":");
        json::write_u64(s, u64::from(self.attempt));
    }
}

/// An `Output::OpenMic` the shell has not answered yet.
#[derive(Debug)]
struct PendingOpen {
    seq: u64,
    device: Option<String>,
    deadline: u64,
    /// The chosen device is back after a fallback to the default one.
    returned: bool,
}

/// A lost microphone being reopened.
#[derive(Debug)]
struct Recovery {
    loss: MicLoss,
    /// Tries made so far.
    attempt: u32,
    /// The next try, while waiting between two.
    retry_at: Option<u64>,
    /// The chosen device was tried and is absent: the next tries use the default one.
    chosen_failed: bool,
    /// Why the last try failed.
    last_failure: Option<AudioFailure>,
}

/// The session's view of the audio devices.
#[derive(Debug, Default)]
pub(super) struct Devices {
    /// The microphone the app chose (`None`: the browser's default).
    chosen_input: Option<String>,
    /// The output device the app chose (`None`: the default).
    chosen_output: Option<String>,
    /// Device ids last listed by the shell (`None`: not known, e.g. before permission).
    inputs: Option<Vec<String>>,
    outputs: Option<Vec<String>>,
    /// The device of the running microphone (`None`: the default, or as started).
    mic: Option<String>,
    /// The output device in use (`None`: the default).
    sink: Option<String>,
    open: Option<PendingOpen>,
    seq: u64,
    recovery: Option<Recovery>,
}

impl Devices {
    pub fn new(sink: Option<String>) -> Devices {
        Devices {
            chosen_output: sink.clone(),
            sink,
            ..Devices::default()
        }
    }

    /// When `Timer::Mic` is due: the next try, or the deadline of the open in progress.
    pub fn deadline(&self) -> Option<u64> {
        let retry = self.recovery.as_ref().and_then(|r| r.retry_at);
        let open = self.open.as_ref().map(|o| o.deadline);
        retry.into_iter().chain(open).min()
    }

    /// Forgets what was in progress (audio stopped).
    pub fn reset(&mut self) {
        self.open = None;
        self.recovery = None;
    }

    /// The microphone to open now: the chosen one unless it is known to be absent.
    fn target(&self) -> Option<String> {
        let failed = self.recovery.as_ref().is_some_and(|r| r.chosen_failed);
        self.chosen_input
            .clone()
            .filter(|d| !failed && self.input_listed(Some(d)))
    }

    /// Whether microphone `id` may be present (`None`: the default, present unless no
    /// microphone is listed at all).
    fn input_listed(&self, id: Option<&String>) -> bool {
        match (id, &self.inputs) {
            (Some(id), Some(list)) => list.contains(id),
            (None, Some(list)) => !list.is_empty(),
            (_, None) => true,
        }
    }
}

/// A device list as known ids, or `None` when it tells nothing (an id is empty: listed before
/// the permission).
fn listed<S: AsRef<str>>(ids: &[S]) -> Option<Vec<String>> {
    if ids.iter().any(|d| d.as_ref().is_empty()) {
        return None;
    }
    Some(
        ids.iter()
            .take(MAX_DEVICES)
            .map(|d| d.as_ref().to_string())
            .collect(),
    )
}

impl Session {
    /// The microphone the shell should open when it starts audio (`Output::StartAudio`): the
    /// chosen one (`set_input_device`), unless it is known to be gone; `None` for the default.
    pub fn input_device(&self) -> Option<&str> {
        let d = &self.devices;
        d.chosen_input
            .as_ref()
            .filter(|c| d.input_listed(Some(c)))
            .map(String::as_str)
    }

    /// The output device the shell should play to when it (re)builds the player (`None`: the
    /// default).
    pub fn output_device(&self) -> Option<&str> {
        self.devices.sink.as_deref()
    }

    /// Whether a lost microphone is being reopened (a try in progress or a wait between two).
    pub fn mic_recovering(&self) -> bool {
        self.devices.recovery.is_some()
    }

    /// The app chooses a microphone (`None`: the default). While the microphone runs it is
    /// reopened on that device at once (`Output::OpenMic`); before audio starts the choice is
    /// what the shell opens ([`Session::input_device`]); while audio is starting, it is opened
    /// as soon as audio runs.
    pub fn set_input_device(&mut self, now_ms: u64, device_id: Option<&str>) {
        self.last_now = now_ms;
        self.devices.chosen_input = device_id.map(str::to_string);
        if let Some(r) = self.devices.recovery.as_mut() {
            // The next try uses the new choice.
            r.chosen_failed = false;
            return;
        }
        if self.mode == Mode::Voice && matches!(self.up.audio, Audio::Running(_)) {
            let device = self.devices.chosen_input.clone();
            self.open_mic(now_ms, device, false);
        }
    }

    /// The app chooses the output device (`None`: the default): `Output::SetSink` while audio
    /// runs; otherwise the choice applies when audio starts ([`Session::output_device`]).
    pub fn set_output_device(&mut self, now_ms: u64, device_id: Option<&str>) {
        self.last_now = now_ms;
        self.devices.chosen_output = device_id.map(str::to_string);
        self.devices.sink = self.devices.chosen_output.clone();
        if !matches!(self.up.audio, Audio::Off) {
            self.out.push_back(Output::SetSink {
                device_id: self.devices.sink.clone(),
            });
        }
    }

    /// The microphone stopped delivering audio (its track ended). In voice mode with audio
    /// started, the session reopens it: the chosen device if still present, else the default,
    /// up to [`MIC_REOPEN_TRIES`] times; text mode only when every try failed.
    pub fn handle_mic_lost(&mut self, now_ms: u64, loss: MicLoss) {
        self.last_now = now_ms;
        if self.mode != Mode::Voice
            || matches!(self.up.audio, Audio::Off)
            || self.devices.recovery.is_some()
        {
            return;
        }
        self.devices.recovery = Some(Recovery {
            loss,
            attempt: 0,
            retry_at: None,
            chosen_failed: false,
            last_failure: None,
        });
        self.try_reopen(now_ms);
    }

    /// The shell's devices as listed after a `devicechange`: ids of the microphones and of
    /// the output devices, as `enumerateDevices()` gives them (`outputs: None` where the
    /// browser cannot choose the output device: no `setSinkId`). A list with an empty id (listed
    /// before the permission) tells nothing; an empty list means none is plugged in. A
    /// microphone in use that is gone is reopened (reason `device_removed`); a chosen one that
    /// is back is used again (`device_returned`); an output device that is gone is replaced by
    /// the default one.
    pub fn handle_devices_changed<S: AsRef<str>>(
        &mut self,
        now_ms: u64,
        inputs: &[S],
        outputs: Option<&[S]>,
    ) {
        self.last_now = now_ms;
        if let Some(inputs) = listed(inputs) {
            self.devices.inputs = Some(inputs);
        }
        let outputs = outputs.and_then(listed);
        let outputs_listed = outputs.is_some();
        if outputs_listed {
            self.devices.outputs = outputs;
        }
        if self.mode != Mode::Voice || !matches!(self.up.audio, Audio::Running(_)) {
            return;
        }
        let d = &self.devices;
        let present = |id: &Option<String>| d.input_listed(id.as_ref());
        if let Some(r) = &self.devices.recovery {
            // Something came: try at once instead of waiting.
            if r.retry_at.is_some() {
                self.try_reopen(now_ms);
            }
        } else if self.devices.open.is_none() {
            if !present(&d.mic) {
                self.handle_mic_lost(now_ms, MicLoss::DeviceRemoved);
            } else if d.chosen_input.is_some()
                && d.mic != d.chosen_input
                && present(&d.chosen_input)
            {
                let device = d.chosen_input.clone();
                self.open_mic(now_ms, device, true);
            }
        }
        if outputs_listed {
            self.check_sink();
        }
    }

    /// The shell opened the microphone asked for by `Output::OpenMic { seq, .. }` and feeds it
    /// to the capture path; its format reaches the session with the next frames
    /// (`handle_audio_started` again, which rebuilds the resampler if it changed).
    pub fn handle_mic_opened(&mut self, now_ms: u64, seq: u64) {
        self.last_now = now_ms;
        let Some(open) = self.devices.open.take_if(|o| o.seq == seq) else {
            return;
        };
        self.devices.mic = open.device.clone();
        let (reason, attempt) = match self.devices.recovery.take() {
            Some(r) => (r.loss.as_str(), r.attempt),
            None if open.returned => ("device_returned", 0),
            None => return,
        };
        self.device_event(DeviceKind::Mic, true, reason, open.device, attempt);
    }

    /// The microphone asked for by `Output::OpenMic { seq, .. }` could not be opened. A switch
    /// the app asked for leaves the previous microphone running; a recovery tries again after a
    /// wait (the default device if the chosen one is absent), or falls back to text mode when
    /// the tries are used up or the permission was withdrawn.
    pub fn handle_mic_open_failed(&mut self, now_ms: u64, seq: u64, failure: AudioFailure) {
        self.last_now = now_ms;
        let Some(open) = self.devices.open.take_if(|o| o.seq == seq) else {
            return;
        };
        self.reopen_failed(now_ms, open.device.is_some(), failure);
    }

    /// Timer::Mic: the next try is due, or an open was not answered in time.
    pub(super) fn mic_timeouts(&mut self, now_ms: u64) {
        if let Some(open) = self.devices.open.take_if(|o| o.deadline <= now_ms) {
            self.reopen_failed(now_ms, open.device.is_some(), AudioFailure::Other);
        }
        let due = self
            .devices
            .recovery
            .as_ref()
            .and_then(|r| r.retry_at)
            .is_some_and(|t| t <= now_ms);
        if due {
            self.try_reopen(now_ms);
        }
    }

    /// Audio is being started (`Output::StartAudio`): the shell opens [`Session::input_device`]
    /// as it is now, so that is the microphone that will run.
    pub(super) fn devices_starting(&mut self) {
        self.devices.mic = self.input_device().map(str::to_string);
    }

    /// Audio started on the microphone [`Self::devices_starting`] recorded. A choice the app
    /// made while it was opening (`set_input_device` before audio ran) is opened now.
    pub(super) fn devices_started(&mut self, now_ms: u64) {
        let wanted = self.input_device().map(str::to_string);
        if wanted != self.devices.mic {
            self.open_mic(now_ms, wanted, false);
        }
    }

    /// The microphone's format changed under a running session (a Bluetooth headset switching
    /// profile, a new device): reported on the `audio` event.
    pub(super) fn mic_format_changed(&mut self) {
        let device = self.devices.mic.clone();
        self.device_event(DeviceKind::Mic, true, "format_changed", device, 0);
    }

    /// The output device could not be selected (`setSinkId` rejected): back to the default.
    pub fn handle_sink_failed(&mut self, _now_ms: u64) {
        if self.devices.sink.is_none() || matches!(self.up.audio, Audio::Off) {
            return;
        }
        self.devices.sink = None;
        self.out.push_back(Output::SetSink { device_id: None });
        self.device_event(DeviceKind::Output, true, "sink_failed", None, 0);
    }

    fn try_reopen(&mut self, now_ms: u64) {
        let Some(r) = self.devices.recovery.as_mut() else {
            return;
        };
        r.attempt += 1;
        r.retry_at = None;
        let (loss, attempt) = (r.loss, r.attempt);
        let device = self.devices.target();
        self.open_mic(now_ms, device.clone(), false);
        self.device_event(DeviceKind::Mic, false, loss.as_str(), device, attempt);
    }

    fn reopen_failed(&mut self, now_ms: u64, was_chosen: bool, failure: AudioFailure) {
        let Some(r) = self.devices.recovery.as_mut() else {
            // A switch the app asked for: the previous microphone still runs.
            let why = String::from("cannot open the microphone: ") + failure.as_str();
            self.error(super::events::ErrorKind::Audio, "mic_switch_failed", why);
            return;
        };
        r.last_failure = Some(failure);
        if was_chosen && failure == AudioFailure::MicAbsent {
            r.chosen_failed = true;
        }
        if r.attempt < MIC_REOPEN_TRIES && failure != AudioFailure::MicDenied {
            let wait = (MIC_RETRY_BASE_MS << (r.attempt - 1).min(8)).min(MIC_RETRY_MAX_MS);
            r.retry_at = Some(now_ms + wait);
            return;
        }
        let reason = match (failure, r.loss) {
            (AudioFailure::MicDenied, _) => AudioFailure::MicDenied,
            (AudioFailure::MicAbsent, _) | (_, MicLoss::DeviceRemoved) => AudioFailure::MicAbsent,
            _ => AudioFailure::TrackEnded,
        };
        self.devices.reset();
        self.handle_audio_failed(now_ms, reason);
    }

    /// The microphone's constraints changed (the wasm echo canceller gave way to the
    /// browser's). An open still in flight was asked with the old ones: it is asked again, and
    /// its own answer no longer counts. Otherwise the microphone in use is reopened (`loss`).
    pub(super) fn reopen_for_new_constraints(&mut self, now_ms: u64, loss: MicLoss) {
        match self.devices.open.take() {
            Some(open) => self.open_mic(now_ms, open.device, open.returned),
            None => self.handle_mic_lost(now_ms, loss),
        }
    }

    fn open_mic(&mut self, now_ms: u64, device: Option<String>, returned: bool) {
        self.devices.seq += 1;
        let seq = self.devices.seq;
        self.devices.open = Some(PendingOpen {
            seq,
            device: device.clone(),
            deadline: now_ms + MIC_OPEN_TIMEOUT_MS,
            returned,
        });
        self.out.push_back(Output::OpenMic {
            device_id: device,
            seq,
        });
    }

    /// The output device in use is gone: the default one; a chosen one that is back: it again.
    fn check_sink(&mut self) {
        let d = &self.devices;
        let Some(outputs) = &d.outputs else {
            return;
        };
        let (next, reason) = match (&d.sink, &d.chosen_output) {
            (Some(s), _) if !outputs.contains(s) => (None, "device_removed"),
            (None, Some(c)) if outputs.contains(c) => (Some(c.clone()), "device_returned"),
            _ => return,
        };
        self.devices.sink = next.clone();
        self.out.push_back(Output::SetSink {
            device_id: next.clone(),
        });
        self.device_event(DeviceKind::Output, true, reason, next, 0);
    }

    fn device_event(
        &mut self,
        kind: DeviceKind,
        recovered: bool,
        reason: &'static str,
        device: Option<String>,
        attempt: u32,
    ) {
        let state = self.up.audio_state.unwrap_or(AudioState::Running);
        self.push_event(AppEvent::Audio {
            state,
            needs_gesture: matches!(state, AudioState::Suspended | AudioState::Interrupted),
            device: Some(DeviceChange {
                kind,
                recovered,
                reason,
                device,
                attempt,
            }),
        });
    }
}
