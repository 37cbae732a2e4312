//! Devices that come and go, in a real browser against the reference server: the microphone's
//! track ends mid-interview and the client reopens it by itself (still voice mode, its audio
//! reaching the server again); the chosen microphone disappears from the device list and the
//! default one takes over; an output device the browser refuses or that disappears gives way to
//! the default one. The engines' fake devices cannot be unplugged, so the tests do what the
//! browser does when a device goes: stop the track and fire its `ended` event, or list the
//! devices without it and fire `devicechange`.

use js_sys::{Array, Function, Promise};
use realtime_voice::web::audio::has_set_sink_id;
use realtime_voice::web::client::VoiceClient;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::client::{connect, end, engine, has, now, options, Recorder};
use crate::support::{dev_token, get_json, num, prop, within};

/// Runs `body` (JS, with `a` as its one argument) in the page.
pub(crate) fn run(body: &str, a: &JsValue) -> JsValue {
    Function::new_with_args("a", body)
        .call1(&JsValue::NULL, a)
        .expect("page script runs")
}

/// Records every stream `getUserMedia` returns and the constraints it was given (idempotent).
/// Patched on the prototype and kept on `globalThis`: WebKit may hand out a new
/// `navigator.mediaDevices` wrapper without the expandos of the last one.
pub(crate) fn spy_on_get_user_media() {
    run(
        "if (!globalThis.__rvSpy) {
           const p = MediaDevices.prototype;
           const spy = { streams: [], constraints: [], gum: p.getUserMedia, enumerate: p.enumerateDevices };
           globalThis.__rvSpy = spy;
           p.getUserMedia = function (c) {
             spy.constraints.push(JSON.stringify(c));
             return spy.gum.call(this, c).then((s) => { spy.streams.push(s); return s; });
           };
         }",
        &JsValue::UNDEFINED,
    );
}

/// Streams opened so far.
fn streams_opened() -> u32 {
    run(
        "return globalThis.__rvSpy.streams.length;",
        &JsValue::UNDEFINED,
    )
    .as_f64()
    .unwrap_or(0.0) as u32
}

/// Tracks still live (the microphone in use) of the streams `getUserMedia` gave from the
/// `from`th one on.
fn live_tracks(from: u32) -> u32 {
    run(
        "return globalThis.__rvSpy.streams.slice(a)
           .flatMap((s) => s.getTracks()).filter((t) => t.readyState === 'live').length;",
        &from.into(),
    )
    .as_f64()
    .unwrap_or(f64::NAN) as u32
}

/// The constraints of the latest `getUserMedia`, as JSON.
fn last_constraints() -> String {
    run(
        "const c = globalThis.__rvSpy.constraints; return c[c.length - 1] || '';",
        &JsValue::UNDEFINED,
    )
    .as_string()
    .unwrap_or_default()
}

/// Ends the microphone's live tracks (the processed capture's, and the raw capture's beside it
/// where the guard pairs them) as an unplugged device does: they stop delivering and their
/// `ended` events fire (`stop()` alone fires none).
fn end_microphone_tracks() {
    let listened = run(
        "const live = globalThis.__rvSpy.streams.flatMap((s) => s.getAudioTracks())
           .filter((t) => t.readyState === 'live');
         const listened = live.length > 0 && live.every((t) => typeof t.onended === 'function');
         for (const t of live) {
           t.stop();
           t.dispatchEvent(new Event('ended'));
         }
         return listened;",
        &JsValue::UNDEFINED,
    );
    assert_eq!(
        listened,
        JsValue::TRUE,
        "the client listens to the tracks getUserMedia gave it"
    );
}

/// From now on `enumerateDevices()` lists every device but `gone`; then `devicechange` fires.
fn unplug(gone: &str) {
    run(
        "const spy = globalThis.__rvSpy;
         MediaDevices.prototype.enumerateDevices = function () {
           return spy.enumerate.call(this).then((l) => l.filter((d) => d.deviceId !== a));
         };
         navigator.mediaDevices.dispatchEvent(new Event('devicechange'));",
        &gone.into(),
    );
}

/// `enumerateDevices()` lists the real devices again.
fn replug() {
    run(
        "MediaDevices.prototype.enumerateDevices = globalThis.__rvSpy.enumerate;",
        &JsValue::UNDEFINED,
    );
}

/// Device ids of `kind` other than the browser's aliases for the default.
async fn specific_devices(list: Promise) -> Vec<String> {
    let list: Array = within(10_000, "list devices", list)
        .await
        .expect("devices listed")
        .unchecked_into();
    list.iter()
        .filter_map(|d| prop(&d, "deviceId").as_string())
        .filter(|id| !id.is_empty() && id != "default" && id != "communications")
        .collect()
}

fn audio_event(e: &JsValue, key: &str, value: &str) -> bool {
    prop(e, key).as_string().as_deref() == Some(value)
}

/// Waits for the `audio` event `{recovered: kind, reason, device?}`.
async fn recovered(rec: &Recorder, kind: &str, reason: &str, device: Option<&str>) {
    let what = format!("{kind} recovered ({reason})");
    rec.wait_for(10_000, &what, |l| {
        has(l, "audio", |e| {
            audio_event(e, "recovered", kind)
                && audio_event(e, "reason", reason)
                && device.is_none_or(|d| audio_event(e, "device", d))
        })
    })
    .await;
}

/// A connected voice client with its microphone flowing to the server.
async fn voice_client(interview: &str, token: &str) -> (VoiceClient, Recorder) {
    spy_on_get_user_media();
    let client = VoiceClient::new(&options(interview, Some(token), &[])).expect("client");
    let rec = Recorder::attach(&client);
    connect(&client).await.expect("connect");
    rec.wait_for(15_000, "microphone audio sent", |l| {
        has(l, "metrics", |e| num(e, "sentAudioMs") >= 500.0)
    })
    .await;
    (client, rec)
}

/// Waits until the server has received `ms` more microphone audio than when this is called, and
/// the session has captured `ms` more than at `since` (metrics events). The server's count is
/// read again at each of the client's metrics events, within 15 s.
async fn audio_flows_again(rec: &Recorder, interview: &str, since: f64, ms: f64) {
    let captured = rec.metric_at("capturedAudioMs", since);
    let path = format!("/dev/interviews/{interview}/received");
    let received_ms = || async { num(&get_json(&path).await.expect("received"), "samples") / 24.0 };
    let before = received_ms().await;
    let deadline = now() + 15_000.0;
    loop {
        let got = received_ms().await - before;
        if got >= ms {
            break;
        }
        let left = deadline - now();
        assert!(
            left > 0.0,
            "the server received {got:.0} ms of the new microphone's audio in 15 s; events: {}",
            rec.summary()
        );
        let seen = rec.of("metrics").len();
        rec.wait_for(left as u32, "the next metrics event", |l| {
            l.iter().filter(|(n, _, _)| n == "metrics").count() > seen
        })
        .await;
    }
    rec.wait_for(5_000, "new microphone audio captured", |l| {
        l.iter()
            .any(|(n, e, _)| n == "metrics" && num(e, "capturedAudioMs") >= captured + ms)
    })
    .await;
}

fn assert_still_voice(client: &VoiceClient, rec: &Recorder) {
    assert_eq!(client.mode(), "voice", "events: {}", rec.summary());
    assert!(
        rec.of("mode").is_empty(),
        "no mode change: {}",
        rec.summary()
    );
    assert_eq!(
        prop(&client.status(), "state").as_string().as_deref(),
        Some("connected")
    );
}

#[wasm_bindgen_test]
async fn an_ended_microphone_track_is_reopened_and_the_interview_goes_on_in_voice() {
    let (token, interview) = dev_token().await;
    spy_on_get_user_media();
    let first = streams_opened();
    let (client, rec) = voice_client(&interview, &token).await;
    let opened = streams_opened();
    end_microphone_tracks();
    recovered(&rec, "mic", "track_ended", None).await;
    let recovered_at = now();
    let events = rec.of("audio");
    assert!(
        events.iter().any(|e| audio_event(e, "recovering", "mic")
            && num(e, "attempt") == 1.0
            && audio_event(e, "device", "default")),
        "reported while reopening: {}",
        rec.summary()
    );
    assert_eq!(streams_opened(), opened + 1, "one new microphone stream");
    assert_still_voice(&client, &rec);
    audio_flows_again(&rec, &interview, recovered_at, 1_000.0).await;
    assert_still_voice(&client, &rec);
    assert_eq!(live_tracks(first), 1, "only the new microphone is open");
    let metrics = client.metrics();
    end(&client).await;
    assert_eq!(live_tracks(first), 0, "disconnect releases the microphone");
    wasm_bindgen_test::console_log!(
        "{}: track ended → reopened; captured {} ms, sent {} ms, buffered {} ms, dropped {} ms",
        engine(),
        num(&metrics, "capturedAudioMs"),
        num(&metrics, "sentAudioMs"),
        num(&metrics, "bufferedAudioMs"),
        num(&metrics, "droppedAudioMs"),
    );
}

#[wasm_bindgen_test]
async fn a_chosen_microphone_that_disappears_gives_way_to_the_default_one() {
    let (token, interview) = dev_token().await;
    let (client, rec) = voice_client(&interview, &token).await;
    let inputs = specific_devices(client.list_input_devices()).await;
    let Some(chosen) = inputs.first().cloned() else {
        // Engines whose fake capture lists no device of its own (only the default alias).
        wasm_bindgen_test::console_log!(
            "{}: no specific microphone listed; devicechange test skipped",
            engine()
        );
        end(&client).await;
        return;
    };
    within(
        10_000,
        "setInputDevice",
        client.set_input_device(chosen.clone()),
    )
    .await
    .expect("the chosen microphone opens");
    assert!(
        last_constraints().contains(&chosen),
        "opened with its id: {}",
        last_constraints()
    );
    unplug(&chosen);
    recovered(&rec, "mic", "device_removed", Some("default")).await;
    let recovered_at = now();
    assert!(
        !last_constraints().contains("deviceId"),
        "the default device: {}",
        last_constraints()
    );
    assert_still_voice(&client, &rec);
    audio_flows_again(&rec, &interview, recovered_at, 1_000.0).await;
    // Plugged in again: the chosen microphone is used again.
    replug();
    run(
        "navigator.mediaDevices.dispatchEvent(new Event('devicechange'));",
        &JsValue::UNDEFINED,
    );
    recovered(&rec, "mic", "device_returned", Some(&chosen)).await;
    assert_still_voice(&client, &rec);
    end(&client).await;
    wasm_bindgen_test::console_log!(
        "{}: chosen microphone removed → default → back ({} specific inputs listed)",
        engine(),
        inputs.len()
    );
}

#[wasm_bindgen_test]
async fn an_output_device_that_fails_or_disappears_gives_way_to_the_default_one() {
    if !has_set_sink_id() {
        wasm_bindgen_test::console_log!(
            "{}: no setSinkId, the output device cannot be chosen; test skipped",
            engine()
        );
        return;
    }
    let (token, interview) = dev_token().await;
    let (client, rec) = voice_client(&interview, &token).await;
    // A device the browser does not know: setSinkId rejects, the default one plays on.
    let r = within(
        10_000,
        "setOutputDevice",
        client.set_output_device("no-such-output".into()),
    )
    .await;
    assert!(r.is_err(), "an unknown output device is refused");
    recovered(&rec, "output", "sink_failed", Some("default")).await;
    let outputs = specific_devices(client.list_output_devices()).await;
    let removed = match outputs.first() {
        Some(id) => {
            within(
                10_000,
                "setOutputDevice",
                client.set_output_device(id.clone()),
            )
            .await
            .expect("a listed output device is accepted");
            unplug(id);
            recovered(&rec, "output", "device_removed", Some("default")).await;
            replug();
            true
        }
        None => false,
    };
    assert_still_voice(&client, &rec);
    end(&client).await;
    wasm_bindgen_test::console_log!(
        "{}: output refused → default{}",
        engine(),
        if removed {
            "; output removed → default"
        } else {
            " (no specific output device listed: removal not tested)"
        }
    );
}
