//! Converts a WAV file to 24 kHz mono PCM16 through exactly the client's capture path:
//! [`Resampler`] (downmix + polyphase sinc) then [`pcm16::f32_to_i16`].
//!
//! ```text
//! cargo run --release --example resample_wav -- IN.wav OUT.wav
//! ```
//!
//! Reads 16-bit PCM or 32-bit float WAV (plain or WAVE_FORMAT_EXTENSIBLE), any rate from 8 to
//! 192 kHz, 1 to 32 channels. Anything else is refused with a message and exit status 1
//! (2 for bad usage).

use realtime_voice::audio::{pcm16, Resampler};
use std::fmt;
use std::process::ExitCode;

const OUT_RATE: u32 = 24_000;
const BLOCK_FRAMES: usize = 4096;

/// What was wrong with the input file.
#[derive(Debug)]
enum WavError {
    Io(std::io::Error),
    NotRiffWave,
    MissingChunk(&'static str),
    TruncatedChunk {
        id: String,
        declared: usize,
        present: usize,
    },
    UnsupportedFormat {
        tag: u16,
        bits: u16,
    },
    BadHeader(String),
    Resampler(realtime_voice::audio::ResamplerError),
}

impl fmt::Display for WavError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read or write the file: {e}"),
            Self::NotRiffWave => write!(f, "not a WAV file (no RIFF/WAVE header)"),
            Self::MissingChunk(id) => write!(f, "WAV file has no '{id}' chunk"),
            Self::TruncatedChunk {
                id,
                declared,
                present,
            } => write!(
                f,
                "WAV chunk '{id}' declares {declared} bytes but only {present} are present"
            ),
            Self::UnsupportedFormat { tag, bits } => write!(
                f,
                "unsupported WAV sample format (format tag {tag}, {bits} bits): \
                 only 16-bit PCM and 32-bit float are supported"
            ),
            Self::BadHeader(what) => write!(f, "invalid WAV header: {what}"),
            Self::Resampler(e) => write!(f, "{e}"),
        }
    }
}

/// The parts of a WAV file the conversion needs.
#[derive(Debug)]
struct Wav<'a> {
    rate: u32,
    channels: u16,
    float: bool,
    data: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse(file: &[u8]) -> Result<Wav<'_>, WavError> {
    if file.len() < 12 || &file[..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(WavError::NotRiffWave);
    }
    let (mut fmt, mut data) = (None, None);
    let mut at = 12;
    while at + 8 <= file.len() {
        let id = &file[at..at + 4];
        let declared = u32_at(file, at + 4) as usize;
        let body = &file[at + 8..];
        let len = if id == b"data" {
            // Streaming writers may leave the size at 0 or 0xFFFFFFFF: take what is there.
            if declared == 0 || declared > body.len() {
                body.len()
            } else {
                declared
            }
        } else {
            declared
        };
        if len > body.len() {
            return Err(WavError::TruncatedChunk {
                id: String::from_utf8_lossy(id).into_owned(),
                declared,
                present: body.len(),
            });
        }
        match id {
            b"fmt " => fmt = Some(&body[..len]),
            b"data" => data = Some(&body[..len]),
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let fmt = fmt.ok_or(WavError::MissingChunk("fmt "))?;
    let data = data.ok_or(WavError::MissingChunk("data"))?;
    if fmt.len() < 16 {
        return Err(WavError::BadHeader(format!(
            "'fmt ' chunk of {} bytes",
            fmt.len()
        )));
    }
    let mut tag = u16_at(fmt, 0);
    let channels = u16_at(fmt, 2);
    let rate = u32_at(fmt, 4);
    let align = u16_at(fmt, 12);
    let bits = u16_at(fmt, 14);
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
        if fmt.len() < 26 {
            return Err(WavError::BadHeader(
                "short WAVE_FORMAT_EXTENSIBLE header".into(),
            ));
        }
        tag = u16_at(fmt, 24);
    }
    let float = match (tag, bits) {
        (1, 16) => false,
        (3, 32) => true,
        _ => return Err(WavError::UnsupportedFormat { tag, bits }),
    };
    if channels == 0 || u32::from(align) != u32::from(channels) * u32::from(bits / 8) {
        return Err(WavError::BadHeader(format!(
            "{channels} channels with a block align of {align}"
        )));
    }
    Ok(Wav {
        rate,
        channels,
        float,
        data,
    })
}

/// Samples of the whole file as f32, interleaved (a trailing partial frame is ignored).
fn samples(wav: &Wav<'_>) -> Vec<f32> {
    let frame_bytes = usize::from(wav.channels) * if wav.float { 4 } else { 2 };
    let whole = wav.data.len() / frame_bytes * frame_bytes;
    let data = &wav.data[..whole];
    if wav.float {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        data.chunks_exact(2)
            .map(|b| pcm16::i16_to_f32(i16::from_le_bytes([b[0], b[1]])))
            .collect()
    }
}

fn wav_pcm16_mono(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn convert(input: &str, output: &str) -> Result<String, WavError> {
    let file = std::fs::read(input).map_err(WavError::Io)?;
    let wav = parse(&file)?;
    let mut r = Resampler::new(wav.rate, OUT_RATE, wav.channels).map_err(WavError::Resampler)?;
    let ch = usize::from(wav.channels);
    let mut input_samples = samples(&wav);
    let frames = input_samples.len() / ch;
    // Push the filter's delay worth of silence so the tail comes out too: the output then
    // covers exactly the input's duration.
    let tail = r.group_delay_input_frames().ceil() as usize;
    input_samples.resize((frames + tail) * ch, 0.0);
    let mut block_out = vec![0.0f32; r.max_output_capacity(BLOCK_FRAMES)];
    let mut out = Vec::with_capacity(frames * OUT_RATE as usize / wav.rate as usize + 2);
    for block in input_samples.chunks(BLOCK_FRAMES * ch) {
        let n = r
            .process_into(block, &mut block_out)
            .map_err(WavError::Resampler)?;
        out.extend(block_out[..n].iter().map(|&x| pcm16::f32_to_i16(x)));
    }
    std::fs::write(output, wav_pcm16_mono(OUT_RATE, &out)).map_err(WavError::Io)?;
    Ok(format!(
        "{input}: {} Hz, {} ch, {} -> {output}: {OUT_RATE} Hz mono PCM16, {} samples \
         ({:.3} s, filter delay {:.2} ms)",
        wav.rate,
        wav.channels,
        if wav.float {
            "32-bit float"
        } else {
            "16-bit PCM"
        },
        out.len(),
        out.len() as f64 / f64::from(OUT_RATE),
        r.group_delay_ms()
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: resample_wav IN.wav OUT.wav");
        return ExitCode::from(2);
    };
    match convert(input, output) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {input}: {e}");
            ExitCode::FAILURE
        }
    }
}
