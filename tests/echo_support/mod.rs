//! The echo fixtures (tests/fixtures/echo/, made by scripts/echo-lab/render-fixtures.sh) for the
//! echo guard's tests.

/// The fixtures' folder.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/echo");

/// A fixture of the echo folder: 24 kHz mono PCM16.
pub fn wav(name: &str) -> Vec<i16> {
    wav_at(&format!("{DIR}/{name}"))
}

/// A 24 kHz mono PCM16 WAV (44-byte header).
pub fn wav_at(path: &str) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..4], b"RIFF", "{path} is not a WAV");
    assert_eq!(
        u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]),
        24_000
    );
    bytes[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}
