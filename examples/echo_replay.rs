//! Replays a recorded echo-lab run through the echo guard, offline: the page's output as the
//! reference (reported played every 20 ms) and the room's microphone, delayed by `--delay-ms`
//! (the browser's output and input buffers delay it so in the page; the lab's recorders sit
//! outside them). Both 24 kHz mono WAVs, 16-bit PCM as the lab writes them with
//! `RECORD=dir RECORD_FULL=1` (`<run>-full-ref.wav`, `<run>-full-room.wav`) or 32-bit float.
//!
//! ```text
//! cargo run --release --example echo_replay -- REF.wav ROOM.wav [--raw] [--delay-ms 140]
//!     [--sent PROCESSED.wav] [--ducks 1480-2390,4140-4910]
//! ```
//!
//! `--sent` replays a pair (`echoGuard: "raw"`, `EchoGuard::process_pair`): ROOM is the raw
//! capture the guard judges and PROCESSED the browser's processed one it sends, both as the
//! page recorded them with `PAIR_RECORD=dir` (`<run>-pair-raw.wav`, `<run>-pair-processed.wav`).
//! `--ducks` tells the guard when the ducker held the assistant down (ms on ROOM's timeline; for
//! a pair, the lab's `duckMsgs` less its row's `pairStartMs`). The lab records the page's output
//! after the player, so where the player ducked, REF is ducked already and the guard, told of
//! the duck, takes it 25 dB down once more: through a duck a replay predicts the echo too low,
//! so it can show a voice held back there, not an echo let through.
//!
//! Prints when the guard first evidenced an echo path, where the echo lab's judge, the reference
//! server's VAD (its `vad.rs`, included), would start speech in what the guard sends, and the
//! guard's stats at the end. `--raw` replays through `EchoGuard::raw` (`echoCanceller:
//! "none"`), else `EchoGuard::new`. Session 17 found the guard's harsh-room faults this way
//! (docs/AUDIO.md).

use realtime_voice::audio::echo_guard::{Capture, EchoGuard, EchoPath, FRAME};
use std::process::ExitCode;

#[path = "common/wav.rs"]
mod wav;

/// The reference server's VAD itself, the lab's judge (only its start is used here).
#[allow(dead_code)]
#[path = "../server/src/upstream/simulated/vad.rs"]
mod vad;

/// The sample rate the lab records at and the guard works at.
const RATE: u32 = 24_000;

/// The samples of a 24 kHz mono WAV file (16-bit PCM or 32-bit float) as f32, or what is wrong
/// with it.
fn read_wav(path: &str) -> Result<Vec<f32>, String> {
    let error = |e: wav::WavError| format!("{path}: {e}");
    let bytes = wav::read(path).map_err(error)?;
    let wav = wav::parse(&bytes).map_err(error)?;
    if wav.rate != RATE || wav.channels != 1 {
        return Err(format!(
            "{path}: {} Hz, {} channels: echo_replay wants 24 kHz mono \
             (the resample_wav example converts to that)",
            wav.rate, wav.channels
        ));
    }
    Ok(wav::samples(&wav))
}

/// The inverse of `pcm16::i16_to_f32` (scale by 32768, not `f32_to_i16`'s 32767), so a
/// 16-bit file's samples come back exactly; float samples round, and saturate past full scale.
fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round() as i16
}

/// Why a replay did not run: bad usage (exit 2) or an input it cannot read (exit 1).
enum Failure {
    Usage(String),
    Input(String),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match replay(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
        Err(Failure::Input(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `flag`, if given.
fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

/// `--ducks a-b,c-d` as ranges of 10 ms frames.
fn ducks(spec: &str) -> Result<Vec<std::ops::Range<usize>>, String> {
    spec.split(',')
        .map(|r| {
            let (a, b) = r.split_once('-').ok_or("--ducks wants FROM-TO ms ranges")?;
            let ms = |v: &str| v.parse::<usize>().map_err(|_| format!("--ducks: {v}?"));
            Ok(ms(a)? / 10..ms(b)? / 10)
        })
        .collect()
}

fn replay(args: &[String]) -> Result<(), Failure> {
    let raw = args.iter().any(|a| a == "--raw");
    let delay_ms = match value(args, "--delay-ms") {
        None => 0,
        Some(v) => v.parse::<usize>().map_err(|_| {
            Failure::Usage("--delay-ms wants a whole number of milliseconds".into())
        })?,
    };
    let ducks = value(args, "--ducks")
        .map(ducks)
        .transpose()
        .map_err(Failure::Usage)?
        .unwrap_or_default();
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| {
            !a.starts_with("--")
                && (i == 0 || !matches!(args[i - 1].as_str(), "--delay-ms" | "--sent" | "--ducks"))
        })
        .map(|(_, a)| a)
        .collect();
    let [reference, room] = files[..] else {
        return Err(Failure::Usage(
            "usage: echo_replay REF.wav ROOM.wav [--raw] [--delay-ms N] [--sent PROCESSED.wav] \
             [--ducks FROM-TO,...]"
                .into(),
        ));
    };
    let reference = read_wav(reference).map_err(Failure::Input)?;
    let delayed = |x: Vec<f32>| -> Vec<i16> {
        let mut v: Vec<i16> = x.into_iter().map(to_i16).collect();
        v.splice(0..0, std::iter::repeat_n(0, delay_ms * 24));
        v
    };
    let mic = delayed(read_wav(room).map_err(Failure::Input)?);
    let processed = value(args, "--sent")
        .map(read_wav)
        .transpose()
        .map_err(Failure::Input)?
        .map(delayed);
    let mut guard = match (&processed, raw) {
        (Some(_), _) => EchoGuard::for_capture(true, Capture::Pair),
        (None, true) => EchoGuard::raw(true),
        (None, false) => EchoGuard::new(true),
    };
    guard.push_reference(1, &reference);
    let mut sent = Vec::with_capacity(mic.len());
    let mut path_at = None;
    for (i, block) in mic.chunks(FRAME).enumerate() {
        guard.set_ducked(ducks.iter().any(|d| d.contains(&i)));
        if i % 2 == 1 {
            guard.played(1, ((i + 1) * FRAME).min(reference.len()) as u64);
        }
        let at = i * FRAME..(i * FRAME + block.len());
        match processed.as_ref().and_then(|p| p.get(at)) {
            Some(p) => guard.process_pair(block, p, &mut sent),
            None => guard.process(block, &mut sent),
        }
        if path_at.is_none() && guard.stats().path == EchoPath::Echo {
            path_at = Some(i * 10);
        }
    }
    match path_at {
        Some(ms) => println!("echo path evidenced at {ms} ms"),
        None => println!("no echo path evidenced"),
    }
    let mut judge = vad::Vad::new(vad::VadParams::default());
    let mut events = Vec::new();
    for (i, frame) in sent.chunks(FRAME).enumerate() {
        judge.push(frame.iter().copied(), &mut events);
        for event in events.drain(..) {
            if matches!(event, vad::VadEvent::Started { .. }) {
                println!("speech starts at {} ms", i * 10);
            }
        }
    }
    println!("{:?}", guard.stats());
    Ok(())
}
