//! `examples/resample_wav.rs` converts WAVs made with sox (16-bit PCM and 32-bit float, mono
//! and stereo, 8 to 96 kHz) to 24 kHz mono PCM16 of the same duration and content, and refuses
//! bad input with a message and a non-zero exit. Without sox, the inputs are written here.
//! `examples/echo_replay.rs` replays the echo fixtures through the guard.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The resample_wav example's binary.
fn example() -> PathBuf {
    example_named("resample_wav")
}

/// An example's binary: built next to this test by `cargo test`, or built here if absent.
fn example_named(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/this-test → target/<profile>/examples/<name>
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the {name} example failed");
    }
    bin
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audio_example_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn have_sox() -> bool {
    Command::new("sox")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes a test WAV: sox if installed (as the issue asks), else a minimal writer.
/// Channel c carries a sine at `freqs[c]`, amplitude 0.5, for `secs`.
fn make_wav(path: &Path, rate: u32, freqs: &[f64], float: bool, secs: f64) {
    if have_sox() {
        let mut cmd = Command::new("sox");
        cmd.args([
            "-D",
            "-n",
            "-r",
            &rate.to_string(),
            "-c",
            &freqs.len().to_string(),
        ]);
        if float {
            cmd.args(["-e", "floating-point", "-b", "32"]);
        } else {
            cmd.args(["-e", "signed-integer", "-b", "16"]);
        }
        cmd.arg(path).args(["synth", &secs.to_string()]);
        for f in freqs {
            cmd.args(["sine", &f.to_string()]);
        }
        cmd.args(["vol", "0.5"]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "sox: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let ch = freqs.len();
    let frames = (secs * f64::from(rate)) as usize;
    let bytes_per = if float { 4 } else { 2 };
    let data_len = (frames * ch * bytes_per) as u32;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&(if float { 3u16 } else { 1 }).to_le_bytes());
    w.extend_from_slice(&(ch as u16).to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * (ch * bytes_per) as u32).to_le_bytes());
    w.extend_from_slice(&((ch * bytes_per) as u16).to_le_bytes());
    w.extend_from_slice(&((bytes_per * 8) as u16).to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..frames {
        for f in freqs {
            let x = 0.5 * (2.0 * PI * f * n as f64 / f64::from(rate)).sin();
            if float {
                w.extend_from_slice(&(x as f32).to_le_bytes());
            } else {
                w.extend_from_slice(&((x * 32767.0).round() as i16).to_le_bytes());
            }
        }
    }
    std::fs::write(path, w).unwrap();
}

/// Reads the example's output: checks the 44-byte PCM16 mono 24 kHz header, returns samples.
fn read_output(path: &Path) -> Vec<f64> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"RIFF");
    assert_eq!(&b[8..16], b"WAVEfmt ");
    assert_eq!(u16::from_le_bytes([b[20], b[21]]), 1, "PCM");
    assert_eq!(u16::from_le_bytes([b[22], b[23]]), 1, "mono");
    assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 24_000);
    assert_eq!(u16::from_le_bytes([b[34], b[35]]), 16);
    assert_eq!(&b[36..40], b"data");
    b[44..]
        .chunks_exact(2)
        .map(|s| f64::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
        .collect()
}

/// Amplitude of `freq` (least squares on cos/sin) and the RMS of what is left.
fn fit(y: &[f64], freqs: &[f64]) -> (Vec<f64>, f64) {
    // Fit tones one at a time on the running residual; the tones are far apart, so a few
    // passes converge well past what PCM16 can show.
    let mut res = y.to_vec();
    let mut amps = vec![0.0; freqs.len()];
    for _ in 0..3 {
        for (k, &f) in freqs.iter().enumerate() {
            let w = 2.0 * PI * f / 24_000.0;
            let (mut yc, mut ys, mut cc, mut ss, mut cs) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (n, &v) in res.iter().enumerate() {
                let (s, c) = (w * n as f64).sin_cos();
                yc += v * c;
                ys += v * s;
                cc += c * c;
                ss += s * s;
                cs += c * s;
            }
            let det = cc * ss - cs * cs;
            let a = (yc * ss - ys * cs) / det;
            let b = (ys * cc - yc * cs) / det;
            for (n, v) in res.iter_mut().enumerate() {
                let (s, c) = (w * n as f64).sin_cos();
                *v -= a * c + b * s;
            }
            amps[k] += a.hypot(b);
        }
    }
    let rms = (res.iter().map(|v| v * v).sum::<f64>() / res.len() as f64).sqrt();
    (amps, rms)
}

#[test]
fn converts_sox_wavs_at_several_rates() {
    let bin = example();
    let dir = scratch();
    let cases: [(u32, &[f64], bool); 7] = [
        (8_000, &[440.0], false),
        (16_000, &[1000.0], true),
        (22_050, &[1000.0, 3000.0], false),
        (44_100, &[1000.0, 3000.0], false),
        (48_000, &[1000.0], true),
        (48_000, &[440.0, 2500.0], true),
        (96_000, &[1000.0], false),
    ];
    for (rate, freqs, float) in cases {
        let name = format!(
            "in_{rate}_{}ch_{}",
            freqs.len(),
            if float { "f32" } else { "s16" }
        );
        let (inp, out) = (
            dir.join(format!("{name}.wav")),
            dir.join(format!("{name}_24k.wav")),
        );
        make_wav(&inp, rate, freqs, float, 0.5);
        let run = Command::new(&bin).arg(&inp).arg(&out).output().unwrap();
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let y = read_output(&out);
        assert!(
            (y.len() as i64 - 12_000).abs() <= 1,
            "{name}: {} samples for 0.5 s",
            y.len()
        );
        // Skip the edges (the tone starts and stops abruptly there).
        let (amps, rest) = fit(&y[600..y.len() - 600], freqs);
        // The downmix averages the channels: each tone arrives at 0.5 / channels.
        let want = 0.5 / freqs.len() as f64;
        for (a, f) in amps.iter().zip(freqs) {
            assert!(
                (a / want - 1.0).abs() < 0.002,
                "{name}: {f} Hz at {a}, want {want}"
            );
        }
        let snr = 20.0 * (rest / (want / 2f64.sqrt())).log10();
        assert!(snr < -75.0, "{name}: residual {snr:.1} dB");
        println!(
            "{name}: {} samples, residual {snr:.1} dB (PCM16 in and out)",
            y.len()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn refuses_bad_input_with_a_message() {
    let bin = example();
    let dir = scratch().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let not_wav = dir.join("not.wav");
    std::fs::write(&not_wav, b"hello, this is not audio").unwrap();
    let mut pcm24 = std::fs::read({
        let p = dir.join("ok.wav");
        make_wav(&p, 48_000, &[1000.0], false, 0.01);
        p
    })
    .unwrap();
    // Turn the valid 16-bit header into a 24-bit one.
    pcm24[34] = 24;
    let bad_bits = dir.join("pcm24.wav");
    std::fs::write(&bad_bits, &pcm24).unwrap();
    let cases = [
        (dir.join("missing.wav"), "cannot read"),
        (not_wav, "not a WAV file"),
        (bad_bits, "unsupported WAV sample format"),
    ];
    for (input, message) in cases {
        let run = Command::new(&bin)
            .arg(&input)
            .arg(dir.join("out.wav"))
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(1), "{input:?}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains(message), "{input:?}: {err}");
    }
    let usage = Command::new(&bin).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

/// The echo fixtures replayed: the harsh room's echo alone starts no speech on raw capture,
/// the voice over it does, at its onset (1.21 s); bad input is refused.
#[test]
fn echo_replay_replays_the_fixtures_through_the_guard() {
    let bin = example_named("echo_replay");
    let fixture = |f: &str| format!("{}/tests/fixtures/echo/{f}", env!("CARGO_MANIFEST_DIR"));
    let replay = |room: &str| {
        let run = Command::new(&bin)
            .args([fixture("assistant.wav"), fixture(room), "--raw".into()])
            .output()
            .unwrap();
        assert!(run.status.success(), "{room}");
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let echo = replay("harsh-echo.wav");
    assert!(!echo.contains("speech starts"), "{echo}");
    assert!(echo.contains("path: Echo"), "{echo}");
    let talk = replay("harsh-talk.wav");
    let first = talk
        .lines()
        .find_map(|l| l.strip_prefix("speech starts at "))
        .and_then(|l| l.strip_suffix(" ms"))
        .and_then(|ms| ms.parse::<u64>().ok());
    assert!(matches!(first, Some(1_060..=1_510)), "{talk}");
    let not_wav = Command::new(&bin)
        .args([fixture("assistant.wav"), "Cargo.toml".into()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(not_wav.status.code(), Some(1));
    assert_eq!(Command::new(&bin).output().unwrap().status.code(), Some(2));
}
