//! Audio core: everything between the microphone's `Float32Array` frames and the
//! `input_audio_buffer.append` payloads, and back for playback. Pure Rust, no browser APIs.
//!
//! ```text
//! mic f32 @ device rate ─► Resampler (downmix + polyphase windowed sinc) ─► f32 @ 24 kHz mono
//!   ─► pcm16::f32_to_i16 ─► Chunker (≥100 ms chunks, ≤10/s, bounded backlog)
//!   ─► pcm16::encode_i16_as_pcm16_base64 ─► JSON event
//! server base64 PCM16 @ 24 kHz ─► pcm16::decode_pcm16_base64_to_f32 ─► (Resampler to device rate)
//! ```
//!
//! Every per-block call works in caller-provided buffers and performs no allocation once the
//! objects are constructed; all memory is sized at construction from the configuration.

pub mod chunker;
pub mod conceal;
pub mod duck;
pub mod echo_guard;
pub mod level;
pub mod pcm16;
pub mod resample;

pub use chunker::{ChunkInfo, Chunker, ChunkerConfig, ChunkerError};
pub use echo_guard::{EchoGuard, EchoStats, GateState};
pub use level::{measure_level, Level};
pub use pcm16::{Base64Error, Pcm16Error};
pub use resample::{Resampler, ResamplerError};
