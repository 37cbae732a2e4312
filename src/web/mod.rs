//! The web shell (wasm32 only): wires the sans-IO core to the browser — WebSocket, getUserMedia,
//! AudioContext and the two AudioWorklet processors in `worklets/` — and exposes the JavaScript
//! API ([`client::VoiceClient`]). It makes no decisions of its own: every decision is the core's.

pub mod audio;
pub mod client;
pub mod socket;

use wasm_bindgen::prelude::*;

/// Debug flavour only: panics are printed to the console with their location.
#[cfg(feature = "debug-panics")]
#[wasm_bindgen(start)]
fn install_panic_hook() {
    console_error_panic_hook::set_once();
}

/// The package version, as built. The demo page reads it to show that the module initialised.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
