//! The opt-in wasm echo canceller (`echoCanceller: "wasm"`) in a real browser against the
//! reference server: the module loads into the capture worklet with the browser's own
//! processing off, reports its figures, hands the raw microphone beside its output for the
//! echo guard to judge, and the microphone still reaches the server; a module
//! that cannot be loaded gives way to the browser's canceller (the microphone reopened with it)
//! and the interview goes on in voice.

use js_sys::Object;
use realtime_voice::web::client::VoiceClient;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::client::{
    check_mic_reached_server, connect, decode_pcm16_base64, end, engine, options, Recorder,
};
use crate::devices::{run, spy_on_get_user_media};
use crate::support::{dev_token, get_json, num, prop, server};

/// A voice client of `interview` with the wasm canceller at `aec_url` and no microphone
/// constraints of the app's, so that the client's own defaults apply.
fn client(interview: &str, token: &str, aec_url: &str) -> VoiceClient {
    let extra = [
        ("echoCanceller", JsValue::from_str("wasm")),
        ("echoCancellerUrl", JsValue::from_str(aec_url)),
        ("micConstraints", Object::new().into()),
    ];
    VoiceClient::new(&options(interview, Some(token), &extra)).expect("client")
}

/// The `echoCancellation` of each getUserMedia call so far.
fn echo_cancellation_asked() -> Vec<String> {
    let v = run(
        "return globalThis.__rvSpy.constraints.map((c) => String(JSON.parse(c).audio.echoCancellation));",
        &JsValue::UNDEFINED,
    );
    js_sys::Array::from(&v)
        .iter()
        .filter_map(|x| x.as_string())
        .collect()
}

/// Ends a session whose microphone was opened with the browser's processing off and that
/// reported no error; what the server received (at least 9 s of it).
async fn end_on_the_raw_microphone(
    client: &VoiceClient,
    rec: &Recorder,
    interview: &str,
) -> Vec<f32> {
    end(client).await;
    assert_eq!(
        echo_cancellation_asked().last().map(String::as_str),
        Some("false"),
        "the browser's canceller is off"
    );
    assert!(rec.of("error").is_empty(), "{}", rec.summary());
    let pcm = received(interview).await;
    assert!(pcm.len() >= 24_000 * 9, "{} samples received", pcm.len());
    pcm
}

/// A voice client with `option` set and no microphone constraints of the app's, connected,
/// once 10 s of microphone audio were sent: the client, its recorder, its interview, and how
/// many `getUserMedia` calls came before it connected.
async fn ten_seconds_sent(option: (&str, &str)) -> (VoiceClient, Recorder, String, usize) {
    spy_on_get_user_media();
    let (token, interview) = dev_token().await;
    let extra = [
        (option.0, JsValue::from_str(option.1)),
        ("micConstraints", Object::new().into()),
    ];
    let client = VoiceClient::new(&options(&interview, Some(&token), &extra)).expect("client");
    let rec = Recorder::attach(&client);
    let before = echo_cancellation_asked().len();
    connect(&client).await.expect("connect resolves");
    rec.wait_for(30_000, "10 s of microphone audio sent", |l| {
        l.iter()
            .any(|(n, e, _)| n == "metrics" && num(e, "framesSent") >= 100.0)
    })
    .await;
    (client, rec, interview, before)
}

/// 3 s of the session's microphone audio as the server received it (after `end`).
async fn received(interview: &str) -> Vec<f32> {
    let r = get_json(&format!("/dev/interviews/{interview}/received"))
        .await
        .expect("received");
    decode_pcm16_base64(&prop(&r, "pcm16_base64").as_string().expect("pcm"))
}

#[wasm_bindgen_test]
async fn the_wasm_canceller_runs_in_the_capture_worklet_and_the_mic_reaches_the_server() {
    spy_on_get_user_media();
    let (token, interview) = dev_token().await;
    let url = format!("{}/pkg/aec/realtime_voice_aec.wasm", server());
    let client = client(&interview, &token, &url);
    let rec = Recorder::attach(&client);
    connect(&client).await.expect("connect resolves");
    // The worklet hands the microphone as it came beside the canceller's output: the guard
    // judges that raw capture.
    rec.wait_for(20_000, "its figures, judged raw", |l| {
        l.iter().any(|(n, e, _)| {
            n == "metrics"
                && prop(e, "echoCanceller").as_string().as_deref() == Some("wasm")
                && prop(e, "aecAttenuationDb").as_f64().is_some()
                && prop(e, "echoGuardRaw").as_bool() == Some(true)
        })
    })
    .await;
    rec.wait_for(30_000, "10 s of microphone audio sent", |l| {
        l.iter()
            .any(|(n, e, _)| n == "metrics" && num(e, "framesSent") >= 100.0)
    })
    .await;
    let pcm = end_on_the_raw_microphone(&client, &rec, &interview).await;
    // No echo path here (the fake microphone does not hear the page). While the greeting plays
    // in its first seconds, AEC3 holds the microphone down and reshapes it (it assumes an echo
    // path until it has learnt there is none): the WAV's first pass (4 s of speech, then 2 s of
    // silence) comes out changed. From its second pass on it comes through, high-passed.
    check_mic_reached_server(&pcm[24_000 * 6..], 0.8);
}

#[wasm_bindgen_test]
async fn a_canceller_that_cannot_load_gives_way_to_the_browsers_and_voice_goes_on() {
    spy_on_get_user_media();
    let (token, interview) = dev_token().await;
    let url = format!("{}/pkg/aec/no-such-module.wasm", server());
    let client = client(&interview, &token, &url);
    let rec = Recorder::attach(&client);
    let before = echo_cancellation_asked().len();
    connect(&client).await.expect("connect resolves");
    rec.wait_for(
        20_000,
        "the microphone reopened with the browser's canceller",
        |l| {
            l.iter().any(|(n, e, _)| {
                n == "audio"
                    && prop(e, "recovered").as_string().as_deref() == Some("mic")
                    && prop(e, "reason").as_string().as_deref() == Some("echo_canceller_failed")
            })
        },
    )
    .await;
    let errors = rec.of("error");
    assert!(
        errors
            .iter()
            .any(|e| prop(e, "code").as_string().as_deref() == Some("echo_canceller_failed")),
        "{}",
        rec.summary()
    );
    let sent_before = num(&client.metrics(), "framesSent");
    rec.wait_for(20_000, "more microphone audio sent after the reopen", |l| {
        l.iter()
            .any(|(n, e, _)| n == "metrics" && num(e, "framesSent") >= sent_before + 20.0)
    })
    .await;
    let metrics = client.metrics();
    assert_eq!(
        prop(&metrics, "echoCanceller").as_string().as_deref(),
        Some("browser")
    );
    assert_eq!(client.mode(), "voice");
    end(&client).await;
    assert_eq!(
        echo_cancellation_asked()[before..],
        ["false".to_string(), "true".to_string()],
        "opened without the browser's canceller, then reopened with it"
    );
}

#[wasm_bindgen_test]
async fn none_opens_the_raw_microphone_and_it_reaches_the_server() {
    let (client, rec, interview, _) = ten_seconds_sent(("echoCanceller", "none")).await;
    let metrics = client.metrics();
    assert_eq!(
        prop(&metrics, "echoCanceller").as_string().as_deref(),
        Some("none")
    );
    let pcm = end_on_the_raw_microphone(&client, &rec, &interview).await;
    // The fake microphone does not hear the page: the guard gives up on an echo path within
    // the greeting's first seconds, and from then on the microphone goes out as captured.
    check_mic_reached_server(&pcm[24_000 * 6..], 0.8);
}

/// `echoGuard: "raw"`: the microphone is opened as the browser processes it, then again raw
/// beside it. Where the browser gives both at once (Chromium) the guard judges the raw one
/// (`echoGuardRaw`); elsewhere the raw one is let go and the guard judges the processed one.
/// Either way what reaches the server is the processed capture, and nothing is reported as
/// wrong.
#[wasm_bindgen_test]
async fn the_raw_guard_opens_the_microphone_twice_and_sends_the_processed_capture() {
    raw_beside("raw").await;
}

/// `echoGuard: "auto"`, the default: the same pair, but asked for only where the browser is
/// known to keep the two captures apart (desktop Chromium, Firefox on Linux and Windows);
/// elsewhere (here WebKit) the microphone is opened once and the guard judges the processed
/// capture.
#[wasm_bindgen_test]
async fn the_default_guard_pairs_the_microphone_on_desktop_chromium_and_firefox() {
    raw_beside("auto").await;
}

async fn raw_beside(guard: &str) {
    let (client, rec, interview, before) = ten_seconds_sent(("echoGuard", guard)).await;
    let metrics = client.metrics();
    let raw = prop(&metrics, "echoGuardRaw").as_bool();
    let asked = echo_cancellation_asked()[before..].to_vec();
    let pair_asked = engine() != "webkit" || guard == "raw";
    if pair_asked {
        assert_eq!(
            asked,
            ["true".to_string(), "false".to_string()],
            "processed first, then raw beside it"
        );
    } else {
        assert_eq!(asked, ["true".to_string()], "the processed capture alone");
    }
    if engine() == "chrome" {
        assert_eq!(raw, Some(true), "Chromium captures both at once");
    } else if !pair_asked {
        assert_eq!(raw, Some(false), "not asked for");
    } else {
        assert!(raw.is_some(), "echoGuardRaw is reported");
    }
    assert_eq!(
        prop(&metrics, "echoCanceller").as_string().as_deref(),
        Some("browser")
    );
    end(&client).await;
    assert!(rec.of("error").is_empty(), "{}", rec.summary());
    let pcm = received(&interview).await;
    assert!(pcm.len() >= 24_000 * 9, "{} samples received", pcm.len());
    // The fake microphone does not hear the page: the raw path is given up within the
    // greeting's first seconds, and from then on the processed capture goes out as captured.
    check_mic_reached_server(&pcm[24_000 * 6..], 0.8);
}
