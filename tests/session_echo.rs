//! The echo guard inside the session: the option, the hooks (played reference from audio deltas
//! and playback progress, the gate between the capture resampler and the chunker, the server
//! VAD's `speech_started`), what reaches the socket, and the metrics.

#[path = "session_support/properties.rs"]
mod properties;
mod session_support;

use properties::check_mic_accounting;
mod echo_support;

use echo_support::wav;
use realtime_voice::audio::pcm16;
use realtime_voice::session::{Output, RawCapture, SessionConfig};
use session_support::*;

/// A connected voice session at 24 kHz mono with `opts`, item_a received (the lab's
/// interviewer twice, 6 s): the session, what it plays, and the mild room's echo of it.
fn playing_in_the_mild_room(opts: &str) -> (Sim, Vec<i16>, Vec<i16>) {
    let mut sim = Sim::new(opts);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 24_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    sim.msg(r#"{"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}"#);
    let voice = wav("assistant.wav");
    let played: Vec<i16> = voice.iter().chain(&voice).copied().collect();
    for chunk in played.chunks(4_800) {
        let mut b64 = String::new();
        pcm16::encode_i16_as_pcm16_base64(chunk, &mut b64);
        sim.msg(&format!(
            r#"{{"type":"response.output_audio.delta","response_id":"resp_1","item_id":"item_a","output_index":0,"content_index":0,"delta":"{b64}"}}"#
        ));
    }
    // The room is linear: the echo of the voice twice is its echo plus the same 3 s later.
    let echo = wav("mild-echo.wav");
    let mut captured = vec![0i16; voice.len() + echo.len()];
    for (k, &e) in echo.iter().enumerate() {
        captured[k] = captured[k].saturating_add(e);
        captured[k + voice.len()] = captured[k + voice.len()].saturating_add(e);
    }
    (sim, played, captured)
}

/// A connected voice session at 24 kHz mono, the assistant's item_a playing (the lab's
/// interviewer twice: 6 s received), and its echo in the lab's mild room captured (80 ms later,
/// a short reverb) while progress is reported every 20 ms; then 1.5 s of the room's tail.
fn echo_run(opts: &str) -> (Sim, Vec<i16>, Vec<i16>) {
    echo_run_as(opts, false)
}

/// As [`echo_run`]; with `pair`, the microphone is delivered as a pair: the room's capture raw
/// beside what a leaky canceller makes of it (the echo 40 dB down but for 250 ms of every
/// 800 ms, let through 6 dB louder), and the processed capture is what is returned as captured.
fn echo_run_as(opts: &str, pair: bool) -> (Sim, Vec<i16>, Vec<i16>) {
    let (mut sim, played, captured) = playing_in_the_mild_room(opts);
    let slot = sim.slot("item_a");
    let mut log = Vec::new();
    // The player's ducks (the echo trips the ducker: no canceller here), as the room hears
    // them: the echo falls by the duck's depth once the 150 ms ramp is over and comes back on
    // release, each 80 ms (the room's delay) after the audio played from the end of the block
    // that asked for it (the player has played up to there when the block is captured).
    let mut ducks: Vec<(u64, u32)> = Vec::new();
    let mut seen = 0;
    let mut captured_ducked = Vec::with_capacity(captured.len());
    for (step, block) in captured.chunks(480).enumerate() {
        sim.advance(20);
        let at = ((step + 1) * 480).min(played.len());
        sim.s.handle_playback_progress(sim.now, slot, at as u64, 0);
        let heard = ducks
            .iter()
            .rev()
            .find(|&&(t, db)| sim.now >= t + 20 + 80 + if db > 0 { 150 } else { 0 })
            .map_or(0, |&(_, db)| db);
        let gain = 10f32.powf(-(heard as f32) / 20.0);
        let mic: Vec<f32> = block
            .iter()
            .map(|&v| gain * f32::from(v) / 32_768.0)
            .collect();
        if pair {
            let processed: Vec<f32> = mic
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let leak = ((step * 480 + i) / 24) % 800 >= 550;
                    v * if leak { 2.0 } else { 0.01 }
                })
                .collect();
            captured_ducked.extend(processed.iter().map(|&v| pcm16::f32_to_i16(v)));
            sim.s.handle_mic_pair(sim.now, &processed, &mic);
        } else {
            captured_ducked.extend(mic.iter().map(|&v| pcm16::f32_to_i16(v)));
            sim.s.handle_mic_samples(sim.now, &mic);
        }
        log.extend(sim.drain());
        for o in &sim.log[seen..] {
            if let Output::DuckPlayback { db } = o {
                ducks.push((sim.now, *db));
            }
        }
        seen = sim.log.len();
        check_mic_accounting(&sim.s, &step);
    }
    log.extend(sim.advance(1000));
    (sim, appended_samples(&log).0, captured_ducked)
}

/// As [`echo_run`] without the ducker, the page loaded: its main thread takes the worklets'
/// messages in bursts after stalls of up to 300 ms, each burst's progress reports before its
/// captured blocks, and each with its audio context frame (`handle_mic_samples_at`,
/// `handle_playback_progress_at`). What reached the socket, and what was captured.
fn echo_run_out_of_step() -> (Sim, Vec<i16>, Vec<i16>) {
    let (mut sim, played, captured) = playing_in_the_mild_room(r#","bargeInDuck":"off""#);
    let slot = sim.slot("item_a");
    let ctx = 5_000_000u64;
    let (mut log, mut reports, mut blocks_due) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rng, mut stall) = (11u32, 0);
    let blocks: Vec<&[i16]> = captured.chunks(480).collect();
    for step in 0..blocks.len() {
        let at = ctx + step as u64 * 480;
        let n = ((step + 1) * 480).min(played.len()) as u64;
        reports.push((true, n, at + 480));
        blocks_due.push((false, step as u64, at));
        if stall > 0 && step + 1 < blocks.len() {
            stall -= 1; // stalled: the messages wait
            continue;
        }
        rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        stall = rng >> 28; // 0–15 blocks
        sim.advance(20);
        for (report, n, at) in reports.drain(..).chain(blocks_due.drain(..)) {
            if report {
                sim.s.handle_playback_progress_at(sim.now, slot, n, 0, at);
            } else {
                let mic: Vec<f32> = blocks[n as usize]
                    .iter()
                    .map(|&v| f32::from(v) / 32_768.0)
                    .collect();
                sim.s.handle_mic_samples_at(sim.now, &mic, at);
            }
        }
        log.extend(sim.drain());
    }
    log.extend(sim.advance(1000));
    (sim, appended_samples(&log).0, captured)
}

/// Placed where they arrived, those reports evidence no echo path at all.
#[test]
fn on_the_audio_clock_reports_out_of_step_are_placed_where_they_played() {
    let (sim, sent, captured) = echo_run_out_of_step();
    let m = sim.s.metrics();
    assert!(matches!(m.echo_delay_ms, Some(60..=90)), "{m:?}");
    let loud = |pcm: &[i16]| pcm.iter().filter(|s| s.abs() > 1_000).count();
    assert!(loud(&captured[84_000..]) > 10_000);
    let after = sent.get(84_000..).unwrap_or_default();
    assert_eq!(loud(after), 0, "echo reached the socket: {m:?}");
}

#[test]
fn echo_is_sent_as_silence_once_its_path_is_evidenced_and_unchanged_with_off() {
    for opts in ["", r#","echoGuard":"auto""#] {
        let (sim, sent, captured) = echo_run(opts);
        let m = sim.s.metrics();
        // The path is evidenced ~2.4 s into playback; from then on (behind the pre-roll)
        // the echo leaves as silence.
        assert!(matches!(m.echo_delay_ms, Some(60..=90)), "{m:?}");
        assert!(m.echo_guarded_ms >= 2_500, "{m:?}");
        let loud = |pcm: &[i16]| pcm.iter().filter(|s| s.abs() > 1_000).count();
        assert!(loud(&captured[84_000..]) > 10_000);
        assert_eq!(
            loud(&sent[84_000..]),
            0,
            "echo reached the socket after 3.5 s: {m:?}"
        );
        // Before the evidence nothing was touched.
        assert_eq!(sent[..24_000], captured[..24_000], "{opts}");
    }

    let (sim, sent, captured) = echo_run(r#","echoGuard":"off""#);
    let m = sim.s.metrics();
    assert_eq!(m.echo_guarded_ms, 0);
    assert_eq!(m.echo_held_ms, 0, "nothing is held back");
    assert_eq!(sent, captured[..sent.len()], "the echo goes out unchanged");
    // Off still measures.
    assert!(matches!(m.echo_delay_ms, Some(60..=90)), "{m:?}");
    let erl = m.echo_return_loss_db.expect("measured");
    assert!((-12.0..=12.0).contains(&erl), "ERL {erl} dB");
}

#[test]
fn on_the_raw_microphone_no_echo_reaches_the_socket_and_nothing_ducks() {
    // `echoCanceller: "none"`: no canceller before the guard, so it guards from the first
    // echo on; there is no suppressor for a duck to open, so the ducker is off.
    let (sim, sent, captured) = echo_run(r#","echoCanceller":"none""#);
    let m = sim.s.metrics();
    assert!(matches!(m.echo_delay_ms, Some(60..=90)), "{m:?}");
    let loud = |pcm: &[i16]| pcm.iter().filter(|s| s.abs() > 1_000).count();
    assert!(loud(&captured) > 20_000);
    assert_eq!(loud(&sent), 0, "echo reached the socket: {m:?}");
    assert_eq!(m.barge_in_ducks, 0);
    assert!(!sim
        .log
        .iter()
        .any(|o| matches!(o, Output::DuckPlayback { .. })));
    let json = m.to_json();
    assert!(json.contains(r#""echoCanceller":"none""#), "{json}");
    assert!(json.contains(r#""echoGuardRaw":true"#), "{json}");
}

#[test]
fn judged_by_a_raw_capture_no_leak_reaches_the_socket_once_its_path_is_known() {
    let (mut sim, sent, processed) = echo_run_as(r#","echoGuard":"raw""#, true);
    assert!(sim.s.echo_hears_raw());
    let m = sim.s.metrics();
    assert!(m.echo_guard_raw);
    assert!(m.to_json().contains(r#""echoGuardRaw":true"#));
    assert!(matches!(m.echo_delay_ms, Some(60..=90)), "{m:?}");
    let loud = |pcm: &[i16]| pcm.iter().filter(|s| s.abs() > 1_000).count();
    assert!(loud(&processed) > 10_000, "the leaks are loud");
    // Before the raw capture has shown the path (~1 s in) the first playback is guarded, and
    // after it the path is: no leak reaches the socket.
    assert!(loud(&processed[..24_000]) > 1_000, "a leak before the path");
    assert_eq!(loud(&sent), 0, "a leak reached the socket: {m:?}");
    // What leaves is the processed capture, frame for frame, or silence.
    for (k, (o, p)) in sent.chunks(240).zip(processed.chunks(240)).enumerate() {
        assert!(o == p || o.iter().all(|&x| x == 0), "frame {k}");
    }
    // Blocks without the raw capture (a new microphone came alone): judged as captured again,
    // by a guard that has no path yet, so they go out unchanged after what the pre-roll held
    // (a duck still on is probed first: a steady sound is a voice).
    let mut after = Vec::new();
    for k in 0..50 {
        sim.s.handle_mic_samples(sim.now, &[0.2f32; 480]);
        assert_eq!(sim.s.metrics().echo_delay_ms, None);
        after.extend(appended_samples(&sim.advance(20)).0);
        check_mic_accounting(&sim.s, &k);
    }
    after.extend(appended_samples(&sim.advance(1000)).0);
    let x = pcm16::f32_to_i16(0.2);
    // Sent whole chunks; the rest waits in the chunker.
    let tail = after.iter().rev().take_while(|&&s| s == x).count() as u64;
    let buffered = sim.s.metrics().buffered_audio_ms * 24;
    assert_eq!(tail + buffered, 50 * 480, "the blocks went out unchanged");
    assert!(!sim.s.metrics().echo_guard_raw);

    // Only with the browser's canceller: the others have no processed capture to pair.
    for c in ["wasm", "none"] {
        let sim = Sim::new(&format!(r#","echoGuard":"raw","echoCanceller":"{c}""#));
        assert!(!sim.s.echo_hears_raw(), "{c}");
    }
    // "auto" (the default) asks for the pair where the browser is known to give it, "raw"
    // wherever it is given, "processed" and "off" never.
    for (o, want) in [
        ("", RawCapture::WhereKnown),
        (r#","echoGuard":"auto""#, RawCapture::WhereKnown),
        (r#","echoGuard":"raw""#, RawCapture::WhereGiven),
        (r#","echoGuard":"processed""#, RawCapture::Never),
        (r#","echoGuard":"off""#, RawCapture::Never),
        (r#","echoCanceller":"wasm""#, RawCapture::Never),
    ] {
        let s = Sim::new(o).s;
        assert_eq!(s.echo_raw_capture(), want, "{o}");
        assert_eq!(s.echo_hears_raw(), want != RawCapture::Never, "{o}");
    }
}

#[test]
fn speech_started_on_echo_is_counted_as_a_suspected_self_interruption() {
    let (mut sim, _, _) = echo_run(r#","echoGuard":"off""#);
    // Still speaking (the item is not done): the VAD fires on what the guard judged echo.
    sim.msg(&audio_delta("item_a", 4800));
    sim.advance(20);
    let slot = sim.slot("item_a");
    sim.s
        .handle_playback_progress(sim.now, slot, 144_000 + 480, 0);
    sim.s
        .handle_mic_samples(sim.now, &vec![700.0f32 / 32768.0; 480]);
    sim.msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":100,"item_id":"u1"}"#);
    assert_eq!(sim.s.metrics().suspected_self_interruptions, 1);
    let json = sim.s.metrics().to_json();
    assert!(json.contains("\"suspectedSelfInterruptions\":1"), "{json}");
    assert!(json.contains("\"echoGuardedMs\":0"), "{json}");
}

#[test]
fn the_option_takes_auto_off_or_raw() {
    let base = format!("{{{BASE}");
    for (v, gating) in [
        ("", true),
        (r#","echoGuard":"auto""#, true),
        (r#","echoGuard":"off""#, false),
        (r#","echoGuard":"raw""#, true),
    ] {
        let cfg = SessionConfig::from_json(&format!("{base}{v}}}")).expect("valid");
        assert_eq!(cfg.echo_guard, gating, "{v}");
    }
    let err = SessionConfig::from_json(&format!(r#"{base},"echoGuard":"on"}}"#))
        .expect_err("not a value")
        .to_string();
    assert!(err.contains("echoGuard"), "{err}");
}

#[test]
fn speech_started_before_an_echo_path_is_evidenced_is_not_suspected() {
    // Until the path is evidenced, the coupling is a guess that explains almost anything: in the
    // echo lab, real barge-ins were taken for echo in 8 of 9 runs.
    let mut sim = Sim::new(r#","echoGuard":"off""#);
    sim.connect_open();
    sim.s.handle_audio_started(sim.now, 24_000, 1);
    sim.s.handle_playback_started(sim.now, 24_000);
    sim.msg(r#"{"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}"#);
    sim.msg(&audio_delta("item_a", 24_000));
    let slot = sim.slot("item_a");
    for step in 1..=25u64 {
        sim.advance(20);
        sim.s.handle_playback_progress(sim.now, slot, step * 480, 0);
        sim.s
            .handle_mic_samples(sim.now, &vec![700.0f32 / 32768.0; 480]);
    }
    sim.msg(r#"{"type":"input_audio_buffer.speech_started","audio_start_ms":100,"item_id":"u1"}"#);
    let m = sim.s.metrics();
    assert_eq!(m.echo_return_loss_db, None, "no path yet: {m:?}");
    assert_eq!(m.suspected_self_interruptions, 0);
}
