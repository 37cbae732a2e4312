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

#[wasm_bindgen(module = "/src/web/glue.js")]
extern "C" {
    #[wasm_bindgen(js_name = settle)]
    fn settle_js(ok: bool, p: &JsValue, done: JsValue);
}

/// What a promise settled with: `Ok(value)` or `Err(reason)`.
pub(crate) type Settled = Result<JsValue, JsValue>;

/// Calls `f` with what `p` fulfils with (a plain value counts as fulfilled; `Err` is passed on as
/// a rejection), in a later microtask: never inside the caller, so never inside the drain.
pub(crate) fn then(p: Settled, f: impl FnOnce(Settled) + 'static) {
    then_boxed(p, Box::new(f));
}

fn then_boxed(p: Settled, f: Box<dyn FnOnce(Settled)>) {
    let (ok, v) = match p {
        Ok(v) => (true, v),
        Err(e) => (false, e),
    };
    let done =
        Closure::once_into_js(move |ok: bool, v: JsValue| f(if ok { Ok(v) } else { Err(v) }));
    settle_js(ok, &v, done);
}

/// The package version, as built. The demo page reads it to show that the module initialised.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
