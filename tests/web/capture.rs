//! The foundation's first browser test: the fake microphone through the capture AudioWorklet,
//! loaded by URL from the package files the server serves (no `blob:`), delivers non-silent
//! frames at the context's own sample rate.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{AudioContext, AudioWorkletNode, MediaStream, MediaStreamConstraints, MessageEvent};

use crate::support::{server, within};

#[derive(Default)]
struct Seen {
    frames: usize,
    channels: u32,
    sum_sq: f64,
    samples: usize,
    first_time: Option<f64>,
    last_time: f64,
    last_len: usize,
}

#[wasm_bindgen_test]
async fn capture_worklet_delivers_microphone_frames_at_the_context_rate() {
    let window = web_sys::window().expect("window");
    let media = window.navigator().media_devices().expect("mediaDevices");
    let constraints = MediaStreamConstraints::new();
    constraints.set_audio(&JsValue::TRUE);
    let stream: MediaStream = within(
        10_000,
        "getUserMedia",
        media
            .get_user_media_with_constraints(&constraints)
            .expect("getUserMedia call"),
    )
    .await
    .expect("microphone")
    .unchecked_into();

    let ctx = AudioContext::new().expect("AudioContext");
    let rate = ctx.sample_rate() as f64;
    let url = format!("{}/pkg/worklets/capture.js", server());
    within(
        10_000,
        "audioWorklet.addModule",
        ctx.audio_worklet()
            .expect("audioWorklet")
            .add_module(&url)
            .expect("addModule call"),
    )
    .await
    .expect("capture worklet module loads by URL");
    let node = AudioWorkletNode::new(&ctx, "realtime-voice-capture").expect("worklet node");
    let source = ctx.create_media_stream_source(&stream).expect("source");
    source
        .connect_with_audio_node(&node)
        .expect("connect source");
    node.connect_with_audio_node(&ctx.destination())
        .expect("connect node");
    within(
        5_000,
        "AudioContext.resume",
        ctx.resume().expect("resume call"),
    )
    .await
    .expect("resume");

    // Collect 1.5 s of frames, measured on the context's own clock, after a short warm-up.
    let seen = Rc::new(RefCell::new(Seen::default()));
    let done = js_sys::Promise::new(&mut |resolve, _| {
        let seen = seen.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let get = |k: &str| {
                js_sys::Reflect::get(&data, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
            };
            let time = get("time").as_f64().unwrap_or(0.0);
            if time < 0.2 {
                return;
            }
            let frames: js_sys::Float32Array = get("frames").unchecked_into();
            let channels = get("channels").as_f64().unwrap_or(0.0) as u32;
            let data = frames.to_vec();
            let mut s = seen.borrow_mut();
            s.channels = channels;
            s.sum_sq += data
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>();
            s.samples += data.len();
            let n = data.len() / channels.max(1) as usize;
            if s.first_time.is_none() {
                s.first_time = Some(time);
            } else {
                s.frames += s.last_len;
            }
            s.last_time = time;
            s.last_len = n;
            if time - s.first_time.unwrap_or(time) >= 1.5 {
                let _ = resolve.call0(&JsValue::NULL);
            }
        });
        node.port()
            .expect("port")
            .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();
    });
    within(15_000, "1.5 s of captured frames", done)
        .await
        .expect("frames arrive");
    let _ = ctx.close();
    stream
        .get_tracks()
        .for_each(&mut |t, _, _| t.unchecked_into::<web_sys::MediaStreamTrack>().stop());

    let s = seen.borrow();
    let span = s.last_time - s.first_time.expect("first frame");
    let measured_rate = s.frames as f64 / span;
    assert!(s.channels >= 1, "frames carry their channel count");
    assert!(
        (measured_rate / rate - 1.0).abs() < 0.01,
        "frames arrive at the context rate: {measured_rate:.0} Hz measured vs {rate} Hz"
    );
    let rms = (s.sum_sq / s.samples as f64).sqrt();
    assert!(rms > 1e-3, "microphone frames are not silent (rms {rms:e})");
}
