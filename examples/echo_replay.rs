//! Replays a recorded echo-lab run through the echo guard, offline: the page's output as the
//! reference (reported played every 20 ms) and the room's microphone, delayed by `--delay-ms`
//! (the browser's output and input buffers delay it so in the page; the lab's recorders sit
//! outside them). Both 24 kHz mono PCM16 WAVs, as the lab writes them with
//! `RECORD=dir RECORD_FULL=1` (`<run>-full-ref.wav`, `<run>-full-room.wav`).
//!
//! ```text
//! cargo run --release --example echo_replay -- REF.wav ROOM.wav [--raw] [--delay-ms 140]
//! ```
//!
//! Prints where the echo lab's judge (15 of the last 20 frames of 10 ms above −40 dBFS) would
//! start speech in what the guard sends, and the guard's stats at the end. `--raw` replays
//! through `EchoGuard::raw` (`echoCanceller: "none"`), else `EchoGuard::new`. Session 17 found
//! the guard's harsh-room faults this way (docs/AUDIO.md).

use realtime_voice::audio::echo_guard::{EchoGuard, FRAME};
use std::process::ExitCode;

/// The samples of a 24 kHz mono PCM16 WAV file, or what is wrong with it.
fn read_wav(path: &str) -> Result<Vec<i16>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{path}: not a WAV file"));
    }
    let (mut at, mut format_ok, mut data) = (12, false, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let body = &bytes[at + 8..(at + 8 + len as usize).min(bytes.len())];
        if id == b"fmt " && body.len() >= 16 {
            let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            format_ok = u16_at(0) == 1 && u16_at(2) == 1 && rate == 24_000 && u16_at(14) == 16;
        } else if id == b"data" {
            data = Some(body);
        }
        at += 8 + len as usize + (len as usize & 1);
    }
    if !format_ok {
        return Err(format!("{path}: not 24 kHz mono 16-bit PCM"));
    }
    let data = data.ok_or_else(|| format!("{path}: no data chunk"))?;
    Ok(data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let raw = args.iter().any(|a| a == "--raw");
    let delay_ms = match args.iter().position(|a| a == "--delay-ms") {
        None => 0,
        Some(i) => match args.get(i + 1).and_then(|v| v.parse::<usize>().ok()) {
            Some(ms) => ms,
            None => {
                eprintln!("--delay-ms wants a whole number of milliseconds");
                return ExitCode::from(2);
            }
        },
    };
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| !a.starts_with("--") && (i == 0 || args[i - 1] != "--delay-ms"))
        .map(|(_, a)| a)
        .collect();
    let [reference, room] = files[..] else {
        eprintln!("usage: echo_replay REF.wav ROOM.wav [--raw] [--delay-ms N]");
        return ExitCode::from(2);
    };
    let (reference, mut mic) = match (read_wav(reference), read_wav(room)) {
        (Ok(r), Ok(m)) => (r, m),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    mic.splice(0..0, std::iter::repeat_n(0, delay_ms * 24));
    let reference: Vec<f32> = reference.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let mut guard = if raw {
        EchoGuard::raw(true)
    } else {
        EchoGuard::new(true)
    };
    guard.push_reference("recorded", &reference);
    let mut sent = Vec::with_capacity(mic.len());
    for (i, block) in mic.chunks(FRAME).enumerate() {
        if i % 2 == 1 {
            guard.played("recorded", ((i + 1) * FRAME).min(reference.len()) as u64);
        }
        guard.process(block, &mut sent);
    }
    let (mut recent, mut quiet, mut speaking) = (0u32, 0, false);
    for (i, frame) in sent.chunks_exact(FRAME).enumerate() {
        let energy = frame
            .iter()
            .map(|&s| (f64::from(s) / 32768.0).powi(2))
            .sum::<f64>()
            / FRAME as f64;
        let loud = 10.0 * energy.max(1e-12).log10() > -40.0;
        recent = ((recent << 1) | u32::from(loud)) & 0xf_ffff;
        quiet = if loud { 0 } else { quiet + 1 };
        if quiet >= 50 {
            speaking = false;
        }
        if !speaking && recent.count_ones() >= 15 {
            speaking = true;
            println!("speech starts at {} ms", i * 10);
        }
    }
    println!("{:?}", guard.stats());
    ExitCode::SUCCESS
}
