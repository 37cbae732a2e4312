//! The echo guard on the lab's signals (tests/fixtures/echo/, made by
//! scripts/echo-lab/render-fixtures.sh): the interviewer's voice as the page played it in the
//! echo lab (assistant.wav), what each lab room makes of it at the microphone (<room>-echo.wav,
//! the room's sox effects and measured loop delay), and the same with a user talking over it
//! from 1.21 s on, 10 dB above its default level (<room>-talk.wav). All 24 kHz mono PCM16.
//!
//! The guard is fed as the session feeds it: the decoded reference up front (deltas arrive
//! faster than real time), played progress every 20 ms, captured audio in 10 ms blocks. The
//! judge is the reference server's VAD: speech after 150 ms of 10 ms frames above −40 dBFS.
//! Where there is no echo, the microphone is Chromium's fake one in tests/web (mic.wav: speech
//! that has nothing to do with what is played), at several offsets, or silence.

mod echo_support;

use echo_support::{wav, wav_at};
use realtime_voice::audio::duck::DUCK_DB;
use realtime_voice::audio::echo_guard::{
    Capture, EchoGuard, EchoPath, EchoStats, GateState, DUCK_JUDGE_FRAMES, FRAME,
};

/// Where the user's first sound is in the talk fixtures, ms (1.2 s of padding + espeak's lead).
const USER_ONSET_MS: u64 = 1_212;
/// A late duck: the ducker set off this long after the voice's onset, ms (as in the lab's
/// slow speakerphone barge-ins).
const LATE_DUCK_MS: u64 = 380;
/// Assistant items by number, as the session numbers them (its player's slots).
const GREETING: u32 = 1;
const SECOND: u32 = 2;
const THIRD: u32 = 3;
const FOURTH: u32 = 4;
const FIFTH: u32 = 5;
/// Series of items: `MOVED + k`, `RESPONSES + k`, `DUCKED + 1 + k`, `ANSWER + 1 + leak_ms`.
const MOVED: u32 = 10;
const RESPONSES: u32 = 20;
const DUCKED: u32 = 100;
const ANSWER: u32 = 1_000;
const ROOMS: [(&str, u32); 3] = [("mild", 80), ("harsh", 80), ("speakerphone", 240)];

/// What the guard gave for one response: its output, and the state after each 10 ms block.
struct Run {
    out: Vec<i16>,
    states: Vec<GateState>,
    /// The echo path's evidence after each block.
    paths: Vec<EchoPath>,
    /// When the echo path was evidenced, ms from the start of this response's capture.
    echo_at_ms: Option<u64>,
}

/// Plays assistant.wav as item `item` while `mic` is captured, through `g`.
fn respond(g: &mut EchoGuard, item: u32, mic: &[i16]) -> Run {
    respond_pair(g, item, mic, mic)
}

/// As [`respond`], the microphone captured as a pair: `heard` judged, `sent` sent.
fn respond_pair(g: &mut EchoGuard, item: u32, heard: &[i16], sent: &[i16]) -> Run {
    respond_pair_playing(g, item, &wav("assistant.wav"), heard, sent)
}

/// As [`respond_pair`], playing `played` instead of assistant.wav.
fn respond_pair_playing(
    g: &mut EchoGuard,
    item: u32,
    played: &[i16],
    heard: &[i16],
    sent: &[i16],
) -> Run {
    let mic = sent;
    let reference: Vec<f32> = played.iter().map(|&s| f32::from(s) / 32768.0).collect();
    g.push_reference(item, &reference);
    let mut r = Run {
        out: Vec::with_capacity(mic.len()),
        states: Vec::new(),
        paths: Vec::new(),
        echo_at_ms: None,
    };
    for (i, (block, h)) in mic.chunks(FRAME).zip(heard.chunks(FRAME)).enumerate() {
        if i % 2 == 1 {
            g.played(item, ((i + 1) * FRAME).min(reference.len()) as u64);
        }
        g.process_pair(h, block, &mut r.out);
        r.states.push(g.stats().state);
        r.paths.push(g.stats().path);
        if r.echo_at_ms.is_none() && g.stats().path == EchoPath::Echo {
            r.echo_at_ms = Some(i as u64 * 10);
        }
    }
    r
}

/// Plays assistant.wav as item `item` while `mic` is captured, through `g`, the ducker turning
/// it down at sample `ducked.start` and back up at `ducked.end`: what `g` sent, and the sample
/// where the echo path was first evidenced.
fn respond_ducked(
    g: &mut EchoGuard,
    item: u32,
    mic: &[i16],
    ducked: std::ops::Range<usize>,
) -> (Vec<i16>, Option<usize>) {
    respond_ducked_pair(g, item, mic, mic, ducked)
}

/// As [`respond_ducked`], the microphone captured as a pair: `heard` judged, `sent` sent.
fn respond_ducked_pair(
    g: &mut EchoGuard,
    item: u32,
    heard: &[i16],
    sent: &[i16],
    ducked: std::ops::Range<usize>,
) -> (Vec<i16>, Option<usize>) {
    let reference: Vec<f32> = wav("assistant.wav")
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    g.push_reference(item, &reference);
    let (mut out, mut evidenced) = (Vec::new(), None);
    for (i, (block, h)) in sent.chunks(FRAME).zip(heard.chunks(FRAME)).enumerate() {
        let at = i * FRAME;
        if (at..at + FRAME).contains(&ducked.start) {
            g.set_ducked(true);
        }
        if (at..at + FRAME).contains(&ducked.end) {
            g.set_ducked(false);
        }
        if i % 2 == 1 {
            g.played(item, ((i + 1) * FRAME).min(reference.len()) as u64);
        }
        g.process_pair(h, block, &mut out);
        if evidenced.is_none() && g.stats().path == EchoPath::Echo {
            evidenced = Some(at);
        }
    }
    (out, evidenced)
}

/// A raw capture's guard that has heard `echo` over two responses (its path known).
fn raw_primed(echo: &[i16]) -> EchoGuard {
    let mut g = EchoGuard::raw(true);
    for item in [GREETING, SECOND] {
        respond(&mut g, item, echo);
        pause(&mut g);
    }
    g
}

/// 5 s without playback or echo (the room's tail dies, the gate goes idle).
fn pause(g: &mut EchoGuard) -> Vec<i16> {
    let mut out = Vec::new();
    g.process(&vec![0; 24_000 * 5], &mut out);
    out
}

/// A guard that has heard `room`'s echo of two responses, what it sent, and when the echo path
/// was evidenced (ms of capture from the start of the first response, pauses excluded).
fn primed(room: &str, gating: bool) -> (EchoGuard, Vec<Run>, Option<u64>) {
    let mut g = EchoGuard::new(gating);
    let mic = wav(&format!("{room}-echo.wav"));
    let (mut runs, mut at) = (Vec::new(), None);
    for (k, item) in [GREETING, SECOND].into_iter().enumerate() {
        let r = respond(&mut g, item, &mic);
        at = at.or(r.echo_at_ms.map(|t| t + k as u64 * mic.len() as u64 / 24));
        runs.push(r);
        pause(&mut g);
    }
    (g, runs, at)
}

fn frame_db(f: &[i16]) -> f64 {
    let e = f
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum::<f64>()
        / f.len() as f64;
    10.0 * e.max(1e-12).log10()
}

/// Where the reference server's VAD would start speech, ms of the stream.
fn vad_starts(pcm: &[i16]) -> Vec<u64> {
    let (mut starts, mut loud, mut quiet, mut speaking) = (Vec::new(), 0, 0, false);
    for (i, f) in pcm.chunks_exact(FRAME).enumerate() {
        if frame_db(f) > -40.0 {
            loud += 1;
            quiet = 0;
            if !speaking && loud >= 15 {
                speaking = true;
                starts.push(i as u64 * 10);
            }
        } else {
            loud = 0;
            quiet += 1;
            if quiet >= 50 {
                speaking = false;
            }
        }
    }
    starts
}

#[test]
fn the_echo_path_is_evidenced_within_two_responses() {
    for (room, delay_ms) in ROOMS {
        let (g, runs, at) = primed(room, true);
        let at = at.unwrap_or_else(|| panic!("{room}: no echo path: {:?}", g.stats()));
        let s = g.stats();
        println!("{room}: echo path at {at} ms, {s:?}");
        // Learning starts 400 ms into playback (every lag inside it).
        assert!(at <= 6_000, "{room}: echo path only at {at} ms");
        // Until then nothing was held back.
        let first = &runs[0];
        if first.echo_at_ms.is_none() {
            assert_eq!(
                first.out,
                wav(&format!("{room}-echo.wav"))[..first.out.len()]
            );
        }
        // The lag of the best correlation: the loop delay (the speakerphone adds a 100 ms
        // delay in its effects) within the 30 ms the reference's envelope holds.
        let d = s.delay_ms.unwrap_or_else(|| panic!("{room}: no delay"));
        let want = delay_ms + if room == "speakerphone" { 100 } else { 0 };
        assert!(
            d + 30 >= want && d <= want + 30,
            "{room}: {d} ms, want {want}"
        );
        let erl = s.return_loss_db.unwrap_or_else(|| panic!("{room}: no ERL"));
        assert!((-10.0..=12.0).contains(&erl), "{room}: ERL {erl} dB");
    }
}

#[test]
fn with_an_echo_path_echo_alone_never_reaches_the_servers_vad() {
    for (room, _) in ROOMS {
        let mic = wav(&format!("{room}-echo.wav"));
        assert!(
            !vad_starts(&mic).is_empty(),
            "{room}: unguarded, the echo trips the VAD"
        );
        let (mut g, _, _) = primed(room, true);
        let before = g.stats().guarded_ms;
        let r = respond(&mut g, THIRD, &mic);
        assert_eq!(
            vad_starts(&r.out),
            Vec::<u64>::new(),
            "{room}: {:?}",
            g.stats()
        );
        assert!(
            !r.states.contains(&GateState::Pass),
            "{room}: opened on echo"
        );
        assert!(
            g.stats().guarded_ms - before >= 2_500,
            "{room}: {:?}",
            g.stats()
        );
        // Nothing is lost or added: what is not sent yet is held in the pre-roll line.
        assert_eq!(
            r.out.len() as u64 + g.stats().held_ms * 24,
            mic.len() as u64,
            "{room}"
        );
    }
}

/// What a page's main thread takes from the two worklets, in the order it takes them.
enum Delivered {
    /// A captured 10 ms block (its index) and the context frame it was captured from.
    Mic(usize, u64),
    /// The player's progress: samples of the item played (24 kHz) by a context frame.
    Played(u64, u64),
}

/// Plays assistant.wav as `item` while `mic` is captured, through `g`, as a loaded page sees
/// it: the context (48 kHz) runs on from `*ctx`, the player reports every 50 ms, and the main
/// thread takes the worklets' messages in bursts after stalls of 10–150 ms, each burst's
/// progress before its captured blocks. `clocked`: with each block's and report's context
/// frame. Then a 5 s pause on the same clock. What `g` sent.
fn respond_out_of_step(
    g: &mut EchoGuard,
    item: u32,
    mic: &[i16],
    ctx: &mut u64,
    rng: &mut u32,
    clocked: bool,
) -> Vec<i16> {
    let reference: Vec<f32> = wav("assistant.wav")
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    g.push_reference(item, &reference);
    let mut out = Vec::new();
    let blocks: Vec<&[i16]> = mic.chunks(FRAME).collect();
    let (mut burst, mut stall) = (Vec::new(), 0u32);
    for i in 0..blocks.len() {
        let at = *ctx + i as u64 * 480;
        burst.push(Delivered::Mic(i, at));
        if i % 5 == 4 {
            let played = ((i + 1) * FRAME).min(reference.len()) as u64;
            burst.insert(0, Delivered::Played(played, at + 480));
        }
        if stall == 0 || i + 1 == blocks.len() {
            for d in burst.drain(..) {
                match d {
                    Delivered::Played(n, at) => g.played_at(item, n, clocked.then_some(at)),
                    Delivered::Mic(k, at) => {
                        if clocked {
                            g.capture_clock(at, 48_000);
                        }
                        g.process(blocks[k], &mut out);
                    }
                }
            }
            *rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            stall = *rng >> 28; // 0–15 blocks
        } else {
            stall -= 1;
        }
    }
    *ctx += blocks.len() as u64 * 480;
    for _ in 0..500 {
        if clocked {
            g.capture_clock(*ctx, 48_000);
        }
        g.process(&[0; FRAME], &mut out);
        *ctx += 480;
    }
    out
}

/// The page's worklets report out of step with the capture (the main thread takes their
/// messages in bursts). On the capture clock, what played is placed where it played: the path
/// is evidenced at the room's delay and the echo never reaches the server's VAD, as when the
/// reports come in step.
#[test]
fn on_the_capture_clock_reports_out_of_step_place_the_echo_where_it_played() {
    for (room, delay_ms) in ROOMS {
        let mic = wav(&format!("{room}-echo.wav"));
        let want = delay_ms + if room == "speakerphone" { 100 } else { 0 };
        for guard in [EchoGuard::new, EchoGuard::raw] {
            let mut g = guard(true);
            let (mut ctx, mut rng) = (1_234_567, 7);
            let mut outs = Vec::new();
            for item in [GREETING, SECOND, THIRD] {
                outs.push(respond_out_of_step(
                    &mut g, item, &mic, &mut ctx, &mut rng, true,
                ));
            }
            let s = g.stats();
            let what = format!("{room}, raw {}: {s:?}", s.raw);
            assert_eq!(s.path, EchoPath::Echo, "{what}");
            let d = s.delay_ms.unwrap_or_default();
            assert!(d + 30 >= want && d <= want + 30, "{what}: want {want} ms");
            assert_eq!(vad_starts(&outs[2]), Vec::<u64>::new(), "{what}");
        }
    }
}

/// A room with a noise floor (a fan, −45 dBFS: under the server's VAD, over the guard's
/// floor for a voice) through the pauses too: when the assistant speaks again, the new
/// response's echo has not arrived for the path's delay, and the prediction must not fall to
/// the path's short tail meanwhile (it opened the gate on the noise, and the echo then went
/// through: the echo lab's harsh room on raw capture, a self-interruption per answer).
#[test]
fn after_a_pause_in_a_noisy_room_the_echo_of_the_next_response_never_reaches_the_vad() {
    let mut x = 7u32;
    let mut noise = |n: usize| -> Vec<i16> {
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((x >> 16) % 639) as i16 - 319
            })
            .collect()
    };
    for guard in [EchoGuard::new, EchoGuard::raw] {
        for (room, _) in ROOMS {
            let mut g = guard(true);
            let echo = wav(&format!("{room}-echo.wav"));
            for item in [GREETING, SECOND, THIRD, FOURTH] {
                let mic: Vec<i16> = echo
                    .iter()
                    .zip(noise(echo.len()))
                    .map(|(&e, n)| e.saturating_add(n))
                    .collect();
                let r = respond(&mut g, item, &mic);
                if item != GREETING {
                    let what = format!(
                        "{room} {item}, raw {}: {:?}",
                        g.stats().path == EchoPath::Echo,
                        g.stats()
                    );
                    assert_eq!(vad_starts(&r.out), Vec::<u64>::new(), "{what}");
                    assert!(
                        !r.states.contains(&GateState::Pass),
                        "{what}: opened on echo"
                    );
                }
                let mut out = Vec::new();
                g.process(&noise(24_000 * 5), &mut out);
            }
        }
    }
}

/// Responses 400 ms apart (the room still rings with the last one's tail when the next one
/// starts): until the new response's echo can have arrived, the tail is judged against the
/// longest envelope, as in the pause (against the path's shorter one it opened the gate, and
/// the echo then went through: the echo lab's harsh room on raw capture).
#[test]
fn responses_close_together_the_tail_of_one_never_opens_the_gate_on_the_next() {
    let reference: Vec<f32> = wav("assistant.wav")
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    let every = (reference.len() + 9_600) / FRAME; // 3 s of speech, 400 ms apart
    for guard in [EchoGuard::new, EchoGuard::raw] {
        for (room, _) in ROOMS {
            let echo = wav(&format!("{room}-echo.wav"));
            // Six responses' echo, each from its start on, overlapping the last one's tail.
            let mut mic = vec![0i16; every * FRAME * 6 + echo.len()];
            for k in 0..6 {
                for (m, &e) in mic[k * every * FRAME..].iter_mut().zip(&echo) {
                    *m = m.saturating_add(e);
                }
            }
            let mut g = guard(true);
            let mut out = Vec::new();
            for (i, block) in mic.chunks(FRAME).enumerate() {
                let (k, j) = (i / every, i % every);
                let item = RESPONSES + k as u32;
                if j == 0 && k < 6 {
                    g.push_reference(item, &reference);
                }
                if i % 2 == 1 && k < 6 {
                    g.played(item, ((j + 1) * FRAME).min(reference.len()) as u64);
                }
                g.process(block, &mut out);
            }
            // From the third response on the path is known (the first two may be unguarded).
            let from = every * 2 * FRAME;
            let what = format!("{room}: {:?}", g.stats());
            assert_eq!(g.stats().path, EchoPath::Echo, "{what}");
            assert_eq!(vad_starts(&out[from..]), Vec::<u64>::new(), "{what}");
        }
    }
}

/// And again in the next responses: a voice that the guard held back for its first frames
/// does not raise the bar for the next one.
#[test]
fn with_an_echo_path_a_voice_over_the_echo_gets_through_with_its_first_word() {
    for (room, _) in ROOMS {
        let mic = wav(&format!("{room}-talk.wav"));
        let (mut g, _, _) = primed(room, true);
        for item in [THIRD, FOURTH, FIFTH] {
            let r = respond(&mut g, item, &mic);
            assert_first_word(&format!("{room}, {item} response"), &g, &r, &mic, 50);
            pause(&mut g);
        }
    }
}

/// The talk fixture's voice reached the VAD within 300 ms of its onset (or up to `early_ms`
/// before it: the pre-roll's echo adds to its first syllable), and its first 100 ms were sent
/// as captured, from the onset (the pre-roll), not silenced.
fn assert_first_word(room: &str, g: &EchoGuard, r: &Run, mic: &[i16], early_ms: u64) {
    let starts = vad_starts(&r.out);
    let first = *starts
        .first()
        .unwrap_or_else(|| panic!("{room}: the voice never reached the VAD: {:?}", g.stats()));
    assert!(
        first + early_ms >= USER_ONSET_MS && first <= USER_ONSET_MS + 300,
        "{room}: VAD starts {starts:?} ms, the voice starts at {USER_ONSET_MS} ms"
    );
    let at = (USER_ONSET_MS as usize * 24 / FRAME) * FRAME;
    let word = at..at + 10 * FRAME;
    assert_eq!(
        &r.out[word.clone()],
        &mic[word],
        "{room}: first 100 ms of the voice"
    );
}

/// A user who talks over the first response before the echo path is evidenced, at espeak-ng's
/// default level (the talk fixtures' voice 10 dB down): the ducker turns the assistant down
/// 40 ms into the voice (the echo falls `DUCK_DB` once the 150 ms ramp and the room's 80 ms are
/// over) and holds it for its longest, 3 s. Where the path is evidenced during the voice, the
/// voice must not be taken for echo: the guard's prediction follows the duck, and the voice
/// does not raise the coupling.
#[test]
fn a_voice_under_way_when_the_echo_path_is_evidenced_is_not_held_back() {
    let onset = USER_ONSET_MS as usize * 24;
    let (duck, undo) = (onset + 40 * 24, onset + 3_000 * 24);
    let heard = duck..undo + 80 * 24;
    let mut evidenced_rooms = 0;
    for (room, _) in ROOMS {
        let echo = wav(&format!("{room}-echo.wav"));
        let voice: Vec<i16> = wav(&format!("{room}-talk.wav"))
            .iter()
            .zip(&echo)
            .map(|(&t, &e)| ((f32::from(t) - f32::from(e)) * 0.316_227_8).round() as i16)
            .collect();
        let mic: Vec<i16> = voice
            .iter()
            .zip(&echo)
            .enumerate()
            .map(|(k, (&v, &e))| {
                let ducked = k >= heard.start + 230 * 24 && heard.contains(&k);
                let e = if ducked {
                    f32::from(e) * 10f32.powf(-(DUCK_DB as f32) / 20.0)
                } else {
                    f32::from(e)
                };
                (f32::from(v) + e).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        let mut g = EchoGuard::new(true);
        let (out, evidenced) = respond_ducked(&mut g, GREETING, &mic, duck..undo);
        let Some(from) = evidenced.filter(|&at| at < undo) else {
            continue;
        };
        evidenced_rooms += 1;
        // Frames where the voice alone is loud enough for the VAD, after the evidence, that
        // left as silence.
        let silenced = (from / FRAME..undo / FRAME)
            .filter(|&f| {
                let span = f * FRAME..(f + 1) * FRAME;
                frame_db(&voice[span.clone()]) > -40.0
                    && out.get(span).is_none_or(|o| o.iter().all(|&s| s == 0))
            })
            .count();
        assert!(
            silenced <= 2,
            "{room}: {silenced} frames of the voice silenced after the evidence at {} ms: {:?}",
            from / 24,
            g.stats()
        );
    }
    assert!(
        evidenced_rooms > 0,
        "no room evidenced its path during the voice"
    );
}

/// Without an echo path the output is the input, sample for sample and without delay, and the
/// gate never leaves Idle.
fn assert_passthrough(what: &str, g: &EchoGuard, mic: &[i16], r: &Run) {
    assert_ne!(g.stats().path, EchoPath::Echo, "{what}: {:?}", g.stats());
    assert!(r.states.iter().all(|&s| s == GateState::Idle), "{what}");
    assert_eq!(g.stats().guarded_ms, 0, "{what}");
    assert_eq!(r.out, mic, "{what}: not sample for sample as it came");
}

/// Chromium's fake microphone's file (tests/fixtures/mic.wav), twice in a row.
fn fake_mic_twice() -> Vec<i16> {
    let fake = wav_at(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/mic.wav"
    ));
    fake.iter().chain(&fake).copied().collect()
}

/// Chromium's fake microphone (tests/fixtures/mic.wav: speech that has nothing to do with what
/// is played) against the assistant's voice, three responses in a row through a guard made by
/// `guard`, each at another offset into the looped file (13 starts, 0.5 s apart; 1.7 s on per
/// response): `check(guard, response index, what, mic, run)` after each.
fn over_the_fake_mic(
    guard: fn(bool) -> EchoGuard,
    mut check: impl FnMut(&EchoGuard, usize, &str, &[i16], &Run),
) {
    let looped = fake_mic_twice();
    let len = looped.len() / 2;
    let n = wav("assistant.wav").len();
    for k in 0..13 {
        let mut g = guard(true);
        for (j, item) in [GREETING, SECOND, THIRD].into_iter().enumerate() {
            let off = (k * 12_000 + j * 40_800) % len;
            let mic = &looped[off..off + n];
            let r = respond(&mut g, item, mic);
            check(&g, j, &format!("start {k}, offset {off}, {item}"), mic, &r);
            pause(&mut g);
        }
    }
}

#[test]
fn without_an_echo_path_a_voice_is_never_held_back() {
    over_the_fake_mic(EchoGuard::new, |g, _, what, mic, r| {
        assert_passthrough(what, g, mic, r);
        assert!(!vad_starts(&r.out).is_empty(), "the voice reaches the VAD");
    });
    // Judged on a raw capture beside the processed one (the same here): no path; held only
    // over the first playback (1.5 s learnt: the guard cannot yet tell the canceller's first
    // leaks from a voice), nothing from then on.
    over_the_fake_mic(pair, |g, j, what, mic, r| {
        let what = format!("pair, {what}");
        if j == 0 {
            assert_ne!(g.stats().path, EchoPath::Echo, "{what}: {:?}", g.stats());
            assert!(g.stats().guarded_ms <= 1_800, "{what}: {:?}", g.stats());
            assert_eq!(r.out.len(), mic.len(), "{what}: nothing lost or added");
        } else {
            assert_ne!(g.stats().path, EchoPath::Echo, "{what}");
            assert!(r.states.iter().all(|&s| s == GateState::Idle), "{what}");
            assert_eq!(r.out, mic, "{what}: not sample for sample as it came");
        }
    });
    let looped = fake_mic_twice();
    let n = wav("assistant.wav").len();
    // A headset: nothing but the line's noise (−70 dBFS) while the assistant speaks, then a
    // voice over its second response.
    let mut x = 1u32;
    let noise: Vec<i16> = (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) % 21) as i16 - 10
        })
        .collect();
    let mut g = EchoGuard::new(true);
    let r = respond(&mut g, GREETING, &noise);
    assert_passthrough("headset, quiet", &g, &noise, &r);
    pause(&mut g);
    let r = respond(&mut g, SECOND, &looped[..n]);
    assert_passthrough("headset, a voice", &g, &looped[..n], &r);

    // The same headset judged as a pair: once every lag has seen the greeting play with the
    // raw capture at the line's noise, there is no loop to guard against, and a voice over the
    // rest of the first playback goes out as captured, not as silence.
    let onset = 24_000; // 1 s in
    let mic: Vec<i16> = noise[..onset]
        .iter()
        .chain(&looped[..n - onset])
        .copied()
        .collect();
    let mut g = pair(true);
    let r = respond_pair(&mut g, GREETING, &mic, &mic);
    assert_eq!(r.out.len(), mic.len(), "nothing lost or added");
    let lead = 300 * 24; // what the pre-roll line may still hold when the guard stands down
    assert_eq!(
        r.out[onset - lead..],
        mic[onset - lead..],
        "headset pair: the voice goes out as captured: {:?}",
        g.stats()
    );
    assert!(g.stats().guarded_ms <= 700, "{:?}", g.stats());
    let starts = vad_starts(&mic);
    assert!(!starts.is_empty());
    assert_eq!(
        vad_starts(&r.out),
        starts,
        "the voice reaches the VAD as captured"
    );
}

#[test]
fn shadow_mode_measures_but_sends_everything_at_once() {
    let (g, runs, _) = primed("harsh", false);
    let first = &runs[0];
    let mic = wav("harsh-echo.wav");
    assert_eq!(first.out, mic, "sent as it came");
    assert_eq!(g.stats().guarded_ms, 0);
    assert_eq!(g.stats().path, EchoPath::Echo);
    assert!(g.stats().delay_ms.is_some() && g.stats().return_loss_db.is_some());
}

/// Raw capture (`echoCanceller: "none"`, `EchoGuard::raw`): the first response is guarded
/// from its first echo on, before any path is evidenced, and none of it reaches the VAD; nor
/// does the second.
#[test]
fn on_raw_capture_echo_alone_never_reaches_the_servers_vad_from_the_first_response() {
    for (room, _) in ROOMS {
        let mic = wav(&format!("{room}-echo.wav"));
        let mut g = EchoGuard::raw(true);
        for item in [GREETING, SECOND] {
            let r = respond(&mut g, item, &mic);
            println!(
                "{room} {item}: path at {:?} ms, {:?}",
                r.echo_at_ms,
                g.stats()
            );
            assert_eq!(vad_starts(&r.out), Vec::<u64>::new(), "{room} {item}");
            assert!(!r.states.contains(&GateState::Pass), "{room} {item}");
            assert_eq!(
                r.out.len() as u64 + g.stats().held_ms * 24,
                mic.len() as u64,
                "{room} {item}: nothing lost or added"
            );
            pause(&mut g);
        }
    }
}

/// Raw capture: a voice louder than the echo (the talk fixtures') over the very first
/// response reaches the VAD at its onset, its first word as captured.
#[test]
fn on_raw_capture_a_voice_over_the_first_response_gets_through_with_its_first_word() {
    for (room, _) in ROOMS {
        let mic = wav(&format!("{room}-talk.wav"));
        let mut g = EchoGuard::raw(true);
        let r = respond(&mut g, GREETING, &mic);
        assert_first_word(room, &g, &r, &mic, 150);
    }
}

/// Raw capture with the echo path known (two responses): a voice 2 dB quieter than the talk
/// fixtures' gets through at its onset with its first word, in each of three responses. In
/// some band it stands well above the echo predicted there; broadband it does not clear the
/// harsh room's echo peaks (without the bands it never reaches the VAD there).
#[test]
fn on_raw_capture_a_voice_gets_through_where_its_bands_stand_out_over_the_echo() {
    let gain = 0.8;
    for (room, _) in ROOMS {
        let echo = wav(&format!("{room}-echo.wav"));
        // The voice alone is the talk fixture less the echo (sox's dither aside).
        let mic: Vec<i16> = echo
            .iter()
            .zip(&wav(&format!("{room}-talk.wav")))
            .map(|(&e, &t)| {
                let voice = f32::from(t) - f32::from(e);
                (f32::from(e) + gain * voice)
                    .round()
                    .clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        let mut g = raw_primed(&echo);
        for item in [THIRD, FOURTH, FIFTH] {
            assert_eq!(
                g.stats().path,
                EchoPath::Echo,
                "{room}, {item}: the path is known"
            );
            let r = respond(&mut g, item, &mic);
            // The pre-roll leaves whole, its echo as loud as played: up to 150 ms early.
            assert_first_word(&format!("{room}, {item} response"), &g, &r, &mic, 150);
            pause(&mut g);
        }
    }
}

/// Raw capture, the echo path known, then a headset (the fake microphone's speech, which
/// does not follow what is played): the path is doubted back to Unknown, where the gate still
/// guards, and only from there given up; the headset is let go within three responses.
#[test]
fn on_raw_capture_a_doubted_echo_path_is_guarded_before_it_is_given_up() {
    let looped = fake_mic_twice();
    let n = wav("assistant.wav").len();
    for (room, _) in ROOMS {
        let echo = wav(&format!("{room}-echo.wav"));
        let mut g = raw_primed(&echo);
        assert_eq!(g.stats().path, EchoPath::Echo, "{room}");
        let mut paths = vec![EchoPath::Echo];
        let len = looped.len() / 2;
        for (j, item) in [THIRD, FOURTH, FIFTH].into_iter().enumerate() {
            let off = (j * 40_800) % len;
            let r = respond(&mut g, item, &looped[off..off + n]);
            for p in r.paths {
                if paths.last() != Some(&p) {
                    paths.push(p);
                }
            }
            pause(&mut g);
        }
        assert_eq!(
            paths,
            [EchoPath::Echo, EchoPath::Unknown, EchoPath::None],
            "{room}"
        );
    }
}

/// Raw capture with a headset or a fake microphone (speech that does not follow what is
/// played): the guard holds it back only until it gives up on a path, within the first two
/// responses; from then on nothing is held and every sample leaves as it came.
#[test]
fn on_raw_capture_without_an_echo_path_the_guard_lets_go_within_two_responses() {
    over_the_fake_mic(EchoGuard::raw, |g, j, what, mic, r| {
        let what = format!("{what}: {:?}", g.stats());
        assert_eq!(r.echo_at_ms, None, "{what}: taken for an echo path");
        if j == 1 {
            assert_eq!(g.stats().path, EchoPath::None, "{what}");
        } else if j == 2 {
            assert!(r.states.iter().all(|&s| s == GateState::Idle), "{what}");
            assert_eq!(r.out, mic, "{what}: not sample for sample as it came");
        }
    });
}

/// What a browser's canceller makes of `echo` in a reverberant room: the echo 40 dB down, but
/// leaking through 250 ms of every 800 ms at its own level plus 6 dB (the gain control), as
/// the lab measured behind Chromium's canceller; `voice` (if any) passes untouched.
fn leaky_canceller(echo: &[i16], voice: Option<&[i16]>) -> Vec<i16> {
    echo.iter()
        .enumerate()
        .map(|(i, &e)| {
            let leak = (i / 24) % 800 >= 550;
            let e = f32::from(e) * if leak { 2.0 } else { 0.01 };
            let v = voice.map_or(0.0, |v| f32::from(v[i]));
            (e + v).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// A guard judging a pair that has heard a room's `echo` 300 ms later than it comes, through a
/// leaky canceller, over two responses: its path's lag is later than the echo's.
fn primed_late_pair(echo: &[i16]) -> EchoGuard {
    let later = 300 * 24;
    let late: Vec<i16> = std::iter::repeat_n(0, later)
        .chain(echo[..echo.len() - later].iter().copied())
        .collect();
    let g = primed_pair(&late, &leaky_canceller(&late, None));
    let lag = g.stats().delay_ms;
    assert!(lag.is_some_and(|d| d >= 300), "{:?}", g.stats());
    g
}

/// A guard judging a raw capture beside the processed one it sends (`echoGuard: "raw"`).
fn pair(gating: bool) -> EchoGuard {
    EchoGuard::for_capture(gating, Capture::Pair)
}

/// A guard judging a pair that has heard `heard` and sent `sent` over two responses.
fn primed_pair(heard: &[i16], sent: &[i16]) -> EchoGuard {
    let mut g = pair(true);
    for item in [GREETING, SECOND] {
        respond_pair(&mut g, item, heard, sent);
        pause(&mut g);
    }
    g
}

/// What a canceller that takes everything out (60 dB) makes of `x`: the echo, and a voice in
/// it too (a suppressor in double talk).
fn cancelled(x: &[i16]) -> Vec<i16> {
    x.iter().map(|&s| s / 1000).collect()
}

/// What a canceller that takes the echo 40 dB down makes of `x` (a voice mixed in after it
/// leaves whole).
fn cleaned(x: &[i16]) -> Vec<i16> {
    x.iter().map(|&s| s / 100).collect()
}

/// Judged as a pair in a reverberant room the raw capture correlates almost as well at every
/// lag, and the path may settle later than the echo arrives (the lab's harsh room: 350–530 ms
/// against a 110–150 ms loop). When the assistant speaks again after a pause, the echo of its
/// first words then comes before the path's lag says, and the canceller, re-converging, leaks
/// it: the guard expects it from the moment it plays, and none of it reaches the VAD.
#[test]
fn judged_as_a_pair_an_echo_sooner_than_the_paths_lag_is_expected_when_playback_starts() {
    let echo = wav("harsh-echo.wav");
    let mut g = primed_late_pair(&echo);
    // The loop as it was before: its first 600 ms leak through the canceller.
    let onset_leak: Vec<i16> = echo
        .iter()
        .enumerate()
        .map(|(i, &e)| if i < 600 * 24 { e } else { e / 100 })
        .collect();
    assert!(
        !vad_starts(&onset_leak).is_empty(),
        "the leak alone starts the VAD"
    );
    let r = respond_pair(&mut g, THIRD, &echo, &onset_leak);
    assert_eq!(vad_starts(&r.out), Vec::<u64>::new(), "{:?}", g.stats());
}

/// The next sample of a uniform noise of unit variance from the generator state `x` (a
/// linear congruential generator: the same noise every run).
fn unit_noise(x: &mut u32) -> f32 {
    *x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    ((*x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0 * 1.732
}

/// Sample `n` of `played` heard `delay` samples late (0 before it starts and after it ends).
fn direct(played: &[i16], n: usize, delay: usize) -> f32 {
    n.checked_sub(delay)
        .and_then(|i| played.get(i))
        .map_or(0.0, |&s| f32::from(s))
}

/// A room's echo of `played`, 4.5 s of it: the direct sound `delay_ms` late at half its level,
/// and a diffuse tail 6 dB under that (noise under the played energy, ringing down 60 dB in
/// `t60_ms`).
fn room_echo(played: &[i16], delay_ms: usize, t60_ms: f32) -> Vec<i16> {
    let delay = delay_ms * 24;
    let k = 10f32.powf(-6.0 / (t60_ms * 24.0));
    let (mut energy, mut x) = (0.0f32, 1u32);
    (0..4_500 * 24usize)
        .map(|n| {
            let direct = direct(played, n, delay);
            energy = k * energy + (1.0 - k) * direct * direct;
            (0.5 * direct + 0.25 * unit_noise(&mut x) * energy.sqrt()).round() as i16
        })
        .collect()
}

/// As the test above, after a pause too short to count as playback stopping (a gap between
/// words or sentences), in a room whose echo arrives 300 ms before the path's lag: while the
/// gap arrives at the lag, what played since is expected from the moment it played, and the
/// echo of the loud restart, leaking through the canceller, does not reach the VAD.
#[test]
fn judged_as_a_pair_an_echo_sooner_than_the_paths_lag_is_expected_after_a_short_pause() {
    let assistant = wav("assistant.wav");
    let mut g = primed_late_pair(&room_echo(&assistant, 80, 500.0));
    // 1.2 s of speech, a 240 ms gap, and 600 ms of speech again.
    let (speech, again) = (200 * 24..1_400 * 24, 260 * 24..860 * 24);
    let played: Vec<i16> = assistant[speech]
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, 240 * 24))
        .chain(assistant[again].iter().copied())
        .collect();
    let echo = room_echo(&played, 80, 500.0);
    let restart = 1_440 * 24;
    let restart_leak: Vec<i16> = echo
        .iter()
        .enumerate()
        .map(|(i, &e)| if i >= restart { e } else { e / 100 })
        .collect();
    assert!(
        !vad_starts(&restart_leak).is_empty(),
        "the leak alone starts the VAD"
    );
    let r = respond_pair_playing(&mut g, THIRD, &played, &echo, &restart_leak);
    assert_eq!(vad_starts(&r.out), Vec::<u64>::new(), "{:?}", g.stats());
}

/// The microphone captured as a pair (`echoGuard: "raw"`): once the raw capture has shown
/// the echo path, a canceller's leaks, loud enough for the server's VAD, never reach it,
/// because the raw capture shows the echo explains them; before that nothing is held but over
/// the first playback. Every sample sent is the processed one, none lost.
#[test]
fn judged_by_the_raw_capture_a_cancellers_leaks_never_reach_the_vad() {
    for (room, _) in ROOMS {
        let heard = wav(&format!("{room}-echo.wav"));
        let sent = leaky_canceller(&heard, None);
        assert!(
            !vad_starts(&sent).is_empty(),
            "{room}: the leaks alone start the VAD"
        );
        let mut g = pair(true);
        for item in [GREETING, SECOND, THIRD] {
            let known = g.stats().path == EchoPath::Echo;
            assert!(
                known || item != THIRD,
                "{room}: the path is known by the third"
            );
            let r = respond_pair(&mut g, item, &heard, &sent);
            let evidenced = r.echo_at_ms.map(|t| t as usize * 24).unwrap_or(sent.len());
            if known {
                assert_eq!(vad_starts(&r.out), Vec::<u64>::new(), "{room} {item}");
            } else {
                // Held only over the first playback learnt (1.5 s), and sent again as captured
                // once that line has left.
                let from = (1_800 * 24).min(evidenced);
                assert_eq!(
                    r.out[from..evidenced],
                    sent[from..evidenced],
                    "{room} {item}: not held"
                );
            }
            assert_eq!(
                r.out.len() as u64 + g.stats().held_ms * 24,
                sent.len() as u64,
                "{room} {item}: nothing lost or added"
            );
            for (k, (o, s)) in r.out.chunks(FRAME).zip(sent.chunks(FRAME)).enumerate() {
                assert!(
                    o == s || o.iter().all(|&x| x == 0),
                    "{room} {item}: frame {k} is neither the processed capture nor silence"
                );
            }
            pause(&mut g);
        }
        assert_eq!(g.stats().path, EchoPath::Echo, "{room}");
    }
}

/// Captured as a pair with the echo path known: a voice over the echo (the talk fixtures')
/// opens the gate on the raw capture, and what reaches the server from its onset is the
/// processed capture (the voice without the echo), its first word whole.
#[test]
fn judged_by_the_raw_capture_a_voice_gets_through_as_the_canceller_cleaned_it() {
    for (room, _) in ROOMS {
        let echo = wav(&format!("{room}-echo.wav"));
        let talk = wav(&format!("{room}-talk.wav"));
        let voice: Vec<i16> = talk
            .iter()
            .zip(&echo)
            .map(|(&t, &e)| (i32::from(t) - i32::from(e)).clamp(-32768, 32767) as i16)
            .collect();
        let sent = leaky_canceller(&echo, Some(&voice));
        let mut g = primed_pair(&echo, &leaky_canceller(&echo, None));
        assert_eq!(g.stats().path, EchoPath::Echo, "{room}: the path is known");
        let r = respond_pair(&mut g, THIRD, &talk, &sent);
        assert_first_word(&format!("{room}, pair"), &g, &r, &sent, 150);
    }
}

/// Raw capture with the echo path known, the ducker turning the assistant down for 1.5 s in
/// each of three responses: when the duck ends the echo comes back at full level, here 60 ms
/// sooner than the path's lag says and with the room's tail of the ducked audio at full level
/// too (the lag's estimate and the player's ramp are no more certain than that). It is never
/// taken for a voice: nothing reaches the VAD.
#[test]
fn on_raw_capture_the_echo_returning_after_a_duck_is_not_taken_for_a_voice() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    for (room, delay_ms) in ROOMS {
        let echo = wav(&format!("{room}-echo.wav"));
        let delay = delay_ms as usize * 24;
        // Down once the 150 ms ramp and the room's delay are over; back 60 ms early.
        let down = duck + (150 * 24) + delay..undo + delay - 60 * 24;
        let mic: Vec<i16> = echo
            .iter()
            .enumerate()
            .map(|(k, &e)| {
                let g = if down.contains(&k) {
                    10f32.powf(-(DUCK_DB as f32) / 20.0)
                } else {
                    1.0
                };
                (f32::from(e) * g).round() as i16
            })
            .collect();
        assert_no_vad_through_ducks(room, &mut raw_primed(&echo), &mic, duck..undo);
    }
}

/// Three responses of `mic`, each ducked over `ducked`, through `g` (its path known): nothing
/// that leaves starts the server's VAD.
fn assert_no_vad_through_ducks(
    what: &str,
    g: &mut EchoGuard,
    mic: &[i16],
    ducked: std::ops::Range<usize>,
) {
    for item in [THIRD, FOURTH, FIFTH] {
        assert_eq!(g.stats().path, EchoPath::Echo, "{what} {item}");
        let (mut out, _) = respond_ducked(g, item, mic, ducked.clone());
        assert_eq!(
            vad_starts(&out),
            Vec::<u64>::new(),
            "{what} {item}: {:?}",
            g.stats()
        );
        out.extend(pause(g));
    }
}

/// Judged as a pair, the first playback is guarded before the raw capture has shown the path
/// (a browser canceller that has not converged lets the first echo through): no leak in the
/// first 1.5 s of the first response reaches the VAD.
#[test]
fn judged_by_the_raw_capture_the_first_leaks_before_the_path_never_reach_the_vad() {
    for (room, _) in ROOMS {
        let heard = wav(&format!("{room}-echo.wav"));
        let sent = leaky_canceller(&heard, None);
        let early = 1_500 * 24;
        assert!(
            vad_starts(&sent).iter().any(|&ms| ms < 1_500),
            "{room}: the first leak alone starts the VAD"
        );
        let mut g = pair(true);
        let r = respond_pair(&mut g, GREETING, &heard, &sent);
        let starts: Vec<u64> = vad_starts(&r.out[..early.min(r.out.len())]);
        assert_eq!(starts, Vec::<u64>::new(), "{room}: {:?}", g.stats());
    }
}

/// The harsh fixture's echo as the room rings through a duck from `duck` to `undo` (from the
/// end of the player's ramp and the loop on it dies away at `fall_db_per_s` down to the duck's
/// level), and the echo of a response followed by the room ringing down at 20 dB/s once it
/// ends (a diffuse tail from −15 dBFS), to learn the room from.
fn harsh_ringing(duck: usize, undo: usize, fall_db_per_s: f32) -> (Vec<i16>, Vec<i16>) {
    let echo = wav("harsh-echo.wav");
    let from = duck + (150 + 80) * 24;
    let floor = 10f32.powf(-(DUCK_DB as f32) / 20.0);
    let mic: Vec<i16> = echo
        .iter()
        .enumerate()
        .map(|(k, &e)| {
            let g = match k.checked_sub(from) {
                Some(t) if k < undo => 10f32
                    .powf(-fall_db_per_s * t as f32 / 24_000.0 / 20.0)
                    .max(floor),
                _ => 1.0,
            };
            (f32::from(e) * g).round() as i16
        })
        .collect();
    let mut x = 1u32;
    let end = (0..echo.len() / FRAME)
        .rfind(|&f| frame_db(&echo[f * FRAME..(f + 1) * FRAME]) > -30.0)
        .map_or(echo.len(), |f| (f + 1) * FRAME);
    let rung: Vec<i16> = echo[..end]
        .iter()
        .copied()
        .chain((0..36_000).map(|t| {
            let level = 32768.0 * 10f32.powf((-15.0 - 20.0 * t as f32 / 24_000.0) / 20.0);
            (unit_noise(&mut x) * level).round() as i16
        }))
        .collect();
    (mic, rung)
}

/// On raw capture, a duck turns down what plays next, not what the room still rings with: in
/// the lab's harsh room the echo fell some 20 dB a second once the assistant was ducked, slower
/// than the path's tail says. The guard learns how fast the room rings down in the gaps
/// between words; through a duck that ringing is the echo's, not a voice: none of it reaches
/// the server's VAD.
#[test]
fn on_raw_capture_the_room_ringing_on_through_a_duck_is_not_taken_for_a_voice() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let (mic, rung) = harsh_ringing(duck, undo, 20.0);
    assert_no_vad_through_ducks("harsh", &mut raw_primed(&rung), &mic, duck..undo);
}

/// The user's voice of a talk fixture (the talk less the echo) at a third: about its default
/// level.
fn user_voice(talk: &[i16], echo: &[i16]) -> Vec<i16> {
    talk.iter()
        .zip(echo)
        .map(|(&t, &e)| ((i32::from(t) - i32::from(e)) / 3).clamp(-32768, 32767) as i16)
        .collect()
}

/// Two captures summed, sample by sample.
fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
    a.iter()
        .zip(b)
        .map(|(&a, &b)| a.saturating_add(b))
        .collect()
}

/// The room heard ringing down in the gaps as the lab's raw capture hears it: its level
/// flickers from one frame to the next (each 10 ms frame's fall varies by about 2 dB) around
/// a fall of 20 dB/s. The guard learns the ring-down as a mean over hundreds of falls, so that
/// a flicker does not make it expect the room to fall silent sooner than it does, and the
/// ringing through a later duck never reaches the VAD. With a mean whose time constant was 16
/// falls, the first of these five flickers already let it through.
#[test]
fn on_raw_capture_a_ring_down_heard_flickering_still_expects_the_ringing_through_a_duck() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let (mic, rung) = harsh_ringing(duck, undo, 20.0);
    let end = rung.len() - 36_000;
    for seed in 1..=5u32 {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut gain = 1.0;
        let flickering: Vec<i16> = rung
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                if k >= end && (k - end) % FRAME == 0 {
                    // ±3 dB per frame, uniformly.
                    gain = 10f32.powf(next() * 6.0 / 20.0);
                }
                let g = if k >= end { gain } else { 1.0 };
                (f32::from(s) * g).round().clamp(-32768.0, 32767.0) as i16
            })
            .collect();
        assert_no_vad_through_ducks(
            &format!("flicker {seed}"),
            &mut raw_primed(&flickering),
            &mic,
            duck..undo,
        );
    }
}

/// On raw capture, a duck is heard taking the room down: the quietest the microphone has been
/// since the duck's effect arrived bounds what the room still rings with. Where the room falls
/// faster than the guard expects (100 dB/s against the 20 it learnt in the gaps; in the lab's
/// first answer no gap has taught it yet, and it expects the slowest room), a voice over the
/// duck (the harsh talk fixture's at a third, from 210 ms into it) reaches the VAD within
/// 300 ms of its onset (120 ms); expecting the learnt ring-down, 650 ms. The echo alone
/// through the same duck still never reaches the VAD.
#[test]
fn on_raw_capture_a_voice_in_a_duck_gets_through_once_the_room_is_heard_to_fall() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let (echo, talk) = (wav("harsh-echo.wav"), wav("harsh-talk.wav"));
    let voice = user_voice(&talk, &echo);
    let (mic, rung) = harsh_ringing(duck, undo, 100.0);
    let mut g = raw_primed(&rung);
    let (out, _) = respond_ducked(&mut g, THIRD, &mix(&mic, &voice), duck..undo);
    let starts = vad_starts(&out);
    assert!(
        starts
            .iter()
            .any(|&ms| (USER_ONSET_MS..USER_ONSET_MS + 300).contains(&ms)),
        "{starts:?}: {:?}",
        g.stats()
    );
    assert_no_vad_through_ducks(
        "harsh, falling fast",
        &mut raw_primed(&rung),
        &mic,
        duck..undo,
    );
}

/// The speakerphone fixture's echo, 25 dB down once the player's 150 ms ramp and the room's
/// delay (its loop and the 100 ms in its effects: 340 ms) are over after `duck`, until as long
/// after `undo`; the microphone hearing it so; and the talk fixture's voice at a third.
fn speakerphone_ducked(duck: usize, undo: usize) -> (Vec<i16>, Vec<i16>, Vec<i16>) {
    let (echo, talk) = (wav("speakerphone-echo.wav"), wav("speakerphone-talk.wav"));
    let mic = heard_ducked(&echo, 340, duck, undo);
    let voice = user_voice(&talk, &echo);
    (echo, mic, voice)
}

/// A room's `echo` as the microphone hears it when the player ducks from `duck` until `undo`
/// (samples): `DUCK_DB` down once the player's 150 ms ramp and the room's `delay_ms` are over,
/// until `delay_ms` after `undo`.
fn heard_ducked(echo: &[i16], delay_ms: usize, duck: usize, undo: usize) -> Vec<i16> {
    let delay = delay_ms * 24;
    let down = duck + 150 * 24 + delay..undo + delay;
    let gain = 10f32.powf(-(DUCK_DB as f32) / 20.0);
    echo.iter()
        .enumerate()
        .map(|(k, &e)| (f32::from(e) * if down.contains(&k) { gain } else { 1.0 }) as i16)
        .collect()
}

/// Judged as a pair, a voice is told from the echo through a duck only once the duck's effect
/// is heard: in the speakerphone room about 550 ms after the duck (its ramp, the loop and the
/// room's 340 ms). The pre-roll keeps every frame from 100 ms before the duck meanwhile, so
/// the voice (the talk fixture's at a third, ducked 60 ms after its onset) reaches the server
/// from its first word: its first 100 ms as the canceller left them (the echo 40 dB down),
/// which a 300 ms pre-roll sent as silence.
#[test]
fn judged_as_a_pair_a_voice_in_a_duck_reaches_the_server_from_its_first_word() {
    let onset = USER_ONSET_MS as usize * 24;
    let (duck, undo) = (onset + 60 * 24, onset + 2_000 * 24);
    let (echo, mic, voice) = speakerphone_ducked(duck, undo);
    let heard = mix(&mic, &voice);
    let sent = mix(&cleaned(&mic), &voice);
    let mut g = primed_pair(&echo, &cleaned(&echo));
    let (out, _) = respond_ducked_pair(&mut g, THIRD, &heard, &sent, duck..undo);
    let starts = vad_starts(&out);
    assert!(
        starts
            .first()
            .is_some_and(|&ms| (USER_ONSET_MS - 100..USER_ONSET_MS + 300).contains(&ms)),
        "{starts:?}: {:?}",
        g.stats()
    );
    let word = onset / FRAME * FRAME..(onset / FRAME + 10) * FRAME;
    assert_eq!(&out[word.clone()], &sent[word], "{:?}", g.stats());
}

/// Judged as a pair behind a canceller whose suppressor takes out a voice in double talk with
/// the echo (60 dB, as Chromium's did in the lab's speakerphone room even 25 dB ducked): once
/// the duck's effect has reached the microphone, a voice the gate lets through leaves as the
/// raw capture heard it, and the word under way reaches the VAD. Without a voice the raw
/// capture never leaves. (Where the canceller also takes out a long ringing, the gate still
/// expects the ringing in a duck:
/// `judged_as_a_pair_the_ringing_a_canceller_takes_out_never_reaches_the_vad_through_a_duck`.)
#[test]
fn judged_as_a_pair_a_voice_the_canceller_suppresses_in_a_duck_leaves_raw() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let (echo, mic, voice) = speakerphone_ducked(duck, undo);
    let primed = || primed_pair(&echo, &cancelled(&echo));
    let heard = mix(&mic, &voice);
    let mut g = primed();
    let (out, _) = respond_ducked_pair(&mut g, THIRD, &heard, &cancelled(&heard), duck..undo);
    let starts = vad_starts(&out);
    // The duck's effect is heard from 1 490 ms on: the word under way then is the first
    // that can be told from the echo.
    assert!(
        starts.iter().any(|&ms| (1_490..1_900).contains(&ms)),
        "{starts:?}: {:?}",
        g.stats()
    );
    let mut g = primed();
    let (out, _) = respond_ducked_pair(&mut g, THIRD, &mic, &cancelled(&mic), duck..undo);
    assert_eq!(vad_starts(&out), Vec::<u64>::new(), "{:?}", g.stats());
    // Nothing is lost or added.
    assert_eq!(out.len() as u64 + g.stats().held_ms * 24, mic.len() as u64);
}

/// Where the session's ducker lets go of a duck at `duck` over `heard` (judged) and `sent` on
/// the pair guard `g`, when all it watches is quiet (the canceller suppresses the voice in
/// double talk): 150 ms after the duck's effect reaches the microphone, or, with `judged_on`,
/// at the guard's hold (`duck_hold_frames`: up to 400 ms later while it is still judging the
/// duck). The sample it lets go at.
fn ducker_lets_go(
    mut g: EchoGuard,
    heard: &[i16],
    sent: &[i16],
    duck: usize,
    judged_on: bool,
) -> usize {
    let reference: Vec<f32> = wav("assistant.wav")
        .iter()
        .map(|&s| f32::from(s) / 32768.0)
        .collect();
    g.push_reference(THIRD, &reference);
    let mut out = Vec::new();
    for (i, (block, h)) in sent.chunks(FRAME).zip(heard.chunks(FRAME)).enumerate() {
        let at = i * FRAME;
        if at >= duck {
            let since = (at - duck) / FRAME;
            let hold = if judged_on {
                g.duck_hold_frames()
            } else {
                g.duck_effect_frames().map(|k| k + DUCK_JUDGE_FRAMES)
            };
            if since >= hold.unwrap_or(0) as usize {
                return at;
            }
        }
        if (at..at + FRAME).contains(&duck) {
            g.set_ducked(true);
        }
        if i % 2 == 1 {
            g.played(THIRD, ((i + 1) * FRAME).min(reference.len()) as u64);
        }
        g.process_pair(h, block, &mut out);
    }
    sent.len()
}

/// Judged as a pair in the speakerphone room, a voice the canceller suppresses in double talk
/// sets the ducker off late (here 380 ms after the voice's onset, as in the lab), and the
/// ducker, watching that suppressed capture, would let go 150 ms after the duck's effect
/// reaches the microphone, before the gate has told the voice from the echo: the voice held
/// since the duck then left as silence, and the next second of it with the echo back at full
/// level (the lab: the first word 1 s late in 3 of 10 barge-ins). While the raw capture stays
/// louder than the ducked echo the guard is still judging the duck, and the ducker holds on:
/// the voice reaches the VAD within the duck, at the fixture's level and at half of it (within
/// about 6 dB of the ducked echo: the room's echo follows the shortest tail, so the margin
/// through a duck is 3 dB, not the 4 dB elsewhere).
#[test]
fn judged_as_a_pair_a_late_duck_is_held_until_the_voice_over_it_is_told() {
    for gain in [1.0, 0.5] {
        late_duck_held_on(gain);
    }
}

fn late_duck_held_on(gain: f32) {
    let firsts = late_duck_firsts(speakerphone_ducked, gain);
    // Let go 150 ms after the effect, the voice never reaches the VAD; held on, it does before
    // the duck ends.
    let duck_ms = USER_ONSET_MS + LATE_DUCK_MS;
    assert!(
        firsts[0].0.is_none()
            && firsts[1]
                .0
                .is_some_and(|ms| (duck_ms..firsts[1].1).contains(&ms)),
        "voice × {gain}: {firsts:?}"
    );
}

/// A capture of a room ducked from `duck` until `undo` (samples): the room's echo as it plays
/// unducked, the microphone hearing it ducked, and the user's voice to mix in.
type Ducked = fn(usize, usize) -> (Vec<i16>, Vec<i16>, Vec<i16>);

/// Judged as a pair over `ducked`'s room with its voice at `gain`, the duck [`LATE_DUCK_MS`]
/// after the voice's onset: for the ducker letting go 150 ms after the duck's effect is heard,
/// then held on ([`ducker_lets_go`]), when the voice first reached the VAD (ms, if it did),
/// when the ducker let go (ms), and the guard's stats. Asserts that the echo alone never
/// reaches the VAD, however long the duck is held.
fn late_duck_firsts(ducked: Ducked, gain: f32) -> Vec<(Option<u64>, u64, EchoStats)> {
    let scaled =
        |v: Vec<i16>| -> Vec<i16> { v.iter().map(|&s| (f32::from(s) * gain) as i16).collect() };
    let onset = USER_ONSET_MS as usize * 24;
    let duck = onset + LATE_DUCK_MS as usize * 24;
    let (echo, long_mic, long_voice) = ducked(duck, duck + 5_000 * 24);
    let long_heard = mix(&long_mic, &scaled(long_voice));
    let mut firsts = Vec::new();
    for judged_on in [false, true] {
        let g = primed_pair(&echo, &cancelled(&echo));
        let undo = ducker_lets_go(g, &long_heard, &cancelled(&long_heard), duck, judged_on);
        let (echo, mic, voice) = ducked(duck, undo);
        let heard = mix(&mic, &scaled(voice));
        let mut g = primed_pair(&echo, &cancelled(&echo));
        let (out, _) = respond_ducked_pair(&mut g, THIRD, &heard, &cancelled(&heard), duck..undo);
        let starts = vad_starts(&out);
        firsts.push((starts.first().copied(), (undo / 24) as u64, g.stats()));
        let mut g = primed_pair(&echo, &cancelled(&echo));
        let (out, _) = respond_ducked_pair(&mut g, THIRD, &mic, &cancelled(&mic), duck..undo);
        assert_eq!(vad_starts(&out), Vec::<u64>::new(), "{:?}", g.stats());
    }
    firsts
}

/// A dry room's capture, ducked as [`speakerphone_ducked`] ducks the speakerphone's: the
/// echo of assistant.wav 120 ms late, ringing down in 50 ms, as [`room_echo`] makes it but
/// with the direct sound 3.5 dB louder than what plays (a speaker beside the microphone);
/// the speakerphone talk fixture's voice at a third.
fn dry_ducked(duck: usize, undo: usize) -> (Vec<i16>, Vec<i16>, Vec<i16>) {
    let echo: Vec<i16> = room_echo(&wav("assistant.wav"), 120, 50.0)
        .iter()
        .map(|&e| (f32::from(e) * 3.0) as i16)
        .collect();
    let mic = heard_ducked(&echo, 120, duck, undo);
    let voice = user_voice(&wav("speakerphone-talk.wav"), &wav("speakerphone-echo.wav"));
    (echo, mic, voice)
}

/// Judged as a pair in a dry room the echo path follows the dry envelope, so the margin
/// through a duck is 3 dB, as on the shortest tail: a quiet voice over a late duck (the talk
/// fixture's 15 dB under its default level) reaches the VAD within 150 ms of the duck's effect
/// being heard, before even a ducker that lets go then, and held on too. (At 4 dB, or with the
/// 3 dB on the shortest tail only, it reaches the VAD only held on.)
#[test]
fn judged_as_a_pair_in_a_dry_room_a_quiet_voice_over_a_late_duck_is_told_before_an_early_let_go() {
    let firsts = late_duck_firsts(dry_ducked, 0.18);
    assert!(
        firsts.iter().all(|(first, undo_ms, _)| first
            .is_some_and(|ms| (USER_ONSET_MS + LATE_DUCK_MS..*undo_ms).contains(&ms))),
        "{firsts:?}"
    );
}

/// Judged as a pair with the echo path known, a duck's ramp as the player makes it, late: the
/// guard takes what plays as ducked from the duck plus the player's 150 ms ramp, but the ramp
/// begins only when the duck's message reaches the player (the capture block the duck was
/// decided on, a busy main thread: here up to 100 ms after the duck) and falls linearly in
/// amplitude. The echo of the ramp's first frames, louder than predicted, never reaches the
/// VAD through a canceller that leaks (250 ms of every 800), in any of the lab's rooms.
#[test]
fn judged_as_a_pair_the_echo_of_a_duck_ramped_late_never_reaches_the_vad() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let floor = 10f32.powf(-(DUCK_DB as f32) / 20.0);
    for (room, delay_ms) in ROOMS {
        let echo = wav(&format!("{room}-echo.wav"));
        for late_ms in [20, 100] {
            let mut g = primed_pair(&echo, &leaky_canceller(&echo, None));
            let (start, ramp) = (duck + (late_ms + delay_ms as usize) * 24, 150 * 24);
            let mic: Vec<i16> = echo
                .iter()
                .enumerate()
                .map(|(k, &e)| {
                    let gain = match k.checked_sub(start) {
                        Some(t) if k < undo + delay_ms as usize * 24 => {
                            1.0 - (1.0 - floor) * (t as f32 / ramp as f32).min(1.0)
                        }
                        _ => 1.0,
                    };
                    (f32::from(e) * gain).round() as i16
                })
                .collect();
            for item in [THIRD, FOURTH] {
                let sent = leaky_canceller(&mic, None);
                let (out, _) = respond_ducked_pair(&mut g, item, &mic, &sent, duck..undo);
                assert_eq!(
                    vad_starts(&out),
                    Vec::<u64>::new(),
                    "{room}, {late_ms} ms late, {item}: {:?}",
                    g.stats()
                );
                pause(&mut g);
            }
        }
    }
}

/// Judged as a pair behind a canceller that takes the echo out (60 dB), the room's ringing
/// through a duck is expected only as loud as it was heard over the room's tail in the gaps,
/// without the coupling, and a voice over it (the harsh talk fixture's at a third, about its
/// default level, from 210 ms into the duck) reaches the VAD as the canceller cleaned it:
/// within 700 ms of its onset where it is about as loud as the ringing (it stands out as the
/// ringing dies under it), within 400 ms where the room's echo is 6 dB down (which needs the
/// ringing's level learnt: not if it stays where it starts, `COUPLING_START_DB`).
#[test]
fn judged_as_a_pair_behind_a_canceller_that_takes_the_echo_out_a_voice_in_a_duck_gets_through() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let (echo, talk) = (wav("harsh-echo.wav"), wav("harsh-talk.wav"));
    let voice = user_voice(&talk, &echo);
    for (gain, within_ms) in [(1.0, 700), (0.5, 400)] {
        let (mic, rung) = harsh_ringing(duck, undo, 20.0);
        let scaled =
            |x: &[i16]| -> Vec<i16> { x.iter().map(|&s| (f32::from(s) * gain) as i16).collect() };
        let (mic, rung) = (scaled(&mic), scaled(&rung));
        let mut g = primed_pair(&rung, &cancelled(&rung));
        let (heard, sent) = (mix(&mic, &voice), mix(&cancelled(&mic), &voice));
        let (out, _) = respond_ducked_pair(&mut g, THIRD, &heard, &sent, duck..undo);
        let starts = vad_starts(&out);
        assert!(
            starts
                .iter()
                .any(|&ms| (USER_ONSET_MS..USER_ONSET_MS + within_ms).contains(&ms)),
            "echo × {gain}: {starts:?}: {:?}",
            g.stats()
        );
    }
}

/// On raw capture the room rings on through a duck while what plays falls 25 dB at once: a lag
/// other than the echo's matches that better. Over eight ducked responses in the harsh room
/// the echo path stays where the echo is (it does not learn from a duck until the echo after
/// it has arrived), and between ducks it still learns: when the echo comes 100 ms later, the
/// path follows it.
#[test]
fn judged_as_a_pair_ducks_do_not_move_the_paths_lag() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let (mic, rung) = harsh_ringing(duck, undo, 20.0);
    let mut g = primed_pair(&rung, &leaky_canceller(&rung, None));
    assert_eq!(g.stats().delay_ms, Some(80), "{:?}", g.stats());
    for k in 0..8 {
        let sent = leaky_canceller(&mic, None);
        respond_ducked_pair(&mut g, DUCKED + 1 + k as u32, &mic, &sent, duck..undo);
        let lag = g.stats().delay_ms;
        assert!(
            lag.is_some_and(|d| d.abs_diff(80) <= 20),
            "{k}: {:?}",
            g.stats()
        );
        pause(&mut g);
    }
    let later = 100 * 24;
    let moved: Vec<i16> = std::iter::repeat_n(0, later)
        .chain(rung[..rung.len() - later].iter().copied())
        .collect();
    for item in [MOVED, MOVED + 1, MOVED + 2] {
        respond_pair(&mut g, item, &moved, &leaky_canceller(&moved, None));
        pause(&mut g);
    }
    let lag = g.stats().delay_ms;
    assert!(
        lag.is_some_and(|d| d.abs_diff(180) <= 20),
        "{:?}",
        g.stats()
    );
}

/// Judged as a pair behind a canceller heard taking the room's ringing out in the gaps between
/// words (its removal learnt above 20 dB), the ringing through a duck is still expected, at the
/// level the room was heard ringing at over its own tail in those gaps: the canceller's output
/// may carry it after all (leaking, as the leaky canceller does), or the raw frame may leave in
/// the canceller's place where it took the ringing out (a frame passed 12 dB under the raw
/// capture). None of the harsh room's ringing through a duck reaches the VAD, in the greeting
/// (nothing primed: what little of the ring-down was heard) or after a response, ringing down
/// at 20 dB a second or at 10. Its echo follows a longer tail than the shortest, so the margin
/// through a duck stays 4 dB: at 3 dB the slower ringing reaches the VAD.
#[test]
fn judged_as_a_pair_the_ringing_a_canceller_takes_out_never_reaches_the_vad_through_a_duck() {
    let (duck, undo) = (1_000 * 24, 2_500 * 24);
    let rooms = [20.0, 10.0].map(|fall| (fall, harsh_ringing(duck, undo, fall)));
    let cases = [(false, false), (false, true), (true, false), (true, true)];
    for ((fall, (mic, rung)), (primed, leaking)) in rooms.iter().flat_map(|r| cases.map(|c| (r, c)))
    {
        // All of the ringing taken out, or leaking through 250 ms of every 800.
        let canceller = |x: &[i16]| -> Vec<i16> {
            if leaking {
                leaky_canceller(x, None)
            } else {
                cancelled(x)
            }
        };
        let mut g = pair(true);
        if primed {
            respond_pair(&mut g, GREETING, rung, &canceller(rung));
            pause(&mut g);
        }
        let (out, evidenced) =
            respond_ducked_pair(&mut g, DUCKED, mic, &canceller(mic), duck..undo);
        // The duck finds the echo path known: the ringing is judged as an echo path's.
        assert!(evidenced.is_some_and(|at| at < duck), "{:?}", g.stats());
        let starts = vad_starts(&out);
        assert_eq!(
            starts,
            [],
            "{fall} dB/s, primed {primed}, leaking {leaking}: {:?}",
            g.stats()
        );
    }
}

/// Judged as a pair in a dry room (the echo 120 ms late, ringing down in 50 ms) or a mild
/// one (250 ms), the echo path is evidenced within the first response: without it a pair
/// guards only its first playback, and every duck after that is probed on its level alone.
#[test]
fn judged_as_a_pair_a_dry_rooms_echo_path_is_evidenced_in_the_first_response() {
    let assistant = wav("assistant.wav");
    for t60 in [50.0, 250.0] {
        let echo = room_echo(&assistant, 120, t60);
        let mut g = pair(true);
        let r = respond_pair(&mut g, GREETING, &echo, &cancelled(&echo));
        let what = format!("T60 {t60} ms: {:?}", g.stats());
        assert!(r.echo_at_ms.is_some_and(|t| t <= 3_000), "{what}");
        assert!(
            g.stats().delay_ms.is_some_and(|d| d.abs_diff(120) <= 30),
            "{what}"
        );
    }
}

/// A loop with no tail whose level wanders from frame to frame, as the lab's live dry and
/// mild loops do: a copy of `played` 120 ms late at half its level, each 10 ms frame of it up
/// to 6 dB louder or quieter, from sample `on` on (the speakers switched on then), over a
/// microphone's noise 65 dB under full scale all along.
fn wandering_loop(played: &[i16], on: usize) -> Vec<i16> {
    const JITTER_DB: f32 = 6.0;
    let delay = 120 * 24;
    let (mut x, mut gain) = (1u32, 1.0f32);
    let noise = 32768.0 * 10f32.powf(-65.0 / 20.0);
    (0..played.len() + delay)
        .map(|n| {
            if n % FRAME == 0 {
                gain = 10f32.powf(JITTER_DB * unit_noise(&mut x) / 1.732 / 20.0);
            }
            let direct = if n >= on {
                direct(played, n, delay)
            } else {
                0.0
            };
            (0.5 * gain * direct + noise * unit_noise(&mut x)).round() as i16
        })
        .collect()
}

/// Plays `played` as one answer through a pair's guard while a [`wandering_loop`] of it starts
/// `on_ms` in, and asserts that its path is evidenced within 3 s of that, at its lag.
fn assert_wandering_loop_found(played: &[i16], on_ms: usize) {
    let echo = wandering_loop(played, on_ms * 24);
    let mut g = pair(true);
    let r = respond_pair_playing(&mut g, ANSWER, played, &echo, &cancelled(&echo));
    let what = format!(
        "on at {on_ms} ms, found at {:?} ms: {:?}",
        r.echo_at_ms,
        g.stats()
    );
    assert!(
        r.echo_at_ms.is_some_and(|t| t <= on_ms as u64 + 3_000),
        "{what}"
    );
    assert!(
        g.stats().delay_ms.is_some_and(|d| d.abs_diff(120) <= 30),
        "{what}"
    );
}

/// Judged as a pair, a [`wandering_loop`] is evidenced within 3 s: it correlates with the dry
/// envelope under the 0.93 a tail needs, but at one lag, as the lab's live dry and mild loops
/// did where no path was found (0.90–0.92 all session).
#[test]
fn judged_as_a_pair_a_dry_loop_that_wanders_is_evidenced_at_its_lag() {
    let assistant = wav("assistant.wav");
    assert_wandering_loop_found(&[&assistant[..], &assistant].concat(), 0);
}

/// Judged as a pair, a [`wandering_loop`] that starts in the middle of an answer (headphones
/// unplugged, the speakers on 0.7–2 s in, after the guard has heard nothing follow what plays)
/// is evidenced within 3 s of its start, at its lag.
#[test]
fn judged_as_a_pair_a_dry_loop_that_starts_mid_answer_is_evidenced_at_its_lag() {
    let assistant = wav("assistant.wav");
    let played = [&assistant[..], &assistant, &assistant].concat();
    for on_ms in [700, 1_300, 2_000] {
        assert_wandering_loop_found(&played, on_ms);
    }
}

/// Judged as a pair in a dry room (the echo 120 ms late, ringing down in 50 ms) with its path
/// known, a voice 4 dB under the echo (assistant.wav a second on: another talker), which the
/// canceller holds 20 dB down in double talk, can be told from the echo only once a duck's
/// effect is heard: the ducker ducks 100 ms into it, and the ramp and the room's 120 ms follow.
/// The room's own tail is expected to fall at once, as a dry room's does, and the voice reaches
/// the VAD within 700 ms of its onset (expected to ring at the slow prior, the tail would hold
/// it back through the whole duck). The echo alone through the same duck never reaches it.
#[test]
fn judged_as_a_pair_a_voice_in_a_dry_rooms_first_duck_gets_through_as_the_echo_falls() {
    let assistant = wav("assistant.wav");
    let echo = room_echo(&assistant, 120, 50.0);
    let onset = USER_ONSET_MS as usize * 24;
    let voice: Vec<i16> = (0..echo.len())
        .map(|k| {
            k.checked_sub(onset)
                .and_then(|i| assistant.get(i + 24_000))
                .map_or(0, |&s| (f32::from(s) * 0.3) as i16)
        })
        .collect();
    let (duck, undo) = (onset + 100 * 24, onset + 2_500 * 24);
    let down = duck + (150 + 120) * 24..undo + 120 * 24;
    let gain = 10f32.powf(-(DUCK_DB as f32) / 20.0);
    let ducked = |e: i16, k: usize| f32::from(e) * if down.contains(&k) { gain } else { 1.0 };
    let (mut heard, mut sent) = (Vec::new(), Vec::new());
    for (k, (&e, &v)) in echo.iter().zip(&voice).enumerate() {
        let (e, v) = (ducked(e, k), f32::from(v));
        let suppressed = if down.contains(&k) { 1.0 } else { 0.1 };
        heard.push((e + v).round().clamp(-32768.0, 32767.0) as i16);
        sent.push((e / 1000.0 + v * suppressed).round() as i16);
    }
    let primed = || {
        let mut g = pair(true);
        respond_pair(&mut g, GREETING, &echo, &cancelled(&echo));
        pause(&mut g);
        assert_eq!(g.stats().path, EchoPath::Echo, "{:?}", g.stats());
        g
    };
    let mut g = primed();
    let (out, _) = respond_ducked_pair(&mut g, SECOND, &heard, &sent, duck..undo);
    let starts = vad_starts(&out);
    assert!(
        starts
            .first()
            .is_some_and(|&ms| (USER_ONSET_MS..USER_ONSET_MS + 700).contains(&ms)),
        "{starts:?}: {:?}",
        g.stats()
    );
    let mut g = primed();
    let alone: Vec<i16> = (0..echo.len()).map(|k| ducked(echo[k], k) as i16).collect();
    let (out, _) = respond_ducked_pair(&mut g, SECOND, &alone, &cancelled(&alone), duck..undo);
    assert_eq!(vad_starts(&out), Vec::<u64>::new(), "{:?}", g.stats());
}

/// The mild room's echo, and a raw capture of it under Chromium's fake microphone (speech
/// unrelated to what plays, 18 dB louder than the echo): one in which a pair finds no echo path.
fn unexplained_mild_room() -> (Vec<i16>, Vec<i16>) {
    let echo = wav("mild-echo.wav");
    let room = &fake_mic_twice()[..echo.len()];
    let heard = mix(&echo.iter().map(|&e| e / 8).collect::<Vec<_>>(), room);
    (echo, heard)
}

/// `echo` heard over a steady noise (a fan, an air conditioner) `noise_db` dBFS RMS.
fn over_noise(echo: &[i16], noise_db: f32) -> Vec<i16> {
    let (mut x, amp) = (7u32, 32768.0 * 10f32.powf(noise_db / 20.0));
    echo.iter()
        .map(|&e| (f32::from(e) + amp * unit_noise(&mut x)).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Judged as a pair, a raw echo that correlates under the raw bar (0.93) but steadily, at one
/// lag, is evidenced by that: the lab's harsh room under load, its lag moving with the
/// browser's latency, correlated at 0.82–0.93 for 26 s with no path found, and every leak past
/// the first playback reached the server's VAD. Here the mild and harsh rooms' echo is heard
/// over a steady noise 30 dB under full scale: the path is found in the first response, and a
/// canceller that leaks the echo whole for 200 ms in each later response never reaches the
/// VAD.
#[test]
fn judged_as_a_pair_an_echo_under_the_bar_is_found_by_how_steadily_it_correlates() {
    for room in ["mild", "harsh"] {
        let echo = wav(&format!("{room}-echo.wav"));
        let heard = over_noise(&echo, -30.0);
        let mut g = pair(true);
        let first = respond_pair(&mut g, GREETING, &heard, &cleaned(&heard));
        let at = first.echo_at_ms;
        assert!(at.is_some_and(|t| t <= 2_000), "{room}: path at {at:?} ms");
        let mut leaks = 0;
        for leak_ms in (500..3_500).step_by(250) {
            let sent = leaking(&heard, leak_ms * 24..(leak_ms + 200) * 24);
            if vad_starts(&sent).is_empty() {
                continue;
            }
            leaks += 1;
            let r = respond_pair(&mut g, ANSWER + 1 + leak_ms as u32, &heard, &sent);
            let starts = vad_starts(&r.out);
            assert_eq!(
                starts,
                Vec::<u64>::new(),
                "{room}: leak at {leak_ms} ms: {:?}",
                g.stats()
            );
        }
        assert!(leaks >= 5, "{room}: {leaks}");
    }
}

/// A canceller's output for `echo`: 40 dB down but within `leak` (samples), where it lets the
/// echo through whole.
fn leaking(echo: &[i16], leak: std::ops::Range<usize>) -> Vec<i16> {
    (0..echo.len())
        .map(|i| {
            if leak.contains(&i) {
                echo[i]
            } else {
                echo[i] / 100
            }
        })
        .collect()
}

/// A fresh pair judging `heard` and sending `sent` over the greeting, ducked over `duck`
/// (samples), finds no echo path and sends nothing that starts the server's VAD.
fn assert_kept_out(heard: &[i16], sent: &[i16], duck: std::ops::Range<usize>) {
    let mut g = pair(true);
    let at_ms = duck.start / 24;
    let (out, _) = respond_ducked_pair(&mut g, GREETING, heard, sent, duck);
    assert_ne!(g.stats().path, EchoPath::Echo, "{:?}", g.stats());
    let starts = vad_starts(&out);
    assert_eq!(
        starts,
        Vec::<u64>::new(),
        "duck at {at_ms} ms: {:?}",
        g.stats()
    );
}

/// Judged as a pair over the first playback, before any echo path is known, Chromium's
/// canceller has not converged yet and may leak the echo as loud as played; a leak loud enough
/// sets the ducker off, and the guard keeps it back. When the guard of the first playback stands
/// down in that duck, what it kept and explained as echo leaves as silence, not as sent: the
/// lab's harsh room, where the first duck comes 1.5 s into the greeting with the first playback's
/// guard standing down, interrupted itself in 2 of 10 sessions when it left as sent. Here the
/// raw capture is the mild room's echo under Chromium's fake microphone (speech unrelated to what
/// plays, so no path is found), and the processed one leaks the echo from 100 ms before the duck
/// until its effect is heard.
#[test]
fn judged_as_a_pair_a_leak_held_over_the_first_playback_stays_out_in_a_duck() {
    let (echo, heard) = unexplained_mild_room();
    for duck_ms in [1_300, 1_400, 1_450] {
        let sent = leaking(&echo, (duck_ms - 100) * 24..(duck_ms + 200) * 24);
        assert!(!vad_starts(&sent).is_empty());
        assert_kept_out(&heard, &sent, duck_ms * 24..(duck_ms + 500) * 24);
    }
}

/// Judged as a pair without an echo path, past the first playback (the gate idle), a duck is
/// probed: held until its effect shows whether what would be sent falls with it. What is sent
/// is the processed capture, and that is what the probe weighs: the raw one hears the room's
/// echo ring on through the duck, so weighed there a canceller's leak held in the duck left
/// as a voice, whole, at once (the lab's harsh and medium rooms in sessions where no path was
/// found: every such self-interruption came as a duck ended). A voice still talking when the
/// probe judges (300–400 ms after the duck) is loud in the processed capture too, and leaves
/// whole from its first word; one that pauses there is taken for echo, and its first word
/// lost, as on a processed capture alone. The raw capture here is the mild room's echo under
/// Chromium's fake microphone (speech unrelated to what plays); the voice talks 310 ms, pauses
/// 190 ms and talks again, and the duck comes 200 ms after its onset.
#[test]
fn judged_as_a_pair_without_a_path_a_duck_is_probed_on_what_would_be_sent() {
    let (echo, heard) = unexplained_mild_room();
    let mut leaks = 0;
    for duck_ms in (2_000..4_000).step_by(100) {
        let sent = leaking(&echo, (duck_ms - 50) * 24..(duck_ms + 150) * 24);
        if vad_starts(&sent).is_empty() {
            continue;
        }
        leaks += 1;
        assert_kept_out(&heard, &sent, duck_ms * 24..(duck_ms + 330) * 24);
    }
    assert!(leaks >= 5, "{leaks}");
    // A voice 2.6 s in, the duck 200 ms after its onset and lasting as it talks.
    let shift = 1_400 * 24;
    let talk = user_voice(&wav("mild-talk.wav"), &echo);
    let voice: Vec<i16> = (0..echo.len())
        .map(|i| i.checked_sub(shift).map_or(0, |k| talk[k]))
        .collect();
    let onset = USER_ONSET_MS as usize * 24 + shift;
    let sent = mix(&cleaned(&echo), &voice);
    let mut g = pair(true);
    let duck = onset + 200 * 24..echo.len() - 24;
    let (out, _) = respond_ducked_pair(&mut g, GREETING, &mix(&heard, &voice), &sent, duck);
    assert_ne!(g.stats().path, EchoPath::Echo, "{:?}", g.stats());
    assert_eq!(
        vad_starts(&out).first(),
        vad_starts(&sent).first(),
        "{:?}",
        g.stats()
    );
    let word = onset / FRAME * FRAME..(onset / FRAME + 10) * FRAME;
    assert_eq!(&out[word.clone()], &sent[word], "{:?}", g.stats());
}
