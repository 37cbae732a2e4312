//! The web shell (wasm32 only): wires the sans-IO core to the browser — WebSocket, getUserMedia,
//! AudioContext and the two AudioWorklet processors in `worklets/` — and exposes the JavaScript
//! API ([`client::VoiceClient`]). It makes no decisions of its own: every decision is the core's.

pub mod audio;
pub mod client;
pub mod socket;

use wasm_bindgen::prelude::*;

/// The package version, as built. The demo page reads it to show that the module initialised.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
