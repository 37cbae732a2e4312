//! PCM16 little-endian samples and their standard base64 form, as carried by the realtime
//! protocol's `audio` fields.
//!
//! Conversions state their assumptions: f32 full scale is `[-1.0, 1.0]`; encoding scales by
//! 32767 (so ±1.0 map to ±32767 and never wrap), decoding divides by 32768 (so every i16,
//! including -32768, maps into `[-1.0, 1.0)`). Encoders append to caller-owned `String`/`Vec`
//! through small stack buffers: nothing is allocated per sample, and nothing at all when the
//! destination already has the capacity.

use std::fmt::{self, Write as _};

use crate::text::{write_parts, Message, Part::*};

/// Converts one f32 sample to i16: clamps to ±1.0, maps NaN to 0, scales by 32767 and rounds to
/// the nearest integer (ties away from zero).
#[inline]
pub fn f32_to_i16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    // Clamped to ±32767.0 before the cast, so the `as` conversion is exact and cannot saturate.
    (x.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// Converts one i16 sample to f32 in `[-1.0, 1.0)` by dividing by 32768.
#[inline]
pub fn i16_to_f32(x: i16) -> f32 {
    f32::from(x) * (1.0 / 32768.0)
}

/// Why a base64 text could not be decoded. Offsets are byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Base64Error {
    /// A byte outside the standard alphabet (`A-Z a-z 0-9 + /` and trailing `=`).
    InvalidByte {
        /// Offset of the byte in the text.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The text length is not a multiple of 4 (padding is required).
    InvalidLength {
        /// Length of the text in bytes.
        len: usize,
    },
    /// `=` in a place other than the last one or two positions.
    InvalidPadding {
        /// Offset of the misplaced `=`.
        offset: usize,
    },
    /// The last symbol carries non-zero bits that no byte uses (non-canonical encoding).
    TrailingBits {
        /// Offset of the symbol with the stray bits.
        offset: usize,
    },
}

impl Message for Base64Error {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match *self {
            Self::InvalidByte { offset, byte } => write_parts(
                out,
                &[
                    S("invalid base64 byte 0x"),
                    Hex(u64::from(byte), 2),
                    S(" at offset "),
                    N(offset as u64),
                ],
            ),
            Self::InvalidLength { len } => write_parts(
                out,
                &[
                    S("base64 length "),
                    N(len as u64),
                    S(" is not a multiple of 4"),
                ],
            ),
            Self::InvalidPadding { offset } => write_parts(
                out,
                &[S("misplaced base64 padding at offset "), N(offset as u64)],
            ),
            Self::TrailingBits { offset } => write_parts(
                out,
                &[
                    S("non-canonical base64: stray bits in the symbol at offset "),
                    N(offset as u64),
                ],
            ),
        }
    }
}

crate::text::display_by_message!(Base64Error);

impl std::error::Error for Base64Error {}

/// Why a base64 PCM16 payload could not be turned into samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pcm16Error {
    /// The payload is not valid base64.
    Base64(Base64Error),
    /// The decoded payload has an odd number of bytes, so it is not a whole number of samples.
    OddByteCount {
        /// Number of decoded bytes.
        bytes: usize,
    },
}

impl Message for Pcm16Error {
    fn write_message(&self, out: &mut String) -> fmt::Result {
        match *self {
            Self::Base64(e) => {
                out.write_str("PCM16 payload: ")?;
                e.write_message(out)
            }
            Self::OddByteCount { bytes } => write_parts(
                out,
                &[
                    S("PCM16 payload has an odd byte count ("),
                    N(bytes as u64),
                    S(")"),
                ],
            ),
        }
    }
}

crate::text::display_by_message!(Pcm16Error);

impl std::error::Error for Pcm16Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Base64(e) => Some(e),
            Self::OddByteCount { .. } => None,
        }
    }
}

impl From<Base64Error> for Pcm16Error {
    fn from(e: Base64Error) -> Self {
        Self::Base64(e)
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Marks bytes outside the alphabet in [`DECODE`].
const INVALID: u8 = 0xff;

/// Reverse alphabet, built at compile time (256 bytes, no runtime init).
const DECODE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Bytes per stack block when encoding: a multiple of 3 so blocks never need padding mid-stream.
const ENC_BLOCK_BYTES: usize = 768;

/// Length of the padded base64 text for `bytes` input bytes.
pub fn encoded_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Appends the standard, padded base64 encoding of `bytes` to `out`.
pub fn encode_base64(bytes: &[u8], out: &mut String) {
    out.reserve(encoded_len(bytes.len()));
    let mut text = [0u8; ENC_BLOCK_BYTES / 3 * 4];
    for block in bytes.chunks(ENC_BLOCK_BYTES) {
        let n = encode_block(block, &mut text);
        push_ascii(&text[..n], out);
    }
}

/// Appends f32 samples as PCM16 little-endian, base64-encoded, to `out`
/// (the `input_audio_buffer.append` payload), without per-sample allocation.
pub fn encode_f32_as_pcm16_base64(samples: &[f32], out: &mut String) {
    encode_samples(samples.len(), |i| f32_to_i16(samples[i]), out);
}

/// Appends i16 samples as PCM16 little-endian, base64-encoded, to `out`.
pub fn encode_i16_as_pcm16_base64(samples: &[i16], out: &mut String) {
    encode_samples(samples.len(), |i| samples[i], out);
}

fn encode_samples(n: usize, sample: impl Fn(usize) -> i16, out: &mut String) {
    out.reserve(encoded_len(n * 2));
    let mut bytes = [0u8; ENC_BLOCK_BYTES];
    let mut text = [0u8; ENC_BLOCK_BYTES / 3 * 4];
    let per_block = ENC_BLOCK_BYTES / 2;
    let mut start = 0;
    while start < n {
        let end = (start + per_block).min(n);
        for (i, pair) in (start..end).zip(bytes.chunks_exact_mut(2)) {
            pair.copy_from_slice(&sample(i).to_le_bytes());
        }
        let len = encode_block(&bytes[..(end - start) * 2], &mut text);
        push_ascii(&text[..len], out);
        start = end;
    }
}

/// Encodes `bytes` (at most `ENC_BLOCK_BYTES`) into `text`, returns the text length.
fn encode_block(bytes: &[u8], text: &mut [u8]) -> usize {
    let mut n = 0;
    let mut triples = bytes.chunks_exact(3);
    for t in &mut triples {
        let v = u32::from(t[0]) << 16 | u32::from(t[1]) << 8 | u32::from(t[2]);
        text[n] = ALPHABET[(v >> 18) as usize & 63];
        text[n + 1] = ALPHABET[(v >> 12) as usize & 63];
        text[n + 2] = ALPHABET[(v >> 6) as usize & 63];
        text[n + 3] = ALPHABET[v as usize & 63];
        n += 4;
    }
    match *triples.remainder() {
        [a] => {
            let v = u32::from(a) << 16;
            text[n] = ALPHABET[(v >> 18) as usize & 63];
            text[n + 1] = ALPHABET[(v >> 12) as usize & 63];
            text[n + 2] = b'=';
            text[n + 3] = b'=';
            n += 4;
        }
        [a, b] => {
            let v = u32::from(a) << 16 | u32::from(b) << 8;
            text[n] = ALPHABET[(v >> 18) as usize & 63];
            text[n + 1] = ALPHABET[(v >> 12) as usize & 63];
            text[n + 2] = ALPHABET[(v >> 6) as usize & 63];
            text[n + 3] = b'=';
            n += 4;
        }
        _ => {}
    }
    n
}

fn push_ascii(text: &[u8], out: &mut String) {
    // `text` holds only bytes from ALPHABET or `=`, all ASCII, so the conversion cannot fail (and
    // no panic path with `Utf8Error`'s `Debug` is linked for it).
    if let Ok(s) = std::str::from_utf8(text) {
        out.push_str(s);
    }
}

/// Number of bytes `text` decodes to, after checking its length and padding layout.
fn decoded_len(text: &[u8]) -> Result<usize, Base64Error> {
    if text.len() % 4 != 0 {
        return Err(Base64Error::InvalidLength { len: text.len() });
    }
    let pad = text
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    Ok(text.len() / 4 * 3 - pad)
}

/// Decodes every quad of `text` (length already checked), calling `sink` with 1 to 3 bytes each.
fn decode_quads(text: &[u8], mut sink: impl FnMut(&[u8])) -> Result<(), Base64Error> {
    let quads = text.len() / 4;
    for (q, quad) in text.chunks_exact(4).enumerate() {
        let base = q * 4;
        let last = q + 1 == quads;
        let mut v: u32 = 0;
        let mut pad = 0;
        for (i, &b) in quad.iter().enumerate() {
            let d = DECODE[b as usize];
            if d == INVALID {
                if b == b'=' && last && (i == 3 || (i == 2 && quad[3] == b'=')) {
                    pad += 1;
                    v <<= 6;
                    continue;
                }
                return Err(if b == b'=' {
                    Base64Error::InvalidPadding { offset: base + i }
                } else {
                    Base64Error::InvalidByte {
                        offset: base + i,
                        byte: b,
                    }
                });
            }
            if pad > 0 {
                // A symbol after `=`.
                return Err(Base64Error::InvalidPadding {
                    offset: base + i - 1,
                });
            }
            v = v << 6 | u32::from(d);
        }
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        match pad {
            0 => sink(&bytes),
            1 => {
                if v & 0xff != 0 {
                    return Err(Base64Error::TrailingBits { offset: base + 2 });
                }
                sink(&bytes[..2]);
            }
            _ => {
                if v & 0xffff != 0 {
                    return Err(Base64Error::TrailingBits { offset: base + 1 });
                }
                sink(&bytes[..1]);
            }
        }
    }
    Ok(())
}

/// Appends the bytes decoded from standard, padded base64 `text` to `out`. On error `out` is
/// left as it was.
pub fn decode_base64(text: &str, out: &mut Vec<u8>) -> Result<(), Base64Error> {
    let text = text.as_bytes();
    let n = decoded_len(text)?;
    let start = out.len();
    out.reserve(n);
    let res = decode_quads(text, |b| out.extend_from_slice(b));
    if res.is_err() {
        out.truncate(start);
    }
    res
}

/// Appends the f32 samples of a base64 PCM16 little-endian payload (`response.audio.delta`) to
/// `out` and returns how many were appended. On error `out` is left as it was.
pub fn decode_pcm16_base64_to_f32(text: &str, out: &mut Vec<f32>) -> Result<usize, Pcm16Error> {
    let text = text.as_bytes();
    let bytes = decoded_len(text)?;
    if bytes % 2 != 0 {
        return Err(Pcm16Error::OddByteCount { bytes });
    }
    let start = out.len();
    out.reserve(bytes / 2);
    let mut low: Option<u8> = None;
    let res = decode_quads(text, |bs| {
        for &b in bs {
            match low.take() {
                None => low = Some(b),
                Some(lo) => out.push(i16_to_f32(i16::from_le_bytes([lo, b]))),
            }
        }
    });
    match res {
        Ok(()) => Ok(bytes / 2),
        Err(e) => {
            out.truncate(start);
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_i16_edges() {
        assert_eq!(f32_to_i16(0.0), 0);
        assert_eq!(f32_to_i16(-0.0), 0);
        assert_eq!(f32_to_i16(1.0), 32767);
        assert_eq!(f32_to_i16(-1.0), -32767);
        assert_eq!(f32_to_i16(1.5), 32767);
        assert_eq!(f32_to_i16(-7.0), -32767);
        assert_eq!(f32_to_i16(f32::INFINITY), 32767);
        assert_eq!(f32_to_i16(f32::NEG_INFINITY), -32767);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(f32_to_i16(0.5 / 32767.0), 1, "ties round away from zero");
        assert_eq!(f32_to_i16(0.49 / 32767.0), 0);
        assert_eq!(f32_to_i16(-0.51 / 32767.0), -1);
    }

    #[test]
    fn i16_to_f32_edges() {
        assert_eq!(i16_to_f32(0), 0.0);
        assert_eq!(i16_to_f32(i16::MIN), -1.0);
        assert_eq!(i16_to_f32(i16::MAX), 32767.0 / 32768.0);
        assert!(i16_to_f32(i16::MAX) < 1.0);
    }

    #[test]
    fn round_trip_i16_f32_i16_is_close() {
        for x in [i16::MIN + 1, -12345, -1, 0, 1, 12345, i16::MAX] {
            let back = f32_to_i16(i16_to_f32(x));
            assert!((i32::from(back) - i32::from(x)).abs() <= 1, "{x} -> {back}");
        }
    }

    #[test]
    fn base64_rfc4648_vectors() {
        let cases: [(&str, &str); 7] = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            let mut s = String::from(">");
            encode_base64(plain.as_bytes(), &mut s);
            assert_eq!(&s[1..], enc);
            let mut v = vec![7u8];
            decode_base64(enc, &mut v).unwrap();
            assert_eq!(&v[1..], plain.as_bytes());
        }
    }

    #[test]
    fn base64_errors_are_typed() {
        let mut v = Vec::new();
        assert_eq!(
            decode_base64("Zm9", &mut v),
            Err(Base64Error::InvalidLength { len: 3 })
        );
        assert_eq!(
            decode_base64("Zm9v!mFy", &mut v),
            Err(Base64Error::InvalidByte {
                offset: 4,
                byte: b'!'
            })
        );
        assert_eq!(
            decode_base64("Zm=v", &mut v),
            Err(Base64Error::InvalidPadding { offset: 2 })
        );
        assert_eq!(
            decode_base64("Z===", &mut v),
            Err(Base64Error::InvalidPadding { offset: 1 })
        );
        assert_eq!(
            decode_base64("Zm==Zm9v", &mut v),
            Err(Base64Error::InvalidPadding { offset: 2 })
        );
        assert_eq!(
            decode_base64("Zh==", &mut v),
            Err(Base64Error::TrailingBits { offset: 1 })
        );
        assert_eq!(
            decode_base64("Zm9=", &mut v),
            Err(Base64Error::TrailingBits { offset: 2 })
        );
        assert!(v.is_empty(), "nothing appended on error");
    }

    #[test]
    fn pcm16_payload_round_trip() {
        let samples = [0i16, 1, -1, i16::MIN, i16::MAX, 256, -256];
        let mut s = String::new();
        encode_i16_as_pcm16_base64(&samples, &mut s);
        // Little-endian: 1 is 01 00, -1 is ff ff.
        let mut bytes = Vec::new();
        decode_base64(&s, &mut bytes).unwrap();
        assert_eq!(&bytes[..6], &[0, 0, 1, 0, 0xff, 0xff]);
        let mut f = Vec::new();
        assert_eq!(decode_pcm16_base64_to_f32(&s, &mut f), Ok(samples.len()));
        let back: Vec<i16> = f.iter().map(|&x| (x * 32768.0) as i16).collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn f32_encoding_matches_i16_encoding() {
        let xs: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin() * 1.2).collect();
        let is: Vec<i16> = xs.iter().map(|&x| f32_to_i16(x)).collect();
        let (mut a, mut b) = (String::new(), String::new());
        encode_f32_as_pcm16_base64(&xs, &mut a);
        encode_i16_as_pcm16_base64(&is, &mut b);
        assert_eq!(a, b);
        assert_eq!(a.len(), encoded_len(2000));
    }

    #[test]
    fn odd_byte_count_is_an_error() {
        let mut s = String::new();
        encode_base64(&[1, 2, 3], &mut s);
        let mut f = vec![0.5];
        assert_eq!(
            decode_pcm16_base64_to_f32(&s, &mut f),
            Err(Pcm16Error::OddByteCount { bytes: 3 })
        );
        assert_eq!(f, [0.5]);
        assert!(matches!(
            decode_pcm16_base64_to_f32("AA$=", &mut f),
            Err(Pcm16Error::Base64(Base64Error::InvalidByte {
                offset: 2,
                byte: b'$'
            }))
        ));
    }
}
