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

use realtime_voice::audio::{pcm16, Resampler, ResamplerError};
use std::fmt;
use std::process::ExitCode;

#[path = "common/wav.rs"]
mod wav;

const OUT_RATE: u32 = 24_000;
const BLOCK_FRAMES: usize = 4096;

/// Why a conversion failed: the input file (or writing the output), or the resampler.
#[derive(Debug)]
enum Error {
    Wav(wav::WavError),
    Resampler(ResamplerError),
}

impl From<wav::WavError> for Error {
    fn from(e: wav::WavError) -> Self {
        Self::Wav(e)
    }
}

impl From<ResamplerError> for Error {
    fn from(e: ResamplerError) -> Self {
        Self::Resampler(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wav(e) => write!(f, "{e}"),
            Self::Resampler(e) => write!(f, "{e}"),
        }
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

fn convert(input: &str, output: &str) -> Result<String, Error> {
    let file = wav::read(input)?;
    let wav = wav::parse(&file)?;
    let mut r = Resampler::new(wav.rate, OUT_RATE, wav.channels)?;
    let ch = usize::from(wav.channels);
    let mut input_samples = wav::samples(&wav);
    let frames = input_samples.len() / ch;
    // Push the filter's delay worth of silence so the tail comes out too: the output then
    // covers exactly the input's duration.
    let tail = r.group_delay_input_frames().ceil() as usize;
    input_samples.resize((frames + tail) * ch, 0.0);
    let mut block_out = vec![0.0f32; r.max_output_capacity(BLOCK_FRAMES)];
    let mut out = Vec::with_capacity(frames * OUT_RATE as usize / wav.rate as usize + 2);
    for block in input_samples.chunks(BLOCK_FRAMES * ch) {
        let n = r.process_into(block, &mut block_out)?;
        out.extend(block_out[..n].iter().map(|&x| pcm16::f32_to_i16(x)));
    }
    std::fs::write(output, wav_pcm16_mono(OUT_RATE, &out)).map_err(wav::WavError::Io)?;
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
