//! The audio graph in one AudioContext at the device's native rate (never forced to 24 kHz:
//! Firefox refuses to connect a microphone of another rate):
//!
//! ```text
//! getUserMedia ─► MediaStreamSource ─► capture worklet ──port──► shell ─► core (resample, PCM16)
//! core ─► shell ──port──► playback worklet ─► MediaStreamDestination ─► <audio> (echo canceller
//!                                                                        sees it; setSinkId)
//! ```
//!
//! The browser calls are in `glue.js` (a few snippet functions instead of dozens of imported
//! web-sys methods); this module hands them what the core asked for and turns what they report
//! into [`AudioEvent`]s. Worklet modules load by URL from the package files (`worklets/*.js`
//! beside the glue), so a strict CSP without `blob:` works. Nothing here decides anything:
//! failures are reported as [`AudioFailure`]s and the core chooses what follows.

use std::rc::Rc;

use js_sys::{Array, Float32Array, Promise};
use wasm_bindgen::prelude::*;

use super::then;
use crate::session::{AudioFailure, RawCapture};

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = unlock)]
    fn unlock_js() -> JsValue;
    #[wasm_bindgen(js_name = openMic)]
    fn open_mic_js(constraints: &JsValue, device_id: Option<&str>) -> Promise;
    #[wasm_bindgen(js_name = stopTracks)]
    fn stop_tracks_js(stream: &JsValue);
    #[wasm_bindgen(js_name = start)]
    fn start_js(
        g: &JsValue,
        capture_url: &str,
        playback_url: &str,
        constraints: &JsValue,
        device_id: Option<&str>,
        prebuffer_ms: u32,
        aec_url: Option<&str>,
        raw_beside: u32,
        on: &JsValue,
    ) -> Promise;
    #[wasm_bindgen(catch, js_name = attach)]
    fn attach_js(g: &JsValue, stream: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = play)]
    fn play_js(g: &JsValue, item: u32, samples: &[f32], period: u32);
    #[wasm_bindgen(js_name = post)]
    fn post_js(g: &JsValue, kind: &str, n: u32);
    #[wasm_bindgen(js_name = resume)]
    fn resume_js(g: &JsValue);
    #[wasm_bindgen(js_name = route)]
    fn route_js(g: &JsValue, direct: bool);
    #[wasm_bindgen(js_name = hasSetSinkId)]
    fn has_set_sink_id_js() -> bool;
    #[wasm_bindgen(js_name = setSink)]
    fn set_sink_js(g: &JsValue, device_id: &str) -> Promise;
    #[wasm_bindgen(js_name = stop)]
    fn stop_js(g: &JsValue);
    #[wasm_bindgen(js_name = listDevices)]
    fn list_devices_js(kind: &str) -> Promise;
    #[wasm_bindgen(js_name = deviceIds)]
    fn device_ids_js() -> Promise;
}

/// What the graph reports to the shell.
#[derive(Debug)]
pub enum AudioEvent {
    /// Interleaved microphone frames at the context rate; `pair`: two channels, the processed
    /// capture and the raw one beside it ([`AudioOptions::raw_beside`]); `at`: the context's
    /// frame of the first (0 where the glue gives none, as `at` of `Progress`: the guard then
    /// places what played about where it would without the clock).
    Frames {
        frames: Float32Array,
        channels: u32,
        pair: bool,
        at: u64,
    },
    /// The playback worklet's progress for `item` (the core's number for it): frames played of
    /// it (context rate), total underruns and concealed late deltas, and the output level
    /// (linear RMS, peak) of the period; `at`: the context's frame by which that was played.
    Progress {
        item: u32,
        played: u64,
        at: u64,
        underruns: u32,
        concealed: u32,
        rms: f32,
        peak: f32,
    },
    /// The playback ring refused `frames` (it was full).
    Overflow { frames: u32 },
    /// `item` drained after its end marker: all of it was played.
    Finished { item: u32 },
    /// The microphone track ended (device unplugged, permission revoked).
    TrackEnded,
    /// The browser's devices changed (`devicechange` on `navigator.mediaDevices`).
    DevicesChanged,
    /// The context's state changed: "running", "suspended", "interrupted" (Safari) or "closed".
    ContextState(String),
    /// The opt-in echo canceller's figures, once a second: how much quieter its output was than
    /// the microphone (dB) and the echo path's delay (ms).
    EchoCancellerStats { attenuation_db: f32, delay_ms: u32 },
    /// The opt-in echo canceller could not be loaded or stopped working (the capture runs on
    /// without it).
    EchoCancellerFailed,
}

/// Options the shell passes through from the app.
#[derive(Debug, Clone)]
pub struct AudioOptions {
    /// URL of the capture worklet module.
    pub capture_url: String,
    /// URL of the playback worklet module.
    pub playback_url: String,
    /// The app's `getUserMedia` audio constraints as a JS object.
    pub constraints: JsValue,
    /// The microphone the session chose (`None`: the constraints as they are).
    pub device_id: Option<String>,
    /// Playback pre-buffer in milliseconds.
    pub prebuffer_ms: u32,
    /// The echo canceller module to run in the capture worklet (`None`: the browser's).
    pub echo_canceller_url: Option<String>,
    /// Where to also capture the microphone raw (the browser's processing off) beside the
    /// processed capture, for the echo guard; where the browser cannot, the processed capture
    /// alone.
    pub raw_beside: RawCapture,
}

/// The events' callback, called by `glue.js` as `on(kind, x, a, b, c, d, e)`.
type OnEvent = Closure<dyn FnMut(u32, JsValue, f64, f64, f64, f64, f64, f64)>;

/// The live graph. Dropping it does not stop it: call [`AudioGraph::stop`].
pub struct AudioGraph {
    g: JsValue,
    rate: u32,
    state: String,
    _on: OnEvent,
}

impl std::fmt::Debug for AudioGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioGraph")
            .field("rate", &self.rate)
            .finish()
    }
}

/// A failure `glue.js` reported: its code (1, 2) or getUserMedia's error.
fn failure(e: &JsValue) -> AudioFailure {
    match e.as_f64() {
        Some(1.0) => return AudioFailure::NoAudioWorklet,
        Some(_) => return AudioFailure::AudioContextFailed,
        None => {}
    }
    match get(e, "name").as_string().as_deref() {
        Some("NotAllowedError" | "SecurityError") => AudioFailure::MicDenied,
        Some("NotFoundError" | "OverconstrainedError") => AudioFailure::MicAbsent,
        _ => AudioFailure::Other,
    }
}

/// Creates the AudioContext and the output element *synchronously*, so that it happens inside the
/// user gesture that called `connect()` (Safari and iOS start audio only there), and resumes it.
/// The result is a graph object for [`AudioGraph::start`] (or [`close`]).
pub fn unlock() -> Result<JsValue, AudioFailure> {
    let g = unlock_js();
    if g.as_f64().is_some() {
        return Err(failure(&g));
    }
    Ok(g)
}

/// Closes a context from [`unlock`] that was never started.
pub fn close(g: &JsValue) {
    stop_js(g);
}

impl AudioGraph {
    /// Builds the graph in `g` (from [`unlock`]): loads both worklets, opens the microphone,
    /// connects everything, then calls `done` (always later, never inside the caller).
    pub fn start(
        g: JsValue,
        options: AudioOptions,
        sink: Rc<dyn Fn(AudioEvent)>,
        done: impl FnOnce(Result<AudioGraph, AudioFailure>) + 'static,
    ) {
        let on = OnEvent::new(move |kind, x: JsValue, a, b, c, d, e, f| {
            sink(match kind {
                0 => match x.dyn_into() {
                    Ok(frames) => AudioEvent::Frames {
                        frames,
                        channels: a as u32,
                        pair: b != 0.0,
                        at: c as u64,
                    },
                    Err(_) => return,
                },
                1 => AudioEvent::Progress {
                    item: a as u32,
                    played: b as u64,
                    at: f as u64,
                    underruns: c as u32,
                    concealed: x.as_f64().unwrap_or(0.0) as u32,
                    rms: d as f32,
                    peak: e as f32,
                },
                2 => AudioEvent::Overflow { frames: a as u32 },
                3 => AudioEvent::Finished { item: a as u32 },
                4 => AudioEvent::TrackEnded,
                5 => AudioEvent::DevicesChanged,
                7 if x.is_null() => AudioEvent::EchoCancellerStats {
                    attenuation_db: a as f32,
                    delay_ms: b as u32,
                },
                7 => AudioEvent::EchoCancellerFailed,
                _ => AudioEvent::ContextState(x.as_string().unwrap_or_default()),
            })
        });
        let started = start_js(
            &g,
            &options.capture_url,
            &options.playback_url,
            &options.constraints,
            options.device_id.as_deref(),
            options.prebuffer_ms,
            options.echo_canceller_url.as_deref(),
            // The glue's `raw`: 0 never, 1 where known, 2 wherever given.
            match options.raw_beside {
                RawCapture::Never => 0,
                RawCapture::WhereKnown => 1,
                RawCapture::WhereGiven => 2,
            },
            on.as_ref(),
        );
        then(Ok(started.into()), move |r| {
            done(r.map_err(|e| failure(&e)).map(|info| {
                let info: Array = info.unchecked_into();
                AudioGraph {
                    g,
                    rate: info.get(0).as_f64().unwrap_or(0.0) as u32,
                    state: info.get(1).as_string().unwrap_or_default(),
                    _on: on,
                }
            }))
        });
    }

    /// Connects `stream` to the capture worklet, then retires the previous stream; on failure
    /// the new stream is stopped and the previous one keeps running.
    pub fn attach_stream(&mut self, stream: JsValue) -> Result<(), AudioFailure> {
        attach_js(&self.g, &stream).map_err(|_| AudioFailure::AudioContextFailed)
    }

    /// The context's sample rate (the rate of captured frames and of playback).
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The context's state as the browser named it once the graph was built.
    pub fn state(&self) -> String {
        self.state.clone()
    }

    /// Plays straight to the context's destination (`direct`: the wasm echo canceller runs,
    /// the browser's is off) or through the `<audio>` element the browser's canceller sees.
    pub fn route(&self, direct: bool) {
        route_js(&self.g, direct);
    }

    /// Asks the context (and the output element) to run; call from a user gesture.
    pub fn resume(&self) {
        resume_js(&self.g);
    }

    /// Queues AI audio (context rate, mono) for `item` (the core's number for it), with the
    /// pitch period the player repeats if it runs dry right after it (`Output::Play`).
    pub fn play(&self, item: u32, samples: &[f32], period: u32) {
        play_js(&self.g, item, samples, period);
    }

    /// Tells the player that `item` has no more audio coming, so its tail plays out below the
    /// pre-buffer and running dry after it is no underrun.
    pub fn end_item(&self, item: u32) {
        post_js(&self.g, "end", item);
    }

    /// Sets the playout delay: how long the player waits after an item's first audio (or after
    /// running dry) before it plays.
    pub fn set_prebuffer(&self, ms: u32) {
        post_js(&self.g, "config", ms);
    }

    /// Turns the output down `db` dB (0: full level).
    pub fn duck(&self, db: u32) {
        post_js(&self.g, "duck", db);
    }

    /// Fades out over `ramp_ms` and drops everything queued.
    pub fn flush(&self, ramp_ms: u32) {
        post_js(&self.g, "flush", ramp_ms);
    }

    /// Routes the output to `device_id` (`setSinkId`; `""` is the default device): its promise.
    pub fn set_sink(&self, device_id: &str) -> Promise {
        set_sink_js(&self.g, device_id)
    }

    /// Stops the microphone, the worklets, the output element and the context.
    pub fn stop(self) {
        stop_js(&self.g);
    }
}

/// Whether media elements can choose their output device here (`setSinkId`; absent in Firefox
/// before 116 and in Safari).
pub fn has_set_sink_id() -> bool {
    has_set_sink_id_js()
}

/// `obj[key]`, or `undefined` when the lookup throws.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Stops every track of `stream` (the microphone light goes off).
pub fn stop_tracks(stream: &JsValue) {
    stop_tracks_js(stream);
}

/// `getUserMedia` for the microphone `device_id` (`None`: the default), with the browser's
/// refusal mapped to a typed failure; `done` is called later, never inside the caller.
pub fn open_microphone(
    constraints: &JsValue,
    device_id: Option<&str>,
    done: impl FnOnce(Result<JsValue, AudioFailure>) + 'static,
) {
    let opened = open_mic_js(constraints, device_id);
    then(Ok(opened.into()), move |r| done(r.map_err(|e| failure(&e))));
}

/// The ids of the microphones and of the output devices (`enumerateDevices()`), to `done`.
pub fn device_ids(done: impl FnOnce(Vec<String>, Vec<String>) + 'static) {
    then(Ok(device_ids_js().into()), move |r| {
        let Ok(lists) = r else { return };
        let ids = |i| -> Vec<String> {
            let list: Array = lists.unchecked_ref::<Array>().get(i).unchecked_into();
            list.iter().filter_map(|id| id.as_string()).collect()
        };
        done(ids(0), ids(1))
    });
}

/// `enumerateDevices()` filtered to `kind` ("audioinput" or "audiooutput"), as a Promise of an
/// array of `{deviceId, label}`.
pub fn list_devices(kind: &str) -> Promise {
    list_devices_js(kind)
}
