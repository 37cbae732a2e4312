//! The audio graph in one AudioContext at the device's native rate (never forced to 24 kHz:
//! Firefox refuses to connect a microphone of another rate):
//!
//! ```text
//! getUserMedia ─► MediaStreamSource ─► capture worklet ──port──► shell ─► core (resample, PCM16)
//! core ─► shell ──port──► playback worklet ─► MediaStreamDestination ─► <audio> (echo canceller
//!                                                                        sees it; setSinkId)
//! ```
//!
//! Worklet modules load by URL from the package files (`worklets/*.js` beside the glue), so a
//! strict CSP without `blob:` works. Nothing here decides anything: failures are reported as
//! [`AudioFailure`]s and the core chooses what follows.

use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{
    AudioContext, AudioWorkletNode, AudioWorkletNodeOptions, HtmlAudioElement, MediaStream,
    MediaStreamAudioDestinationNode, MediaStreamAudioSourceNode, MediaStreamConstraints,
    MediaStreamTrack, MessageEvent,
};

use super::then;
use crate::session::AudioFailure;

/// What the graph reports to the shell.
#[derive(Debug)]
pub enum AudioEvent {
    /// Interleaved microphone frames at the context rate.
    Frames { frames: Float32Array, channels: u32 },
    /// The playback worklet's progress for `item` (the core's number for it): frames played of
    /// it (context rate), total underruns, and the output level (linear RMS, peak) of the period.
    Progress {
        item: u32,
        played: u64,
        underruns: u32,
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
}

/// Options the shell passes through from the app.
#[derive(Debug, Clone)]
pub struct AudioOptions {
    /// URL of the capture worklet module.
    pub capture_url: String,
    /// URL of the playback worklet module.
    pub playback_url: String,
    /// `getUserMedia` audio constraints as a JS object (already merged with the device id).
    pub constraints: JsValue,
    /// Playback pre-buffer in milliseconds.
    pub prebuffer_ms: u32,
}

/// The live graph. Dropping it does not stop it: call [`AudioGraph::stop`].
pub struct AudioGraph {
    ctx: AudioContext,
    stream: Option<MediaStream>,
    source: Option<MediaStreamAudioSourceNode>,
    capture: AudioWorkletNode,
    playback: AudioWorkletNode,
    element: HtmlAudioElement,
    closures: Vec<Closure<dyn FnMut(JsValue)>>,
    track_closures: Vec<Closure<dyn FnMut(JsValue)>>,
    on_devicechange: Option<Closure<dyn FnMut(JsValue)>>,
    sink: Rc<dyn Fn(AudioEvent)>,
}

impl std::fmt::Debug for AudioGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioGraph")
            .field("rate", &self.ctx.sample_rate())
            .finish()
    }
}

/// Creates the AudioContext and the output element *synchronously*, so that it happens inside the
/// user gesture that called `connect()` (Safari and iOS start audio only there), and starts
/// playback of the (silent) output element to unlock it.
pub fn unlock() -> Result<(AudioContext, HtmlAudioElement), AudioFailure> {
    let ctx = AudioContext::new().map_err(|_| AudioFailure::AudioContextFailed)?;
    if Reflect::get(&ctx, &"audioWorklet".into())
        .map(|w| w.is_undefined())
        .unwrap_or(true)
    {
        let _ = ctx.close();
        return Err(AudioFailure::NoAudioWorklet);
    }
    let element = HtmlAudioElement::new().map_err(|_| AudioFailure::AudioContextFailed)?;
    let _ = ctx.resume();
    Ok((ctx, element))
}

impl AudioGraph {
    /// Builds the graph in `ctx`: loads both worklets, opens the microphone, connects everything,
    /// then calls `done` (always later, never inside the caller).
    pub fn start(
        ctx: AudioContext,
        element: HtmlAudioElement,
        options: AudioOptions,
        sink: Rc<dyn Fn(AudioEvent)>,
        done: impl FnOnce(Result<AudioGraph, AudioFailure>) + 'static,
    ) {
        let done = {
            let ctx = ctx.clone();
            move |r: Result<AudioGraph, AudioFailure>| {
                if r.is_err() {
                    let _ = ctx.close();
                }
                done(r)
            }
        };
        // A module that does not load (404, CSP) leaves no worklet to run.
        let add = |ctx: &AudioContext, url: &str| {
            ctx.audio_worklet()
                .and_then(|w| w.add_module(url))
                .map(JsValue::from)
        };
        let first = add(&ctx, &options.capture_url);
        then(first, move |r| {
            if r.is_err() {
                return done(Err(AudioFailure::NoAudioWorklet));
            }
            let second = add(&ctx, &options.playback_url);
            then(second, move |r| {
                if r.is_err() {
                    return done(Err(AudioFailure::NoAudioWorklet));
                }
                let constraints = options.constraints.clone();
                open_microphone(&constraints, move |r| {
                    // From here on every step is synchronous; whatever fails, the microphone
                    // goes off. `Clone::clone`: the inherent `MediaStream::clone` is the JS
                    // method, which would give the graph a copy with tracks of its own (the
                    // original ones never stopped).
                    done(r.and_then(|stream| {
                        Self::assemble(ctx, element, &options, sink, Clone::clone(&stream))
                            .inspect_err(|_| stop_tracks(&stream))
                    }))
                });
            });
        });
    }

    fn assemble(
        ctx: AudioContext,
        element: HtmlAudioElement,
        options: &AudioOptions,
        sink: Rc<dyn Fn(AudioEvent)>,
        stream: MediaStream,
    ) -> Result<AudioGraph, AudioFailure> {
        let capture = AudioWorkletNode::new(&ctx, "realtime-voice-capture")
            .map_err(|_| AudioFailure::NoAudioWorklet)?;
        let playback_options = AudioWorkletNodeOptions::new();
        playback_options.set_number_of_inputs(0);
        playback_options.set_output_channel_count(&Array::of1(&1.into()));
        let processor = Object::new();
        let _ = Reflect::set(
            &processor,
            &"prebufferMs".into(),
            &options.prebuffer_ms.into(),
        );
        playback_options.set_processor_options(Some(&processor));
        let playback =
            AudioWorkletNode::new_with_options(&ctx, "realtime-voice-playback", &playback_options)
                .map_err(|_| AudioFailure::NoAudioWorklet)?;

        // Output through a MediaStream into an <audio> element: the echo canceller sees it, and
        // setSinkId can pick the device.
        let dest = MediaStreamAudioDestinationNode::new(&ctx)
            .map_err(|_| AudioFailure::AudioContextFailed)?;
        playback
            .connect_with_audio_node(&dest)
            .map_err(|_| AudioFailure::AudioContextFailed)?;
        element.set_src_object(Some(&dest.stream()));
        let _ = element.play();
        // The capture node outputs silence; connecting it keeps it pulled in every engine.
        capture
            .connect_with_audio_node(&ctx.destination())
            .map_err(|_| AudioFailure::AudioContextFailed)?;

        let mut graph = AudioGraph {
            ctx,
            stream: None,
            source: None,
            capture,
            playback,
            element,
            closures: Vec::new(),
            track_closures: Vec::new(),
            on_devicechange: None,
            sink,
        };
        graph.listen();
        graph.attach_stream(stream)?;
        let _ = graph.ctx.resume();
        Ok(graph)
    }

    fn listen(&mut self) {
        let sink = self.sink.clone();
        let on_capture = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let data = e.unchecked_into::<MessageEvent>().data();
            let frames = get(&data, "frames");
            if let Some(frames) = frames.dyn_ref::<Float32Array>() {
                let channels = get(&data, "channels").as_f64().unwrap_or(1.0) as u32;
                sink(AudioEvent::Frames {
                    frames: frames.clone(),
                    channels,
                });
            }
        });
        if let Ok(port) = self.capture.port() {
            port.set_onmessage(Some(on_capture.as_ref().unchecked_ref()));
        }
        let sink = self.sink.clone();
        let on_playback = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let data = e.unchecked_into::<MessageEvent>().data();
            let num = |k: &str| get(&data, k).as_f64().unwrap_or(0.0);
            match get(&data, "type").as_string().as_deref() {
                Some("progress") => sink(AudioEvent::Progress {
                    item: num("item") as u32,
                    played: num("played") as u64,
                    underruns: num("underruns") as u32,
                    rms: num("rms") as f32,
                    peak: num("peak") as f32,
                }),
                Some("finished") => sink(AudioEvent::Finished {
                    item: num("item") as u32,
                }),
                Some("overflow") => sink(AudioEvent::Overflow {
                    frames: num("frames") as u32,
                }),
                _ => {}
            }
        });
        if let Ok(port) = self.playback.port() {
            port.set_onmessage(Some(on_playback.as_ref().unchecked_ref()));
        }
        let sink = self.sink.clone();
        let ctx = self.ctx.clone();
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            // Read the raw string: Safari's "interrupted" is not in web-sys's enum.
            let state = Reflect::get(&ctx, &"state".into())
                .ok()
                .and_then(|s| s.as_string())
                .unwrap_or_default();
            sink(AudioEvent::ContextState(state))
        });
        self.ctx
            .set_onstatechange(Some(on_state.as_ref().unchecked_ref()));
        self.closures.extend([on_capture, on_playback, on_state]);
        // A listener, not `ondevicechange`: the app's own handler stays.
        let sink = self.sink.clone();
        let on_devices =
            Closure::<dyn FnMut(JsValue)>::new(move |_| sink(AudioEvent::DevicesChanged));
        if let Some(devices) = media_devices() {
            let _ = devices.add_event_listener_with_callback(
                "devicechange",
                on_devices.as_ref().unchecked_ref(),
            );
            self.on_devicechange = Some(on_devices);
        }
    }

    /// Connects `stream` to the capture worklet, then retires the previous stream; on failure
    /// the new stream is stopped and the previous one keeps running.
    pub fn attach_stream(&mut self, stream: MediaStream) -> Result<(), AudioFailure> {
        let source = match self
            .ctx
            .create_media_stream_source(&stream)
            .and_then(|source| {
                source
                    .connect_with_audio_node(&self.capture)
                    .map(|_| source)
            }) {
            Ok(source) => source,
            Err(_) => {
                stop_tracks(&stream);
                return Err(AudioFailure::AudioContextFailed);
            }
        };
        if let Some(old) = self.source.take() {
            old.disconnect().ok();
        }
        if let Some(old) = self.stream.take() {
            // Detached before their closures go: a late `ended` must find no dropped closure.
            for track in old.get_audio_tracks().iter() {
                track.unchecked_into::<MediaStreamTrack>().set_onended(None);
            }
            stop_tracks(&old);
        }
        self.track_closures.clear();
        for track in stream.get_audio_tracks().iter() {
            let track: MediaStreamTrack = track.unchecked_into();
            let sink = self.sink.clone();
            let on_ended =
                Closure::<dyn FnMut(JsValue)>::new(move |_| sink(AudioEvent::TrackEnded));
            track.set_onended(Some(on_ended.as_ref().unchecked_ref()));
            self.track_closures.push(on_ended);
        }
        self.source = Some(source);
        self.stream = Some(stream);
        Ok(())
    }

    /// The context's sample rate (the rate of captured frames and of playback).
    pub fn sample_rate(&self) -> u32 {
        self.ctx.sample_rate() as u32
    }

    /// The context's state as the browser names it.
    pub fn state(&self) -> String {
        Reflect::get(&self.ctx, &"state".into())
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default()
    }

    /// Asks the context (and the output element) to run; call from a user gesture.
    pub fn resume(&self) {
        let _ = self.ctx.resume();
        let _ = self.element.play();
    }

    /// Hands a capture buffer back to the capture worklet (transferred), once its frames were
    /// copied out, so the audio thread reuses it instead of allocating a new one per batch.
    pub fn recycle_capture(&self, frames: &Float32Array) {
        let msg = Object::new();
        let buffer = frames.buffer();
        let _ = Reflect::set(&msg, &"type".into(), &"recycle".into());
        let _ = Reflect::set(&msg, &"buffer".into(), &buffer);
        if let Ok(port) = self.capture.port() {
            let _ = port.post_message_with_transferable(&msg, &Array::of1(&buffer));
        }
    }

    /// Queues AI audio (context rate, mono) for `item` (the core's number for it).
    pub fn play(&self, item: u32, samples: &[f32]) {
        let msg = Object::new();
        let array = Float32Array::from(samples);
        let _ = Reflect::set(&msg, &"type".into(), &"push".into());
        let _ = Reflect::set(&msg, &"item".into(), &item.into());
        let _ = Reflect::set(&msg, &"samples".into(), &array);
        if let Ok(port) = self.playback.port() {
            let _ = port.post_message_with_transferable(&msg, &Array::of1(&array.buffer()));
        }
    }

    /// Tells the player that `item` has no more audio coming, so its tail plays out below the
    /// pre-buffer and running dry after it is no underrun.
    pub fn end_item(&self, item: u32) {
        self.post(&[("type", "end".into()), ("item", item.into())]);
    }

    /// Sets the playout delay: how long the player waits after an item's first audio (or after
    /// running dry) before it plays.
    pub fn set_prebuffer(&self, ms: u32) {
        self.post(&[("type", "config".into()), ("prebufferMs", ms.into())]);
    }

    /// Fades out over `ramp_ms` and drops everything queued.
    pub fn flush(&self, ramp_ms: u32) {
        self.post(&[("type", "flush".into()), ("rampMs", ramp_ms.into())]);
    }

    fn post(&self, fields: &[(&str, JsValue)]) {
        let msg = Object::new();
        for (k, v) in fields {
            let _ = Reflect::set(&msg, &(*k).into(), v);
        }
        if let Ok(port) = self.playback.port() {
            let _ = port.post_message(&msg);
        }
    }

    /// The output element (for `setSinkId`).
    pub fn element(&self) -> HtmlAudioElement {
        self.element.clone()
    }

    /// Stops the microphone, the worklets, the output element and the context.
    pub fn stop(self) {
        if let Ok(port) = self.capture.port() {
            let _ = port.post_message(&"stop".into());
            port.set_onmessage(None);
        }
        if let Ok(port) = self.playback.port() {
            port.set_onmessage(None);
        }
        if let Some(stream) = &self.stream {
            for track in stream.get_audio_tracks().iter() {
                track.unchecked_into::<MediaStreamTrack>().set_onended(None);
            }
            stop_tracks(stream);
        }
        if let (Some(cb), Some(devices)) = (&self.on_devicechange, media_devices()) {
            let _ = devices
                .remove_event_listener_with_callback("devicechange", cb.as_ref().unchecked_ref());
        }
        self.ctx.set_onstatechange(None);
        let _ = self.element.pause();
        self.element.set_src_object(None);
        let _ = self.ctx.close();
    }
}

/// Whether media elements can choose their output device here (`setSinkId`; absent in Firefox
/// before 116 and in Safari).
pub fn has_set_sink_id() -> bool {
    let proto = js_sys::Reflect::get(&js_sys::global(), &"HTMLMediaElement".into())
        .and_then(|c| Reflect::get(&c, &"prototype".into()));
    match proto {
        Ok(p) => Reflect::has(&p, &"setSinkId".into()).unwrap_or(false),
        Err(_) => false,
    }
}

/// Routes `element`'s output to `device_id` (`setSinkId`; `""` is the default device): the
/// promise it returns, or what it threw.
pub fn set_sink(element: &HtmlAudioElement, device_id: &str) -> Result<JsValue, JsValue> {
    let f: js_sys::Function = Reflect::get(element, &"setSinkId".into())?
        .dyn_into()
        .map_err(|_| js_sys::Error::new("setSinkId is not supported by this browser"))?;
    f.call1(element, &device_id.into())
}

/// `obj[key]`, or `undefined` when the lookup throws.
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// Stops every track of `stream` (the microphone light goes off).
pub fn stop_tracks(stream: &MediaStream) {
    for t in stream.get_tracks().iter() {
        t.unchecked_into::<MediaStreamTrack>().stop();
    }
}

fn media_devices() -> Option<web_sys::MediaDevices> {
    web_sys::window()?.navigator().media_devices().ok()
}

/// `getUserMedia({audio: constraints})`, with the browser's refusal mapped to a typed failure;
/// `done` is called later, never inside the caller.
pub fn open_microphone(
    constraints: &JsValue,
    done: impl FnOnce(Result<MediaStream, AudioFailure>) + 'static,
) {
    let c = MediaStreamConstraints::new();
    c.set_audio(constraints);
    let promise = media_devices()
        .ok_or(JsValue::UNDEFINED)
        .and_then(|d| d.get_user_media_with_constraints(&c))
        .map(JsValue::from);
    then(promise, move |r| {
        done(r.map(JsCast::unchecked_into).map_err(
            |e| match get(&e, "name").as_string().as_deref() {
                Some("NotAllowedError" | "SecurityError") => AudioFailure::MicDenied,
                Some("NotFoundError" | "OverconstrainedError") => AudioFailure::MicAbsent,
                _ => AudioFailure::Other,
            },
        ))
    });
}

/// `enumerateDevices()`, as the browser lists it, to `done` (later).
fn enumerate(done: impl FnOnce(Result<Array, JsValue>) + 'static) {
    let promise = media_devices()
        .ok_or_else(|| JsValue::from_str("no mediaDevices"))
        .and_then(|d| d.enumerate_devices())
        .map(JsValue::from);
    then(promise, move |r| done(r.map(JsCast::unchecked_into)));
}

/// The ids of the microphones and of the output devices (`enumerateDevices()`), to `done`.
pub fn device_ids(done: impl FnOnce(Vec<String>, Vec<String>) + 'static) {
    enumerate(move |list| {
        let Ok(list) = list else { return };
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        for d in list.iter() {
            let id = get(&d, "deviceId").as_string().unwrap_or_default();
            match get(&d, "kind").as_string().as_deref() {
                Some("audioinput") => inputs.push(id),
                Some("audiooutput") => outputs.push(id),
                _ => {}
            }
        }
        done(inputs, outputs)
    });
}

/// `enumerateDevices()` filtered to `kind` ("audioinput" or "audiooutput"), as a Promise of an
/// array of `{deviceId, label}`.
pub fn list_devices(kind: &'static str) -> js_sys::Promise {
    js_sys::Promise::new(&mut |resolve, reject| {
        enumerate(move |list| {
            let result = list.and_then(|list| {
                let out = Array::new();
                for d in list.iter() {
                    if get(&d, "kind").as_string().as_deref() == Some(kind) {
                        let o = Object::new();
                        Reflect::set(&o, &"deviceId".into(), &get(&d, "deviceId"))?;
                        Reflect::set(&o, &"label".into(), &get(&d, "label"))?;
                        out.push(&o);
                    }
                }
                Ok(out)
            });
            let _ = match result {
                Ok(out) => resolve.call1(&JsValue::NULL, &out),
                Err(e) => reject.call1(&JsValue::NULL, &e),
            };
        })
    })
}
