//! realtime-voice: a complete realtime voice conversation with an AI, in the browser, through a
//! backend relay speaking the OpenAI Realtime event protocol.
//!
//! The crate has two layers (see `docs/ARCHITECTURE.md`):
//!
//! - the **core** — [`audio`], [`protocol`], [`session`] — is pure Rust with no dependencies on the
//!   browser. It is sans-IO: time enters as `now_ms`, inputs are `handle_*` calls and outputs are
//!   drained with `poll_output()`. It builds and tests natively.
//! - the **web shell** — `web`, compiled only for `wasm32` — wires the core to WebSocket,
//!   getUserMedia, AudioContext and two tiny AudioWorklet processors, and exposes the typed
//!   `VoiceClient` JavaScript API. It makes no decisions of its own.
//!
//! ```text
//! mic ─► capture worklet ─► web shell ─► core: resample → PCM16 → chunk ─► session ─► WebSocket
//! speaker ◄─ playback worklet ◄─ web shell ◄─ core: decode deltas, truncate bookkeeping ◄─┘
//! ```

pub mod audio;
pub mod protocol;
pub mod session;
mod text;

#[cfg(target_arch = "wasm32")]
pub mod web;

/// The wasm heap: Talc instead of std's dlmalloc (smaller code for the same job: freed blocks are
/// reused and coalesced, and the heap grows with `memory.grow` only when no free block fits).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
