//! Reading WAV files for the examples: the RIFF chunks, the `fmt ` header (plain or
//! WAVE_FORMAT_EXTENSIBLE) and the samples of 16-bit PCM or 32-bit float data, at any rate and
//! channel count. Shared by `resample_wav` and `echo_replay` (each includes it with
//! `#[path = "common/wav.rs"] mod wav;`) so that both accept and refuse the same files with the
//! same messages; what rates and channel counts an example can use is its own check.

use realtime_voice::audio::pcm16;
use std::fmt;

/// What was wrong with a WAV file, worded for the user (the caller adds the path).
#[derive(Debug)]
pub enum WavError {
    /// Reading the file failed; `resample_wav` also reports a failed write of its output so.
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
        }
    }
}

/// The parts of a WAV file the examples need, borrowing the samples from the file's bytes.
#[derive(Debug)]
pub struct Wav<'a> {
    /// Sample rate in Hz, as the header says (not checked against any range here).
    pub rate: u32,
    /// Channels, interleaved in `data`; at least 1.
    pub channels: u16,
    /// 32-bit float samples if true, else 16-bit PCM.
    pub float: bool,
    /// The `data` chunk's bytes, little-endian samples: read them with [`samples`].
    data: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The whole file's bytes, for [`parse`] to borrow from; failing to read it is [`WavError::Io`].
pub fn read(path: &str) -> Result<Vec<u8>, WavError> {
    std::fs::read(path).map_err(WavError::Io)
}

/// Finds the `fmt ` and `data` chunks of a whole WAV file and checks the header: 16-bit PCM or
/// 32-bit float (plain or WAVE_FORMAT_EXTENSIBLE), a block align that matches the channels.
pub fn parse(file: &[u8]) -> Result<Wav<'_>, WavError> {
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

/// Samples of the whole file as f32, interleaved (a trailing partial frame is ignored); 16-bit
/// PCM through [`pcm16::i16_to_f32`], as the client converts what it decodes.
pub fn samples(wav: &Wav<'_>) -> Vec<f32> {
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
